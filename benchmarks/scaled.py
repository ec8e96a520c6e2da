"""A large archive from a small one: a snapshot copied N times with fresh keys.

Each copy brings its own entries, posts, papers and tweets, as a new stretch of digests would:
entry and post IDs hashed, slugs and sources ``-xN``, arXiv years 60+N, tweet IDs N x 2e18
above the originals (valid IDs that meet no other copy's). Written in snapshot order by sorting
keys only. Used by ``benchmarks.steps``; imports nothing of the harness (no psutil), so the
test suite checks it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from crawler.export.contract import sort_key
from crawler.export.files import posts_file


def _fresh(value: str, copy: int) -> str:
    return hashlib.blake2b(f"{value}/{copy}".encode(), digest_size=8).hexdigest()


def _post(post: dict[str, Any], copy: int) -> dict[str, Any]:
    if not copy:
        return post
    return {**post, "id": _fresh(post["id"], copy), "slug": f"{post['slug']}-x{copy}",
            "source": f"x{copy}_{post['source']}"}  # fmt: skip


def _paper(arxiv_id: str, copy: int) -> str:
    """A valid arXiv ID of the copy's own: the year becomes 60 + copy (2106.09685 -> 6106.09685
    in copy 1), a year arXiv has not reached, so no copy meets another's or the original's."""
    archive, slash, number = arxiv_id.rpartition("/")
    return f"{archive}{slash}{60 + copy:02d}{number[2:]}"


def _tweet(tweet_id: str, copy: int) -> str:
    """Snowflake IDs of 2021 are ~1.4e18: copy N's are N x 2e18 above, still 20 digits."""
    return str(int(tweet_id) + copy * 2 * 10**18)


def _copied(record: dict[str, Any], copy: int) -> dict[str, Any]:
    """``record`` as copy ``copy`` of the archive: the same values under keys of its own."""
    if not copy:
        return record
    record["entry_id"] = _fresh(record["entry_id"], copy)
    record["post"] = _post(record["post"], copy)
    if record.get("arxiv_id"):
        record["arxiv_id"] = _paper(record["arxiv_id"], copy)
    arxiv = record.get("arxiv") or {}
    if arxiv.get("versioned_id"):
        base, _, version = arxiv["versioned_id"].rpartition("v")
        arxiv["versioned_id"] = f"{_paper(base, copy)}v{version}"
    for tweet in record.get("tweets") or ():
        tweet["id"] = _tweet(tweet["id"], copy)
        details = tweet.get("details") or {}
        for key in ("quoted_tweet_id", "in_reply_to_id"):
            if details.get(key):
                details[key] = _tweet(details[key], copy)
    return record


def _post_order(post: dict[str, Any]) -> tuple[str, str, str]:
    return (post.get("published_at") or "", post["slug"], post["source"])


def scale_snapshot(snapshot: Path, out: Path, copies: int) -> dict[str, int]:
    """``copies`` copies of ``snapshot`` (and its posts list) in ``out``, in snapshot order;
    records are built one at a time from the original's lines, so only keys are sorted."""
    if not 1 <= copies <= 39:
        raise ValueError(f"copies: {copies} is not 1 to 39 (the copies' arXiv years are 61-99)")
    lines = snapshot.read_bytes().splitlines()
    order = []
    for index, line in enumerate(lines):
        record = json.loads(line)
        for copy in range(copies):
            order.append((sort_key({**record, "post": _post(record["post"], copy)}), copy, index))
    order.sort()
    target = out / "digests.jsonl"
    with target.open("w", encoding="utf-8") as f:
        for _, copy, index in order:
            copied = _copied(json.loads(lines[index]), copy)
            f.write(json.dumps(copied, ensure_ascii=False, separators=(",", ":")) + "\n")
    posts = [json.loads(p) for p in posts_file(snapshot).read_bytes().splitlines()]
    scaled = sorted((_post(p, c) for c in range(copies) for p in posts), key=_post_order)
    text = "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in scaled)
    posts_file(target).write_text(text, "utf-8")
    return {"posts": len(scaled), "records": len(order), "bytes": target.stat().st_size}
