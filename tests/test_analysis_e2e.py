"""The analysis-ready outputs after a real sample crawl, as a new user opens them (issue 13):
the six tables and the DuckDB file with their declared types and the right rows, the report
in Chromium, and both kept when a run keeps the previous snapshot."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from crawler.export.tables import SCHEMAS, TABLE_NAMES
from tests.conftest import Crawl, run_crawl
from tests.standin import Catalogue, StandIn
from tests.test_report import CHROMIUM, shown_in_chromium

pytestmark = pytest.mark.e2e

FAST = {"ARXIV_DELAY": 0.2, "RETRY_BACKOFF_BASE": 0.05}


@pytest.fixture(scope="module")
def crawled(tmp_path_factory: pytest.TempPathFactory, catalogue: Catalogue) -> tuple[Path, Crawl]:
    out = tmp_path_factory.mktemp("analysis") / "digests.jsonl"
    with StandIn(catalogue) as server:
        crawl = run_crawl(out, server, settings=FAST, analysis=True)
    assert crawl.returncode == 0, crawl.log[-2000:]
    return out, crawl


def _expected_papers(records: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """arXiv ID -> (appearances, best rank), from the snapshot itself."""
    ranks: dict[str, list[int]] = defaultdict(list)
    for record in records:
        if record["arxiv_id"]:
            ranks[record["arxiv_id"]].append(record["rank"])
    return {arxiv_id: (len(r), min(r)) for arxiv_id, r in ranks.items()}


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
        "posts": len({r["post"]["slug"] for r in records}),
    }
    for name in TABLE_NAMES:
        table = pq.read_table(folder / f"{name}.parquet")
        assert table.schema.equals(SCHEMAS[name]), name
        assert table.num_rows == expected_rows[name], name
    papers = pq.read_table(folder / "papers.parquet").to_pylist()
    got = {p["arxiv_id"]: (p["appearances"], p["best_rank"]) for p in papers}
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
    assert types["rank"] == "BIGINT" and types["citation_count"] == "BIGINT"
    assert types["code_urls"] == "VARCHAR[]"


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_the_report_renders_in_chromium(crawled: tuple[Path, Crawl], tmp_path: Path) -> None:
    out, crawl = crawled
    dom = shown_in_chromium(out.with_name("digests.report.html"), tmp_path)
    # The top paper: ranked first in a digest, with the most likes there.
    best = max(
        (r for r in crawl.records if r["arxiv_id"] and r["rank"] == 1),
        key=lambda r: r["digest"]["favorites"] or 0,
    )
    first_row = re.search(r'id="top-papers".*?<tbody><tr>(.*?)</tr>', dom, re.S)
    assert first_row and best["arxiv_id"] in first_row.group(1)


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
