"""The analysis-ready outputs after a real sample crawl, as a new user opens them (issues 13,
20 and 22): the eight tables and the DuckDB file with their declared types, keys, descriptions
and the right rows (a digest without entries included; paper history and citations per year as
the records hold them, two observations per paper after a refresh a day later), the publishable
folder loaded by ``datasets`` and validated by ``mlcroissant``, the report in Chromium, and all
of it kept when a run keeps the previous snapshot."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from collections import defaultdict
from html import unescape
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
import yaml

from crawler.export.tables import FOREIGN_KEYS, PRIMARY_KEYS, SCHEMAS, TABLE_NAMES, description
from tests.conftest import SAMPLES, Crawl, run_crawl
from tests.standin import Catalogue, StandIn
from tests.test_report import CHROMIUM, shown_in_chromium

pytestmark = pytest.mark.e2e

FAST = {"ARXIV_DELAY": 0.2, "RETRY_BACKOFF_BASE": 0.05}


# A digest with front matter and no entries: it was read, so it is one of the posts.
EMPTY = "---\ntitle: Hot Papers 2021-06-30\ndate: 2021-06-30T09:15:00.000Z\nslug: hot-papers-2021-06-30\n---\n\nNo papers today.\n"


@pytest.fixture(scope="module")
def crawled(tmp_path_factory: pytest.TempPathFactory, catalogue: Catalogue) -> tuple[Path, Crawl]:
    root = tmp_path_factory.mktemp("analysis")
    posts = root / "posts"
    posts.mkdir()
    for sample in SAMPLES:
        shutil.copy(sample, posts / sample.name)
    (posts / "empty.md").write_text(EMPTY)
    out = root / "digests.jsonl"
    with StandIn(catalogue) as server:
        crawl = run_crawl(out, server, "-a", f"source={posts}", settings=FAST, analysis=True)
    assert crawl.returncode == 0, crawl.log[-2000:]
    return out, crawl


def _expected_papers(records: list[dict[str, Any]]) -> dict[str, tuple[int, int, int]]:
    """arXiv ID -> (distinct digests, listings, best rank), from the snapshot itself."""
    ranks: dict[str, list[int]] = defaultdict(list)
    digests: dict[str, set[str]] = defaultdict(set)
    for record in records:
        if record["arxiv_id"]:
            ranks[record["arxiv_id"]].append(record["rank"])
            digests[record["arxiv_id"]].add(record["post"]["id"])
    return {i: (len(digests[i]), len(r), min(r)) for i, r in ranks.items()}


# paper_history's count columns per service: the record block's history item keys.
SERIES = {
    "hf": ("upvotes", "github_stars"),
    "openalex": ("cited_by_count",),
    "semantic_scholar": ("citation_count", "influential_citation_count"),
}


def _observations(records: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    """(arxiv_id, service, observed_at, counts...) of every observation in the ok blocks."""
    out = set()
    for record in records:
        for service, keys in SERIES.items():
            block = record[service]
            for point in block["history"] if record["arxiv_id"] and block["status"] == "ok" else ():
                values = tuple(point[k] for k in keys)
                out.add((record["arxiv_id"], service, point["observed_at"], values))
    return out


def _history_rows(folder: Path) -> set[tuple[Any, ...]]:
    rows = pq.read_table(folder / "paper_history.parquet").to_pylist()
    return {
        (r["arxiv_id"], r["service"], r["observed_at"].isoformat(timespec="milliseconds")
         .replace("+00:00", "Z"), tuple(r[f"{r['service']}_{k}"] for k in SERIES[r["service"]]))
        for r in rows
    }  # fmt: skip


def _citations_by_year(records: list[dict[str, Any]]) -> dict[tuple[str, int], int]:
    """counts_by_year of each paper's ok OpenAlex block, every year from its first to its last
    listed year, 0 where OpenAlex lists none."""
    out: dict[tuple[str, int], int] = {}
    for record in records:
        block = record["openalex"]
        if record["arxiv_id"] and block["status"] == "ok" and block["counts_by_year"]:
            counts = {c["year"]: c["cited_by_count"] for c in block["counts_by_year"]}
            for year in range(min(counts), max(counts) + 1):
                out[(record["arxiv_id"], year)] = counts.get(year, 0)
    return out


def test_tables_and_duckdb_have_their_types_and_rows(crawled: tuple[Path, Crawl]) -> None:
    out, crawl = crawled
    folder = out.with_name("digests.dataset")
    records = crawl.records
    tweets = [t for r in records for t in r["tweets"]]
    ok_details = {t["id"] for t in tweets if t["details"]["status"] == "ok"}
    expected_rows = {
        "entries": len(records),
        "papers": len({r["arxiv_id"] for r in records if r["arxiv_id"]}),
        "tweets": len({t["id"] for t in tweets}),
        "entry_tweets": len(tweets),
        "tweet_history": len(ok_details),  # one observation per tweet after one run
        "paper_history": len(_observations(records)),
        "citations_by_year": len(_citations_by_year(records)),
        "posts": len(SAMPLES) + 1,  # every digest read, the one without entries too
    }
    for name in TABLE_NAMES:
        table = pq.read_table(folder / f"{name}.parquet")
        assert table.schema.equals(SCHEMAS[name]), name
        assert table.num_rows == expected_rows[name], name
    papers = pq.read_table(folder / "papers.parquet").to_pylist()
    got = {p["arxiv_id"]: (p["digest_count"], p["listing_count"], p["best_rank"]) for p in papers}
    assert got == _expected_papers(records)
    db = duckdb.connect(str(folder / "hot_papers.duckdb"), read_only=True)
    try:
        for name in TABLE_NAMES:
            ((count,),) = db.sql(f"SELECT count(*) FROM {name}").fetchall()
            assert count == expected_rows[name], name
        types = dict(db.sql("SELECT column_name, data_type FROM information_schema.columns "
                            "WHERE table_name = 'entries'").fetchall())  # fmt: skip
    finally:
        db.close()
    assert types["post_published_at"] == "TIMESTAMP WITH TIME ZONE"
    assert types["rank"] == "BIGINT" and types["semantic_scholar_citation_count"] == "BIGINT"
    assert types["code_urls"] == "STRUCT(url VARCHAR, sources VARCHAR[])[]"


def test_paper_history_and_citations_by_year_hold_what_the_records_hold(
    crawled: tuple[Path, Crawl],
) -> None:
    """After one run every ok block gives one observation per service; citations per year are
    the records' counts_by_year with the missing years between the first and last as 0."""
    out, crawl = crawled
    folder = out.with_name("digests.dataset")
    observed = _observations(crawl.records)
    assert {service for _, service, _, _ in observed} == set(SERIES)  # the stand-in serves all
    assert _history_rows(folder) == observed
    rows = pq.read_table(folder / "citations_by_year.parquet").to_pylist()
    got = {(r["arxiv_id"], r["year"]): r["cited_by_count"] for r in rows}
    assert len(got) == len(rows) and got == _citations_by_year(crawl.records) != {}
    papers = {p["arxiv_id"]: p for p in pq.read_table(folder / "papers.parquet").to_pylist()}
    for record in crawl.records:
        if record["arxiv_id"] and record["hf"]["status"] == "ok":
            paper = papers[record["arxiv_id"]]
            assert (paper["hf_upvotes"], paper["hf_github_stars"]) == (
                record["hf"]["upvotes"], record["hf"]["github_stars"])  # fmt: skip
        if record["arxiv_id"] and record["openalex"]["status"] == "ok":
            version = record["openalex"]["published_version"] or {}
            paper = papers[record["arxiv_id"]]
            assert (paper["openalex_cited_by_count"], paper["openalex_published_version_doi"]) == (
                record["openalex"]["cited_by_count"], version.get("doi"))  # fmt: skip


def test_two_refreshes_a_day_apart_give_two_observations_per_paper(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    """The second run, its stored values made 40 days older (stale by every age's TTL) and a
    day of the upstreams' counts passed, adds one observation per paper and service."""
    cat = catalogue.copy()
    out = tmp_path / "digests.jsonl"
    with StandIn(cat) as server:
        first = run_crawl(out, server, settings=FAST, analysis=True)
        assert first.returncode == 0, first.log[-2000:]
        cat.advance_day(1)
        with sqlite3.connect(tmp_path / "state.sqlite3") as db:
            db.execute(
                "UPDATE fetched SET fetched_at = fetched_at - 40 * 86400 "
                "WHERE kind IN ('hf', 'openalex', 'impact')"
            )
        second = run_crawl(out, server, settings=FAST, analysis=True)
    assert second.returncode == 0, second.log[-2000:]
    history = _history_rows(out.with_name("digests.dataset"))
    per_paper: dict[tuple[str, str], int] = defaultdict(int)
    for arxiv_id, service, _, _ in history:
        per_paper[(arxiv_id, service)] += 1
    ok = {(r["arxiv_id"], s) for r in second.records for s in SERIES
          if r["arxiv_id"] and r[s]["status"] == "ok"}  # fmt: skip
    assert {s for _, s in ok} == set(SERIES)
    assert {key: per_paper[key] for key in ok} == dict.fromkeys(ok, 2)
    assert history == _observations(second.records)


def test_posts_list_every_digest_read_including_one_without_entries(
    crawled: tuple[Path, Crawl],
) -> None:
    out, crawl = crawled
    posts = pq.read_table(out.with_name("digests.dataset") / "posts.parquet").to_pylist()
    by_source = {p["post_source"]: p for p in posts}
    assert sorted(by_source) == sorted([*(s.name for s in SAMPLES), "empty.md"])
    empty = by_source["empty.md"]
    assert (empty["post_slug"], empty["entry_count"], empty["embedded_tweet_count"]) == (
        "hot-papers-2021-06-30", 0, 0)  # fmt: skip
    assert str(empty["post_digest_date"]) == "2021-06-30"
    counted = {p["post_id"]: p["entry_count"] for p in posts}
    for record in crawl.records:
        assert counted[record["post"]["id"]] > 0
    assert sum(counted.values()) == len(crawl.records)
    sidecar = [json.loads(line) for line in out.with_name("digests.posts.jsonl").open()]
    assert sorted(p["id"] for p in sidecar) == sorted(counted)


def test_every_column_is_described_in_parquet_and_duckdb(crawled: tuple[Path, Crawl]) -> None:
    folder = crawled[0].with_name("digests.dataset")
    for name in TABLE_NAMES:
        schema = pq.read_schema(folder / f"{name}.parquet")
        assert description(schema), name
        undescribed = [f.name for f in schema if not description(f)]
        assert not undescribed, (name, undescribed)
    db = duckdb.connect(str(folder / "hot_papers.duckdb"), read_only=True)
    try:
        tables = dict(
            db.sql("SELECT table_name, comment FROM duckdb_tables() WHERE NOT internal").fetchall()
        )
        columns = db.sql(
            "SELECT table_name, column_name, comment FROM duckdb_columns() WHERE NOT internal"
        ).fetchall()
    finally:
        db.close()
    assert sorted(tables) == sorted(TABLE_NAMES) and all(tables.values())
    assert len(columns) == sum(len(SCHEMAS[n]) for n in TABLE_NAMES)
    for table, column, comment in columns:
        assert comment == description(SCHEMAS[table].field(column)) != "", (table, column)


def test_duckdb_declares_the_keys_and_every_foreign_key_holds(crawled: tuple[Path, Crawl]) -> None:
    folder = crawled[0].with_name("digests.dataset")
    db = duckdb.connect(str(folder / "hot_papers.duckdb"), read_only=True)
    try:
        constraints = db.sql(
            "SELECT table_name, constraint_type, constraint_column_names, referenced_table "
            "FROM duckdb_constraints()"
        ).fetchall()
        found = {(t, kind, tuple(cols), ref) for t, kind, cols, ref in constraints}
        for table, keys in PRIMARY_KEYS.items():
            assert (table, "PRIMARY KEY", keys, None) in found, table
        for table, cols, referenced in FOREIGN_KEYS:
            assert (table, "FOREIGN KEY", cols, referenced) in found, (table, cols)
        not_null = {(t, cols[0]) for t, kind, cols, _ in found if kind == "NOT NULL"}
        for name in TABLE_NAMES:
            for f in SCHEMAS[name]:
                assert ((name, f.name) in not_null or f.name in PRIMARY_KEYS[name]) == (
                    not f.nullable), (name, f.name)  # fmt: skip
        for table, cols, referenced in FOREIGN_KEYS:  # an anti-join per foreign key
            keys = PRIMARY_KEYS[referenced]
            on = " AND ".join(f"r.{k} = t.{c}" for c, k in zip(cols, keys, strict=True))
            ((orphans,),) = db.sql(
                f"SELECT count(*) FROM {table} t WHERE t.{cols[0]} IS NOT NULL AND NOT EXISTS "
                f"(SELECT 1 FROM {referenced} r WHERE {on})"
            ).fetchall()
            assert orphans == 0, (table, cols, referenced)
        ((linked,),) = db.sql("SELECT count(*) FROM entries WHERE arxiv_id IS NOT NULL").fetchall()
    finally:
        db.close()
    assert linked > 0  # the entries -> papers key is checked on real rows


def test_the_folder_loads_by_table_name_and_validates_as_croissant(
    crawled: tuple[Path, Crawl], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = crawled[0].with_name("digests.dataset")
    card = (folder / "README.md").read_text()
    front = yaml.safe_load(card.split("---\n")[1])
    assert [c["config_name"] for c in front["configs"]] == list(TABLE_NAMES)
    assert front["license"] == "other" and "arXiv API Terms of Use" in card
    assert crawled[1].records and "| `tweet_like_count_total` |" in card
    assert json.loads((folder / "record.schema.json").read_text())["properties"]["entry_id"]
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    datasets = pytest.importorskip("datasets")
    # The cache path is read once, at the worker's first import: give this test its own.
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    for name in TABLE_NAMES:
        loaded = datasets.load_dataset(str(folder), name, split="train")
        assert loaded.num_rows == pq.ParquetFile(folder / f"{name}.parquet").metadata.num_rows
        assert loaded.column_names == SCHEMAS[name].names, name
    default = datasets.load_dataset(str(folder), split="train")  # dataset.json is not data
    assert default.column_names == SCHEMAS["papers"].names
    mlcroissant = pytest.importorskip("mlcroissant")
    croissant = mlcroissant.Dataset(str(folder / "croissant.json"))
    assert [r.name for r in croissant.metadata.record_sets] == list(TABLE_NAMES)
    issues = croissant.metadata.ctx.issues
    assert not issues.errors and not issues.warnings, (issues.errors, issues.warnings)
    papers = list(croissant.records("papers"))
    assert len(papers) == pq.ParquetFile(folder / "papers.parquet").metadata.num_rows


def _tweet_likes(records: list[dict[str, Any]]) -> dict[str, int]:
    """arXiv ID -> the likes of its distinct embedded tweets, from the snapshot itself."""
    likes: dict[str, dict[str, int]] = defaultdict(dict)
    for record in records:
        for tweet in record["tweets"] if record["arxiv_id"] else ():
            count = tweet["details"]["like_count"]
            if tweet["details"]["status"] == "ok" and count is not None:
                likes[record["arxiv_id"]][tweet["id"]] = count
    return {paper: sum(by_tweet.values()) for paper, by_tweet in likes.items()}


def test_the_report_and_the_run_report_show_one_finished_at(crawled: tuple[Path, Crawl]) -> None:
    out, _ = crawled
    run = json.loads(out.with_name("digests.run.json").read_text())
    page = unescape(out.with_name("digests.report.html").read_text())
    shown = re.findall(r"<dt>Finished</dt><dd[^>]*>([^<]*)</dd>", page)
    assert shown == [run["finished_at"]]  # one instant, not two readings of the clock
    assert f"run {run['run_id']}, finished {run['finished_at']}" in page


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_the_report_renders_in_chromium(crawled: tuple[Path, Crawl], tmp_path: Path) -> None:
    out, crawl = crawled
    dom = shown_in_chromium(out.with_name("digests.report.html"), tmp_path)
    # The top paper: the most tweet likes, linked to its arXiv page and its tweet.
    likes = _tweet_likes(crawl.records)
    most = max(likes.values())
    first_row = re.search(r'id="top-papers".*?<tbody><tr>(.*?)</tr>', dom, re.S)
    assert first_row
    paper = re.search(r'<a href="https://arxiv\.org/abs/([^"]+)"', first_row.group(1))
    assert paper and likes[paper.group(1)] == most
    assert re.search(r'<a href="https://twitter\.com/[^"]+/status/\d+"', first_row.group(1))
    assert f">{most:,}<" in first_row.group(1)
    # What mattered since: drawn (numeric ticks checked above), its numbers from the records.
    section = re.search(r'<section id="mattered">.*?</section>', dom, re.S)
    assert section and "<h2>What mattered since</h2>" in section.group(0)
    papers = {r["arxiv_id"] for r in crawl.records if r["arxiv_id"]}
    coded = {r["arxiv_id"] for r in crawl.records if r["arxiv_id"] and r["code_urls"]}
    text = unescape(re.sub(r"<[^>]+>", "", section.group(0)))
    assert f"Left: {len(coded):,} of {len(papers):,} papers have a code link" in text
    assert "No data" not in text


def test_a_kept_snapshot_keeps_its_dataset_and_report(
    crawled: tuple[Path, Crawl], catalogue: Catalogue
) -> None:
    out, _ = crawled
    link, report = out.with_name("digests.dataset"), out.with_name("digests.report.html")
    before = (link.resolve(), report.read_bytes(), out.read_bytes())
    with StandIn(catalogue) as server:
        refused = run_crawl(out, server, "-a", f"source={out.parent}/nothing-here.md",
                            settings=FAST, analysis=True)  # fmt: skip
    assert refused.returncode == 2  # no digest could be read: the snapshot is kept
    assert (link.resolve(), report.read_bytes(), out.read_bytes()) == before


def test_a_posts_list_that_is_not_ours_is_never_replaced(tmp_path: Path) -> None:
    """``NAME.posts.jsonl`` is checked like every output beside the snapshot: before anything
    starts, one line, exit 1, the file as it was."""
    out = tmp_path / "digests.jsonl"
    notes = out.with_name("digests.posts.jsonl")
    notes.write_text("my reading list\n")
    refused = run_crawl(out, None, settings=FAST)
    assert refused.returncode == 1
    assert f"error: posts list {notes} exists and is not one this crawler wrote" in refused.log
    assert notes.read_text() == "my reading list\n" and not out.exists()


STEP_MODULES = """
import json, sys
from crawler.export import analysis
code = analysis.main(sys.argv[1:])
print(json.dumps({"exit": code, "loaded": sorted(m for m in ("pandas", "duckdb") if m in sys.modules)}))
"""


def test_the_tables_step_loads_neither_pandas_nor_duckdb(
    crawled: tuple[Path, Crawl], tmp_path: Path
) -> None:
    """pandas (~80 MB, which pyarrow imports on its first ``pa.array``) and DuckDB (~25 MB) were
    resident in the tables step, the dataset's peak; the files it writes are the same without."""
    import subprocess
    import sys

    from crawler.export.dataset import read_posts

    out, _ = crawled
    posts = read_posts(out)
    job = {
        "snapshot": str(out),
        "dataset": str(tmp_path / "digests.dataset"),
        "posts": posts,
        "run_report": json.loads(out.with_suffix(".run.json").read_text("utf-8")),
        "built_from": None,
    }
    (tmp_path / "job.json").write_text(json.dumps(job), "utf-8")
    result = tmp_path / "result.txt"
    args = [str(tmp_path / "job.json"), str(result), "tables"]
    done = subprocess.run(
        [sys.executable, "-c", STEP_MODULES, *args], capture_output=True, text=True, check=False
    )
    said = json.loads(done.stdout.splitlines()[-1])
    assert said == {"exit": 0, "loaded": []}, result.read_text("utf-8") if said["exit"] else ""
    written = Path(json.loads((tmp_path / "tables.json").read_text("utf-8"))["folder"])
    for name in TABLE_NAMES:  # byte for byte the tables the crawl's own dataset step wrote
        assert (written / f"{name}.parquet").read_bytes() == (
            out.with_suffix(".dataset") / f"{name}.parquet"
        ).read_bytes(), name
