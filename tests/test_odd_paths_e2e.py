"""Arguments and settings with odd bytes or characters that reach a path or a URL: each is one
line naming it, escaped so the line is valid text, and the exit status README gives, never a
traceback. Real ``scrapy crawl`` processes against the stand-in."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLES, run_crawl
from tests.standin import StandIn
from tests.test_hardening_inputs_e2e import FAST, _digest_server, _entries
from tests.test_invariants import assert_no_traceback, assert_refused, error_lines, run_report

pytestmark = pytest.mark.e2e

LONG = "a" * 300  # past NAME_MAX (255 bytes): every look-up fails with ENAMETOOLONG
FF = os.fsdecode(b"\xff")  # how Python hands over the byte 0xFF of an argument


def _logged(log: str) -> list[str]:
    """The error lines, without the timestamp and logger of log lines."""
    return [re.sub(r"^.*\] ERROR: ", "", line) for line in error_lines(log)]


def test_odd_sources_are_one_line_each_and_the_rest_is_crawled(
    tmp_path: Path, standin: StandIn
) -> None:
    """A URL with a byte that is not UTF-8 made Scrapy raise while building its request: a
    traceback, exit 1, and no later source read. So did an IPv6 address or a port that does not
    parse, a user name Latin-1 cannot hold, and a local path too long to look up; a newline
    split its line in two and ``ftp://`` was called a missing file."""
    out = tmp_path / "out" / "digests.jsonl"
    out.parent.mkdir()
    bad = [
        f"http://127.0.0.1:1/a{FF}.md",
        "http://[::1/a.md",
        "http://127.0.0.1:99999/a.md",
        "http://127.0.0.1:1/a\nb.md",
        "ftp://127.0.0.1/a.md",
        f"{tmp_path}/{LONG}.md",
        f"{tmp_path}/gone{FF}.md",
    ]
    with _digest_server(SAMPLES[0].read_bytes()) as (host, seen):
        good = [f"http://r%E2%82%AC:pw@{host}/hot-papers.md", f"http://{host}/a b%.md"]
        done = run_crawl(out, standin, "-a", "source=" + ",".join(bad + good), settings=FAST)
    assert_no_traceback(done.log)
    assert _logged(done.log) == [
        "source http://127.0.0.1:1/a\\xff.md: not a valid URL: byte \\xff is not UTF-8 text "
        "(percent-encode it)",
        "source http://[::1/a.md: not a valid URL: Invalid IPv6 URL",
        "source http://127.0.0.1:99999/a.md: not a valid URL: Port out of range 0-65535",
        "source http://127.0.0.1:1/a\\nb.md: not a valid URL: holds the control character \\n "
        "(percent-encode it)",
        "source ftp://127.0.0.1/a.md: no such file or folder, and ftp:// URLs are not read "
        "(only http and https)",
        f"source {tmp_path}/{LONG}.md: File name too long",
        f"source {tmp_path}/gone\\xff.md: no such file or folder",
    ]
    assert done.returncode == 2, done.log[-3000:]
    assert run_report(out)["exit_status"] == 2
    # The user name, % escapes and all, as UTF-8 (Latin-1, w3lib's default, cannot hold a €).
    assert sorted(map(str, seen)) == [
        "Basic " + base64.b64encode("r€:pw".encode()).decode(),
        "None",
    ]
    sources = [r["post"]["source"] for r in done.records]
    assert sorted(set(sources)) == [f"http://{host}/a b%.md", f"http://{host}/hot-papers.md"]
    assert len(sources) == 2 * _entries(SAMPLES[0])


@pytest.mark.parametrize(
    ("option", "value", "line"),
    [
        ("-O", "o{FF}.jsonl", "output {dir}/o\\xff.jsonl: byte \\xff is not UTF-8 text"),
        ("-O", "file://{dir}/a%FF.jsonl", "output {dir}/a\\xff.jsonl: byte \\xff is not UTF-8 text"),
        ("-O", f"{LONG}.jsonl", f"output {{dir}}/{LONG}.jsonl: File name too long"),
        (
            "-O",
            f"{'m' * 236}.jsonl",
            f"output {{dir}}/{'m' * 236}.jsonl: file name is 242 bytes; at most 241 leave room "
            "for the files named after it (NAME_MAX 255)",
        ),
        ("STATE_DB", "s{FF}.sqlite3", "STATE_DB {dir}/s\\xff.sqlite3: byte \\xff is not UTF-8 text"),
        ("STATE_DB", f"{LONG}.sqlite3", f"STATE_DB {{dir}}/{LONG}.sqlite3: File name too long"),
        ("DATASET_DIR", "d{FF}", "DATASET_DIR {dir}/d\\xff: byte \\xff is not UTF-8 text"),
        (
            "DATASET_DIR",
            "d\\x",
            "DATASET_DIR {dir}/d\\x: holds a backslash, which DuckDB reads as a folder separator "
            "(give DATASET_DIR another path, or empty to turn the dataset off)",
        ),
        ("-O", "file://{dir}/a%00b.jsonl", "output {dir}/a\\x00b.jsonl: holds a NUL byte, which no path can"),
        ("REPORT_FILE", "r{FF}.html", "REPORT_FILE {dir}/r\\xff.html: byte \\xff is not UTF-8 text"),
        ("LOG_FILE", "l{FF}.log", "LOG_FILE {dir}/l\\xff.log: byte \\xff is not UTF-8 text"),
        ("LOG_FILE", f"{LONG}.log", f"LOG_FILE {{dir}}/{LONG}.log: File name too long"),
        (
            "ARXIV_API_URL",
            "http://127.0.0.1:1/api{FF}",
            "ARXIV_API_URL http://127.0.0.1:1/api\\xff: not a valid URL: byte \\xff is not UTF-8 "
            "text (percent-encode it)",
        ),
        (
            "OEMBED_URL",
            "http://127.0.0.1:99999/oembed",
            "OEMBED_URL http://127.0.0.1:99999/oembed: not a valid URL: Port out of range 0-65535",
        ),
    ],
    ids=[
        "output-byte", "output-file-uri", "output-too-long", "output-no-room", "state-byte",
        "state-too-long", "dataset-byte", "dataset-backslash", "output-nul", "report-byte",
        "log-byte", "log-too-long", "service-url-byte", "service-url-port",
    ],
)  # fmt: skip
def test_an_odd_output_path_or_endpoint_is_refused_before_anything_is_written(
    tmp_path: Path, standin: StandIn, option: str, value: str, line: str
) -> None:
    """Each of these crawled, then ended in a traceback: the run report, the dataset step's
    job or Scrapy's log handler could not hold or open the path (exit 1 or 4, no run report),
    or every request of the service failed to be built; a backslash in the dataset's path
    failed the dataset after every crawl (DuckDB, exit 5)."""
    folder = tmp_path / "run"
    folder.mkdir()
    value = value.replace("{FF}", FF)
    if option.endswith("_URL"):
        target = value
    else:
        target = value.format(dir=folder) if "{dir}" in value else str(folder / value)
    out = folder / "digests.jsonl"
    args = ["-a", f"source={SAMPLES[0]}"]
    settings = dict(FAST)
    if option == "-O":
        args += ["-O", target]  # a second feed: each is checked
    else:
        settings[option] = target
    done = run_crawl(out, standin, *args, settings=settings, analysis=True)
    assert_refused(done, 1, "")
    expected = line.format(dir=folder)
    if "is not UTF-8 text" in expected and not expected.endswith("(percent-encode it)"):
        expected += "; give a path that is (the run files name their paths in UTF-8)"
    assert error_lines(done.log) == [f"error: {expected}"]
    assert sorted(os.listdir(folder)) == []  # nothing read, nothing written, nothing locked


@pytest.mark.parametrize(("dataset", "most"), [("{name}.dataset", 230), ("", 235)])
def test_a_snapshot_name_too_long_for_its_dataset_is_one_line_about_the_snapshot(
    tmp_path: Path, standin: StandIn, dataset: str, most: int
) -> None:
    """231 bytes leave room for the snapshot's own temporary files but not for its dataset
    folder's hidden versions (25 bytes more than the snapshot's name): that was two lines
    about DATASET_DIR and REPORT_FILE, settings the user never set. With no dataset its
    longest is its posts list's temporary file (20 bytes more)."""
    folder = tmp_path / "run"
    folder.mkdir()
    out = folder / f"{'m' * (most - 5)}.jsonl"
    settings = dict(FAST) | {"DATASET_DIR": dataset}
    done = run_crawl(out, standin, "-a", f"source={SAMPLES[0]}", settings=settings, analysis=True)
    assert_refused(done, 1, "")
    assert error_lines(done.log) == [
        f"error: output {out}: file name is {most + 1} bytes; at most {most} leave room for the "
        "files named after it (NAME_MAX 255)"
    ]
    assert sorted(os.listdir(folder)) == []
    shorter = folder / f"{'m' * (most - 6)}.jsonl"  # at the limit: crawled and written
    done = run_crawl(shorter, standin, "-a", f"source={SAMPLES[0]}", settings=settings)
    assert done.returncode == 0, done.log[-2000:]
    assert shorter.exists() and len(os.fsencode(shorter.name)) == most


def test_a_dataset_folder_not_named_after_the_snapshot_has_its_own_line(tmp_path: Path) -> None:
    """Only names made from the snapshot's limit it: a DATASET_DIR of 240 bytes of its own
    named the 7-byte snapshot, with a limit of -1."""
    from scrapy.settings import Settings

    from crawler import settings as defaults
    from crawler.commands.crawl import path_problems

    def problems(out: Path, **given: str) -> list[str]:
        settings = Settings()
        settings.setmodule(defaults)
        settings.set("FEEDS", {str(out): {"format": "jsonlines"}})
        for name, value in given.items():
            settings.set(name, value)
        return path_problems(settings)

    own = tmp_path / ("a" * 240)  # it begins as the snapshot "a.jsonl" does
    assert problems(tmp_path / "a.jsonl", DATASET_DIR=str(own)) == [
        f"DATASET_DIR {own}: file name is 240 bytes; at most 232 leave room for the files "
        "named after it (NAME_MAX 255)"
    ]
    long_name = tmp_path / f"{'m' * 225}.jsonl"  # 231 bytes, its dataset 25 more
    assert len(problems(long_name)) == 1
    assert problems(long_name, DATASET_DIR=str(tmp_path / "d")) == []
    longer = "{name}.dataset-v2"  # named after it: the stem, 11 bytes and 23 more
    assert problems(tmp_path / f"{'m' * 221}.jsonl", DATASET_DIR=longer) == []
    assert problems(tmp_path / f"{'m' * 222}.jsonl", DATASET_DIR=longer) == [
        f"output {tmp_path}/{'m' * 222}.jsonl: file name is 228 bytes; at most 227 leave room "
        "for the files named after it (NAME_MAX 255)"
    ]


def test_a_refusal_naming_a_path_with_a_newline_is_one_line(
    tmp_path: Path, standin: StandIn
) -> None:
    """``-O $'o\\nx.jsonl'`` onto someone else's file: the refusal named the path as it is, and
    its newline made two lines of one ``error:``."""
    theirs = tmp_path / "o\nx.jsonl"
    theirs.write_text("not ours\n")
    out = tmp_path / "digests.jsonl"
    done = run_crawl(out, standin, "-a", f"source={SAMPLES[0]}", "-O", str(theirs), settings=FAST)
    assert_refused(done, 1, "")
    assert done.log.splitlines()[-1] == (
        f"error: output {tmp_path}/o\\nx.jsonl exists and is not a snapshot this crawler wrote "
        "(no schema_version in its first record); not replacing it"
    )
    assert theirs.read_text() == "not ours\n"


def test_an_upper_case_file_uri_feed_is_checked_and_written_where_it_points(
    tmp_path: Path, standin: StandIn
) -> None:
    """``-O FILE:///run/a%20b.jsonl`` was no local feed to the checks, and Scrapy wrote it to
    ``./FILE:/run/a%20b.jsonl`` under the working folder: someone else's file at the path it
    names was not refused, the snapshot had no run report, and it was never where the user
    looked."""
    folder = tmp_path / "run"
    folder.mkdir()
    theirs = folder / "a b.jsonl"
    theirs.write_text("not a snapshot\n")
    unused = folder / "unused.jsonl"  # DEFAULT_FEED, which a feed given with -O replaces
    upper = ["-a", f"source={SAMPLES[0]}", "-O", f"FILE://{folder}/a%20b.jsonl"]
    try:
        done = run_crawl(unused, standin, *upper, settings=FAST, default_feed=True)
        assert_refused(done, 1, "")
        assert error_lines(done.log) == [
            f"error: output {theirs} exists and is not a snapshot this crawler wrote (no "
            "schema_version in its first record); not replacing it"
        ]
        assert theirs.read_text() == "not a snapshot\n"
        theirs.unlink()
        done = run_crawl(unused, standin, *upper, settings=FAST, default_feed=True)
        assert done.returncode == 0, done.log[-2000:]
        records = [json.loads(line) for line in theirs.read_bytes().splitlines()]
        assert len(records) == _entries(SAMPLES[0])
        assert run_report(theirs)["exit_status"] == 0
        assert not unused.exists()
        assert not (ROOT / "FILE:").exists()
    finally:
        shutil.rmtree(ROOT / "FILE:", ignore_errors=True)  # what the old code wrote


@pytest.mark.parametrize(("reported", "limit"), [(-1, 255), (0, 255), (100, 100)])
def test_a_file_system_that_names_no_name_limit_refuses_no_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reported: int, limit: int
) -> None:
    """``pathconf`` gives -1 where a file system sets no limit, and some FUSE file systems
    report an ``f_namelen`` of 0: every output was "too long" for a limit of -15. Those are
    taken as 255; a real limit still counts."""
    from crawler.commands import crawl

    monkeypatch.setattr(crawl.os, "pathconf", lambda path, name: reported)
    most = limit - crawl.DERIVED_NAME_ROOM
    assert crawl.path_problem(tmp_path / f"{'m' * (most - 6)}.jsonl") is None
    assert crawl.path_problem(tmp_path / f"{'m' * (most - 5)}.jsonl") == (
        f"file name is {most + 1} bytes; at most {most} leave room for the files named after "
        f"it (NAME_MAX {limit})"
    )
