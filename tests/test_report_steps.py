"""The report in two steps (``crawler.export.analysis``): DuckDB's queries in one process, the
drawing in the next. Each is run as the supervisor runs it, with the other's library broken on
purpose: a step that still imported it would fail. The page is the one both make in one
process, byte for byte."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from crawler.export import analysis
from crawler.export.files import posts_file
from crawler.export.report import render_report
from tests.conftest import ROOT
from tests.helpers import wait_until
from tests.records_v2 import small_corpus, write_snapshot

BROKEN = "raise ImportError('{name} is broken on purpose (test)')\n"
RUN = {"run_id": "r", "exit_status": 0, "records": 0, "problems": [], "stats": {}}


def _job(tmp_path: Path) -> Path:
    records = small_corpus()
    snapshot = write_snapshot(tmp_path / "digests.jsonl", records)
    posts = list({r["post"]["slug"]: r["post"] for r in records}.values())
    posts_file(snapshot).write_bytes(b"".join(json.dumps(p).encode() + b"\n" for p in posts))
    job = {
        "snapshot": str(snapshot),
        "dataset": str(tmp_path / "digests.dataset"),
        "report": str(tmp_path / "digests.report.html"),
        "run_report": {**RUN, "records": len(records)},
        "changes": [{"entry_id": records[0]["entry_id"], "change": "new"}],
        "built_from": "k",
        "posts": posts,
    }
    path = tmp_path / "job" / "job.json"
    path.parent.mkdir()
    analysis.write_job(path.parent, job)  # as the crawl hands it over: bulky parts apart
    return path


def _step(job: Path, step: str, broken: tuple[str, ...] = ()) -> tuple[int, str]:
    fakes = job.parent.parent / "-".join(("fakes", step, *broken))
    for name in broken:
        (fakes / name).mkdir(parents=True)
        (fakes / name / "__init__.py").write_text(BROKEN.format(name=name))
    env = analysis.step_env() | {"PYTHONPATH": f"{fakes}:{ROOT}"}
    result = job.with_name(f"{step}.result.txt")
    result.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "crawler.export.analysis", str(job), str(result), step]
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, check=False)
    said = result.read_text("utf-8").strip() if result.exists() else proc.stderr.decode()
    return proc.returncode, said


def test_queries_without_matplotlib_then_a_page_without_duckdb(tmp_path: Path) -> None:
    job = _job(tmp_path)
    assert analysis.STEPS == ("tables", "dataset", "report_data", "report")
    assert _step(job, "tables") == (0, "")
    assert _step(job, "dataset") == (0, "")
    assert _step(job, "report_data", broken=("matplotlib",)) == (0, "")
    assert _step(job, "report", broken=("duckdb", "pyarrow")) == (0, "")
    given = json.loads(job.read_text("utf-8"))
    assert not set(analysis.BULK) & set(given)  # the supervisor never parses them
    changes = json.loads(job.with_name("changes.json").read_text("utf-8"))
    assert changes and len(json.loads(job.with_name("posts.json").read_text("utf-8"))) == 3
    page = Path(given["report"]).read_bytes()
    one_process = render_report(
        Path(given["dataset"]),
        run_report=given["run_report"],
        changes=changes,
        built_from="k",
    )
    assert page == one_process.encode("utf-8")
    assert b"2106.00001" in page  # a paper of the corpus, drawn from the queries' answers


def test_a_step_with_its_own_library_broken_says_so_in_one_line(tmp_path: Path) -> None:
    job = _job(tmp_path)
    assert _step(job, "tables")[0] == 0 and _step(job, "dataset")[0] == 0
    report = json.loads(job.read_text("utf-8"))["report"]
    assert _step(job, "report_data", broken=("duckdb",)) == (
        analysis.FAILED, f"report {report} not written: duckdb is broken on purpose (test)"
    )  # fmt: skip
    assert _step(job, "report_data") == (0, "")
    assert _step(job, "report", broken=("matplotlib",)) == (
        analysis.FAILED, f"report {report} not written: matplotlib is broken on purpose (test)"
    )  # fmt: skip
    assert not Path(report).exists()


def test_a_page_without_the_queries_answers_is_one_line_and_no_file(tmp_path: Path) -> None:
    job = _job(tmp_path)
    assert _step(job, "tables")[0] == 0 and _step(job, "dataset")[0] == 0
    handoff = job.with_name(analysis.REPORT_HANDOFF)
    code, said = _step(job, "report")  # report_data never ran
    assert code == analysis.FAILED
    assert said == (
        f"report not written: FileNotFoundError: [Errno 2] No such file or directory: '{handoff}'"
    )
    handoff.write_bytes(b"\x80\x05K\x01.")  # a pickle of 1: not the report's data
    assert _step(job, "report") == (
        analysis.FAILED, f"report not written: TypeError: {handoff}: not the report's data"
    )  # fmt: skip
    assert not Path(json.loads(job.read_text("utf-8"))["report"]).exists()


# DuckDB whose connect() says so, then waits until the step is ended.
HELD_CONNECT = (
    "import os, pathlib, threading\n"
    "def connect(*args, **kwargs):\n"
    "    pathlib.Path(os.environ['HELD_MARK']).write_text('held')\n"
    "    threading.Event().wait()\n"
)


def test_a_stop_during_the_queries_leaves_no_spill_folder(tmp_path: Path) -> None:
    """The supervisor ends a step with SIGTERM; by default that ended the process at once, and
    DuckDB's spill folder (``hot-papers-report-*`` in TMPDIR) stayed behind at every stop."""
    job = _job(tmp_path)
    assert _step(job, "tables")[0] == 0 and _step(job, "dataset")[0] == 0
    fakes, temp, mark = tmp_path / "fakes", tmp_path / "temp", tmp_path / "held"
    (fakes / "duckdb").mkdir(parents=True)
    (fakes / "duckdb" / "__init__.py").write_text(HELD_CONNECT)
    temp.mkdir()
    env = analysis.step_env() | {
        "PYTHONPATH": f"{fakes}:{ROOT}", "TMPDIR": str(temp), "HELD_MARK": str(mark),
    }  # fmt: skip
    result = job.with_name("report_data.result.txt")
    cmd = [sys.executable, "-m", "crawler.export.analysis", str(job), str(result), "report_data"]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
    try:
        wait_until(mark.exists, "the queries step to connect")
        assert [p.name.startswith("hot-papers-report-") for p in temp.iterdir()] == [True]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    assert os.listdir(temp) == []
    assert not job.with_name(analysis.REPORT_HANDOFF).exists()


def test_a_report_step_that_dies_without_a_line_names_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed (the OOM killer's SIGKILL, say) before it could write its line: the dataset is
    in by then, and the line said it was not."""
    job = _job(tmp_path)
    assert _step(job, "tables")[0] == 0 and _step(job, "dataset")[0] == 0
    fakes = tmp_path / "fakes-dying"
    (fakes / "duckdb").mkdir(parents=True)
    (fakes / "duckdb" / "__init__.py").write_text(
        "import os\ndef connect(*a, **k):\n    os._exit(9)\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(fakes))  # the supervisor puts its package first
    report = json.loads(job.read_text("utf-8"))["report"]
    assert analysis._step(job, "report_data", analysis._Stops(0)) == (
        f"report {report} not written: the process writing it ended with status 9"
    )
