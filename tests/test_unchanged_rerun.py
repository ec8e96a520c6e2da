"""An unchanged rerun skips the crawl (issue 21): nothing is sent, every output is kept as it
is, and the run report says since when nothing changed; anything that could change a byte of
the outputs (a source, a setting, a stored value, an output, the clock, an incomplete run)
makes the next run crawl as always."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, SAMPLES, Crawl, run_crawl
from tests.standin import Catalogue, StandIn
from tests.standin.faults import Fault
from tests.test_hardening_inputs_e2e import HUNG_MOUNT
from tests.test_invariants import (
    STOP_SAFETY,
    assert_no_traceback,
    run_report,
    start_crawl,
    wait_for,
)

pytestmark = pytest.mark.e2e

FAST: dict[str, object] = {"ARXIV_DELAY": 0.2, "RETRY_BACKOFF_BASE": 0.05, "S2_DELAY": 0.2}


def hung_mount(tmp_path: Path, hook_text: str) -> tuple[Path, Path, Path]:
    """(hook folder, FIFO, mount folder holding one sample): with the hook on PYTHONPATH, a
    listing of the mount blocks until someone writes the FIFO (see ``HUNG_MOUNT``)."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(hook_text)
    fifo = tmp_path / "mount.fifo"
    os.mkfifo(fifo)
    mount = tmp_path / "hung-mount"
    mount.mkdir()
    shutil.copy(SAMPLES[0], mount / SAMPLES[0].name)
    return hook, fifo, mount


IGNORED = (".run.json", ".lock", "-wal", "-shm", "state.sqlite3")


def _stamps(folder: Path) -> dict[str, object]:
    """Every file under ``folder`` but the run report and the state: (inode, mtime, size);
    links (the dataset folder is one) by their target."""
    found: dict[str, object] = {}
    for p in sorted(folder.rglob("*")):
        if p.is_symlink():
            found[str(p.relative_to(folder))] = os.readlink(p)
        elif p.is_file() and not p.name.endswith(IGNORED):
            st = p.stat()
            found[str(p.relative_to(folder))] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return found


def _report(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(out.with_name(f"{out.stem}.run.json").read_text())
    return data


class Site:
    """Posts in a folder of their own, a snapshot beside them, one stand-in for every run."""

    def __init__(self, root: Path, server: StandIn) -> None:
        self.posts = root / "posts"
        self.posts.mkdir()
        for sample in SAMPLES:
            shutil.copy(sample, self.posts / sample.name)
        self.out = root / "out" / "digests.jsonl"
        self.server = server

    def crawl(self, *args: str, settings: dict[str, object] | None = None) -> Crawl:
        self.server.reset_log()
        return run_crawl(
            self.out, self.server, "-a", f"source={self.posts}", *args,
            settings=FAST | (settings or {}), analysis=True,
        )  # fmt: skip

    @property
    def sent(self) -> int:
        return len(self.server.log)


@pytest.fixture
def site(tmp_path: Path, catalogue: Catalogue) -> Iterator[Site]:
    with StandIn(catalogue.copy()) as server:
        site = Site(tmp_path, server)
        first = site.crawl()
        assert first.returncode == 0, first.log[-3000:]
        assert site.sent > 0
        yield site


def test_an_unchanged_rerun_sends_nothing_and_keeps_every_output(site: Site) -> None:
    first_report = _report(site.out)
    before = _stamps(site.out.parent)
    assert {"digests.jsonl", "digests.posts.jsonl", "digests.report.html"} <= set(before)
    assert "digests.dataset" in before
    assert any(name.endswith(".parquet") for name in before)
    again = site.crawl()
    assert again.returncode == 0, again.log[-3000:]
    assert site.sent == 0
    assert _stamps(site.out.parent) == before  # not one file rewritten, not even renamed
    report = _report(site.out)
    assert report["unchanged_since"]["run_id"] == first_report["run_id"]
    assert report["run_id"] != first_report["run_id"]
    assert (report["exit_status"], report["snapshot_replaced"]) == (0, False)
    assert report["records"] == first_report["records"] == len(again.records)
    assert report["dataset"] == "unchanged"
    assert "Nothing changed since run " + first_report["run_id"] in again.log


def test_the_skipped_run_repeats_the_input_warnings(site: Site) -> None:
    (site.posts / SAMPLES[0].name).write_bytes(
        SAMPLES[0].read_bytes().replace(b"\n## ", b"\n## \xe2\x80\x94 ", 1)
    )
    warned = site.crawl()
    assert warned.returncode == 0, warned.log[-3000:]
    lines = [line.split(" WARNING: ", 1)[1] for line in warned.log.splitlines()
             if "[spiders.digests] WARNING: " in line]  # fmt: skip
    again = site.crawl()
    assert site.sent == 0, again.log[-3000:]
    repeated = [line.split(" WARNING: ", 1)[1] for line in again.log.splitlines()
                if "[crawler.reuse] WARNING: " in line]  # fmt: skip
    assert repeated == lines
    assert _report(site.out)["stats"]["digests/problems/warning"] == len(lines)


def _edit_source(site: Site) -> None:
    path = site.posts / SAMPLES[1].name
    path.write_bytes(path.read_bytes().replace(b"Hot Papers", b"Hot  Papers", 1))


def _edit_snapshot(site: Site) -> None:
    lines = site.out.read_bytes().splitlines(keepends=True)
    site.out.write_bytes(b"".join(lines[:-1]))


def _drop_a_table(site: Site) -> None:
    folder = site.out.with_name("digests.dataset")
    next(folder.rglob("*.parquet")).unlink()


def _write_the_state(site: Site) -> None:
    """Another program (or an older crawler) changes a stored value."""
    with sqlite3.connect(site.out.parent / "state.sqlite3") as db:
        db.execute("UPDATE fetched SET fetched_at = fetched_at - 1 WHERE kind = 'hf'")


def _pass_the_stale_time(site: Site) -> None:
    with sqlite3.connect(site.out.parent / "state.sqlite3") as db:
        db.execute("UPDATE reruns SET valid_until = written_at")


CHANGES = {
    "a source's bytes": (_edit_source, ()),
    "the snapshot edited": (_edit_snapshot, ()),
    "a dataset table removed": (_drop_a_table, ()),
    "a stored value written by another program": (_write_the_state, ()),
    "a stored value went stale": (_pass_the_stale_time, ()),
    "a setting": (None, ("-s", "OEMBED_MAXWIDTH=400")),
    "refresh asked for": (None, ("-a", "refresh=hf")),
    "SKIP_UNCHANGED off": (None, ("-s", "SKIP_UNCHANGED=False")),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_anything_that_could_change_an_output_crawls_again(site: Site, change: str) -> None:
    edit, args = CHANGES[change]
    if edit is not None:
        edit(site)
    again = site.crawl(*args)
    assert again.returncode == 0, again.log[-3000:]
    assert "Nothing changed since run" not in again.log
    assert _report(site.out).get("unchanged_since") is None
    assert _report(site.out)["records"] == len(again.records) > 0
    if change == "refresh asked for":
        assert site.sent > 0  # the forced values are asked again
    if change == "the snapshot edited":
        assert len(again.records) == _report(site.out)["records"]
        assert site.out.read_bytes().count(b"\n") == len(again.records)


def test_an_incomplete_run_is_not_skipped_next_time(site: Site) -> None:
    site.server.faults.add(Fault("status:500", "hf_papers", times=10**6))
    failed = site.crawl("-a", "refresh=hf", settings={"RETRY_TIMES": 0})
    assert failed.returncode == 4, failed.log[-3000:]
    site.server.faults.clear()
    again = site.crawl()
    assert again.returncode == 0, again.log[-3000:]
    assert "Nothing changed since run" not in again.log
    assert {r.service for r in site.server.log} == {"hf_papers"}  # what failed is asked again
    third = site.crawl()
    assert site.sent == 0 and "Nothing changed since run" in third.log


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_is_heard_while_the_sources_are_read_to_see_whether_anything_changed(
    tmp_path: Path, standin: StandIn, signum: int
) -> None:
    """The check reads every source before Scrapy starts: a hung mount there held a stop off
    (signals reach Scrapy's handlers only once the crawl runs)."""
    hook, fifo, mount = hung_mount(tmp_path, HUNG_MOUNT)
    out = tmp_path / "out" / "digests.jsonl"
    urls = (standin.arxiv_url, standin.oembed_url)
    args = ("-a", f"source={mount}/**/*.txt")
    first = start_crawl(out, urls, *args, settings=FAST).wait(STOP_SAFETY)
    assert first.returncode == 0, first.log[-3000:]
    env = {"PYTHONPATH": f"{hook}{os.pathsep}{ROOT}", "HUNG_MOUNT_FIFO": str(fifo)}
    running = start_crawl(out, urls, *args, settings=FAST, env=env)
    try:
        wait_for(lambda: fifo.with_suffix(".entered").exists(), "the listing to block")
        running.proc.send_signal(signum)
        done = running.wait(STOP_SAFETY)  # a safety net, not a bound
    finally:
        running.kill()
    assert done.returncode == 1, done.log[-3000:]
    assert_no_traceback(done.log)
    assert "stopped while reading the sources" in done.log
    report = run_report(out)
    assert (report["exit_status"], report["snapshot_replaced"]) == (1, False)
    assert report["finish_reason"] == "shutdown"
    assert len(out.read_bytes().splitlines()) == len(first.records) > 0  # kept as it was


def test_a_feed_appended_to_is_written_by_every_run(site: Site) -> None:
    """``-o`` appends each run's records: a skipped run would not have, so it crawls."""
    feed = site.out.with_name("appended.jsonl")
    cmd = [sys.executable, "-m", "scrapy", "crawl", "digests", "-o", str(feed)]
    cmd += ["-a", f"source={site.posts}", "-s", "LOG_LEVEL=INFO"]
    cmd += ["-s", "DATASET_DIR=", "-s", "REPORT_FILE="]  # an appended file repeats entry IDs
    cmd += ["-s", f"STATE_DB={site.out.parent / 'appended.sqlite3'}"]
    for name, value in (site.server.settings | FAST).items():
        cmd += ["-s", f"{name}={value}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = [subprocess.run(cmd, cwd=ROOT, capture_output=True, env=env, check=False)
            for _ in range(2)]  # fmt: skip
    assert [r.returncode for r in runs] == [0, 0], runs[-1].stderr[-3000:]
    assert b"Nothing changed since run" not in runs[1].stderr
    lines = feed.read_bytes().splitlines()
    assert len(lines) == 2 * len(site.out.read_bytes().splitlines())
