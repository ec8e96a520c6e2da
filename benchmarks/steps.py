"""The steps after a crawl (tables, DuckDB, the report's queries and drawing) on a large archive,
before | after.

    python -m benchmarks.cost --baseline REV --rows instant,steps [--steps-copies 34]

A 10,000-post archive without hours of crawling: the ``instant`` row's snapshot (294 posts,
6,695 records) copied ``copies`` times with fresh keys (``benchmarks.scaled``), so each copy
brings its own papers and tweets as a new year of digests would, written as the crawler writes
a snapshot with its posts list and run report. Each side then runs the steps a refresh runs
after its crawl as the crawl's supervisor runs them (``crawler.export.analysis``: its own steps,
in its order, with its environment, the posts list as its crawl hands it over, none after one
that failed), each as its own command (``python -m crawler.export.analysis JOB OUT STEP``):
peak RSS of the process tree (psutil), wall time, exit status and the step's one-line failure.
The crawl itself at 10,000 posts is the ``big`` row's (hours); the process running the steps
adds ~14 MB to each (its imports; since the job split, no posts list).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from benchmarks.baseline import Code
from benchmarks.measure import log, measure
from benchmarks.scaled import SCALER_VERSION, scale_snapshot
from crawler.export import analysis
from crawler.export.files import posts_file

STEPS = analysis.STEPS  # this checkout's supervisor's, in its order


def steps_of(code: Code) -> tuple[str, ...]:
    """The steps ``code``'s own supervisor runs: a revision from before a step existed takes
    an unknown name for another step (``report_data`` ran its DuckDB step a second time)."""
    ask = "from crawler.export.analysis import STEPS; print(*STEPS)"
    done = subprocess.run([code.python, "-c", ask], env=step_env(code.root), cwd=code.root,
                          capture_output=True, text=True, check=True)  # fmt: skip
    return tuple(done.stdout.split())


def step_env(root: Path) -> dict[str, str]:
    """The environment the crawl's supervisor gives each step, with ``root`` (the side's
    checkout) first on the path."""
    return {**analysis.step_env(), "PYTHONPATH": str(root)}


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


def splits_job(code: Code) -> bool:
    """Does ``code``'s crawl hand the steps their job with the posts list and changes in files
    of their own (``analysis.write_job``)? Older revisions read them from the job itself."""
    ask = "from crawler.export.analysis import write_job"
    done = subprocess.run([code.python, "-c", ask], env=step_env(code.root), cwd=code.root,
                          capture_output=True, check=False)  # fmt: skip
    return done.returncode == 0


def write_job(
    snapshot: Path, side: Path, run_report: dict[str, Any], records: int, *, split: bool = False
) -> Path:
    """What the crawl hands the steps (``crawler.export.runfiles``), for this snapshot, with
    the posts list: inline as older revisions' crawls wrote it, or (``split``) beside the job
    as ``analysis.write_job`` writes it, so each side's steps parse what its crawl gives them."""
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
    for stale in analysis.BULK:  # an earlier run's, of the other layout
        path.with_name(f"{stale}.json").unlink(missing_ok=True)
    if split:
        analysis.write_job(path.parent, job)
    else:
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
    steps = steps_of(code)
    result: dict[str, Any] = {"rev": code.rev, "steps": list(steps)}
    handoff = job.with_name(analysis.HANDOFF)
    handoff.unlink(missing_ok=True)  # an earlier run's: the supervisor's job folder is new
    job.with_name(analysis.REPORT_HANDOFF).unlink(missing_ok=True)
    failed = False
    for step in steps:
        if failed:
            result[step] = None
            continue
        result[step] = _run_step(code, job, side, step)
        failed = result[step]["exit"] != 0
        if failed and step not in analysis.REPORT_STEPS:
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
        job = write_job(
            folder / "digests.jsonl", side, run_report, facts["records"], split=splits_job(code)
        )
        row["sides"][code.label] = run_steps(code, job, side)
    return row
