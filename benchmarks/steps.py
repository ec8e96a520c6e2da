"""The steps after a crawl (tables, DuckDB, report) on a large archive, before | after.

    python -m benchmarks.cost --baseline REV --rows instant,steps [--steps-copies 34]

A 10,000-post archive without hours of crawling: the ``instant`` row's snapshot (294 posts,
6,695 records) copied ``copies`` times with fresh keys (entry, post, arXiv and tweet IDs; slugs
and sources get ``-xN``), so each copy brings its own papers and tweets as a new year of digests
would, written as the crawler writes a snapshot (its line format and order) with its posts list
and run report. Each side then runs the steps a refresh runs after its crawl as the crawl's
supervisor runs them (``crawler.export.analysis``: its steps, in its order, with its
environment, the posts list in the job, none after one that failed), each as its own command
(``python -m crawler.export.analysis JOB OUT STEP``): peak RSS of the process tree (psutil),
wall time, exit status and the step's one-line failure. The crawl itself at 10,000 posts is
the ``big`` row's (hours); the process running the steps adds ~14 MB to each.
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

from benchmarks.baseline import Code
from benchmarks.measure import log, measure
from crawler.export import analysis
from crawler.export.contract import sort_key
from crawler.export.files import posts_file
from crawler.export.jsonlines import dumps

STEPS = analysis.STEPS  # the supervisor's, in its order
# Bumped whenever the copies change, so an archive scaled by an earlier version is made again.
SCALER_VERSION = 2
COPIES_MAX = 39  # new-style arXiv years 61-99 for the copies
TWEET_ID_DIGITS = 20  # the schema's tweet_id: at most 20 digits


def step_env(root: Path) -> dict[str, str]:
    """The environment the crawl's supervisor gives each step, with ``root`` (the side's
    checkout) first on the path."""
    return {**analysis.step_env(), "PYTHONPATH": str(root)}


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


def _scaled(source: Path, folder: Path, copies: int) -> dict[str, int]:
    """The scaled archive, reused from ``folder`` when made from the same source file by this
    version of the copying."""
    stamp = folder / "scaled.json"
    st = source.stat()
    made = {"source": str(source), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "copies": copies, "version": SCALER_VERSION}  # fmt: skip
    if stamp.exists() and (old := json.loads(stamp.read_text("utf-8")))["made"] == made:
        return dict(old["facts"])
    stamp.unlink(missing_ok=True)
    facts = scale_snapshot(source, folder, copies)
    stamp.write_text(json.dumps({"made": made, "facts": facts}), "utf-8")
    return facts


def write_job(snapshot: Path, side: Path, run_report: dict[str, Any], records: int) -> Path:
    """What the crawl hands the steps (``crawler.export.runfiles``), for this snapshot: the
    posts list too, as the crawl's job carries it (every step reads it with the job)."""
    side.mkdir(parents=True, exist_ok=True)
    job: dict[str, Any] = {
        "snapshot": str(snapshot),
        "dataset": str(side / "digests.dataset"),
        "report": str(side / "digests.report.html"),
        "run_report": {**run_report, "records": records},
        "changes": [],
        "built_from": None,
        "posts": [json.loads(p) for p in posts_file(snapshot).read_bytes().splitlines()],
    }
    path = side / "job" / "job.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(job, ensure_ascii=False), "utf-8")
    return path


def _run_step(code: Code, job: Path, side: Path, step: str) -> dict[str, Any]:
    failure = side / f"{step}.failure"
    failure.unlink(missing_ok=True)
    cmd = [code.python, "-m", "crawler.export.analysis", str(job), str(failure), step]
    m = measure(cmd, env=step_env(code.root), stdout=side / f"{step}.stdout",
                stderr=side / f"{step}.log", cwd=code.root)  # fmt: skip
    why = failure.read_text("utf-8").strip() if failure.exists() else None
    got = {
        "exit": m.returncode,
        "wall_s": round(m.wall_s, 1),
        "peak_rss_mb": round(m.peak_rss_mb, 1),
        "failure": why,
        "load_before": m.cpu["loadavg_before"],
    }
    log(f"  {code.label} {code.rev} {step}: {json.dumps(got)}")
    return got


def run_steps(code: Code, job: Path, side: Path) -> dict[str, Any]:
    """Each step of a refresh after its crawl, as its own command, as the supervisor runs
    them: in its order, from a handoff of this run's own, none after a step that failed (None:
    not run), the tables a failed step leaves discarded."""
    result: dict[str, Any] = {"rev": code.rev}
    handoff = job.with_name(analysis.HANDOFF)
    handoff.unlink(missing_ok=True)  # an earlier run's: the supervisor's job folder is new
    failed = False
    for step in STEPS:
        if failed:
            result[step] = None
            continue
        result[step] = _run_step(code, job, side, step)
        failed = result[step]["exit"] != 0
        if failed and step != "report":
            dataset = Path(json.loads(job.read_text("utf-8"))["dataset"])
            analysis.discard_tables(handoff, dataset)
    return result


def steps_row(sides: list[Code], work: Path, copies: int) -> dict[str, Any]:
    """The scaled archive from the ``instant`` row's after side, then each side's steps."""
    source = work / "instant" / sides[-1].label / "digests.jsonl"
    if not source.exists():
        raise SystemExit(f"steps: {source} not found; run the instant row first (same --work)")
    folder = work / "steps"
    folder.mkdir(exist_ok=True)
    log(f"== steps: {copies} copies of {source}")
    facts = _scaled(source, folder, copies)
    run_report = json.loads(source.with_suffix(".run.json").read_text("utf-8"))
    row: dict[str, Any] = {"copies": copies, **facts, "steps": list(STEPS), "sides": {}}
    for code in sides:
        side = folder / code.label
        job = write_job(folder / "digests.jsonl", side, run_report, facts["records"])
        row["sides"][code.label] = run_steps(code, job, side)
    return row
