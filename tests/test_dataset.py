"""NAME.dataset/: column types derived from the record schema, the tables' values, atomic swaps."""

from __future__ import annotations

import ast
import copy
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import crawler.export.dataset as dataset_module
import crawler.export.finish as finish_module
from crawler.export.dataset import DUCKDB_FILE, DatasetError, write_dataset
from crawler.export.files import posts_file
from crawler.export.tables import (
    SCHEMAS,
    TABLE_NAMES,
    SchemaMappingError,
    description,
    record_leaves,
)
from crawler.export.tables import layout as make_layout
from crawler.items import TweetDetails
from crawler.record import schema as record_schema
from crawler.record.build import post_block
from tests.records_v2 import (
    CODE,
    DAY_A,
    DAY_B,
    DAY_C,
    FETCHED,
    LATE,
    LORA,
    T1,
    T2,
    T3,
    details_ok,
    entry,
    post,
    record,
    small_corpus,
    synthetic_records,
    tweet,
    write_snapshot,
)

TS = pa.timestamp("ms", tz="UTC")
# Read off the JSON schema by this test's own walk, independently of crawler.export.tables.
JSON_SCALARS = {"string": pa.string(), "integer": pa.int64(), "boolean": pa.bool_()}
JSON_REFS = {"utc": TS, "utc_ms": TS, "date": pa.date32()}
TABLE_ARRAYS = {("tweets",), ("tweets", "*", "details", "history")}  # arrays that are tables
# Columns that are not record leaves: keys repeated from the parent row, and aggregates.
DERIVED = {
    "entries": {"tweet_count"},
    "tweets": {"first_seen", "last_seen", "entry_count"},
    "entry_tweets": {"entry_id", "position", "tweet_id"},
    "tweet_history": {"tweet_id"},
}


def _shape(kind: pa.DataType) -> Any:
    """A type without field nullability or list item names, for comparison."""
    if pa.types.is_list(kind):
        return ("list", _shape(kind.value_type))
    if pa.types.is_struct(kind):
        return ("struct", tuple((f.name, _shape(f.type)) for f in kind))
    return str(kind)


class _SchemaWalk:
    def __init__(self, schema: dict[str, Any]) -> None:
        self.defs = schema["definitions"]

    def leaves(self, node: dict[str, Any], path: tuple[str, ...]) -> Iterator[tuple]:
        """(path, arrow type) for every leaf; branches of oneOf/allOf are walked alike."""
        if "$ref" in node:
            name = node["$ref"].split("/")[-1]
            if name in JSON_REFS:
                yield path, JSON_REFS[name]
            else:
                yield from self.leaves(self.defs[name], path)
            return
        branches = node.get("oneOf") or node.get("anyOf") or node.get("allOf")
        if branches:
            for branch in branches:
                yield from self.leaves(branch, path)
            return
        kinds = self._kinds(node)
        if kinds == {"object"}:
            for name, sub in node.get("properties", {}).items():
                yield from self.leaves(sub, (*path, name))
        elif kinds == {"array"} and path in TABLE_ARRAYS:
            yield from self.leaves(node["items"], (*path, "*"))
        elif kinds:
            yield path, self.type(node)

    def _kinds(self, node: dict[str, Any]) -> set[str]:
        if "type" in node:
            kinds = node["type"]
            return {kinds} - {"null"} if isinstance(kinds, str) else set(kinds) - {"null"}
        if "const" in node:
            return {"integer" if isinstance(node["const"], int) else "string"}
        if "enum" in node:
            return {"string"}
        return {"object"} if "properties" in node else set()

    def type(self, node: dict[str, Any]) -> pa.DataType:
        if "$ref" in node:
            name = node["$ref"].split("/")[-1]
            return JSON_REFS.get(name) or self.type(self.defs[name])
        if "oneOf" in node:
            types = [self.type(b) for b in node["oneOf"] if b.get("type") != "null"]
            assert len({str(t) for t in types}) == 1, node
            return types[0]
        (kind,) = self._kinds(node)
        if kind == "array":
            return pa.list_(self.type(node["items"]))
        if kind == "object":
            return pa.struct([(n, self.type(s)) for n, s in node["properties"].items()])
        return JSON_SCALARS[kind]


def _expected_leaves(schema: dict[str, Any]) -> dict[tuple[str, ...], Any]:
    found: dict[tuple[str, ...], Any] = {}
    for path, kind in _SchemaWalk(schema).leaves(schema, ()):
        assert found.setdefault(path, _shape(kind)) == _shape(kind), f"{path}: branches disagree"
    return found


def test_every_record_leaf_is_a_column_of_the_type_the_schema_gives() -> None:
    expected = _expected_leaves(record_schema())
    leaves = {leaf.path: leaf for leaf in record_leaves()}
    assert set(leaves) == set(expected)  # no leaf lost, none invented
    for path, shape in expected.items():
        leaf = leaves[path]
        column = SCHEMAS[leaf.table].field(leaf.column)
        assert _shape(column.type) == shape, f"{'.'.join(path)} -> {leaf.table}.{leaf.column}"
    for table, extra in DERIVED.items():
        from_leaves = {leaf.column for leaf in leaves.values() if leaf.table == table}
        assert set(SCHEMAS[table].names) == from_leaves | extra, table
    # spot checks a reader relies on
    assert leaves[("tweets", "*", "details", "like_count")].column == "details_like_count"
    assert leaves[("digest", "title")].column == "digest_title"
    assert leaves[("arxiv", "title")].column == "arxiv_title"
    assert leaves[("tweets", "*", "embed", "status")].column == "embed_status"
    assert leaves[("tweets", "*", "details", "status")].column == "details_status"
    assert leaves[("semantic_scholar", "citation_count")].column == (
        "semantic_scholar_citation_count"
    )
    assert leaves[("tweets", "*", "links_paper")].table == "entry_tweets"
    assert SCHEMAS["entries"].names[:6] == [
        "entry_id", "post_id", "post_slug", "post_published_at", "rank", "arxiv_id"]  # fmt: skip


def test_nullable_where_the_schema_or_a_status_allows_a_missing_value() -> None:
    entries, tweets = SCHEMAS["entries"], SCHEMAS["tweets"]
    assert not entries.field("post_slug").nullable and not entries.field("rank").nullable
    assert not entries.field("arxiv_status").nullable  # every branch has a status
    assert entries.field("arxiv_title").nullable  # an error has no title
    assert entries.field("post_published_at").nullable  # "utc_or_null"
    assert tweets.field("details_like_count").nullable and tweets.field("details_reason").nullable
    assert not SCHEMAS["tweet_history"].field("observed_at").nullable


def test_a_schema_change_changes_the_columns() -> None:
    schema = copy.deepcopy(record_schema())
    block = schema["properties"]["semantic_scholar"]
    block["properties"]["h_index"] = {"type": ["integer", "null"]}
    block["required"].append("h_index")
    schema["properties"]["digest"]["properties"]["retweets"] = {"type": ["string", "null"]}
    schemas = make_layout(schema).schemas
    assert schemas["entries"].field("semantic_scholar_h_index").type == pa.int64()
    assert schemas["papers"].field("semantic_scholar_h_index").type == pa.int64()
    assert schemas["entries"].field("digest_retweets").type == pa.string()
    assert "semantic_scholar_h_index" not in SCHEMAS["entries"].names


def test_a_schema_shape_without_a_column_type_fails_loudly() -> None:
    schema = copy.deepcopy(record_schema())
    schema["properties"]["rank"] = {"type": ["integer", "string"]}
    with pytest.raises(SchemaMappingError, match=r"^rank: one column cannot hold"):
        record_leaves(schema)


@pytest.fixture
def small(tmp_path: Path) -> Path:
    snapshot = write_snapshot(tmp_path / "digests.jsonl", small_corpus())
    write_dataset(snapshot, tmp_path / "digests.dataset")
    return tmp_path / "digests.dataset"


def _rows(folder: Path, table: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = pq.read_table(folder / f"{table}.parquet").to_pylist()
    return rows


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_entries_are_the_records_flattened(small: Path) -> None:
    rows = _rows(small, "entries")
    assert [(r["post_slug"], r["rank"]) for r in rows] == [
        ("hot-papers-2021-06-18", 1), ("hot-papers-2021-06-18", 2), ("hot-papers-2021-06-18", 3),
        ("hot-papers-2021-06-20", 1), ("hot-papers-2021-06-20", 2), ("hot-papers-2021-06-22", 1),
    ]  # fmt: skip
    first = rows[0]
    assert first["post_published_at"] == _at(DAY_A)
    assert first["arxiv_id"] == LORA and first["arxiv_versioned_id"] == f"{LORA}v1"
    assert first["arxiv_title"].endswith("(v1)") and first["digest_title"].startswith("LoRA")
    assert (first["digest_retweets"], first["digest_favorites"], first["tweet_count"]) == (
        2059, 229, 2)  # fmt: skip
    assert first["arxiv_authors"][0] == {"name": "Ada Lovelace", "affiliations": ["Analytical Engines"]}  # fmt: skip
    assert first["semantic_scholar_publication_date"] == date(2021, 6, 17)
    assert first["semantic_scholar_citation_count"] == 100
    assert first["code_urls"] == [{"url": CODE, "sources": ["tweet"]}]
    assert first["arxiv_published_at"] == _at("2021-06-17T17:37:18Z")
    assert first["arxiv_fetched_at"] == _at(FETCHED)
    failed = rows[1]
    assert (failed["arxiv_status"], failed["arxiv_error"], failed["arxiv_title"]) == (
        "not_found", "no such", None)  # fmt: skip
    assert (failed["semantic_scholar_status"], failed["semantic_scholar_citation_count"]) == (
        "error", None)  # fmt: skip
    assert rows[2]["arxiv_id"] is None and rows[2]["digest_favorites"] is None


def test_papers_aggregate_listings_with_the_latest_good_metadata(small: Path) -> None:
    papers = {r["arxiv_id"]: r for r in _rows(small, "papers")}
    assert list(papers) == [LORA, LATE]  # first listed first; entries without an ID have none
    lora = papers[LORA]
    assert (lora["first_seen"], lora["last_seen"]) == (_at(DAY_A), _at(DAY_C))
    assert (lora["digest_count"], lora["listing_count"], lora["best_rank"]) == (3, 3, 1)
    assert lora["ranks"] == [
        {"post_published_at": _at(DAY_A), "rank": 1},
        {"post_published_at": _at(DAY_B), "rank": 2},
        {"post_published_at": _at(DAY_C), "rank": 1},
    ]
    # the last listing had an arXiv error: metadata is from the most recent ok one (v2)
    assert (lora["arxiv_status"], lora["arxiv_version"], lora["arxiv_title"]) == (
        "ok", 2, "LoRA: Low-Rank Adaptation of Large Language Models")  # fmt: skip
    assert (lora["semantic_scholar_status"], lora["semantic_scholar_citation_count"]) == (
        "ok", 120)  # fmt: skip
    assert (lora["tweet_count"], lora["linking_tweet_count"], lora["tweet_like_count_total"]) == (
        2, 1, 70)  # fmt: skip
    assert [link["url"] for link in lora["code_urls"]] == [CODE, "https://github.com/other/lora"]
    assert (lora["max_digest_favorites"], lora["max_digest_retweets"]) == (300, 2059)
    late = papers[LATE]
    assert (late["arxiv_status"], late["arxiv_title"], late["listing_count"]) == ("ok", "Found later", 2)  # fmt: skip
    assert late["semantic_scholar_status"] == "disabled"  # no ok impact: the most recent listing's
    assert (late["tweet_count"], late["linking_tweet_count"], late["tweet_like_count_total"]) == (0, None, None)  # fmt: skip


def test_tweets_once_each_with_embeddings_and_history(small: Path) -> None:
    tweets = {r["tweet_id"]: r for r in _rows(small, "tweets")}
    assert set(tweets) == {T1, T2, T3}
    t1 = tweets[T1]
    assert (t1["entry_count"], t1["first_seen"], t1["last_seen"]) == (2, _at(DAY_A), _at(DAY_B))
    assert (t1["details_like_count"], t1["details_reply_count"], t1["details_status"]) == (
        70, 4, "ok")  # fmt: skip
    assert t1["created_at"] == datetime(2021, 6, 18, 17, 0, tzinfo=UTC)
    assert (t1["details_author_handle"], t1["details_author_blue_verified"]) == ("edwardjhu", False)
    assert t1["linked_arxiv_ids"] == [LORA, "2106.00002"]
    assert t1["details_media"][0]["type"] == "photo" and t1["embed_status"] == "ok"
    assert (tweets[T2]["details_status"], tweets[T2]["details_reason"]) == (
        "tombstone", "Age-restricted")  # fmt: skip
    t3 = tweets[T3]
    assert (t3["embed_status"], t3["embed_error"]) == ("deleted", "oEmbed answered HTTP 404")
    assert (t3["details_status"], t3["details_like_count"], t3["linked_arxiv_ids"]) == ("error", None, None)  # fmt: skip
    history = [(r["tweet_id"], r["observed_at"], r["like_count"]) for r in _rows(small, "tweet_history")]  # fmt: skip
    assert history == [
        (T1, _at("2021-06-19T08:00:00Z"), 40),
        (T1, _at("2021-06-19T12:00:00Z"), 50),
        (T1, _at("2021-06-21T08:00:00Z"), 70),
    ]
    entries = {r["entry_id"]: r for r in _rows(small, "entries")}
    embeddings = [(entries[r["entry_id"]]["post_slug"][-5:], entries[r["entry_id"]]["rank"],
                   r["position"], r["tweet_id"], r["links_paper"])
                  for r in _rows(small, "entry_tweets")]  # fmt: skip
    assert embeddings == [
        ("06-18", 1, 1, T1, True), ("06-18", 1, 2, T2, None), ("06-18", 3, 1, T3, None),
        ("06-20", 2, 1, T1, True),
    ]  # fmt: skip


def test_posts_count_their_entries(small: Path) -> None:
    posts = [(r["post_slug"], r["post_published_at"], r["entry_count"], r["embedded_tweet_count"])
             for r in _rows(small, "posts")]  # fmt: skip
    assert posts == [
        ("hot-papers-2021-06-18", _at(DAY_A), 3, 3),
        ("hot-papers-2021-06-20", _at(DAY_B), 2, 1),
        ("hot-papers-2021-06-22", _at(DAY_C), 1, 0),
    ]
    manifest = json.loads((small / "dataset.json").read_text())
    assert manifest["tables"]["posts"]["rows"] == 3 and manifest["first_post"] == DAY_A


def test_every_table_has_its_declared_schema_and_zstd(small: Path) -> None:
    for name in TABLE_NAMES:
        meta = pq.ParquetFile(small / f"{name}.parquet")
        assert meta.schema_arrow.equals(SCHEMAS[name]), name
        if meta.metadata.num_row_groups:
            assert meta.metadata.row_group(0).column(0).compression == "ZSTD"


def test_types_do_not_depend_on_what_the_run_saw(tmp_path: Path) -> None:
    """Every tweet's details failed: like_count is still int64, and every schema is equal."""
    failing = TweetDetails(status="error", error="syndication answered HTTP 500")
    the_post = post("hot-papers-2021-06-18", DAY_A)
    records = [
        record(entry(the_post, rank, None, tweets=[tweet(f"{rank}0", details=failing)]))
        for rank in (1, 2)
    ]
    write_dataset(write_snapshot(tmp_path / "bad.jsonl", records), tmp_path / "bad.dataset")
    write_dataset(write_snapshot(tmp_path / "empty.jsonl", []), tmp_path / "empty.dataset")
    tweets = pq.read_table(tmp_path / "bad.dataset" / "tweets.parquet")
    assert tweets.schema.field("details_like_count").type == pa.int64()
    assert tweets.column("details_like_count").to_pylist() == [None, None]
    assert tweets.column("created_at").to_pylist() == [None, None]  # pre-snowflake IDs
    for name in TABLE_NAMES:
        bad = pq.read_schema(tmp_path / "bad.dataset" / f"{name}.parquet")
        empty = pq.read_table(tmp_path / "empty.dataset" / f"{name}.parquet")
        assert bad.equals(SCHEMAS[name]) and empty.schema.equals(SCHEMAS[name]), name
        assert empty.num_rows == 0


def test_records_are_streamed_in_bounded_row_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dataset_module, "BATCH_ROWS", 100)
    snapshot = tmp_path / "s.jsonl"
    write_snapshot(snapshot, synthetic_records(450, seed=1))
    summary = write_dataset(snapshot, tmp_path / "s.dataset")
    entries = pq.ParquetFile(tmp_path / "s.dataset" / "entries.parquet").metadata
    assert summary.rows["entries"] == entries.num_rows == 450
    sizes = [entries.row_group(i).num_rows for i in range(entries.num_row_groups)]
    assert sizes == [100, 100, 100, 100, 50]
    papers = pq.read_table(tmp_path / "s.dataset" / "papers.parquet")
    assert summary.rows["papers"] == papers.num_rows == len(set(papers.column("arxiv_id").to_pylist()))  # fmt: skip
    assert sum(papers.column("listing_count").to_pylist()) == 450


def _folders(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_the_folder_is_replaced_whole_and_old_ones_removed(tmp_path: Path) -> None:
    target = tmp_path / "digests.dataset"
    snapshot = write_snapshot(tmp_path / "digests.jsonl", small_corpus())
    first = write_dataset(snapshot, target)
    held = (target / "entries.parquet").open("rb")  # a reader that opened the old dataset
    write_snapshot(snapshot, small_corpus()[:2])
    second = write_dataset(snapshot, target)
    assert target.is_symlink() and os.readlink(target) == second.folder.name
    assert not first.folder.exists()
    assert _folders(tmp_path) == [second.folder.name]  # no temporary or old folders left
    assert pq.read_table(target / "entries.parquet").num_rows == 2
    assert pq.read_table(held).num_rows == 6  # the reader still reads the complete old version
    held.close()


def test_a_failure_leaves_the_previous_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "digests.dataset"
    snapshot = write_snapshot(tmp_path / "digests.jsonl", small_corpus())
    before = write_dataset(snapshot, target)
    # a record from an older crawler: rejected with its line number, in one line
    old = small_corpus()[0] | {"schema_version": 1}
    old.pop("semantic_scholar")
    lines = snapshot.read_bytes().splitlines(keepends=True)
    snapshot.write_bytes(lines[0] + json.dumps(old).encode() + b"\n")
    with pytest.raises(DatasetError) as failed:
        write_dataset(snapshot, target)
    message = str(failed.value)
    assert "\n" not in message and "digests.jsonl line 2: not a schema 3 record" in message
    assert os.readlink(target) == before.folder.name
    assert pq.read_table(target / "entries.parquet").num_rows == 6
    assert _folders(tmp_path) == [before.folder.name]
    # a failure after every table was written (here: the DuckDB copy) changes nothing either
    write_snapshot(snapshot, small_corpus()[:1])

    def broken(folder: Path, notes: Any) -> None:
        raise OSError("disk full\nsecond line")

    monkeypatch.setattr(finish_module, "_write_duckdb", broken)
    with pytest.raises(DatasetError, match=r"not replaced: OSError: disk full$"):
        write_dataset(snapshot, target)
    assert os.readlink(target) == before.folder.name
    assert _folders(tmp_path) == [before.folder.name]


def _escape(code: int, upper: bool) -> bytes:
    return (f"\\u{code:04X}" if upper else f"\\u{code:04x}").encode()


def _raw(code: int) -> bytes:
    return chr(code).encode("utf-8", "surrogatepass")  # json.loads decodes with surrogatepass


# What a JSON string in a line can spell near the surrogates: escapes in either case, raw bytes
# (surrogates' own, ED A0..BF; Hangul's beside them, ED 80..9F), pairs, an escaped backslash.
_FRAGMENTS = st.one_of(
    st.builds(_escape, st.integers(0xD000, 0xE0FF), st.booleans()),
    st.builds(_raw, st.integers(0xD000, 0xE0FF)),
    st.sampled_from([b"\\ud83d\\ude00", b"\\\\ud800", b"\\ud83d\\u0041", b"\\udc80\\ud83d"]),
)


@settings(max_examples=30, deadline=None)
@example(fragment=b"\\ud800", checked=False)
@example(fragment=b"\\uDFFF", checked=True)
@example(fragment=b"\xed\xa0\x80", checked=False)  # U+D800's own bytes
@example(fragment=b"\\ud83d\\ude00", checked=False)  # a pair: one character
@example(fragment=b"\\\\ud800", checked=False)  # an escaped backslash: text, no surrogate
@given(fragment=_FRAGMENTS, checked=st.booleans())
def test_a_lone_surrogate_in_a_snapshot_is_one_line_naming_file_and_line(
    tmp_path_factory: pytest.TempPathFactory, fragment: bytes, checked: bool
) -> None:
    """A foreign snapshot's bad line refuses the snapshot with one line naming it; a lone
    surrogate (``"\\ud800"``, which json.loads accepts and no UTF-8 writer takes) is such a line,
    and said so, where it failed inside SQLite with a UnicodeEncodeError naming nothing."""
    tmp = tmp_path_factory.mktemp("surrogate")
    two = [record(entry(post(f"hot-papers-2021-06-1{n}", DAY_A), 1, LORA, tweets=[tweet(T1)]))
           for n in (8, 9)]  # fmt: skip
    lines = write_snapshot(tmp / "d.jsonl", two).read_bytes().splitlines(True)
    assert b'"tweets": [{"id": "' + T1.encode() in lines[1]  # its first text: tweets/0/text
    lines[1] = lines[1].replace(b'"Our new paper"', b'"Our ' + fragment + b' paper"', 1)
    snapshot = tmp / "d.jsonl"
    snapshot.write_bytes(b"".join(lines))
    text = json.loads(b'"Our ' + fragment + b' paper"')
    lone = [c for c in text if 0xD800 <= ord(c) <= 0xDFFF]
    target = tmp / "d.dataset"
    if not lone:
        tables = dataset_module.build_tables(snapshot, target, checked=checked)
        texts = pq.read_table(tables.folder / "tweets.parquet").column("text").to_pylist()
        assert text in texts  # as read, to the character
        return
    with pytest.raises(DatasetError) as failed:
        dataset_module.build_tables(snapshot, target, checked=checked)
    assert str(failed.value) == (
        f"dataset {target} not replaced: ValueError: d.jsonl line 2: not UTF-8 text "
        f"(tweets/0/text holds \\u{ord(lone[0]):04x}, a lone surrogate)"
    )
    assert not target.exists() and _folders(tmp) == []


def test_a_lone_surrogate_in_the_posts_list_skips_its_line_as_any_bad_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The posts list's policy for a bad line: named and skipped, its post still taken from its
    records. A lone surrogate follows it (the whole dataset failed on it in pyarrow)."""
    records = _two_listings_in_one_digest()
    snapshot = write_snapshot(tmp_path / "d.jsonl", records)
    read = [records[0]["post"], _empty_post(), records[2]["post"]]
    lines = [json.dumps(p).encode() + b"\n" for p in read]
    lines[1] = lines[1].replace(b'"title": "Hot Papers 2021 06 19"', b'"title": "Hot \\udc80"')
    assert b"udc80" in lines[1]
    posts_file(snapshot).write_bytes(b"".join(lines))
    write_dataset(snapshot, tmp_path / "d.dataset")
    slugs = [r["post_slug"] for r in _rows(tmp_path / "d.dataset", "posts")]
    assert slugs == ["hot-papers-2021-06-18", "hot-papers-2021-06-20"]
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "d.posts.jsonl:2: skipped, not a post block (not UTF-8 text: title holds \\udc80, a "
        "lone surrogate)"
    ]


def test_a_real_dataset_folder_of_ours_at_the_target_is_replaced(tmp_path: Path) -> None:
    target = tmp_path / "digests.dataset"
    target.mkdir()
    (target / "stale.parquet").write_bytes(b"old")
    manifest = {"record_schema_version": 2, "tables": {}}  # as an older version wrote it
    (target / "dataset.json").write_text(json.dumps(manifest))
    snapshot = write_snapshot(tmp_path / "digests.jsonl", small_corpus())
    summary = write_dataset(snapshot, target)
    assert target.is_symlink() and not (target / "stale.parquet").exists()
    assert _folders(tmp_path) == [summary.folder.name]


def test_a_folder_at_the_target_that_is_not_ours_is_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "digests.dataset"
    target.mkdir()
    (target / "mine.parquet").write_bytes(b"somebody's")
    snapshot = write_snapshot(tmp_path / "digests.jsonl", small_corpus())
    with pytest.raises(DatasetError, match=r"is not a dataset this crawler wrote"):
        write_dataset(snapshot, target)
    assert [p.name for p in target.iterdir()] == ["mine.parquet"]
    assert _folders(tmp_path) == []


def test_duckdb_holds_the_same_tables_and_types(small: Path) -> None:
    con = duckdb.connect(str(small / DUCKDB_FILE), read_only=True)
    try:
        for name in TABLE_NAMES:
            stored = con.sql(f"DESCRIBE {name}").fetchall()
            parquet = str(small / f"{name}.parquet")
            read = con.sql(f"DESCRIBE SELECT * FROM read_parquet('{parquet}')").fetchall()
            assert [c[:2] for c in stored] == [c[:2] for c in read], name
            count = con.sql(f"SELECT count(*) FROM {name}").fetchall()
            assert count == [(pq.ParquetFile(parquet).metadata.num_rows,)]
        types = dict(c[:2] for c in con.sql("DESCRIBE papers").fetchall())
    finally:
        con.close()
    assert types["first_seen"] == "TIMESTAMP WITH TIME ZONE"
    assert types["digest_count"] == "BIGINT" and types["code_urls"] == (
        "STRUCT(url VARCHAR, sources VARCHAR[])[]"
    )
    assert types["ranks"] == "STRUCT(post_published_at TIMESTAMP WITH TIME ZONE, rank BIGINT)[]"
    assert types["semantic_scholar_publication_date"] == "DATE"
    assert not list(small.glob("*.wal")) and not list(small.glob(".*"))


ROOT = Path(__file__).resolve().parent.parent


def _readme_lines() -> dict[str, str]:
    """README's "Reading the data" one-liners, by the library each one uses."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Reading the data", 1)[1]
    block = section.split("```python\n", 1)[1].split("```", 1)[0]
    statements = [ast.get_source_segment(block, node) or "" for node in ast.parse(block).body]
    return {f"{s.split('.', 1)[0]}.{s.split('.', 1)[1].split('(')[0]}": s for s in statements}


def _run_readme(name: str, folder: Path) -> Any:
    """The README line ``name`` run as written, on ``folder``'s snapshot and dataset."""
    line = _readme_lines()[name]
    module = name.split(".")[0]
    lib = pytest.importorskip(module)
    code = line.replace('"output/', f'"{folder.parent}/')
    return eval(code, {module: lib})  # our own README, run as written


def test_readme_lines_are_the_ones_tested() -> None:
    assert sorted(_readme_lines()) == [
        "datasets.load_dataset", "duckdb.connect", "pandas.read_json", "pandas.read_parquet",
        "polars.read_parquet",
    ]  # fmt: skip


def test_readme_duckdb_line_runs(small: Path) -> None:
    top = _run_readme("duckdb.connect", small).fetchall()
    assert top[0][0] == LORA and top[0][2] == 3


def test_readme_pandas_lines_keep_ids_as_strings(small: Path) -> None:
    records = _run_readme("pandas.read_json", small)
    ids = [i for i in records["arxiv_id"] if isinstance(i, str)]
    assert sorted(set(ids)) == [LATE, LORA] and len(ids) == 5  # strings, not floats
    assert all(isinstance(i, str) and len(i) == 16 for i in records["entry_id"])
    frame = _run_readme("pandas.read_parquet", small)
    assert list(frame["arxiv_id"]) == [LORA, LATE]
    assert str(frame["arxiv_id"].dtype) == "string[pyarrow]"


def test_readme_polars_line_runs(small: Path) -> None:
    frame = _run_readme("polars.read_parquet", small)
    assert frame["arxiv_id"].to_list() == [LORA, LATE]


def test_readme_datasets_line_loads_a_table_by_name(
    small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    datasets = pytest.importorskip("datasets")
    # The cache path is read once, at the worker's first import: give this test its own.
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    rows = _run_readme("datasets.load_dataset", small)
    assert rows.num_rows == 2 and rows[0]["arxiv_id"] == LORA
    assert rows.column_names == SCHEMAS["papers"].names


@pytest.mark.parametrize("checked", [False, True])
def test_a_snapshot_checked_as_it_was_written_is_not_validated_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, checked: bool
) -> None:
    """The crawl's own snapshot holds only records the record pipeline validated; validating
    them again was 40 % of the dataset step. Any other snapshot is validated line by line."""
    calls: list[str] = []

    def counting(record: dict[str, Any]) -> list[str]:
        calls.append(record["arxiv_id"])
        return []

    monkeypatch.setattr(dataset_module, "schema_errors", counting)
    records = small_corpus()
    snapshot = write_snapshot(tmp_path / "digests.jsonl", records)
    summary = write_dataset(snapshot, tmp_path / "digests.dataset", checked=checked)
    assert summary.rows["entries"] == len(records)
    assert len(calls) == (0 if checked else len(records))


# -- issue 20: names by one rule, one source of descriptions, keys, every digest read ---------


def test_column_names_follow_the_mechanical_rule() -> None:
    """``block.leaf`` -> ``block_leaf`` below the table's row; a tweet's ``id`` is ``tweet_id``."""
    for leaf in record_leaves():
        expected = (
            "tweet_id" if leaf.rel == ("id",) and leaf.table != "entries" else "_".join(leaf.rel)
        )
        assert leaf.column == expected, leaf.path
    entries, tweets = SCHEMAS["entries"].names, SCHEMAS["tweets"].names
    for name in ("digest_retweets", "digest_linked_version", "arxiv_title", "arxiv_version",
                 "semantic_scholar_citation_count", "post_published_at", "post_digest_date",
                 "entry_id", "rank", "arxiv_id", "code_urls", "arxiv_fetched_at"):  # fmt: skip
        assert name in entries, name
    assert {"embed_status", "details_like_count", "availability", "tweet_id"} <= set(tweets)
    assert SCHEMAS["entry_tweets"].names[:3] == ["entry_id", "position", "tweet_id"]
    assert {
        "digest_count",
        "listing_count",
        "max_digest_favorites",
        "tweet_like_count_total",
    } <= set(SCHEMAS["papers"].names)


def _schema_node(path: tuple[str, ...]) -> dict[str, Any]:
    """The schema node of a leaf, read by hand: through items and the first branch having it."""
    node: dict[str, Any] = record_schema()
    for step in path:
        if step == "*":
            node = node["items"]
            continue
        while "properties" not in node or step not in node["properties"]:
            branches = node.get("oneOf") or node.get("allOf") or []
            node = next(b for b in branches if "properties" in b and step in b["properties"])
        node = node["properties"][step]
    return node


def test_every_column_is_described_once_in_parquet_duckdb_and_the_card(small: Path) -> None:
    """A leaf's description is the schema's own text; Parquet, DuckDB and the card's data
    dictionary carry the same text for every column of every table."""
    for leaf in record_leaves():
        assert leaf.description == _schema_node(leaf.path)["description"], leaf.path
    card = (small / "README.md").read_text()
    con = duckdb.connect(str(small / DUCKDB_FILE), read_only=True)
    try:
        comments = {
            (t, c): text
            for t, c, text in con.sql(
                "SELECT table_name, column_name, comment FROM duckdb_columns() WHERE NOT internal"
            ).fetchall()
        }
        tables = dict(con.sql("SELECT table_name, comment FROM duckdb_tables()").fetchall())
    finally:
        con.close()
    for name in TABLE_NAMES:
        stored = pq.read_schema(small / f"{name}.parquet")
        assert tables[name] == description(stored) == description(SCHEMAS[name]) != ""
        for f in stored:
            text = description(f)
            assert text, (name, f.name)
            assert comments[(name, f.name)] == text, (name, f.name)
            declared = SCHEMAS[name].field(f.name).type
            assert f"| `{f.name}` | `{declared}` |" in card and text.replace("|", "\\|") in card


def _two_listings_in_one_digest() -> list[dict[str, Any]]:
    """LoRA twice in one digest (ranks 1 and 3) and once in another; T1 embedded twice."""
    a, b = post("hot-papers-2021-06-18", DAY_A), post("hot-papers-2021-06-20", DAY_B)
    t1 = tweet(T1, "edwardjhu", details=details_ok(50, 2, handle="edwardjhu"))
    t2 = tweet(T2, "ada", details=details_ok(7, 1, handle="ada"))
    return [
        record(entry(a, 1, LORA, tweets=[t1], favorites=229)),
        record(entry(a, 3, LORA, tweets=[t1, t2], favorites=12)),
        record(entry(b, 2, LORA, favorites=300)),
    ]


def test_papers_count_digests_and_listings_apart(tmp_path: Path) -> None:
    snapshot = write_snapshot(tmp_path / "d.jsonl", _two_listings_in_one_digest())
    write_dataset(snapshot, tmp_path / "d.dataset")
    (paper,) = _rows(tmp_path / "d.dataset", "papers")
    assert (paper["digest_count"], paper["listing_count"], paper["best_rank"]) == (2, 3, 1)
    assert paper["max_digest_favorites"] == 300  # the largest digest count, not a sum
    assert (paper["tweet_count"], paper["tweet_like_count_total"]) == (2, 57)  # T1 once: 50 + 7
    tweets = {r["tweet_id"]: r["entry_count"] for r in _rows(tmp_path / "d.dataset", "tweets")}
    assert tweets == {T1: 2, T2: 1}
    embedded = _rows(tmp_path / "d.dataset", "entry_tweets")
    entry_ids = {r["entry_id"] for r in _rows(tmp_path / "d.dataset", "entries")}
    assert len(entry_ids) == 3 and {r["entry_id"] for r in embedded} <= entry_ids
    assert [r["position"] for r in embedded] == [1, 1, 2]


def _empty_post() -> dict[str, Any]:
    return post_block(post("hot-papers-2021-06-19", "2021-06-20T09:15:00Z"))


def test_posts_list_digests_without_entries(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    records = _two_listings_in_one_digest()
    snapshot = write_snapshot(tmp_path / "d.jsonl", records)
    read = [records[0]["post"], _empty_post(), records[2]["post"]]
    write_dataset(snapshot, tmp_path / "given.dataset", posts=read)
    rows = _rows(tmp_path / "given.dataset", "posts")
    assert [(r["post_slug"], r["entry_count"], r["embedded_tweet_count"]) for r in rows] == [
        ("hot-papers-2021-06-18", 2, 3), ("hot-papers-2021-06-19", 0, 0),
        ("hot-papers-2021-06-20", 1, 0),
    ]  # fmt: skip
    assert rows[1]["post_digest_date"] == date(2021, 6, 19)
    # Rebuilt later from the snapshot alone: the sidecar beside it says which digests were read.
    sidecar = posts_file(snapshot)
    sidecar.write_text("".join(json.dumps(p) + "\n" for p in read))
    write_dataset(snapshot, tmp_path / "later.dataset")
    assert _rows(tmp_path / "later.dataset", "posts") == rows
    # A damaged line is named and skipped; its post still comes from its records.
    sidecar.write_text(json.dumps(read[0]) + "\n{not json\n" + json.dumps(read[1]) + "\n")
    write_dataset(snapshot, tmp_path / "damaged.dataset")
    assert _rows(tmp_path / "damaged.dataset", "posts") == rows
    assert "d.posts.jsonl:2: skipped, not a post block (not JSON" in caplog.text
    # An older snapshot has none: the posts seen in records, and one line saying so.
    sidecar.unlink()
    caplog.clear()
    write_dataset(snapshot, tmp_path / "old.dataset")
    assert [r["post_slug"] for r in _rows(tmp_path / "old.dataset", "posts")] == [
        "hot-papers-2021-06-18", "hot-papers-2021-06-20"]  # fmt: skip
    assert [r.getMessage() for r in caplog.records] == [
        "d.posts.jsonl: not found; the posts table lists only posts with entries"
    ]


def test_duckdb_refuses_a_dataset_whose_keys_do_not_hold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every foreign key is checked after loading: a broken one keeps the previous dataset."""
    snapshot = write_snapshot(tmp_path / "d.jsonl", _two_listings_in_one_digest())
    write_dataset(snapshot, tmp_path / "d.dataset")
    before = (tmp_path / "d.dataset").resolve()
    orphan = ("entry_tweets", ("tweet_id",), "posts")  # tweet IDs are no post IDs
    monkeypatch.setattr(finish_module, "FOREIGN_KEYS", (orphan,))
    monkeypatch.setattr(finish_module, "_create_table", _without_foreign_keys)
    with pytest.raises(
        DatasetError, match=r"foreign key does not hold: entry_tweets\(tweet_id\) -> posts: 3 rows"
    ):
        write_dataset(snapshot, tmp_path / "d.dataset")
    assert (tmp_path / "d.dataset").resolve() == before


_create_table = finish_module._create_table


def _without_foreign_keys(con: Any, name: str, source: str, note: Any) -> str:
    """The real DDL minus its FOREIGN KEY clauses, so only the check after loading can see it."""
    sql = _create_table(con, name, source, note)
    return sql.split(", FOREIGN KEY")[0] + ")" if ", FOREIGN KEY" in sql else sql


def test_a_repeated_key_is_named_and_keeps_the_previous_dataset(tmp_path: Path) -> None:
    """Two records with one entry_id (a snapshot we did not write, or a bug): the primary key
    names it. (A digest numbering two entries alike gives them distinct keys: test_digest.)"""
    the_post = post("hot-papers-2021-06-18", DAY_A)
    good = write_snapshot(tmp_path / "d.jsonl", [record(entry(the_post, 1, LORA))])
    before = write_dataset(good, tmp_path / "d.dataset").folder
    twice = [record(entry(the_post, 1, LORA)), record(entry(the_post, 1, LATE))]
    snapshot = write_snapshot(tmp_path / "d.jsonl", twice)
    entry_id = twice[0]["entry_id"]
    message = (
        rf"entries: entry_id {entry_id} is not unique, 2 rows "
        r"\(post digests/hot-papers-2021-06-18.md, rank 1\)$"
    )
    with pytest.raises(DatasetError, match=message):
        write_dataset(snapshot, tmp_path / "d.dataset")
    assert (tmp_path / "d.dataset").resolve() == before.resolve()


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_paper_history_has_one_row_per_observation_of_the_papers_blocks(small: Path) -> None:
    """LoRA's latest ok blocks (the second listing's) hold 2 HF, 2 OpenAlex and 1 Semantic
    Scholar observations; its failing third listing adds none, the other paper has none."""
    seen_a, seen_b = _utc("2021-06-19T08:00:00Z"), _utc("2021-06-21T08:00:00Z")
    blank = dict.fromkeys(
        ("hf_upvotes", "hf_github_stars", "openalex_cited_by_count",
         "semantic_scholar_citation_count", "semantic_scholar_influential_citation_count"))  # fmt: skip
    expected = [
        {"service": "hf", "observed_at": seen_a, **blank, "hf_upvotes": 10, "hf_github_stars": 500},
        {"service": "hf", "observed_at": seen_b, **blank, "hf_upvotes": 12, "hf_github_stars": 650},
        {"service": "openalex", "observed_at": seen_a, **blank, "openalex_cited_by_count": 45},
        {"service": "openalex", "observed_at": seen_b, **blank, "openalex_cited_by_count": 75},
        {"service": "semantic_scholar", "observed_at": seen_b, **blank,
         "semantic_scholar_citation_count": 120, "semantic_scholar_influential_citation_count": 10},
    ]  # fmt: skip
    assert _rows(small, "paper_history") == [{"arxiv_id": LORA, **row} for row in expected]


def test_citations_by_year_fill_the_years_openalex_leaves_out_with_zero(small: Path) -> None:
    """OpenAlex listed 2024, 2023 and 2021 (newest first, no 2022): four rows, oldest first."""
    got = [
        (r["arxiv_id"], r["year"], r["cited_by_count"]) for r in _rows(small, "citations_by_year")
    ]
    assert got == [(LORA, 2021, 5), (LORA, 2022, 0), (LORA, 2023, 40), (LORA, 2024, 30)]


def test_papers_carry_the_hf_and_openalex_blocks_by_the_naming_rule(small: Path) -> None:
    """Nested objects inside a block keep the block's name in front; series are tables."""
    (lora,) = [p for p in _rows(small, "papers") if p["arxiv_id"] == LORA]
    assert (lora["hf_upvotes"], lora["hf_github_stars"], lora["hf_status"]) == (12, 650, "ok")
    assert (lora["openalex_cited_by_count"], lora["openalex_published_version_type"],
            lora["openalex_published_version_venue"]) == (75, "conference", "ICLR")  # fmt: skip
    names = SCHEMAS["papers"].names
    assert not {"published_version_type", "openalex_history", "hf_history",
                "openalex_counts_by_year", "semantic_scholar_history"} & set(names)  # fmt: skip
    for f in (*SCHEMAS["papers"], *SCHEMAS["paper_history"], *SCHEMAS["citations_by_year"]):
        assert description(f), f.name


# -- issue 21: the dataset and report steps load none of the crawl's modules ----------------------


def test_the_export_contract_reads_the_record_packages_schema() -> None:
    """``crawler.export.contract`` reads the schema file itself (so the steps need not import
    the record package): it must say what the record package says."""
    import crawler.record
    from crawler.export import contract

    assert contract.record_schema() == crawler.record.schema()
    assert contract.SCHEMA_VERSION == crawler.record.SCHEMA_VERSION == 3


@pytest.mark.parametrize(
    ("module", "absent"),
    [
        ("crawler.export.dataset", {"scrapy", "twisted", "lxml", "crawler.record", "matplotlib"}),
        (
            "crawler.export.report",
            {"scrapy", "twisted", "lxml", "crawler.record", "pyarrow", "duckdb"},
        ),
        (
            "crawler.export.report_data",
            {"scrapy", "twisted", "lxml", "crawler.record", "pyarrow", "matplotlib"},
        ),
        ("crawler.export.analysis", {"scrapy", "pyarrow", "duckdb", "matplotlib", "lxml"}),
    ],
)
def test_each_step_imports_only_what_it_uses(module: str, absent: set[str]) -> None:
    """Each step is a fresh interpreter after the crawl; what it imports is its memory (Scrapy
    and the record package were ~40 MB of the dataset step's ~120 MB of imports)."""
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.split()
    assert absent & set(out) == set()


def _step(job: Path, step: str) -> list[str]:
    """One step of the dataset, as the run starts it (a fresh interpreter): its exit status and
    whether it imported pyarrow, then the heavy modules it holds at its end."""
    code = (
        "import sys\nfrom crawler.export import analysis\n"
        f"rc = analysis.main([{str(job)!r}, {str(job.with_name('r.txt'))!r}, {step!r}])\n"
        "print(rc, *sorted({'pyarrow', 'numpy', 'duckdb'} & set(sys.modules)))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, env=env
    )
    return done.stdout.split()


def _duckdb_content(path: Path) -> list[Any]:
    """What a DuckDB file declares and holds: columns (type, NOT NULL, comment), tables'
    comments, constraints, and every row of every table."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        seen: list[Any] = [
            con.execute(
                "SELECT table_name, column_name, data_type, is_nullable, comment "
                "FROM duckdb_columns() ORDER BY table_name, column_index"
            ).fetchall(),
            con.execute("SELECT table_name, comment FROM duckdb_tables() ORDER BY 1").fetchall(),
            con.execute(
                "SELECT table_name, constraint_type, constraint_text FROM duckdb_constraints() "
                "ORDER BY 1, 2, 3"
            ).fetchall(),
        ]
        for (name,) in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall():
            seen.append(con.execute(f"SELECT * FROM {name}").fetchall())
        return seen
    finally:
        con.close()


def test_the_duckdb_step_needs_no_pyarrow_and_writes_the_same_dataset(tmp_path: Path) -> None:
    """The dataset step (DuckDB, then the swap) runs without pyarrow (~40 MB of its peak): the
    NOT NULL and descriptions it declares come from the tables step as plain JSON. What the two
    steps write is what write_dataset writes in one process, byte for byte (the DuckDB file:
    the same declarations and rows)."""
    snapshot = write_snapshot(tmp_path / "d.jsonl", small_corpus())
    report = {"run_id": "r1", "finished_at": "2024-05-01T00:00:00Z", "records": 6}
    whole = write_dataset(snapshot, tmp_path / "one" / "d.dataset", run_report=report).folder
    target = tmp_path / "two" / "d.dataset"
    job = tmp_path / "job" / "job.json"
    job.parent.mkdir()
    fields = {"snapshot": str(snapshot), "dataset": str(target), "posts": None}
    job.write_text(json.dumps({**fields, "run_report": report, "built_from": None}), "utf-8")
    assert _step(job, "tables")[0] == "0"
    assert _step(job, "dataset") == ["0", "duckdb"]  # no pyarrow, no numpy
    split = target.resolve()
    names = sorted(p.name for p in whole.iterdir())
    assert sorted(p.name for p in split.iterdir()) == names
    for name in names:
        if name != DUCKDB_FILE:
            assert (split / name).read_bytes() == (whole / name).read_bytes(), name
    assert _duckdb_content(split / DUCKDB_FILE) == _duckdb_content(whole / DUCKDB_FILE)


def test_duckdb_loads_in_chunks_with_the_rows_in_file_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks of two rows, each in its own connection, give the file one transaction gives."""
    snapshot = write_snapshot(tmp_path / "d.jsonl", small_corpus())
    whole = write_dataset(snapshot, tmp_path / "one" / "d.dataset").folder
    monkeypatch.setattr(finish_module, "_CHUNK_ROWS", 2)
    chunked = write_dataset(snapshot, tmp_path / "two" / "d.dataset").folder
    assert _duckdb_content(chunked / DUCKDB_FILE) == _duckdb_content(whole / DUCKDB_FILE)
    con = duckdb.connect(str(chunked / DUCKDB_FILE), read_only=True)
    try:
        (rows,) = con.execute("SELECT count(*) FROM entries").fetchone() or (0,)
    finally:
        con.close()
    assert rows > 2  # more than one chunk went in


def test_duckdb_gets_more_memory_where_the_keys_need_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The indexes behind the keys cannot spill: a table whose keys do not fit the base
    limit is loaded with the limit doubled, not given up (a dataset of ~3,000 posts was)."""
    caplog.set_level("DEBUG", logger="crawler.export.dataset")
    monkeypatch.setattr(finish_module, "_MEMORY_LIMIT_MB", 1)
    monkeypatch.setattr(finish_module, "_CHUNK_ROWS", 300_000)
    keys = pa.table({"k": [f"key-{i:07d}" for i in range(200_000)]})
    pq.write_table(keys, tmp_path / "keys.parquet")
    dataset_file = finish_module._DuckDBFile(tmp_path / "k.duckdb", tmp_path / "spill")

    def load(con: duckdb.DuckDBPyConnection) -> None:
        con.execute("CREATE TABLE IF NOT EXISTS keys (k VARCHAR PRIMARY KEY)")
        finish_module._insert_chunk("keys", tmp_path / "keys.parquet", 0, 200_000, con)

    dataset_file.run(load)
    limits = [r.getMessage() for r in caplog.records if "more memory" in r.getMessage()]
    assert limits and limits[0] == "DuckDB needs more memory; the limit is now 2 MB"
    con = duckdb.connect(str(tmp_path / "k.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*), min(k), max(k) FROM keys").fetchall() == [
            (200_000, "key-0000000", "key-0199999")
        ]
    finally:
        con.close()


def test_a_chunk_is_written_once_and_a_gap_is_refused(tmp_path: Path) -> None:
    """A try that failed after its commit (at the checkpoint) is not written twice; rows
    that are neither before nor after the chunk mean the file cannot be trusted."""
    pq.write_table(pa.table({"k": ["a", "b", "c"]}), tmp_path / "k.parquet")
    con = duckdb.connect(str(tmp_path / "k.duckdb"))
    try:
        con.execute("CREATE TABLE keys (k VARCHAR PRIMARY KEY)")
        finish_module._insert_chunk("keys", tmp_path / "k.parquet", 0, 2, con)
        finish_module._insert_chunk("keys", tmp_path / "k.parquet", 0, 2, con)  # again: kept
        assert con.execute("SELECT k FROM keys").fetchall() == [("a",), ("b",)]
        with pytest.raises(DatasetError, match=r"^keys: 2 rows where 3 were written$"):
            finish_module._insert_chunk("keys", tmp_path / "k.parquet", 3, 4, con)
        finish_module._insert_chunk("keys", tmp_path / "k.parquet", 2, 3, con)
        assert con.execute("SELECT k FROM keys").fetchall() == [("a",), ("b",), ("c",)]
    finally:
        con.close()


def test_a_table_loaded_again_after_a_failed_checkpoint_is_the_same(tmp_path: Path) -> None:
    """A try that failed at its checkpoint may have created the table and written its chunk:
    the next try finds both and adds nothing."""
    snapshot = write_snapshot(tmp_path / "d.jsonl", small_corpus())
    folder = write_dataset(snapshot, tmp_path / "d.dataset").folder
    dataset_file = finish_module._DuckDBFile(tmp_path / "again.duckdb", tmp_path / "spill")
    note = dataset_module.table_notes()["posts"]
    for _ in range(2):
        finish_module._load_table(dataset_file, "posts", folder / "posts.parquet", note)
    con = duckdb.connect(str(tmp_path / "again.duckdb"), read_only=True)
    try:
        again = con.execute("SELECT * FROM posts").fetchall()
    finally:
        con.close()
    con = duckdb.connect(str(folder / DUCKDB_FILE), read_only=True)
    try:
        assert again == con.execute("SELECT * FROM posts").fetchall() and len(again) > 1
    finally:
        con.close()


def test_only_allocation_failures_are_retried() -> None:
    """A checkpoint that could not allocate is an IOException in DuckDB, and so is a full disk:
    only the first is tried again with more memory."""
    assert finish_module._out_of_memory(
        duckdb.IOException("Checkpoint failed: could not allocate block of size 256.0 KiB")
    )
    assert not finish_module._out_of_memory(duckdb.IOException("No space left on device"))
    assert not finish_module._out_of_memory(duckdb.ConstraintException("Duplicate key"))
    assert finish_module._out_of_memory(duckdb.OutOfMemoryException("Out of Memory Error"))
