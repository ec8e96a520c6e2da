"""NAME.dataset/: column types derived from the record schema, the tables' values, atomic swaps."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import crawler.export.dataset as dataset_module
from crawler.export.dataset import DUCKDB_FILE, DatasetError, write_dataset
from crawler.export.tables import SCHEMAS, TABLE_NAMES, SchemaMappingError, record_leaves
from crawler.export.tables import layout as make_layout
from crawler.items import TweetDetails
from crawler.record import schema as record_schema
from tests.records_v2 import (
    CODE,
    DAY_A,
    DAY_B,
    DAY_C,
    LATE,
    LORA,
    T1,
    T2,
    T3,
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
    "tweets": {"first_seen", "last_seen", "appearances"},
    "entry_tweets": {"post_slug", "post_date", "rank", "arxiv_id", "position", "tweet_id"},
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
    assert leaves[("tweets", "*", "details", "favorite_count")].column == "favorite_count"
    assert leaves[("digest", "title")].column == "digest_title"
    assert leaves[("arxiv", "title")].column == "arxiv_title"
    assert leaves[("tweets", "*", "embed", "status")].column == "embed_status"
    assert leaves[("tweets", "*", "details", "status")].column == "details_status"
    assert leaves[("impact", "citation_count")].column == "citation_count"
    assert leaves[("tweets", "*", "links_paper")].table == "entry_tweets"
    assert SCHEMAS["entries"].names[:4] == ["post_slug", "post_date", "rank", "arxiv_id"]


def test_nullable_where_the_schema_or_a_status_allows_a_missing_value() -> None:
    entries, tweets = SCHEMAS["entries"], SCHEMAS["tweets"]
    assert not entries.field("post_slug").nullable and not entries.field("rank").nullable
    assert not entries.field("arxiv_status").nullable  # every branch has a status
    assert entries.field("arxiv_title").nullable  # an error has no title
    assert entries.field("post_date").nullable  # "utc_or_null"
    assert tweets.field("favorite_count").nullable and tweets.field("reason").nullable
    assert not SCHEMAS["tweet_history"].field("observed_at").nullable


def test_a_schema_change_changes_the_columns() -> None:
    schema = copy.deepcopy(record_schema())
    ok_impact = schema["properties"]["impact"]["oneOf"][0]
    ok_impact["properties"]["h_index"] = {"type": ["integer", "null"]}
    ok_impact["required"].append("h_index")
    schema["properties"]["digest"]["properties"]["retweets"] = {"type": ["string", "null"]}
    schemas = make_layout(schema).schemas
    assert schemas["entries"].field("h_index").type == pa.int64()
    assert schemas["papers"].field("h_index").type == pa.int64()
    assert schemas["entries"].field("retweets").type == pa.string()
    assert "h_index" not in SCHEMAS["entries"].names


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
    assert first["post_date"] == _at(DAY_A)
    assert first["arxiv_id"] == LORA and first["versioned_id"] == f"{LORA}v1"
    assert first["arxiv_title"].endswith("(v1)") and first["digest_title"].startswith("LoRA")
    assert (first["retweets"], first["favorites"], first["tweet_count"]) == (2059, 229, 2)
    assert first["arxiv_authors"][0] == {"name": "Ada Lovelace", "affiliations": ["Analytical Engines"]}  # fmt: skip
    assert first["publication_date"] == date(2021, 6, 17) and first["citation_count"] == 100
    assert first["code_urls"] == [CODE]
    assert first["published"] == _at("2021-06-17T17:37:18Z")
    failed = rows[1]
    assert (failed["arxiv_status"], failed["arxiv_error"], failed["arxiv_title"]) == (
        "not_found", "no such", None)  # fmt: skip
    assert (failed["impact_status"], failed["citation_count"]) == ("error", None)
    assert rows[2]["arxiv_id"] is None and rows[2]["favorites"] is None


def test_papers_aggregate_listings_with_the_latest_good_metadata(small: Path) -> None:
    papers = {r["arxiv_id"]: r for r in _rows(small, "papers")}
    assert list(papers) == [LORA, LATE]  # first listed first; entries without an ID have none
    lora = papers[LORA]
    assert (lora["first_seen"], lora["last_seen"]) == (_at(DAY_A), _at(DAY_C))
    assert (lora["appearances"], lora["best_rank"]) == (3, 1)
    assert lora["ranks"] == [
        {"post_date": _at(DAY_A), "rank": 1},
        {"post_date": _at(DAY_B), "rank": 2},
        {"post_date": _at(DAY_C), "rank": 1},
    ]
    # the last listing had an arXiv error: metadata is from the most recent ok one (v2)
    assert (lora["arxiv_status"], lora["version"], lora["arxiv_title"]) == (
        "ok", 2, "LoRA: Low-Rank Adaptation of Large Language Models")  # fmt: skip
    assert (lora["impact_status"], lora["citation_count"]) == ("ok", 120)
    assert (lora["tweet_count"], lora["linking_tweet_count"], lora["tweet_likes"]) == (2, 1, 70)
    assert lora["code_urls"] == [CODE, "https://github.com/other/lora"]
    assert (lora["favorites"], lora["retweets"]) == (300, 2059)
    late = papers[LATE]
    assert (late["arxiv_status"], late["arxiv_title"], late["appearances"]) == ("ok", "Found later", 2)  # fmt: skip
    assert late["impact_status"] == "disabled"  # no ok impact: the most recent listing's
    assert (late["tweet_count"], late["linking_tweet_count"], late["tweet_likes"]) == (0, None, None)  # fmt: skip


def test_tweets_once_each_with_embeddings_and_history(small: Path) -> None:
    tweets = {r["tweet_id"]: r for r in _rows(small, "tweets")}
    assert set(tweets) == {T1, T2, T3}
    t1 = tweets[T1]
    assert (t1["appearances"], t1["first_seen"], t1["last_seen"]) == (2, _at(DAY_A), _at(DAY_B))
    assert (t1["favorite_count"], t1["reply_count"], t1["details_status"]) == (70, 4, "ok")
    assert t1["created_at"] == datetime(2021, 6, 18, 17, 0, tzinfo=UTC)
    assert (t1["details_author_handle"], t1["author_blue_verified"]) == ("edwardjhu", False)
    assert t1["linked_arxiv_ids"] == [LORA, "2106.00002"]
    assert t1["media"][0]["type"] == "photo" and t1["embed_status"] == "ok"
    assert (tweets[T2]["details_status"], tweets[T2]["reason"]) == ("tombstone", "Age-restricted")
    t3 = tweets[T3]
    assert (t3["embed_status"], t3["embed_error"]) == ("deleted", "oEmbed answered HTTP 404")
    assert (t3["details_status"], t3["favorite_count"], t3["linked_arxiv_ids"]) == ("error", None, None)  # fmt: skip
    history = [(r["tweet_id"], r["observed_at"], r["favorite_count"]) for r in _rows(small, "tweet_history")]  # fmt: skip
    assert history == [
        (T1, _at("2021-06-19T08:00:00Z"), 40),
        (T1, _at("2021-06-19T12:00:00Z"), 50),
        (T1, _at("2021-06-21T08:00:00Z"), 70),
    ]
    embeddings = [(r["post_slug"][-5:], r["rank"], r["position"], r["tweet_id"], r["links_paper"])
                  for r in _rows(small, "entry_tweets")]  # fmt: skip
    assert embeddings == [
        ("06-18", 1, 1, T1, True), ("06-18", 1, 2, T2, None), ("06-18", 3, 1, T3, None),
        ("06-20", 2, 1, T1, True),
    ]  # fmt: skip


def test_posts_count_their_entries(small: Path) -> None:
    posts = [(r["post_slug"], r["post_date"], r["entries"], r["embedded_tweets"])
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
    """Every tweet's details failed: favorite_count is still int64, and every schema is equal."""
    failing = TweetDetails(status="error", error="syndication answered HTTP 500")
    the_post = post("hot-papers-2021-06-18", DAY_A)
    records = [
        record(entry(the_post, rank, None, tweets=[tweet(f"{rank}0", details=failing)]))
        for rank in (1, 2)
    ]
    write_dataset(write_snapshot(tmp_path / "bad.jsonl", records), tmp_path / "bad.dataset")
    write_dataset(write_snapshot(tmp_path / "empty.jsonl", []), tmp_path / "empty.dataset")
    tweets = pq.read_table(tmp_path / "bad.dataset" / "tweets.parquet")
    assert tweets.schema.field("favorite_count").type == pa.int64()
    assert tweets.column("favorite_count").to_pylist() == [None, None]
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
    assert sum(papers.column("appearances").to_pylist()) == 450


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
    old.pop("impact")
    lines = snapshot.read_bytes().splitlines(keepends=True)
    snapshot.write_bytes(lines[0] + json.dumps(old).encode() + b"\n")
    with pytest.raises(DatasetError) as failed:
        write_dataset(snapshot, target)
    message = str(failed.value)
    assert "\n" not in message and "digests.jsonl line 2: not a schema 2 record" in message
    assert os.readlink(target) == before.folder.name
    assert pq.read_table(target / "entries.parquet").num_rows == 6
    assert _folders(tmp_path) == [before.folder.name]
    # a failure after every table was written (here: the DuckDB copy) changes nothing either
    write_snapshot(snapshot, small_corpus()[:1])

    def broken(folder: Path) -> None:
        raise OSError("disk full\nsecond line")

    monkeypatch.setattr(dataset_module, "_write_duckdb", broken)
    with pytest.raises(DatasetError, match=r"not replaced: OSError: disk full$"):
        write_dataset(snapshot, target)
    assert os.readlink(target) == before.folder.name
    assert _folders(tmp_path) == [before.folder.name]


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
    assert types["appearances"] == "BIGINT" and types["code_urls"] == "VARCHAR[]"
    assert types["ranks"] == "STRUCT(post_date TIMESTAMP WITH TIME ZONE, rank BIGINT)[]"
    assert types["publication_date"] == "DATE"
    assert not list(small.glob("*.wal")) and not list(small.glob(".*"))


# The README one-liners, run as written (with the path substituted).
README = {
    "duckdb": """duckdb.connect("{d}/hot_papers.duckdb", read_only=True).sql("SELECT arxiv_id, arxiv_title, appearances FROM papers ORDER BY appearances DESC LIMIT 10").fetchall()""",
    "pandas": """pandas.read_parquet("{d}/papers.parquet")""",
    "polars": """polars.read_parquet("{d}/papers.parquet")""",
    "datasets": """datasets.load_dataset("parquet", data_files={{"train": "{d}/entries.parquet"}}, split="train")""",
}


def _run_snippet(module: str, folder: Path) -> Any:
    lib = pytest.importorskip(module)
    return eval(README[module].format(d=folder), {module: lib})  # our own text, run as written


def test_readme_duckdb_line_runs(small: Path) -> None:
    top = _run_snippet("duckdb", small)
    assert top[0][0] == LORA and top[0][2] == 3


def test_readme_pandas_line_runs(small: Path) -> None:
    frame = _run_snippet("pandas", small)
    assert list(frame["arxiv_id"]) == [LORA, LATE]
    assert str(frame["first_seen"].dtype) == "datetime64[ms, UTC]"


def test_readme_polars_line_runs(small: Path) -> None:
    frame = _run_snippet("polars", small)
    assert frame["arxiv_id"].to_list() == [LORA, LATE]


def test_readme_datasets_line_runs(small: Path) -> None:
    rows = _run_snippet("datasets", small)
    assert rows.num_rows == 6 and rows[0]["arxiv_id"] == LORA


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
