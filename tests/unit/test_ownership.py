"""What a run may replace (crawler/export/ownership.py), on real files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from crawler.export import ownership

OUR_POST: dict[str, Any] = {
    "id": "0123456789abcdef", "slug": "s", "title": None, "published_at": None,
    "digest_date": None, "tags": [], "category": None, "source": "a.md",
}  # fmt: skip


def test_a_snapshot_with_a_large_first_record_is_ours(tmp_path: Path) -> None:
    snapshot = tmp_path / "digests.jsonl"
    record = {
        "schema_version": 3,
        "post": {},
        "rank": 1,
        "abstract": "x" * 300_000,
    }  # past any fixed-size head
    snapshot.write_text(json.dumps(record) + "\n")
    assert ownership.snapshot_problem(snapshot, "jsonlines") is None
    snapshot.write_text(json.dumps({"abstract": "x" * 300_000}) + "\n")
    problem = ownership.snapshot_problem(snapshot, "jsonlines")
    assert problem is not None and problem.startswith(f"output {snapshot} exists and is not")


def test_an_empty_file_may_be_replaced_a_folder_may_not(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_bytes(b"")
    assert ownership.snapshot_problem(tmp_path / "empty.jsonl", "jsonlines") is None
    (tmp_path / "dir.jsonl").mkdir()
    assert ownership.snapshot_problem(tmp_path / "dir.jsonl", "jsonlines") == (
        f"output {tmp_path / 'dir.jsonl'} is a folder, not a snapshot this crawler wrote; "
        "not replacing it"
    )


def test_overlaps_are_one_line_per_output(tmp_path: Path) -> None:
    out = tmp_path / "output"
    named = [
        ("output", out / "digests.jsonl"),
        ("DATASET_DIR", out),
        ("STATE_DB", out / "state.sqlite3"),
        ("REPORT_FILE", tmp_path / "r.html"),
        ("run report", tmp_path / "r.html"),
    ]
    assert ownership.overlap_problems(named) == [
        f"DATASET_DIR {out} contains output {out / 'digests.jsonl'}; "
        "each output needs a path of its own",
        f"REPORT_FILE {tmp_path / 'r.html'} is run report {tmp_path / 'r.html'}; "
        "each output needs a path of its own",
    ]
    assert ownership.overlap_problems(named[2:4]) == []


def test_a_posts_list_is_replaced_only_when_it_is_ours(tmp_path: Path) -> None:
    posts = tmp_path / "digests.posts.jsonl"
    assert ownership.posts_problem(posts) is None  # missing
    posts.write_bytes(b"")
    assert ownership.posts_problem(posts) is None  # empty: nothing to lose
    posts.write_text(json.dumps(OUR_POST) + "\n")
    assert ownership.posts_problem(posts) is None
    posts.write_text("my notes about these posts\n")
    assert ownership.posts_problem(posts) == (
        f"posts list {posts} exists and is not one this crawler wrote; not replacing it"
    )
    posts.unlink()
    posts.mkdir()
    assert ownership.posts_problem(posts) == (
        f"posts list {posts} is a folder, not one this crawler wrote; not replacing it"
    )


def test_files_that_merely_mention_our_keys_are_not_ours(tmp_path: Path) -> None:
    """A key name is no mark: someone's files that carry ``schema_version`` or post-like keys
    are not replaced."""
    cases = {
        "package.json": ("json", b'{"name": "x", "schema_version": 2}\n'),
        "events.jsonl": ("jsonlines", b'{"schema_version": 1, "event": "login"}\n'),
        "notes.csv": ("csv", b"id,comment\n1,see schema_version in the docs\n"),
        "items.xml": ("xml", b"<?xml version='1.0'?><doc>schema_version rank</doc>"),
    }
    for name, (feed_format, content) in cases.items():
        (tmp_path / name).write_bytes(content)
        assert ownership.snapshot_problem(tmp_path / name, feed_format), name
    posts = tmp_path / "x.posts.jsonl"
    posts.write_text(json.dumps({"id": 7, "slug": "about", "source": "cms"}) + "\n")
    assert ownership.posts_problem(posts)


def test_every_feed_format_we_export_is_recognised_as_ours(tmp_path: Path) -> None:
    from scrapy.exporters import JsonItemExporter, XmlItemExporter

    from crawler.export.csvfeed import JsonCellCsvItemExporter

    record = {"schema_version": 3, "entry_id": "0" * 16, "post": OUR_POST, "rank": 1}
    exporters = {"json": JsonItemExporter, "xml": XmlItemExporter, "csv": JsonCellCsvItemExporter}
    for feed_format, exporter_class in exporters.items():
        path = tmp_path / f"out.{feed_format}"
        with path.open("wb") as f:
            exporter = exporter_class(f)  # type: ignore[arg-type]  # any binary file
            exporter.start_exporting()
            exporter.export_item(record)
            exporter.finish_exporting()
        assert ownership.snapshot_problem(path, feed_format) is None, feed_format
