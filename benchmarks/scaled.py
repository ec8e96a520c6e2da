"""A large archive from a small one: a snapshot copied N times with fresh keys.

Each copy brings its own entries, posts, papers and tweets, as a new stretch of digests would:
entry and post IDs hashed, slugs and sources ``-xN``; arXiv IDs no other copy has, nor another
paper of the same copy (new style: the year 60 + N, the number counted within the month; old
style: the archive gets ``-x`` and the copy's letters); tweet IDs (and the quoted and
replied-to ones) N x (the largest original + 1) above the originals, at most 20 digits. Written
as the crawler writes a snapshot (``crawler.export.jsonlines``: its line format, its order), by
sorting keys only. Used by ``benchmarks.steps``; imports nothing of the harness (no psutil), so
the test suite checks it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crawler.export.contract import sort_key
from crawler.export.files import posts_file
from crawler.export.jsonlines import dumps

# Bumped whenever the copies change, so an archive scaled by an earlier version is made again.
SCALER_VERSION = 2
COPIES_MAX = 39  # new-style arXiv years 61-99 for the copies
TWEET_ID_DIGITS = 20  # the schema's tweet_id: at most 20 digits


def _fresh(value: str, copy: int) -> str:
    return hashlib.blake2b(f"{value}/{copy}".encode(), digest_size=8).hexdigest()


def _post(post: dict[str, Any], copy: int) -> dict[str, Any]:
    if not copy:
        return post
    return {**post, "id": _fresh(post["id"], copy), "slug": f"{post['slug']}-x{copy}",
            "source": f"x{copy}_{post['source']}"}  # fmt: skip


def _letters(n: int) -> str:
    """1 -> a, 26 -> z, 27 -> aa: a name part of lowercase letters only, as arXiv's are."""
    text = ""
    while n:
        n, digit = divmod(n - 1, 26)
        text = chr(ord("a") + digit) + text
    return text


@dataclass(frozen=True)
class _Keys:
    """How the copies rename what identifies a paper or a tweet.

    ``numbers``: each new-style arXiv ID's month and number in the copies (``2106.09685`` ->
    ``06.00042``), numbered within its month: the year becomes the copy's own, so two papers
    of one month in different years (2012.00566, 2112.00566) must not keep one number.
    ``stride``: copy N's tweet IDs are N x stride above the original's, and every original ID
    is below it, so no copy's range meets another's.
    """

    numbers: dict[str, str]
    stride: int

    def paper(self, arxiv_id: str, copy: int) -> str:
        """Copy ``copy``'s ID for a paper: new style, the year 60 + copy, a year arXiv has not
        reached (6106.00042 in copy 1); old style, the archive gets ``-x`` and the copy's letters
        (hep-th/9901001 -> hep-th-xa/9901001), an archive arXiv does not have."""
        if not copy:
            return arxiv_id
        archive, slash, number = arxiv_id.partition("/")
        if not slash:
            return f"{60 + copy:02d}{self.numbers[arxiv_id]}"
        name, dot, subject = archive.partition(".")
        return f"{name}-x{_letters(copy)}{dot}{subject}/{number}"

    def tweet(self, tweet_id: str, copy: int) -> str:
        return str(int(tweet_id) + copy * self.stride)


def _numbers(papers: Iterable[str]) -> dict[str, str]:
    """Each new-style arXiv ID's month and number in the copies (see :class:`_Keys`)."""
    numbers: dict[str, str] = {}
    in_month: Counter[str] = Counter()
    for arxiv_id in sorted({p for p in papers if "/" not in p}):
        if arxiv_id[:2] > "60":
            raise ValueError(f"arXiv ID {arxiv_id}: its year is one of the copies' (61-99)")
        month = arxiv_id[2:4]
        in_month[month] += 1
        if in_month[month] > 99_999:
            raise ValueError(f"more than 99,999 papers of month {month}: no number left")
        numbers[arxiv_id] = f"{month}.{in_month[month]:05d}"
    return numbers


def _named(record: dict[str, Any]) -> tuple[list[str], list[int]]:
    """The arXiv and tweet IDs ``record`` names, as the copies rename them."""
    papers = [record["arxiv_id"]] if record.get("arxiv_id") else []
    if versioned := (record.get("arxiv") or {}).get("versioned_id"):
        papers.append(versioned.rpartition("v")[0])
    tweets: list[int] = []
    for tweet in record.get("tweets") or ():
        tweets.append(int(tweet["id"]))
        papers.extend(tweet.get("linked_arxiv_ids") or ())
        details = tweet.get("details") or {}
        tweets.extend(
            int(details[k]) for k in ("quoted_tweet_id", "in_reply_to_id") if details.get(k)
        )
    return papers, tweets


def _copied_tweet(tweet: dict[str, Any], copy: int, keys: _Keys) -> None:
    tweet["id"] = keys.tweet(tweet["id"], copy)
    if tweet.get("linked_arxiv_ids"):
        tweet["linked_arxiv_ids"] = [keys.paper(p, copy) for p in tweet["linked_arxiv_ids"]]
    details = tweet.get("details") or {}
    for key in ("quoted_tweet_id", "in_reply_to_id"):
        if details.get(key):
            details[key] = keys.tweet(details[key], copy)


def _copied(record: dict[str, Any], copy: int, keys: _Keys) -> dict[str, Any]:
    """``record`` as copy ``copy`` of the archive: the same values under keys of its own."""
    if not copy:
        return record
    record["entry_id"] = _fresh(record["entry_id"], copy)
    record["post"] = _post(record["post"], copy)
    if record.get("arxiv_id"):
        record["arxiv_id"] = keys.paper(record["arxiv_id"], copy)
    arxiv = record.get("arxiv") or {}
    if arxiv.get("versioned_id"):
        base, _, version = arxiv["versioned_id"].rpartition("v")
        arxiv["versioned_id"] = f"{keys.paper(base, copy)}v{version}"
    for tweet in record.get("tweets") or ():
        _copied_tweet(tweet, copy, keys)
    return record


def _post_order(post: dict[str, Any]) -> tuple[str, str, str]:
    return (post.get("published_at") or "", post["slug"], post["source"])


def _survey(lines: list[bytes], copies: int) -> tuple[list[tuple[str, int, int]], _Keys]:
    """Every copy's (sort key, copy, line) in snapshot order, and the copies' keys."""
    order = []
    papers: set[str] = set()
    top = 0
    for index, line in enumerate(lines):
        record = json.loads(line)
        named, tweets = _named(record)
        papers.update(named)
        top = max(top, *tweets) if tweets else top
        for copy in range(copies):
            order.append((sort_key({**record, "post": _post(record["post"], copy)}), copy, index))
    order.sort()
    keys = _Keys(_numbers(papers), top + 1)
    if (copies - 1) * keys.stride + top >= 10**TWEET_ID_DIGITS:
        raise ValueError(f"copies: {copies} copies of tweet IDs up to {top} pass 20 digits")
    return order, keys


def scale_snapshot(snapshot: Path, out: Path, copies: int) -> dict[str, int]:
    """``copies`` copies of ``snapshot`` (and its posts list) in ``out``, as the crawler writes
    a snapshot (``crawler.export.jsonlines``: its line format; sorted by key, equal keys by the
    lines' bytes); records are built one at a time from the original's lines, so only keys are
    sorted."""
    if not 1 <= copies <= COPIES_MAX:
        raise ValueError(f"copies: {copies} is not 1 to {COPIES_MAX} (arXiv years 61-99)")
    lines = snapshot.read_bytes().splitlines()
    order, keys = _survey(lines, copies)
    target = out / "digests.jsonl"
    with target.open("wb") as f:
        for _, tied in itertools.groupby(order, key=lambda o: o[0]):
            f.writelines(sorted(dumps(_copied(json.loads(lines[i]), c, keys)) for _, c, i in tied))
    posts = [json.loads(p) for p in posts_file(snapshot).read_bytes().splitlines()]
    scaled = sorted((_post(p, c) for c in range(copies) for p in posts), key=_post_order)
    text = "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in scaled)
    posts_file(target).write_text(text, "utf-8")
    return {"posts": len(scaled), "records": len(order), "bytes": target.stat().st_size}
