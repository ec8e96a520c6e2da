"""The snapshot on disk: the exporter's counts and the storage that replaces a file only when
the run's outcome allows it (real files in a temporary folder)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

import pytest
from scrapy.crawler import Crawler

from crawler.export.feedstorage import AtomicFileFeedStorage
from crawler.export.jsonlines import EXPORT_FAILED, RECORDS_IN_FILE, SortedJsonLinesExporter
from crawler.outcome import (
    DIGESTS_READ,
    ENTRIES_PARSED,
    OUTPUT_FAILED,
    OUTPUT_STORED,
    RECORDS_INVALID,
    ExitStatus,
    Outcome,
)
from tests.unit.helpers import unit_crawler

OLD = (
    b'{"schema_version": 3, "post": {}, "rank": 1, "previous": "snapshot"}\n'  # a snapshot of ours
)


def _record(rank: int, title: str = "t") -> dict[str, Any]:
    post = {"published_at": "2021-06-02T00:00:00Z", "slug": "p", "source": "p.md"}
    return {"post": post, "rank": rank, "title": title}


def _crawler(
    parsed: int = 3, reason: str = "finished", stats: dict[str, int] | None = None
) -> Crawler:
    crawler = unit_crawler()
    crawler.crawling = True
    Outcome.of(crawler).reason = reason
    for key, value in {DIGESTS_READ: 1, ENTRIES_PARSED: parsed, **(stats or {})}.items():
        crawler.stats.set_value(key, value)
    return crawler


def _storage(crawler: Crawler, target: Path, overwrite: bool = True) -> AtomicFileFeedStorage:
    return AtomicFileFeedStorage.from_crawler(
        crawler, str(target), feed_options={"overwrite": overwrite}
    )


def _export(file: IO[Any], records: list[dict[str, Any]]) -> SortedJsonLinesExporter:
    exporter = SortedJsonLinesExporter(file)
    exporter.start_exporting()
    for record in records:
        exporter.export_item(record)
    exporter.finish_exporting()
    return exporter


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# -- the exporter --------------------------------------------------------------------------------
def test_records_in_file_counts_collapsed_duplicates(tmp_path: Path) -> None:
    with (tmp_path / "out.jsonl").open("w+b") as file:
        exporter = _export(file, [_record(2), _record(1), _record(2)])
        file.seek(0)
        lines = file.read().splitlines()
        assert [json.loads(line)["rank"] for line in lines] == [1, 2]
        assert getattr(file, RECORDS_IN_FILE) == 3  # what the run produced, all accounted for
        assert getattr(file, EXPORT_FAILED, None) is None
    assert (exporter.park.received, exporter.park.collapsed) == (3, 1)


@pytest.mark.parametrize(
    ("bad", "why"),
    [({1, 2}, "is not JSON serializable"), ("\ud800", "surrogates not allowed")],
)
def test_a_record_that_cannot_be_encoded_fails_the_export(
    tmp_path: Path, bad: object, why: str
) -> None:
    with (tmp_path / "out.jsonl").open("w+b") as file:
        _export(file, [_record(1), _record(2, title=bad), _record(3)])  # type: ignore[arg-type]
        failed = getattr(file, EXPORT_FAILED)
        assert failed.startswith("record 2 cannot be written as JSON") and why in failed
        assert getattr(file, RECORDS_IN_FILE, None) is None
        file.seek(0)
        assert file.read() == b""  # nothing half-written


# -- the storage ---------------------------------------------------------------------------------
def _run(
    tmp_path: Path,
    crawler: Crawler,
    records: list[dict[str, Any]] | None = None,
    break_target: bool = False,
) -> tuple[Path, Outcome]:
    target = tmp_path / "snapshot.jsonl"
    target.write_bytes(OLD)
    storage = _storage(crawler, target)
    file = storage.open(crawler.spider)
    _export(file, records if records is not None else [_record(n) for n in (1, 2, 3)])
    if break_target:  # another program put a folder there meanwhile: the rename fails
        target.unlink()
        target.mkdir()
        (target / "inside").write_text("x")
    storage.store(file)
    return target, Outcome.of(crawler)


def test_a_complete_run_replaces_the_snapshot(tmp_path: Path) -> None:
    crawler = _crawler()
    target, outcome = _run(tmp_path, crawler)
    assert [json.loads(line)["rank"] for line in target.read_bytes().splitlines()] == [1, 2, 3]
    assert _leftovers(tmp_path) == []
    assert outcome.snapshots == {str(target.resolve()): True}
    assert crawler.stats.get_value(OUTPUT_STORED) == 3
    assert outcome.exit_status() == ExitStatus.OK


def test_a_run_cut_short_keeps_the_snapshot_without_an_output_failure(tmp_path: Path) -> None:
    crawler = _crawler(reason="shutdown")
    target, outcome = _run(tmp_path, crawler)
    assert target.read_bytes() == OLD
    assert _leftovers(tmp_path) == []
    assert outcome.snapshots == {str(target.resolve()): False}
    assert crawler.stats.get_value(OUTPUT_FAILED) is None
    assert outcome.exit_status() == ExitStatus.NOT_COMPLETED


def test_records_lost_keep_the_snapshot_as_an_output_failure(tmp_path: Path) -> None:
    crawler = _crawler(parsed=4)
    target, outcome = _run(tmp_path, crawler)
    assert target.read_bytes() == OLD and _leftovers(tmp_path) == []
    assert outcome.output_problems == [
        f"{target} not replaced: only 3 of 4 entries reached the file; "
        "the previous file stays as it was"
    ]
    assert outcome.exit_status() == ExitStatus.OUTPUT_FAILED


def test_records_dropped_as_invalid_keep_the_snapshot_as_invalid_records(tmp_path: Path) -> None:
    crawler = _crawler(parsed=4, stats={RECORDS_INVALID: 1})
    target, outcome = _run(tmp_path, crawler)
    assert target.read_bytes() == OLD
    assert outcome.output_problems == []
    assert outcome.exit_status() == ExitStatus.INVALID_RECORDS


def test_a_failed_export_keeps_the_snapshot(tmp_path: Path) -> None:
    crawler = _crawler()
    target, outcome = _run(tmp_path, crawler, [_record(1), _record(2, title="\ud800")])
    assert target.read_bytes() == OLD and _leftovers(tmp_path) == []
    (problem,) = outcome.output_problems
    assert problem.startswith(f"{target} not replaced: record 2 cannot be written as JSON")
    assert outcome.exit_status() == ExitStatus.OUTPUT_FAILED


def test_a_folder_put_at_the_target_is_an_output_failure_not_an_exception(tmp_path: Path) -> None:
    crawler = _crawler()
    target, outcome = _run(tmp_path, crawler, break_target=True)
    assert target.is_dir() and _leftovers(tmp_path) == []
    assert (target / "inside").read_text() == "x"  # never replaced: it is not ours
    (problem,) = outcome.output_problems
    assert problem.startswith(f"{target} not replaced: output {target} is a folder, not a snapshot")
    assert outcome.snapshots == {str(target.resolve()): False}
    assert outcome.exit_status() == ExitStatus.OUTPUT_FAILED


def test_an_unwritable_target_is_reported_once_at_the_end(tmp_path: Path) -> None:
    crawler = _crawler()
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the output folder should be")
    storage = _storage(crawler, blocker / "snapshot.jsonl")
    file = storage.open(crawler.spider)
    _export(file, [_record(1)])
    storage.store(file)
    (problem,) = Outcome.of(crawler).output_problems
    assert "not replaced:" in problem and "cannot be written" in problem
    assert Outcome.of(crawler).exit_status() == ExitStatus.OUTPUT_FAILED


def test_appending_starts_from_the_old_file_and_stale_temporary_files_go(tmp_path: Path) -> None:
    crawler = _crawler(parsed=1)
    target = tmp_path / "snapshot.jsonl"
    target.write_bytes(OLD)
    (tmp_path / ".snapshot.jsonl.k1lled_x.tmp").write_bytes(b"left by a killed run")
    storage = _storage(crawler, target, overwrite=False)
    file = storage.open(crawler.spider)
    assert _leftovers(tmp_path) == [Path(file.name).name]  # only this run's
    file.write(b'{"rank": 1}\n')
    setattr(file, RECORDS_IN_FILE, 1)
    storage.store(file)
    assert target.read_bytes() == OLD + b'{"rank": 1}\n'
    assert _leftovers(tmp_path) == []
