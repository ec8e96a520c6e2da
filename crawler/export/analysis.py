"""The dataset and the HTML report, written by a child process of the crawl.

    python -m crawler.export.analysis JOB.json RESULT.txt

pyarrow, DuckDB and matplotlib take ~250 MB and most of a second to load; in the crawl's own
process they stayed for the rest of it, and a stop could not be heard while they worked. The
crawl (``crawler.export.runfiles``) writes the job (paths, the run report, the change lines, the
inputs key), starts this module with its own interpreter, and waits without blocking its event
loop; on a stop it ends the child, which replaces nothing it has not finished (the dataset is
swapped in by one rename, the report by another). On failure the child writes one line, why,
to RESULT.txt and exits 5; the crawl reports that line as its output failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import crawler

logger = logging.getLogger(__name__)
FAILED = 5
POLL = 0.1  # seconds between looks at the child and at a stop, in the crawl's event loop
_GRACE = 5.0  # seconds a stopped child has to end after SIGTERM before SIGKILL
_PACKAGE_ROOT = str(Path(crawler.__file__).resolve().parent.parent)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


# --- in the crawl's process ---------------------------------------------------------------------
def _env() -> dict[str, str]:
    """The child imports this very ``crawler`` (Scrapy may have found it through scrapy.cfg)."""
    paths = [_PACKAGE_ROOT, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def _end(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it does not end within the grace period."""
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        proc.wait(_GRACE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class _Signals:
    """Ctrl-C or SIGTERM while the child works: noted here, so the child is ended at the next
    look and the run still finishes its own files (Scrapy's handler would stop the event loop
    under this wait, and the run would end without saying the dataset was not written). A
    second signal goes to the handler that was there before: Scrapy's forced shutdown."""

    def __init__(self) -> None:
        self.heard = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        with contextlib.suppress(ValueError):  # not the main thread: nothing to take over
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if not self.heard:
            self.heard = True
            logger.info("Received %s: ending the dataset step", signal.Signals(signum).name)
            return
        previous = self._previous.get(signum)
        if callable(previous):
            previous(signum, frame)

    def __exit__(self, *_: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


async def build(job: dict[str, Any], stopped: Callable[[], bool]) -> str | None:
    """Run the job in a child process, awaiting it without blocking the event loop; None, or
    the one line that says why the dataset or report was not written. A stop (a signal, or
    ``stopped()``, asked every ``POLL`` seconds) ends the child; nothing more is replaced."""
    dataset = job["dataset"]
    try:
        with (
            _Signals() as signals,
            tempfile.TemporaryDirectory(prefix="hot-papers-analysis-") as tmp,
        ):
            job_file, result = Path(tmp) / "job.json", Path(tmp) / "result.txt"
            job_file.write_text(json.dumps(job, ensure_ascii=False), encoding="utf-8")
            cmd = [sys.executable, "-m", __name__, str(job_file), str(result)]
            proc = subprocess.Popen(cmd, env=_env(), stdin=subprocess.DEVNULL)
            try:
                while proc.poll() is None:
                    if signals.heard or stopped():
                        _end(proc)
                        return (
                            f"dataset {dataset} not replaced: the run was stopped while it was "
                            "being written (the previous dataset and report are kept)"
                        )
                    await asyncio.sleep(POLL)
            except BaseException:
                _end(proc)
                raise
            if proc.returncode == 0:
                return None
            said = result.read_text("utf-8").strip() if result.exists() else ""
    except OSError as exc:
        return f"dataset {dataset} not replaced: {exc.strerror or exc}"
    return said or (
        f"dataset {dataset} not replaced: the process writing it ended with status "
        f"{proc.returncode}"
    )


# --- in the child ---------------------------------------------------------------------------------
def _orphaned_ends_me() -> None:
    """End this process if the crawl that started it is gone (killed, or a forced stop)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def run(job: dict[str, Any]) -> str | None:
    """Write the dataset, then the report; None, or the one line that says what failed."""
    dataset = Path(job["dataset"])
    try:
        from crawler.export.dataset import DatasetError, one_line, write_dataset
        from crawler.export.report import write_report
    except Exception as exc:  # a broken install: one line, like any other failure
        return f"dataset {dataset} not replaced: {_one_line(exc)}"
    try:
        write_dataset(
            Path(job["snapshot"]),
            dataset,
            run_report=job["run_report"],
            checked=True,  # the snapshot holds only records the record pipeline validated
            posts=job["posts"],
            built_from=job["built_from"],
        )
        if job["report"] is not None:
            write_report(
                Path(job["report"]),
                dataset,
                run_report=job["run_report"],
                changes=job["changes"],
                built_from=job["built_from"],
            )
    except DatasetError as exc:
        return str(exc)
    except Exception as exc:  # matplotlib, DuckDB, pyarrow: one line, never a traceback
        return f"report not written: {one_line(exc)}"
    return None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    # Ctrl-C reaches the whole process group: the crawl hears it and ends this process (with
    # SIGTERM, silently) rather than each of them printing a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _orphaned_ends_me()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s [%(name)s] %(levelname)s: %(message)s"
    )
    job_path, result_path = Path(args[0]), Path(args[1])
    problem = run(json.loads(job_path.read_text("utf-8")))
    if problem is None:
        return 0
    result_path.write_text(problem + "\n", encoding="utf-8")
    return FAILED


if __name__ == "__main__":
    sys.exit(main())
