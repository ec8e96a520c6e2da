"""The dataset and the HTML report, written after the crawl by the process the crawl becomes.

    python -m crawler.export.analysis --finish JOB_DIR      (the crawl's process, after exec)
    python -m crawler.export.analysis JOB.json RESULT.txt STEP   (one step of STEPS)

The crawl (``crawler.export.runfiles``) finishes everything it owns (snapshot, posts list,
change feed, state closed) and leaves the job (paths, the run report, the change lines, the
inputs key) to :func:`hand_over`, which replaces the crawl's process (``os.execv``, same pid,
its run locks kept open across it) by :func:`supervise`: a small process that runs the steps
(:data:`STEPS`: the tables, DuckDB, the report's queries, its drawing), each in a child of its
own, then writes the run report and exits with the run's exit status. Nothing the crawl held
(Scrapy, Twisted, lxml, its buffers: ~150 MB) is alive while pyarrow, DuckDB and matplotlib
work, and the steps' peaks do not add either.

A child replaces nothing it has not finished (the dataset is swapped in by one rename, the
report by another). On failure it writes one line, why, to RESULT.txt and exits 5; the run
reports that line as its output failure (exit status 5). A Ctrl-C or SIGTERM ends the step at
once (a second one is the forced shutdown: exit status 1); a child whose parent is gone ends
itself.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import importlib.abc
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import crawler
from crawler.export.files import atomic_write

logger = logging.getLogger(__name__)
FAILED = 5
NOT_COMPLETED = 1
POLL = 0.1  # seconds between looks at the child and at a stop
_GRACE = 5.0  # seconds a stopped child has to end after SIGTERM before SIGKILL
_PACKAGE_ROOT = str(Path(crawler.__file__).resolve().parent.parent)
_STOPS = (signal.SIGINT, signal.SIGTERM)
# Each in a process of its own, one after another: their peaks do not add. The report is two:
# DuckDB's queries, then matplotlib's drawing (together they were the run's peak).
STEPS = ("tables", "dataset", "report_data", "report")
REPORT_STEPS = ("report_data", "report")  # after the dataset is in; skipped with REPORT off
HANDOFF = "tables.json"  # what the tables step leaves for the dataset step, beside the job
REPORT_HANDOFF = "report_data.pickle"  # what the report_data step leaves for the report step
_MODULE = "crawler.export.analysis"  # not __name__: that is "__main__" in the steps


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _stopped_line(job: dict[str, Any], step: str) -> str:
    if step in REPORT_STEPS:  # the dataset is in; only the report is not
        return (
            f"report {job['report']} not replaced: the run was stopped while it was being "
            "written (the previous report is kept)"
        )
    return (
        f"dataset {job['dataset']} not replaced: the run was stopped while it was being written "
        "(the previous dataset and report are kept)"
    )


def _not_done(job: dict[str, Any], step: str) -> str:
    """What a step that ended without its own line leaves undone: once the dataset is in, only
    the report."""
    if step in REPORT_STEPS:
        return f"report {job['report']} not written"
    return f"dataset {job['dataset']} not replaced"


def _env() -> dict[str, str]:
    """The steps import this very ``crawler`` (Scrapy may have found it through scrapy.cfg)."""
    paths = [_PACKAGE_ROOT, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def step_env() -> dict[str, str]:
    """A step's environment (``benchmarks.steps`` measures the steps with it too)."""
    # Arrow's default pool (mimalloc) kept the row groups' freed pages: 30 MB more at the peak
    # than the system allocator, for the same bytes written. One may still choose another.
    return {"ARROW_DEFAULT_MEMORY_POOL": "system", **_env()}


# --- in the crawl's process ---------------------------------------------------------------------
class _Noted:
    """Ctrl-C or SIGTERM once the crawl has left a job: noted, so the dataset step is not
    started (or is ended) and the run says so; a second signal goes to the handler that was
    there before (Scrapy's forced shutdown) and is counted too."""

    def __init__(self) -> None:
        self.heard = 0
        self._previous: dict[int, Any] = {}

    def take(self) -> None:
        with contextlib.suppress(ValueError):  # not the main thread: nothing to take over
            for sig in _STOPS:
                self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.heard += 1
        if self.heard == 1:
            logger.info("Received %s: ending the dataset step", signal.Signals(signum).name)
            return
        previous = self._previous.get(signum)
        if callable(previous):
            previous(signum, frame)


_NOTED = _Noted()


def take_signals() -> None:
    """From now on a stop is the dataset step's (called when the crawl leaves a job)."""
    _NOTED.take()


def _flush_logs() -> None:
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


# The job's parts only one step reads, each in a file of its own: the supervisor and the other
# steps never parse them (at 10,000 posts the posts list is ~20 MB of objects, held by the
# supervisor under every step: the whole command peaked at 234 MB, the crawl at 160). The
# supervisor reads ``rerun`` (the digests read and their hashes: ~7 MB of objects at 10,000
# posts) only once the steps are done.
BULK = ("posts", "changes", "rerun")


def write_job(folder: Path, job: dict[str, Any]) -> None:
    """``job.json`` and, beside it, a file for each part of :data:`BULK` (``posts.json``...)."""
    for name in BULK:
        if name in job:
            (folder / f"{name}.json").write_text(json.dumps(job[name], ensure_ascii=False), "utf-8")
    small = {k: v for k, v in job.items() if k not in BULK}
    (folder / "job.json").write_text(json.dumps(small, ensure_ascii=False), "utf-8")


def _bulk(job: dict[str, Any], folder: Path, name: str) -> Any:
    """A bulky part of the job: from its own file, or from the job itself when it carries it
    (a job written by hand, as the tests and benchmarks do)."""
    if name in job:
        return job[name]
    return json.loads((folder / f"{name}.json").read_text("utf-8"))


def hand_over(job: dict[str, Any], keep_fds: list[int]) -> int:
    """Become the dataset step: write the job, then ``os.execv`` :func:`supervise` with
    ``keep_fds`` (the run locks) open across it. Returns (the run's exit status) only when
    the process could not be replaced; the step then runs from here."""
    job = {**job, "signals": _NOTED.heard}
    try:
        folder = Path(tempfile.mkdtemp(prefix="hot-papers-analysis-"))
        try:
            write_job(folder, job)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
    except OSError as exc:
        return conclude(job, f"dataset {job['dataset']} not replaced: {exc.strerror or exc}")
    # Signals wait (blocked, pending) until the new program has its handlers: none is lost.
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)
    for fd in keep_fds:
        os.set_inheritable(fd, True)
    _flush_logs()
    cmd = [sys.executable, "-m", _MODULE, "--finish", str(folder)]
    try:
        os.execve(sys.executable, cmd, _env())
    except OSError as exc:
        logger.debug("not replaced by the dataset step (%s): it runs in this process", exc)
    return supervise(folder)


# --- the run's last part, in the process the crawl became ----------------------------------------
class _Stops:
    """Ctrl-C or SIGTERM while a step runs: the first ends the step (SIGTERM, then SIGKILL
    after the grace period), a second one ends it at once: the forced shutdown."""

    def __init__(self, heard: int) -> None:
        self.heard = heard
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> _Stops:
        for sig in _STOPS:
            signal.signal(sig, self._handle)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPS)  # pending ones arrive now
        return self

    def __exit__(self, *_: object) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)

    def _handle(self, signum: int, frame: Any) -> None:
        self.heard += 1
        name = signal.Signals(signum).name
        if self.heard == 1:
            logger.info("Received %s: ending the dataset step", name)
            return
        logger.info("Received %s twice, forcing unclean shutdown", name)
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    def end(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGTERM, then SIGKILL if it does not end within the grace period."""
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(_GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _step(job_file: Path, step: str, stops: _Stops) -> str | None:
    """Run one step in a child; None, or the line that says why it did not finish."""
    job = json.loads(job_file.read_text("utf-8"))
    result = job_file.with_name(f"{step}.result.txt")
    cmd = [sys.executable, "-m", _MODULE, str(job_file), str(result), step]
    try:
        stops.proc = proc = subprocess.Popen(cmd, env=step_env(), stdin=subprocess.DEVNULL)
    except OSError as exc:
        return f"{_not_done(job, step)}: {exc.strerror or exc}"
    try:
        while proc.poll() is None and not stops.heard:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(POLL)
        if stops.heard:
            stops.end(proc)
            return _stopped_line(job, step)
    finally:
        stops.proc = None
    if proc.returncode == 0:
        return None
    said = result.read_text("utf-8").strip() if result.exists() else ""
    return said or (
        f"{_not_done(job, step)}: the process writing it ended with status {proc.returncode}"
    )


def _steps(folder: Path, job: dict[str, Any], stops: _Stops) -> str | None:
    if stops.heard:  # heard between the crawl's end and now: nothing is started
        return _stopped_line(job, STEPS[0])
    for step in STEPS:
        if step in REPORT_STEPS and job["report"] is None:
            continue
        if problem := _step(folder / "job.json", step, stops):
            if step not in REPORT_STEPS:
                discard_tables(folder / HANDOFF, Path(job["dataset"]))
            return problem
    return None


def discard_tables(handoff: Path, target: Path) -> None:
    """The hidden folder the tables step wrote, unless it was swapped in after all (a stop
    that came as the dataset step was ending)."""
    with contextlib.suppress(OSError, ValueError, KeyError):
        folder = Path(json.loads(handoff.read_text("utf-8"))["folder"])
        if folder.resolve() != target.resolve():
            shutil.rmtree(folder, ignore_errors=True)


def supervise(folder: Path) -> int:
    """The dataset step, the report step, then the run report; the run's exit status."""
    job = json.loads((folder / "job.json").read_text("utf-8"))
    _log_like_the_crawl(job.get("log") or {})
    try:
        with _Stops(job.get("signals", 0)) as stops:
            problem = _steps(folder, job, stops)
            forced = stops.heard > 1
        # Only a complete run leaves the key (conclude): 7 MB at 10,000 posts not read for none.
        job["rerun"] = _rerun_of(job, folder) if problem is None and not forced else None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return conclude(job, problem, forced=forced)


def _rerun_of(job: dict[str, Any], folder: Path) -> dict[str, Any] | None:
    """The run's rerun key material, read after the steps; unreadable, the next run crawls."""
    try:
        rerun: dict[str, Any] | None = _bulk(job, folder, "rerun")
    except (OSError, ValueError) as exc:
        logger.debug("rerun key material not read (%s): the next run crawls", exc)
        return None
    return rerun


def _log_like_the_crawl(log: dict[str, Any]) -> None:
    """Lines in the crawl's format, level and file (``LOG_FILE``, else stderr)."""
    root = logging.getLogger()
    if root.handlers:  # still the crawl's process (it could not be replaced)
        return
    if not log.get("enabled", True):
        root.addHandler(logging.NullHandler())
        return
    handler: logging.Handler = (
        logging.FileHandler(log["file"], encoding=log.get("encoding") or "utf-8")
        if log.get("file")
        else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(logging.Formatter(log.get("format"), log.get("datefmt")))
    root.addHandler(handler)
    root.setLevel(log.get("level") or logging.INFO)


def _remember_rerun(rerun: dict[str, Any] | None) -> None:
    """The rerun key of a complete run (``crawler.reuse``), once the dataset and report it
    stamps are in; a failure here only means the next run crawls."""
    if rerun is None:
        return
    from crawler import reuse
    from crawler.sources import Source
    from crawler.state.store import StateError, StateStore

    read = [(Source(*source), sha) for source, sha in rerun["read"]]
    try:
        key = reuse.rerun_key(rerun["settings"], read, [Path(p) for p in rerun["outputs"]])
        store = StateStore(rerun["state_db"])
        try:
            store.remember_rerun(
                rerun["snapshot"], key, time.time(), rerun["valid_until"], rerun["summary"]
            )
        finally:
            store.close()
    except (OSError, StateError) as exc:
        logger.debug("rerun key not stored (%s): the next run crawls", exc)


def conclude(job: dict[str, Any], problem: str | None, *, forced: bool = False) -> int:
    """The run report with the dataset's outcome, written; the run's exit status: 5 if the
    dataset or report failed, 1 after a forced shutdown (README "Exit status")."""
    report = copy.deepcopy(job["run_report"])
    status = int(job["exit_status"])
    report["dataset"] = "written" if problem is None and not forced else "failed"
    if problem is not None:
        logging.getLogger("crawler.outcome").error("%s", problem)
        report["problems"].append(problem)
        stats = report["stats"]
        for key in ("output/failed", "log_count/ERROR"):
            stats[key] = int(stats.get(key, 0)) + 1
        status = status if status == NOT_COMPLETED else FAILED
    if forced:
        report["finish_reason"], status = job["forced_reason"], NOT_COMPLETED
    report["exit_status"] = status
    path = Path(job["run_report_file"])
    try:
        atomic_write(path, json.dumps(report, indent=2, ensure_ascii=False).encode() + b"\n")
    except OSError as exc:
        logging.getLogger("crawler.outcome").error(
            "run report %s not written: %s", path, exc.strerror or exc
        )
        status = status if status == NOT_COMPLETED else FAILED
    if status == 0:  # only now: a run whose report failed (exit 5) is not one to skip after
        _remember_rerun(job.get("rerun"))
    return status


# --- in the child ---------------------------------------------------------------------------------
def _orphaned_ends_me() -> None:
    """End this process if the crawl that started it is gone (killed, or a forced stop)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


class _WithoutPandas(importlib.abc.MetaPathFinder):
    """pandas is not found in a step's process.

    pyarrow imports pandas (~80 MB resident) on its first ``pa.array`` of a Python list only to
    ask whether the list is a pandas object; no step ever hands it one, and pyarrow has a path
    for a machine without pandas. The files written are the same to the byte.
    """

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {name!r} (dataset step)", name=name)


def without_pandas() -> None:
    """From now on this process finds no pandas (see :class:`_WithoutPandas`)."""
    if not any(isinstance(f, _WithoutPandas) for f in sys.meta_path):
        sys.meta_path.insert(0, _WithoutPandas())


def _exception_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _tables(job: dict[str, Any], handoff: Path) -> None:
    """The Parquet tables, the manifest and the card in a new hidden folder (pyarrow's and the
    heap's peak)."""
    from crawler.export.dataset import build_tables

    tables = build_tables(
        Path(job["snapshot"]),
        Path(job["dataset"]),
        checked=True,  # the snapshot holds only records the record pipeline validated
        posts=_bulk(job, handoff.parent, "posts"),
        run_report=job["run_report"],
        built_from=job["built_from"],
    )
    done = {
        "folder": str(tables.folder),
        "rows": tables.rows,
        "period": list(tables.period),
        "notes": tables.notes,
    }
    handoff.write_text(json.dumps(done), "utf-8")


def _finish(job: dict[str, Any], handoff: Path) -> None:
    """DuckDB, then the swap (DuckDB's peak, on a fresh heap without pyarrow)."""
    from crawler.export.finish import Tables, finish_dataset

    done = json.loads(handoff.read_text("utf-8"))
    tables = Tables(Path(done["folder"]), done["rows"], tuple(done["period"]), done["notes"])
    finish_dataset(tables, Path(job["dataset"]))


def _dataset(job: dict[str, Any], step: str, handoff: Path) -> str | None:
    try:
        from crawler.export.finish import DatasetError  # without pyarrow: the DuckDB step's
    except Exception as exc:  # a broken install: one line, like any other failure
        return f"dataset {job['dataset']} not replaced: {_one_line(exc)}"
    try:
        (_tables if step == "tables" else _finish)(job, handoff)
    except DatasetError as exc:
        return str(exc)
    except Exception as exc:  # write_dataset says why in a DatasetError; anything else: a bug
        return f"dataset {job['dataset']} not replaced: {_exception_line(exc)}"
    return None


def _report_data(job: dict[str, Any], handoff: Path) -> None:
    """DuckDB's answers for the report, left for the drawing step (DuckDB's peak alone)."""
    from crawler.export.report_data import gather, save

    save(gather(Path(job["dataset"])), handoff)


def _draw(job: dict[str, Any], handoff: Path) -> None:
    """The page drawn from those answers (matplotlib's peak alone: no DuckDB here)."""
    from crawler.export.report import write_page
    from crawler.export.report_data import load

    data = load(handoff)
    write_page(
        Path(job["report"]),
        data,
        run_report=job["run_report"],
        changes=_bulk(job, handoff.parent, "changes"),
        built_from=job["built_from"],
    )


# Each report step: what it does, and what it imports (an install broken there is named so).
_REPORT_PARTS = {
    "report_data": (_report_data, ("duckdb", "crawler.export.report_data")),
    "report": (_draw, ("matplotlib", "crawler.export.report")),
}


def _report(job: dict[str, Any], step: str, handoff: Path) -> str | None:
    part, modules = _REPORT_PARTS[step]
    try:  # a broken install: one line that names the report, like any other failure
        for module in modules:
            importlib.import_module(module)
    except Exception as exc:
        return f"report {job['report']} not written: {_one_line(exc)}"
    try:
        part(job, handoff)
    except Exception as exc:  # matplotlib, DuckDB, pyarrow: one line, never a traceback
        return f"report not written: {_exception_line(exc)}"
    return None


def run(job: dict[str, Any], step: str, folder: Path) -> str | None:
    """One step of :data:`STEPS` whose job is in ``folder``; None, or the one line that says
    what failed."""
    if step in REPORT_STEPS:
        return _report(job, step, folder / REPORT_HANDOFF)
    return _dataset(job, step, folder / HANDOFF)


def _exit_on_stop(signum: int, frame: Any) -> None:
    """SIGTERM as an exit that runs ``finally`` blocks (the default ends the process at once).
    Only the report steps: what they remove on the way out is their own temporary files."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[0] == "--finish":
        return supervise(Path(args[1]))
    # Ctrl-C reaches the whole process group: the run hears it and ends this process (with
    # SIGTERM, silently) rather than each of them printing a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _orphaned_ends_me()
    without_pandas()
    job_path, result_path, step = Path(args[0]), Path(args[1]), args[2]
    if step in REPORT_STEPS:  # ended by a stop: DuckDB's spill folder and a temporary page go
        signal.signal(signal.SIGTERM, _exit_on_stop)
    job = json.loads(job_path.read_text("utf-8"))
    # A step's warnings (a posts-list line skipped, a total left null) go where the crawl's
    # lines went, in its format: LOG_FILE for a scheduled job, not a stderr nobody keeps.
    _log_like_the_crawl(job.get("log") or {})
    problem = run(job, step, job_path.parent)
    if problem is None:
        return 0
    result_path.write_text(problem + "\n", encoding="utf-8")
    return FAILED


if __name__ == "__main__":
    sys.exit(main())
