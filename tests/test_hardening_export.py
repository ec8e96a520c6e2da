"""Issue 19, items 1, 6 and 8 (export and command layers), end to end: real ``scrapy crawl``
processes on real files.

- Usage errors exit 1 with one ``error:`` line (exit 2 means an unreadable source).
- A path the run would replace or remove must be one it wrote; anything else is refused before
  the crawl starts, and survives byte for byte.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.test_invariants import assert_no_traceback, error_lines

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
    assert error_lines(done.stderr) == [
        "error: name one spider: scrapy crawl digests [options]"
    ], done.stderr[-3000:]


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
