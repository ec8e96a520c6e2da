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

import json
from pathlib import Path
from typing import Any

from benchmarks.baseline import Code
from benchmarks.measure import child_env, log, measure
from benchmarks.scaled import scale_snapshot

STEPS = ("tables", "dataset", "report")
# What the crawl's supervisor gives each step (crawler.export.analysis._step): Arrow's default
# pool (mimalloc) keeps freed row-group pages, ~30 MB more at the tables step's peak.
STEP_ENV = {"ARROW_DEFAULT_MEMORY_POOL": "system"}


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
