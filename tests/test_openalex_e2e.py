"""OpenAlex end to end: real crawls of the samples against the stand-in, compared with what it
served, counted request by request (issue 22)."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from crawler.services.openalex import BUDGET_SPENT
from tests.conftest import Crawl, run_crawl
from tests.standin import Catalogue, StandIn
from tests.standin.server import RequestRecord

pytestmark = pytest.mark.e2e

KEY = "oa-test-key-93f1"
FAST: dict[str, object] = {
    "ARXIV_DELAY": 0.2, "RETRY_BACKOFF_BASE": 0.05, "S2_DELAY": 0.2, "OPENALEX_API_KEY": KEY,
}  # fmt: skip
EMPTY = {
    "work_id": None, "cited_by_count": None, "counts_by_year": None, "published_version": None,
    "is_oa": None, "primary_topic": None, "history": None,
}  # fmt: skip


def _lists(log: list[RequestRecord]) -> list[RequestRecord]:
    return [r for r in log if r.path.rstrip("/").endswith("/openalex/works")]


def _singles(log: list[RequestRecord]) -> list[RequestRecord]:
    return [r for r in log if r.service == "openalex" and "/works/" in r.path]


def _block(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record["openalex"].items() if k not in ("fetched_at", "history")}


def _papers(crawl: Crawl) -> dict[str, dict[str, Any]]:
    return {r["arxiv_id"]: r for r in crawl.records if r["arxiv_id"]}


@pytest.fixture(scope="module")
def crawls(tmp_path_factory: pytest.TempPathFactory, catalogue: Catalogue) -> Any:
    """A first crawl (its first list request refused once with 403), a plain refresh after the
    stored values were made 40 days older and a day of citations passed, then
    ``refresh=details`` and ``refresh=openalex``."""
    cat = catalogue.copy()
    folder = tmp_path_factory.mktemp("openalex")
    out = folder / "out.jsonl"
    runs: dict[str, tuple[Crawl, list[RequestRecord]]] = {}
    with StandIn(cat, min_interval={"semantic_scholar": 0.2}) as server:
        server.faults.script("openalex", ["status:403"], match="filter=")
        runs["first"] = run_crawl(out, server, settings=FAST), server.log
        served = {aid: work.expected() for aid, work in cat.openalex.items()}
        cat.advance_day(1)
        with sqlite3.connect(folder / "state.sqlite3") as db:
            db.execute(
                "UPDATE fetched SET fetched_at = fetched_at - 40 * 86400 "
                "WHERE kind IN ('openalex', 'impact')"
            )
        for name, args in (("second", ()), ("details", ("-a", "refresh=details")),
                           ("openalex", ("-a", "refresh=openalex"))):  # fmt: skip
            server.reset_log()
            runs[name] = run_crawl(out, server, *args, settings=FAST), server.log
        served_later = {aid: work.expected() for aid, work in cat.openalex.items()}
    return cat, runs, served, served_later


def test_every_papers_openalex_block_is_what_the_stand_in_served(crawls: Any) -> None:
    cat, runs, served, _ = crawls
    crawl, _ = runs["first"]
    assert crawl.returncode == 0, crawl.log[-3000:]
    papers = _papers(crawl)
    assert len(papers) > 90
    for arxiv_id, record in papers.items():
        if arxiv_id in served:
            assert _block(record) == served[arxiv_id], arxiv_id
            assert record["openalex"]["fetched_at"] is not None
        else:  # unknown to OpenAlex: its single lookup answered 404
            assert _block(record) == {
                "status": "not_found", "error": f"OpenAlex has no work for {arxiv_id}",
            } | {k: v for k, v in EMPTY.items() if k != "history"}  # fmt: skip
    merged = [aid for aid, work in cat.openalex.items() if work.merged and aid in papers]
    assert merged, "the samples must have merged preprints"
    for arxiv_id in merged:  # resolved by the single lookup, publisher's DOI and all
        version = papers[arxiv_id]["openalex"]["published_version"]
        assert version == cat.openalex[arxiv_id].merged
        assert not version["doi"].startswith("10.48550/arxiv.")


def test_one_list_request_per_50_papers_plus_one_lookup_per_paper_it_left_out(
    crawls: Any,
) -> None:
    cat, runs, _, _ = crawls
    crawl, log = runs["first"]
    papers = _papers(crawl)
    listed = [r for r in _lists(log) if r.fault is None and r.refused is None]
    assert len(listed) == math.ceil(len(papers) / 50)
    assert [r.status for r in _lists(log) if r.fault] == [403]  # refused once, then retried
    left_out = {aid for aid in papers if aid not in cat.openalex or cat.openalex[aid].merged}
    asked_alone = [r for r in _singles(log) if "doi:" in r.path.lower()]
    assert sorted(r.ids[0] for r in asked_alone) == sorted(
        f"10.48550/arxiv.{aid}".lower() for aid in left_out
    )
    # A merged work that answers 301 is followed to its canonical work on the same host, asked
    # for the same way (key and field selection kept although the Location drops the query).
    redirected = {cat.openalex[aid].work_id for aid in left_out
                  if aid in cat.openalex and cat.openalex[aid].redirect}  # fmt: skip
    assert redirected
    canonical = [r for r in _singles(log) if "doi:" not in r.path.lower()]
    assert sorted(r.path.rsplit("/", 1)[1] for r in canonical) == sorted(redirected)
    for request in _lists(log) + _singles(log):
        assert request.params.get("api_key") == [KEY]
        assert request.params["select"][0].split(",")[0] == "id"
    assert KEY not in crawl.log  # masked in every line (Scrapy's INFO lines and ours)


def test_a_refresh_a_day_later_adds_one_observation_per_paper(crawls: Any) -> None:
    cat, runs, _, served_later = crawls
    first, second = _papers(runs["first"][0]), _papers(runs["second"][0])
    assert runs["second"][0].returncode == 0, runs["second"][0].log[-3000:]
    log = runs["second"][1]
    assert {r.service for r in log} >= {"openalex", "semantic_scholar"}
    for arxiv_id, record in second.items():
        block, s2 = record["openalex"], record["semantic_scholar"]
        if block["status"] == "ok":
            assert _block(record) == served_later[arxiv_id]
            before = first[arxiv_id]["openalex"]["history"]
            assert [p["cited_by_count"] for p in block["history"]] == [
                before[0]["cited_by_count"], served_later[arxiv_id]["cited_by_count"],
            ]  # fmt: skip
            assert block["history"][0] == before[0]
            assert block["history"][1]["observed_at"] == block["fetched_at"]
        if s2["status"] == "ok":
            counts = [p["citation_count"] for p in s2["history"]]
            assert counts == [
                first[arxiv_id]["semantic_scholar"]["citation_count"],
                cat.citations[arxiv_id].citation_count,
            ]


def test_refresh_details_sends_no_openalex_request(crawls: Any) -> None:
    _, runs, _, _ = crawls
    crawl, log = runs["details"]
    assert crawl.returncode == 0, crawl.log[-3000:]
    assert {r.service for r in log} == {"syndication"}
    assert _block(crawl.records[0]) == _block(runs["second"][0].records[0])


def test_refresh_openalex_asks_only_openalex(crawls: Any) -> None:
    _, runs, _, served_later = crawls
    crawl, log = runs["openalex"]
    assert crawl.returncode == 0, crawl.log[-3000:]
    assert {r.service for r in log} == {"openalex"}
    papers = _papers(crawl)
    assert len(_lists(log)) == math.ceil(len(papers) / 50)
    for arxiv_id, record in papers.items():
        if arxiv_id in served_later:
            assert _block(record) == served_later[arxiv_id]
            assert len(record["openalex"]["history"]) == 3


def test_a_spent_daily_budget_stops_openalex_for_the_run_and_keeps_stored_values(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    out = tmp_path / "out.jsonl"
    settings = FAST | {"OPENALEX_BATCH_SIZE": 20}
    with StandIn(catalogue.copy(), min_interval={"semantic_scholar": 0.2},
                 openalex_budget=1) as server:  # fmt: skip
        spent = run_crawl(out, server, settings=settings)
        log = server.log
        server.reset_log()
        server.openalex_budget = 0  # the next day's run: spent from its first list request
        again = run_crawl(out, server, "-a", "refresh=openalex", settings=settings)
        log_again = server.log

    assert spent.returncode == 4, spent.log[-3000:]
    # One log line says so (the summary's failure causes then count the values it cost).
    lines = [line for line in spent.log.splitlines() if BUDGET_SPENT in line]
    assert [line.split("] ", 1)[-1] for line in lines if line.startswith("20")] == [
        f"ERROR: {BUDGET_SPENT}"
    ]
    assert "INCOMPLETE OpenAlex:" in spent.log
    lists = _lists(log)
    assert [r.status for r in lists] == [200, 429]  # no retry of the 429, no later list
    refused_at = lists[1].start
    assert not [r for r in log if r.service == "openalex" and r.start > refused_at]
    statuses = {r["arxiv_id"]: r["openalex"]["status"] for r in spent.records if r["arxiv_id"]}
    first_batch = {i.removeprefix("10.48550/arxiv.") for i in lists[0].ids}
    assert len(first_batch) == 20
    for arxiv_id, status in statuses.items():
        assert (status != "error") == (arxiv_id in first_batch), arxiv_id
    errors = {r["openalex"]["error"] for r in spent.records if r["openalex"]["status"] == "error"}
    assert errors <= {
        "OpenAlex answered HTTP 429 (daily budget spent): HTTP 429: Insufficient budget. "
        "This request costs $0.0001 but you only have $0 remaining.",
        f"OpenAlex request dropped: {BUDGET_SPENT}",
    }
    # The other services went on: every paper and tweet has its values.
    for record in spent.records:
        assert record["arxiv"]["status"] != "error" or record["arxiv_id"] is None
        assert record["semantic_scholar"]["status"] != "error" or record["arxiv_id"] is None
        assert all(t["embed"]["status"] != "error" for t in record["tweets"])

    assert again.returncode == 4, again.log[-3000:]
    assert [r.status for r in _lists(log_again)] == [429]
    assert not _singles(log_again)
    kept = {r["arxiv_id"]: _block(r) for r in again.records if r["arxiv_id"]}
    before = {r["arxiv_id"]: _block(r) for r in spent.records if r["arxiv_id"]}
    assert kept.keys() == before.keys()
    for arxiv_id, block in before.items():
        if block["status"] == "error":
            assert kept[arxiv_id]["status"] == "error"
        else:  # good stored values are never replaced by the budget's errors
            assert kept[arxiv_id] == block, arxiv_id


def _one_merged(catalogue: Catalogue, count: int = 1) -> tuple[Catalogue, list[str]]:
    """A catalogue where only ``count`` papers are merged works (found by single lookups)."""
    cat = catalogue.copy()
    merged = sorted(aid for aid, work in cat.openalex.items() if work.merged)[:count]
    assert len(merged) == count
    for aid, work in cat.openalex.items():
        if aid not in merged:
            work.merged, work.redirect = None, False
    return cat, merged


@pytest.mark.parametrize("others_ok", [False, True])
def test_a_lookups_404_replaces_a_stored_value_only_once_some_lookup_answered_ok(
    tmp_path: Path, catalogue: Catalogue, others_ok: bool
) -> None:
    """The list filter's good answers say nothing about the single lookup's 404: alone, it keeps
    the stored value (exit 4, asked again); with another lookup answering ok it is believed."""
    cat, merged = _one_merged(catalogue, 2 if others_ok else 1)
    target = merged[0]
    out = tmp_path / "out.jsonl"
    with StandIn(cat, min_interval={"semantic_scholar": 0.2}) as server:
        first = run_crawl(out, server, settings=FAST)
        assert first.returncode == 0, first.log[-3000:]
        stored = _block(_papers(first)[target])
        assert stored["status"] == "ok" and stored["published_version"] is not None
        key = f"openalex:single:doi:10.48550/arxiv.{target.lower()}"
        server.faults.script("openalex", ["status:404"] * 3, key=key)
        server.reset_log()
        again = run_crawl(out, server, "-a", "refresh=openalex", settings=FAST)
        asked = {r.key for r in _singles(server.log)}
    assert key in asked
    block = _block(_papers(again)[target])
    if others_ok:
        assert again.returncode == 0, again.log[-3000:]
        assert block["status"] == "not_found"
        return
    assert again.returncode == 4, again.log[-3000:]
    assert "INCOMPLETE OpenAlex: 1 values" in again.log
    assert block == stored  # the stored good value is kept
    with sqlite3.connect(tmp_path / "state.sqlite3") as db:
        row = db.execute(
            "SELECT status, fetched_at FROM fetched WHERE kind = 'openalex' AND key = ?", (target,)
        ).fetchone()
    assert row == ("ok", 0)  # kept, and stale: asked again next run
