"""An unchanged rerun keeps the dataset folder and the report as they are (issue 21): the same
folder, the same files, untouched, and the run report says so; anything else rebuilds them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLES, Crawl, run_crawl
from tests.helpers import wait_until
from tests.standin import Catalogue, StandIn

pytestmark = pytest.mark.e2e

FAST = {"ARXIV_DELAY": 0.2, "RETRY_BACKOFF_BASE": 0.05}


def _crawl(out: Path, catalogue: Catalogue) -> Crawl:
    with StandIn(catalogue) as server:
        crawl = run_crawl(out, server, settings=FAST, analysis=True)
    assert crawl.returncode == 0, crawl.log[-2000:]
    return crawl


def _stamps(out: Path) -> dict[str, tuple[object, ...]]:
    """Where the dataset link points, and inode and mtime of everything it and the report hold."""
    folder = out.with_name("digests.dataset").resolve()
    stamps: dict[str, tuple[object, ...]] = {"folder": (folder, folder.stat().st_ino)}
    for path in [*sorted(folder.iterdir()), out.with_name("digests.report.html")]:
        st = path.stat()
        stamps[path.name] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return stamps


def _dataset_field(out: Path) -> object:
    return json.loads(out.with_suffix(".run.json").read_text("utf-8"))["dataset"]


def test_an_unchanged_rerun_keeps_the_dataset_and_report(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    out = tmp_path / "digests.jsonl"
    _crawl(out, catalogue)
    assert _dataset_field(out) == "written"
    snapshot, before = out.read_bytes(), _stamps(out)
    again = _crawl(out, catalogue)
    assert out.read_bytes() == snapshot  # the premise: nothing changed upstream
    assert _stamps(out) == before
    assert _dataset_field(out) == "unchanged"
    assert "kept as it is: built from a byte-identical snapshot" in again.log


def test_a_damaged_dataset_or_a_missing_report_is_rebuilt_even_when_unchanged(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    out = tmp_path / "digests.jsonl"
    _crawl(out, catalogue)
    report = out.with_name("digests.report.html")
    report.unlink()
    _crawl(out, catalogue)
    assert _dataset_field(out) == "written" and report.is_file()
    folder = out.with_name("digests.dataset").resolve()
    (folder / "papers.parquet").unlink()
    _crawl(out, catalogue)
    assert _dataset_field(out) == "written"
    rebuilt = out.with_name("digests.dataset").resolve()
    assert rebuilt != folder and (rebuilt / "papers.parquet").is_file()


def test_a_changed_snapshot_rebuilds_the_dataset(tmp_path: Path, catalogue: Catalogue) -> None:
    out = tmp_path / "digests.jsonl"
    _crawl(out, catalogue)
    folder = out.with_name("digests.dataset").resolve()
    with StandIn(catalogue) as server:
        crawl = run_crawl(out, server, "-a", f"source={SAMPLES[0]}", settings=FAST, analysis=True)
    assert crawl.returncode == 0, crawl.log[-2000:]
    assert _dataset_field(out) == "written"
    assert out.with_name("digests.dataset").resolve() != folder


# -- the dataset and report in a child process ----------------------------------------------------
BROKEN = "raise ImportError('{name} is broken on purpose (test)')\n"
# Blocks the child in its first import of DuckDB until the test ends it, after saying so.
HELD = (
    "import os, pathlib, threading\n"
    "pathlib.Path(os.environ['HELD_MARK']).write_text(str(os.getpid()))\n"
    "threading.Event().wait()\n"
)


def _fake_modules(folder: Path, **sources: str) -> Path:
    """Packages that shadow the real ones for the processes given this folder first on the path."""
    for name, source in sources.items():
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text(source.format(name=name))
    return folder


def _command(out: Path, server: StandIn, *args: str) -> list[str]:
    cmd = [sys.executable, "-m", "scrapy", "crawl", "digests", "-O", str(out), *args]
    settings = {"LOG_LEVEL": "INFO", "STATE_DB": out.parent / "state.sqlite3"}
    for name, value in (settings | server.settings | FAST).items():
        cmd += ["-s", f"{name}={value}"]
    return cmd


def _env(fakes: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{fakes}{os.pathsep}{ROOT}", **extra}


def _analysis_before(out: Path) -> tuple[Path, bytes]:
    return out.with_name("digests.dataset").resolve(), out.with_name(
        "digests.report.html"
    ).read_bytes()


def test_a_failing_dataset_step_exits_5_and_keeps_the_previous_dataset(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    out = tmp_path / "digests.jsonl"
    _crawl(out, catalogue)
    before = _analysis_before(out)
    # pyarrow, DuckDB and matplotlib unusable: the crawl's own process never needs them.
    fakes = _fake_modules(tmp_path / "fakes", pyarrow=BROKEN, duckdb=BROKEN, matplotlib=BROKEN)
    with StandIn(catalogue) as server:
        cmd = _command(out, server, "-a", f"source={SAMPLES[0]}")  # fewer records: rebuilt
        proc = subprocess.run(cmd, cwd=ROOT, env=_env(fakes), capture_output=True, check=False)
    log = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 5, log[-3000:]
    assert "Traceback" not in log
    errors = [line for line in log.splitlines() if "] ERROR: " in line]
    # The tables step is the first to import one of them, pyarrow (DuckDB only comes after).
    assert len(errors) == 1 and errors[0].endswith(
        f"dataset {out.with_name('digests.dataset')} not replaced: "
        "ImportError: pyarrow is broken on purpose (test)"
    ), errors
    report = json.loads(out.with_suffix(".run.json").read_text("utf-8"))
    assert (report["exit_status"], report["snapshot_replaced"], report["dataset"]) == (
        5, True, "failed",
    )  # fmt: skip
    assert _analysis_before(out) == before
    manifest = json.loads((before[0] / "dataset.json").read_text("utf-8"))
    assert len(out.read_bytes().splitlines()) < manifest["tables"]["entries"]["rows"]


def test_a_stop_while_the_dataset_is_written_ends_it_and_keeps_the_previous_one(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    out = tmp_path / "digests.jsonl"
    _crawl(out, catalogue)
    before = _analysis_before(out)
    mark = tmp_path / "held.pid"
    fakes = _fake_modules(tmp_path / "fakes", duckdb=HELD)
    with StandIn(catalogue) as server:
        cmd = _command(out, server, "-a", f"source={SAMPLES[0]}")
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=_env(fakes, HELD_MARK=str(mark)), stderr=subprocess.PIPE
        )
        try:
            wait_until(mark.exists, "the dataset step to start")
            child = int(mark.read_text())
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=120)  # a hang fails instead of blocking the suite
        finally:
            if proc.poll() is None:
                proc.kill()
    log = err.decode("utf-8", "replace")
    assert proc.returncode == 5, log[-3000:]
    assert "Traceback" not in log
    errors = [line for line in log.splitlines() if "] ERROR: " in line]
    assert len(errors) == 1 and "the run was stopped while it was being written" in errors[0]
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)  # ended, and reaped by the crawl
    assert _analysis_before(out) == before
    assert json.loads(out.with_suffix(".run.json").read_text("utf-8"))["dataset"] == "failed"


# -- issue 21: the crawl's memory is gone while the dataset and the report are built -------------
# Holds the report step in its import of matplotlib, after saying who it is and what it loaded.
HELD_REPORT = (
    "import json, os, pathlib, sys, threading\n"
    "mark = pathlib.Path(os.environ['HELD_MARK'])\n"
    "seen = {{'pid': os.getpid(), 'ppid': os.getppid(), 'modules': sorted(sys.modules)}}\n"
    "mark.with_suffix('.tmp').write_text(json.dumps(seen))\n"
    "mark.with_suffix('.tmp').rename(mark)\n"
    "threading.Event().wait()\n"
)
CRAWL_MODULES = {"scrapy", "twisted", "lxml", "arxiv", "fastjsonschema", "crawler.record"}


def _rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return (
        int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])
        / 1024
    )


def test_the_crawl_process_becomes_the_dataset_step_and_holds_none_of_the_crawl(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    """The process the scheduler started (its pid) is no longer the crawl while the dataset and
    report are built: it has become ``crawler.export.analysis --finish``, a few MB without
    Scrapy or lxml, and its step children load none of the crawl's modules either. A stop in
    the report step keeps the new dataset, names the report, and exits 5."""
    out = tmp_path / "digests.jsonl"
    mark = tmp_path / "held.json"
    fakes = _fake_modules(tmp_path / "fakes", matplotlib=HELD_REPORT)
    with StandIn(catalogue) as server:
        cmd = _command(out, server, "-a", f"source={SAMPLES[0]}")
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=_env(fakes, HELD_MARK=str(mark)), stderr=subprocess.PIPE
        )
        try:
            wait_until(mark.exists, "the report step to start")
            cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
            maps = Path(f"/proc/{proc.pid}/maps").read_text()
            rss = _rss_mb(proc.pid)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=120)  # a hang fails instead of blocking the suite
        finally:
            if proc.poll() is None:
                proc.kill()
    held = json.loads(mark.read_text())
    assert held["ppid"] == proc.pid
    assert cmdline[1:4] == [b"-m", b"crawler.export.analysis", b"--finish"], cmdline
    assert "/lxml/" not in maps and "pyarrow" not in maps and "duckdb" not in maps
    assert rss < 50, rss  # the crawl of one sample alone is over 100 MB
    loaded = {name.split(".")[0] for name in held["modules"]} | set(held["modules"])
    assert loaded & CRAWL_MODULES == set(), loaded & CRAWL_MODULES
    assert "pyarrow" not in loaded  # the report reads the tables through DuckDB only
    log = err.decode("utf-8", "replace")
    assert proc.returncode == 5, log[-3000:]
    errors = [line for line in log.splitlines() if "] ERROR: " in line]
    assert len(errors) == 1 and errors[0].endswith(
        f"report {out.with_name('digests.report.html')} not replaced: the run was stopped while "
        "it was being written (the previous report is kept)"
    ), errors
    report = json.loads(out.with_suffix(".run.json").read_text("utf-8"))
    assert (report["exit_status"], report["dataset"], report["problems"]) == (
        5, "failed", [errors[0].split("] ERROR: ", 1)[1]],
    )  # fmt: skip
    manifest = json.loads((out.with_name("digests.dataset") / "dataset.json").read_text("utf-8"))
    assert manifest["run"]["run_id"] == report["run_id"]  # the dataset step finished: it is in
