"""What an unchanged rerun must still do as a crawl would (review of issue 21's skip): every
output it keeps counts in the key, and what every run does beside its outputs it does too."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.standin import Catalogue, StandIn
from tests.test_invariants import STOP_SAFETY, Running, crawl_command, wait_for
from tests.test_unchanged_rerun import FAST, Site, _report, hung_mount

pytestmark = pytest.mark.e2e


def test_every_feed_of_a_run_counts_as_an_output(tmp_path: Path, catalogue: Catalogue) -> None:
    """``-O out.jsonl -O out.csv``: the CSV feed removed (or edited) is written again, as a
    crawl writes it; the skip kept it missing until a stored value went stale."""
    with StandIn(catalogue.copy()) as server:
        site = Site(tmp_path, server)
        csv = site.out.with_name("digests.csv")
        first = site.crawl("-O", str(csv))
        assert first.returncode == 0, first.log[-3000:]
        written = csv.read_bytes()
        assert written.count(b"\n") > len(first.records)  # a header line and every record
        csv.unlink()
        again = site.crawl("-O", str(csv))
        assert again.returncode == 0, again.log[-3000:]
        assert "Nothing changed since run" not in again.log
        # The CSV feed is in the order records were written, not sorted like the snapshot.
        assert sorted(csv.read_bytes().splitlines()) == sorted(written.splitlines())
        written = csv.read_bytes()
        third = site.crawl("-O", str(csv))  # now nothing changed: skipped, the feed kept
        assert site.sent == 0 and "Nothing changed since run" in third.log, third.log[-3000:]
        assert csv.read_bytes() == written
        assert _report(site.out)["unchanged_since"] is not None


def test_a_skipped_run_removes_what_a_killed_run_left(tmp_path: Path, catalogue: Catalogue) -> None:
    """A crawl killed before it replaced anything (nothing to fetch: nothing stored either)
    leaves ``.NAME.<8>.tmp`` beside the snapshot; README: the next run to the same file
    removes it. A skipped run kept it for as long as nothing changed."""
    with StandIn(catalogue.copy()) as server:
        site = Site(tmp_path, server)
        first = site.crawl()
        assert first.returncode == 0, first.log[-3000:]
        leftover = site.out.with_name(f".{site.out.name}.k1lled_1.tmp")
        leftover.write_bytes(site.out.read_bytes()[:100])
        kept = site.out.with_name(f".{site.out.name}.not-ours.tmp")  # not named as ours
        kept.write_bytes(b"x")
        again = site.crawl()
        assert again.returncode == 0, again.log[-3000:]
        assert site.sent == 0 and "Nothing changed since run" in again.log
        assert not leftover.exists()
        assert kept.read_bytes() == b"x"


# A hung mount that holds the first listing of the source until the test writes the FIFO.
HOLD_ONCE = """
import os, pathlib
_scandir = os.scandir
_held = [False]
def scandir(path="."):
    if not _held[0] and "hung-mount" in os.fsdecode(os.fspath(path)):
        _held[0] = True
        here = pathlib.Path(os.environ["HUNG_MOUNT_FIFO"])
        here.with_suffix(".entered").touch()
        open(here, "rb").close()
    return _scandir(path)
os.scandir = scandir
"""


def _copy_of_the_crawler(folder: Path) -> Path:
    for name in ("crawler", "spiders"):
        shutil.copytree(ROOT / name, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "scrapy.cfg", folder / "scrapy.cfg")
    return folder


def _crawl_in(project: Path, cmd: list[str | bytes], log: Path, env: dict[str, str]) -> Running:
    full_env = {**os.environ, "PYTHONPATH": str(project)} | env
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, cwd=project, env=full_env, stdout=subprocess.DEVNULL,
                                stderr=fh)  # fmt: skip
    return Running(proc, log, Path(str(cmd[cmd.index("-O") + 1])))


ANALYSIS = {"DATASET_DIR": "{name}.dataset", "REPORT_FILE": "{name}.report.html"}


@pytest.mark.parametrize("dataset", [False, True], ids=["crawl-leaves-the-key", "dataset-step"])
def test_code_deployed_while_a_run_crawls_is_not_the_code_that_wrote_its_outputs(
    tmp_path: Path, standin: StandIn, dataset: bool
) -> None:
    """The key hashed the code when the run ended (in the dataset step the crawl becomes, a
    process started then): a deploy during a long crawl made the next run, on the new code,
    skip and keep what the old code wrote."""
    project = _copy_of_the_crawler(tmp_path / "project")
    hook, fifo, mount = hung_mount(tmp_path, HOLD_ONCE)
    out = tmp_path / "out" / "digests.jsonl"
    cmd = crawl_command(out, (standin.arxiv_url, standin.oembed_url), "-a",
                        f"source={mount}/*.txt", settings=FAST | (ANALYSIS if dataset else {}))  # fmt: skip
    env = {"PYTHONPATH": f"{hook}{os.pathsep}{project}", "HUNG_MOUNT_FIFO": str(fifo)}
    running = _crawl_in(project, cmd, tmp_path / "first.log", env)
    try:
        wait_for(lambda: fifo.with_suffix(".entered").exists(), "the listing to block")
        with (project / "crawler" / "items.py").open("a") as code:
            code.write("\n# deployed while the first run crawled\n")
        fifo.write_bytes(b"")  # the listing goes on
        first = running.wait(STOP_SAFETY)  # a safety net, not a bound
    finally:
        running.kill()
    assert first.returncode == 0, first.log[-3000:]
    second = _crawl_in(project, cmd, tmp_path / "run2.log", {}).wait(STOP_SAFETY)
    assert second.returncode == 0, second.log[-3000:]
    assert "Nothing changed since run" not in second.log  # the new code crawls
    third = _crawl_in(project, cmd, tmp_path / "run3.log", {}).wait(STOP_SAFETY)
    assert "Nothing changed since run" in third.log, third.log[-3000:]  # then it is skipped


def test_a_scrapyd_job_id_is_not_a_change(tmp_path: Path, catalogue: Catalogue) -> None:
    """Scrapyd passes ``-a _job=<new id>`` to every job, which the spider ignores: in the key,
    no job run by Scrapyd was ever skipped. The order arguments come in does not matter
    either; their values do."""
    with StandIn(catalogue.copy()) as server:
        site = Site(tmp_path, server)
        first = site.crawl("-a", "_job=8c3a", "-a", "refresh=none")
        assert first.returncode == 0, first.log[-3000:]
        again = site.crawl("-a", "refresh=none", "-a", "_job=91fe")
        assert again.returncode == 0, again.log[-3000:]
        assert site.sent == 0 and "Nothing changed since run" in again.log, again.log[-3000:]
        other = site.crawl("-a", "refresh=errors", "-a", "_job=a0b1")
        assert "Nothing changed since run" not in other.log


def _a_lone_surrogate_stored(state: Path) -> str:
    """A value an older crawler stored before answers' lone surrogates were replaced."""
    with sqlite3.connect(state) as db:
        key, value = db.execute(
            "SELECT key, value FROM fetched WHERE kind = 'hf' AND status = 'ok' LIMIT 1"
        ).fetchone()
        data = json.loads(value)
        data["ai_summary"] = "Low-rank \ud800 adaptation"
        db.execute(
            "UPDATE fetched SET value = ? WHERE kind = 'hf' AND key = ?", (json.dumps(data), key)
        )
    return str(key)


def test_a_warning_from_a_stored_value_is_logged_by_every_run(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    """The record pipeline's "became U+FFFD" warning comes from a stored value, not from a
    source, so a skipped run cannot repeat it: the run that logs it leaves no rerun key."""
    with StandIn(catalogue.copy()) as server:
        site = Site(tmp_path, server)
        assert site.crawl().returncode == 0
        _a_lone_surrogate_stored(site.out.parent / "state.sqlite3")
        warned = site.crawl()
        assert warned.returncode == 0, warned.log[-3000:]
        assert "characters that are not text became U+FFFD" in warned.log
        again = site.crawl()
        assert again.returncode == 0, again.log[-3000:]
        assert "Nothing changed since run" not in again.log
        assert "characters that are not text became U+FFFD" in again.log
        assert _report(site.out)["stats"]["records/scrubbed"] >= 1
