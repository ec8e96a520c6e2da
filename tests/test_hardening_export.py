"""Issue 19, items 1, 6 and 8 (export and command layers), end to end: real ``scrapy crawl``
processes on real files.

- Usage errors exit 1 with one ``error:`` line (exit 2 means an unreadable source).
- A path the run would replace or remove must be one it wrote; anything else is refused before
  the crawl starts, and survives byte for byte.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from crawler.export import ownership
from tests.conftest import ROOT, Crawl, run_crawl
from tests.standin import Catalogue, StandIn
from tests.test_invariants import (
    SAFETY,
    assert_no_traceback,
    error_lines,
    start_crawl,
    tree,
    urls_of,
    wait_for,
)

pytestmark = pytest.mark.e2e


def scrapy(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """``python -m scrapy ARGS`` as a user types it; nothing in it can reach the network."""
    cmd = [sys.executable, "-m", "scrapy", *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("SCRAPY_SETTINGS_MODULE", None)
    return subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


# --- item 6: usage errors ------------------------------------------------------------------
USAGE_ERRORS = {
    "-O -": (["-O", "-"], r"Unrecognized output format"),
    "--bogus-option": (["--bogus-option"], r"unrecognized option --bogus-option"),
    "bare -s": (["-s"], r"-s/--set: expected one argument"),
    "-a without =": (["-a", "nonsense"], r"Invalid -a value"),
    "two spiders": (["digests"], r"name one spider"),
}


@pytest.mark.parametrize("case", USAGE_ERRORS)
def test_a_usage_error_exits_1_with_one_line(tmp_path: Path, case: str) -> None:
    extra, pattern = USAGE_ERRORS[case]
    out = tmp_path / "out" / "digests.jsonl"
    done = scrapy(
        "crawl", "digests", *extra, "-s", f"DEFAULT_FEED={out}",
        "-s", f"STATE_DB={tmp_path / 'state.sqlite3'}",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-3000:]
    lines = error_lines(done.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr[-3000:]
    assert re.search(pattern, lines[0]), lines[0]
    assert "Usage" not in done.stderr and "Usage" not in done.stdout
    assert "Spider opened" not in done.stderr
    assert_no_traceback(done.stderr)
    assert not out.exists() and not (tmp_path / "state.sqlite3").exists()


def test_no_spider_named_exits_1_with_one_line(tmp_path: Path) -> None:
    done = scrapy("crawl", "-s", f"STATE_DB={tmp_path / 's.sqlite3'}")
    assert done.returncode == 1, done.stderr[-3000:]
    assert error_lines(done.stderr) == ["error: name one spider: scrapy crawl digests [options]"], (
        done.stderr[-3000:]
    )


def test_an_unknown_spider_exits_1_with_one_line(tmp_path: Path) -> None:
    done = scrapy("crawl", "nosuch", "-s", f"STATE_DB={tmp_path / 's.sqlite3'}")
    assert done.returncode == 1, done.stderr[-3000:]
    assert error_lines(done.stderr) == [
        "error: spider 'nosuch' is unknown; this project has: digests"
    ], done.stderr[-3000:]
    assert_no_traceback(done.stderr)


def test_crawl_outside_the_project_exits_1_with_one_line(tmp_path: Path) -> None:
    done = scrapy("crawl", "digests", cwd=tmp_path)
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = error_lines(done.stderr)
    assert len(lines) == 1, (done.stdout, done.stderr)
    assert lines[0].startswith("error: 'digests' is unknown here: ")
    assert str(tmp_path) in lines[0] and "scrapy.cfg" in lines[0]
    assert list(tmp_path.iterdir()) == []  # nothing written where it ran


# --- item 1: never delete or replace what we did not write ---------------------------------
FAST = {"ARXIV_DELAY": 0.2, "RETRY_BACKOFF_BASE": 0.05}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory, catalogue: Catalogue) -> Path:
    """``output/`` after one complete sample run: snapshot, state, run report, dataset, report."""
    out = tmp_path_factory.mktemp("baseline") / "output" / "digests.jsonl"
    with StandIn(catalogue) as server:
        done = run_crawl(out, server, settings=FAST, default_feed=True, analysis=True)
    assert done.returncode == 0, done.log[-3000:]
    assert (out.parent / "digests.dataset").is_symlink()
    return out.parent


def _fresh(baseline: Path, tmp_path: Path) -> Path:
    """A copy of the baseline's ``output/`` (symlinks kept as links) in ``tmp_path``."""
    output = tmp_path / "output"
    shutil.copytree(baseline, output, symlinks=True)
    return output


def _someones_files(folder: Path) -> Path:
    """A folder of somebody else's files, one of them in a subfolder."""
    (folder / "notes").mkdir(parents=True)
    (folder / "README.txt").write_text("quarterly numbers, do not delete\n")
    (folder / "notes" / "2026.csv").write_bytes(b"a,b\n1,2\n")
    return folder


def _refused(done: Crawl, standin: StandIn, *names: str) -> str:
    """Exit 1, one ``error:`` line naming every one of ``names``, and nothing crawled."""
    assert done.returncode == 1, done.log[-3000:]
    lines = error_lines(done.log)
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for name in names:
        assert name in lines[0], (name, lines[0])
    assert "Spider opened" not in done.log
    assert_no_traceback(done.log)
    assert not any(
        standin.requests_for(s) for s in ("arxiv", "oembed", "syndication", "semantic_scholar")
    )
    return lines[0]


def test_dataset_dir_on_the_snapshots_own_folder_is_refused(
    tmp_path: Path, baseline: Path, standin: StandIn
) -> None:
    output = _fresh(baseline, tmp_path)
    (output / "mine.txt").write_text("somebody's file beside the snapshot\n")
    before = tree(tmp_path)
    done = run_crawl(
        output / "digests.jsonl", standin, default_feed=True, analysis=True,
        settings={**FAST, "DATASET_DIR": output},
    )  # fmt: skip
    line = _refused(done, standin, "DATASET_DIR", str(output))
    assert "contains" in line
    assert tree(tmp_path) == before


def test_dataset_dir_on_a_folder_of_someones_files_is_refused(
    tmp_path: Path, baseline: Path, standin: StandIn
) -> None:
    output = _fresh(baseline, tmp_path)
    warehouse = _someones_files(tmp_path / "warehouse")
    before = tree(tmp_path)
    done = run_crawl(
        output / "digests.jsonl", standin, default_feed=True, analysis=True,
        settings={**FAST, "DATASET_DIR": warehouse},
    )  # fmt: skip
    line = _refused(done, standin, "DATASET_DIR", str(warehouse))
    assert "not a dataset this crawler wrote" in line
    assert tree(tmp_path) == before


def test_dataset_dir_holding_the_state_db_is_refused(
    tmp_path: Path, baseline: Path, standin: StandIn
) -> None:
    output = _fresh(baseline, tmp_path)
    state = tmp_path / "keep" / "state.sqlite3"
    state.parent.mkdir()
    shutil.copy(output / "state.sqlite3", state)
    before = tree(tmp_path)
    done = run_crawl(
        output / "digests.jsonl", standin, default_feed=True, analysis=True,
        settings={**FAST, "DATASET_DIR": state.parent, "STATE_DB": state},
    )  # fmt: skip
    _refused(done, standin, "DATASET_DIR", str(state.parent), "STATE_DB")
    assert tree(tmp_path) == before


def test_report_file_on_the_snapshot_is_refused(
    tmp_path: Path, baseline: Path, standin: StandIn
) -> None:
    output = _fresh(baseline, tmp_path)
    before = tree(tmp_path)
    snapshot = output / "digests.jsonl"
    done = run_crawl(
        snapshot, standin, default_feed=True, analysis=True,
        settings={**FAST, "REPORT_FILE": snapshot},
    )  # fmt: skip
    _refused(done, standin, "REPORT_FILE", str(snapshot))
    assert tree(tmp_path) == before


def test_report_file_on_someones_page_is_refused(
    tmp_path: Path, baseline: Path, standin: StandIn
) -> None:
    output = _fresh(baseline, tmp_path)
    page = tmp_path / "index.html"
    page.write_text("<!DOCTYPE html><html><body>my home page</body></html>\n")
    before = tree(tmp_path)
    done = run_crawl(
        output / "digests.jsonl", standin, default_feed=True, analysis=True,
        settings={**FAST, "REPORT_FILE": page},
    )  # fmt: skip
    _refused(done, standin, "REPORT_FILE", str(page), "not a report this crawler wrote")
    assert tree(tmp_path) == before


@pytest.mark.parametrize("kind", ["text", "foreign-jsonl", "symlink"])
def test_output_onto_a_file_we_did_not_write_is_refused(
    tmp_path: Path, standin: StandIn, kind: str
) -> None:
    target = tmp_path / "notes.jsonl"
    if kind == "text":
        target.write_text("my notes, one per line\n")
    elif kind == "foreign-jsonl":
        target.write_text('{"name": "a record of somebody else"}\n')
    else:
        (tmp_path / "real.txt").write_text("the link's target\n")
        target.symlink_to("real.txt")
    before = tree(tmp_path)
    settings = {**standin.settings, **FAST, "STATE_DB": ""}
    ran = scrapy(
        "crawl", "digests", "-O", str(target),
        *(arg for name, value in settings.items() for arg in ("-s", f"{name}={value}")),
    )  # fmt: skip
    done = Crawl([], b"", ran.stderr, ran.returncode)
    _refused(done, standin, "output", str(target), "not a snapshot this crawler wrote")
    assert tree(tmp_path) == before


def test_a_run_report_we_did_not_write_is_refused(
    tmp_path: Path, baseline: Path, standin: StandIn
) -> None:
    output = _fresh(baseline, tmp_path)
    (output / "digests.run.json").write_text('{"my": "configuration"}\n')
    before = tree(tmp_path)
    done = run_crawl(output / "digests.jsonl", standin, default_feed=True, settings=FAST)
    _refused(done, standin, "run report", str(output / "digests.run.json"))
    assert tree(tmp_path) == before


def test_a_lock_file_we_did_not_write_is_refused(tmp_path: Path, standin: StandIn) -> None:
    out = tmp_path / "digests.jsonl"
    lock = tmp_path / ".digests.jsonl.lock"
    lock.write_text("somebody's file, named like our lock\n")
    done = run_crawl(out, standin, settings=FAST)
    _refused(done, standin, str(lock), "not a run lock this crawler wrote")
    assert lock.read_text() == "somebody's file, named like our lock\n"
    assert not out.exists()


def test_a_complete_run_replaces_only_what_it_wrote(
    tmp_path: Path, baseline: Path, standin: StandIn
) -> None:
    """Stale-file cleanup beside the snapshot and the dataset leaves other files alone; an
    earlier dataset without the marker (today's main wrote it) is replaced as usual."""
    output = _fresh(baseline, tmp_path)
    old = output / os.readlink(output / "digests.dataset")
    manifest = json.loads((old / "dataset.json").read_text())
    del manifest["written_by"]  # as today's main writes it
    (old / "dataset.json").write_text(json.dumps(manifest))
    killed = output / ".digests.dataset-abcdefabcdef"  # a killed run's half-built folder
    killed.mkdir()
    ownership.mark_folder(killed)
    (killed / "entries.parquet").write_bytes(b"half")
    lookalikes = {
        ".digests.dataset-notes": _someones_files(output / ".digests.dataset-notes"),
        ".digests.dataset-0123456789ab": _someones_files(output / ".digests.dataset-0123456789ab"),
        ".hot-papers-sort-mine": _someones_files(output / ".hot-papers-sort-mine"),
    }
    (output / ".digests.jsonl.backup.tmp").write_text("my backup\n")
    kept = {name: tree(path) for name, path in lookalikes.items()} | {
        "backup": (output / ".digests.jsonl.backup.tmp").read_bytes()
    }
    done = run_crawl(
        output / "digests.jsonl", standin, "-a", "refresh=all", default_feed=True,
        analysis=True, settings=FAST,
    )  # fmt: skip
    assert done.returncode == 0, done.log[-3000:]
    assert {name: tree(path) for name, path in lookalikes.items()} == {
        name: value for name, value in kept.items() if name != "backup"
    }
    assert (output / ".digests.jsonl.backup.tmp").read_bytes() == kept["backup"]
    new = output / os.readlink(output / "digests.dataset")
    assert new != old and not old.exists()  # the unmarked dataset of ours was replaced
    assert not killed.exists()
    assert "left alone: " in done.log and ".digests.dataset-0123456789ab" in done.log
    assert json.loads((new / "dataset.json").read_text())["written_by"] == "hot-papers-crawler"
    assert not (new / ownership.MARKER).exists()  # traded for the manifest once finished
    report = (output / "digests.report.html").read_text()
    assert ownership.REPORT_MARK in report


# --- item 8: CSV cells ----------------------------------------------------------------------
def test_csv_writes_nested_values_as_json_text(tmp_path: Path, standin: StandIn) -> None:
    """Every nested cell is the JSON of the value the JSON Lines snapshot of the same run holds
    (UTF-8, the same encoding); scalars stay plain and a top-level null is an empty cell."""
    out, table = tmp_path / "digests.jsonl", tmp_path / "digests.csv"
    done = run_crawl(out, standin, "-O", str(table), settings=FAST)
    assert done.returncode == 0, done.log[-3000:]
    with table.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    by_entry = {(r["post"]["source"], r["post"]["slug"], r["rank"]): r for r in done.records}
    assert len(rows) == len(done.records) == len(by_entry) > 0
    nested = 0
    for row in rows:
        post = json.loads(row["post"])
        record = by_entry[(post["source"], post["slug"], int(row["rank"]))]
        assert list(row) == list(record)
        for key, value in record.items():
            if isinstance(value, list | dict):
                assert json.loads(row[key]) == value, key
                assert row[key] == json.dumps(value, ensure_ascii=False)
                nested += 1
            else:
                assert row[key] == ("" if value is None else str(value)), key
    assert nested >= 5 * len(rows)  # post, digest, arxiv, impact, code_urls, tweets
    assert any("\\u" not in row["tweets"] and not row["tweets"].isascii() for row in rows)


# --- item 8: a forced shutdown still writes the run report ----------------------------------
def test_a_double_sigint_still_writes_the_run_report(tmp_path: Path, standin: StandIn) -> None:
    """The second Ctrl-C is Scrapy's forced shutdown: the reactor stops before the crawl
    closes. The run report is written all the same, saying so, and the run exits 1."""
    out = tmp_path / "digests.jsonl"
    standin.hold("arxiv")  # the arXiv answer stays away: the crawl is held mid-way
    running = start_crawl(out, urls_of(standin), settings=FAST)
    try:
        wait_for(lambda: standin.in_flight("arxiv"), "the arXiv request, held")
        running.proc.send_signal(signal.SIGINT)
        wait_for(lambda: "shutting down gracefully" in running.log(), "the first SIGINT heard")
        running.proc.send_signal(signal.SIGINT)
        done = running.wait(SAFETY)
    finally:
        running.kill()
    assert "forcing unclean shutdown" in done.log, done.log[-3000:]
    assert done.returncode == 1, done.log[-3000:]
    report = json.loads((tmp_path / "digests.run.json").read_text())
    assert report["finish_reason"] == "shutdown forced (a second signal)"
    assert (report["exit_status"], report["snapshot_replaced"]) == (1, False)
    assert report["run_id"] and report["finished_at"]
    assert not out.exists()
