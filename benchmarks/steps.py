"""The steps after a crawl (tables, DuckDB, report) on a large archive, before | after.

    python -m benchmarks.cost --baseline REV --rows instant,steps [--steps-copies 34]

A 10,000-post archive without hours of crawling: the ``instant`` row's snapshot (294 posts,
6,695 records) copied ``copies`` times with fresh keys (entry, post, arXiv and tweet IDs; slugs
and sources get ``-xN``), so each copy brings its own papers and tweets as a new year of digests
would, written in snapshot order with its posts list and run report. Each side then runs the
steps a refresh runs after its crawl, one after another, each as its own command
(``python -m crawler.export.analysis JOB OUT STEP``): peak RSS of the process tree (psutil),
wall time, exit status and the step's one-line failure. The crawl itself at 10,000 posts is
the ``big`` row's (hours); the process running the steps adds ~14 MB to each.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from benchmarks.baseline import Code
from benchmarks.measure import child_env, log, measure
from crawler.export.contract import sort_key
from crawler.export.files import posts_file

STEPS = ("tables", "dataset", "report")
# What the crawl's supervisor gives each step (crawler.export.analysis._step): Arrow's default
# pool (mimalloc) keeps freed row-group pages, ~30 MB more at the tables step's peak.
STEP_ENV = {"ARROW_DEFAULT_MEMORY_POOL": "system"}


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


def _scaled(source: Path, folder: Path, copies: int) -> dict[str, int]:
    """The scaled archive, reused from ``folder`` when made from the same source file."""
    stamp = folder / "scaled.json"
    st = source.stat()
    made = {"source": str(source), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "copies": copies}
    if stamp.exists() and (old := json.loads(stamp.read_text("utf-8")))["made"] == made:
        return dict(old["facts"])
    stamp.unlink(missing_ok=True)
    facts = scale_snapshot(source, folder, copies)
    stamp.write_text(json.dumps({"made": made, "facts": facts}), "utf-8")
    return facts


def _job(snapshot: Path, side: Path, run_report: dict[str, Any], records: int) -> Path:
    """What the crawl hands the steps (``crawler.export.runfiles``), for this snapshot."""
    side.mkdir(parents=True, exist_ok=True)
    job: dict[str, Any] = {
        "snapshot": str(snapshot),
        "dataset": str(side / "digests.dataset"),
        "report": str(side / "digests.report.html"),
        "run_report": {**run_report, "records": records},
        "changes": [],
        "built_from": None,
        "posts": None,  # read from the posts list beside the snapshot
    }
    path = side / "job" / "job.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(job), "utf-8")
    return path


def run_steps(code: Code, job: Path, side: Path) -> dict[str, Any]:
    """Each step of a refresh after its crawl, as its own command, in order."""
    result: dict[str, Any] = {"rev": code.rev}
    for step in STEPS:
        failure = side / f"{step}.failure"
        failure.unlink(missing_ok=True)
        cmd = [code.python, "-m", "crawler.export.analysis", str(job), str(failure), step]
        env = child_env(code.root) | STEP_ENV
        m = measure(cmd, env=env, stdout=side / f"{step}.stdout", stderr=side / f"{step}.log",
                    cwd=code.root)  # fmt: skip
        why = failure.read_text("utf-8").strip() if failure.exists() else None
        result[step] = {
            "exit": m.returncode,
            "wall_s": round(m.wall_s, 1),
            "peak_rss_mb": round(m.peak_rss_mb, 1),
            "failure": why,
            "load_before": m.cpu["loadavg_before"],
        }
        log(f"  {code.label} {code.rev} {step}: {json.dumps(result[step])}")
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
    row: dict[str, Any] = {"copies": copies, **facts, "sides": {}}
    for code in sides:
        side = folder / code.label
        job = _job(folder / "digests.jsonl", side, run_report, facts["records"])
        row["sides"][code.label] = run_steps(code, job, side)
    return row
