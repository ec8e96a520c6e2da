"""Tweet details and impact signals, end to end: a real crawl against the stand-in, as a new
user runs it, compared with what the stand-in served (issues 11 and 12)."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from crawler.parsing.tweets import snowflake_created_at
from tests.conftest import Crawl, run_crawl
from tests.helpers import served as served_fields
from tests.standin import Catalogue, StandIn

pytestmark = pytest.mark.e2e

FAST: dict[str, object] = {"ARXIV_DELAY": 0.2, "RETRY_BACKOFF_BASE": 0.05, "S2_DELAY": 0.2}


def _expected_details(catalogue: Catalogue, tweet_id: str) -> dict[str, Any]:
    expected = catalogue.details[tweet_id].expected()
    if expected["status"] == "ok":
        expected["media"] = [{"alt_text": None} | m for m in expected["media"]]
    return expected


def _all_expected(catalogue: Catalogue) -> dict[str, dict[str, Any]]:
    return {tweet_id: _expected_details(catalogue, tweet_id) for tweet_id in catalogue.details}


def _tweets(crawl: Crawl) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(record, tweet) for record in crawl.records for tweet in record["tweets"]]


@pytest.fixture(scope="module")
def first_crawl(tmp_path_factory: pytest.TempPathFactory, catalogue: Catalogue) -> Any:
    """One sample crawl shared by the checks below, then a refresh of details a day later."""
    cat = catalogue.copy()
    folder = tmp_path_factory.mktemp("details")
    out = folder / "out.jsonl"
    with StandIn(cat, min_interval={"semantic_scholar": 0.2}) as server:
        first = run_crawl(out, server, settings=FAST)
        first_log = server.log
        served_first = {
            "details": _all_expected(cat),
            "semantic_scholar": {aid: c.expected() for aid, c in cat.citations.items()},
        }
        server.reset_log()
        cat.advance_day(1)  # likes and replies move on "a later day"
        second = run_crawl(out, server, "-a", "refresh=details", settings=FAST)
        second_log = server.log
    return cat, first, first_log, second, second_log, served_first


def test_every_tweet_has_its_details_as_served(first_crawl: Any) -> None:
    cat, crawl, log, _, _, served = first_crawl
    assert crawl.returncode == 0, crawl.log[-3000:]
    seen: Counter[str] = Counter()
    for record, tweet in _tweets(crawl):
        details = dict(tweet["details"])
        expected = served["details"][tweet["id"]]
        assert tweet["created_at"] == snowflake_created_at(tweet["id"])
        if expected["status"] == "ok":
            history = details.pop("history")
            assert served_fields(details) == expected
            assert [(h["like_count"], h["reply_count"]) for h in history] == [
                (expected["like_count"], expected["reply_count"])
            ]
            assert details["fetched_at"] == history[-1]["observed_at"]  # one fetch, one time
            linked = cat.linked_arxiv_ids(tweet["id"])
            assert tweet["linked_arxiv_ids"] == linked
            assert tweet["links_paper"] is (record["arxiv_id"] in linked)
        else:
            assert details["status"] == expected["status"]
            if expected["status"] == "tombstone":
                assert details["reason"] == expected["reason"]
            assert tweet["linked_arxiv_ids"] is None and tweet["links_paper"] is None
        seen[expected["status"]] += 1
    assert set(seen) == {"ok", "tombstone", "not_found"}  # the stand-in serves all three
    assert sum(t["links_paper"] is True for _, t in _tweets(crawl)) > 0
    assert sum(t["links_paper"] is False for _, t in _tweets(crawl)) > 0
    details_requests = [r for r in log if r.service == "syndication"]
    tweets = {t["id"] for _, t in _tweets(crawl)}
    assert sorted(r.params["id"][0] for r in details_requests) == sorted(tweets)  # once each
    assert all(r.token_ok for r in details_requests)  # no request had a wrong token
    assert all(r.params["lang"] == ["en"] for r in details_requests)


def test_refresh_details_appends_one_observation_per_tweet(first_crawl: Any) -> None:
    cat, first, _, second, log, _ = first_crawl
    assert second.returncode == 0, second.log[-3000:]
    assert {r.service for r in log} == {"syndication"}  # no arXiv, oEmbed or S2 request
    assert len(log) == len({t["id"] for _, t in _tweets(second)})
    before = {t["id"]: t["details"] for _, t in _tweets(first)}
    for _, tweet in _tweets(second):
        expected = _expected_details(cat, tweet["id"])
        if expected["status"] != "ok":
            continue
        history = tweet["details"]["history"]
        assert len(history) == 2 and history[0]["observed_at"] < history[1]["observed_at"]
        assert history[0] == before[tweet["id"]]["history"][0]
        assert (history[1]["like_count"], history[1]["reply_count"]) == (
            expected["like_count"], expected["reply_count"],
        )  # fmt: skip
        assert tweet["details"]["like_count"] == expected["like_count"]
        # refetched: the block says when, and that is the newest observation's time
        assert tweet["details"]["fetched_at"] == history[1]["observed_at"]
        assert tweet["details"]["fetched_at"] > before[tweet["id"]]["fetched_at"]
    grew = [
        t for _, t in _tweets(second)
        if t["details"]["status"] == "ok"
        and t["details"]["history"][1]["like_count"] > t["details"]["history"][0]["like_count"]
    ]  # fmt: skip
    assert grew  # the counts really moved between the two observations


def test_counts_are_history_but_edits_and_status_changes_are_changes(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    cat = catalogue.copy()
    out = tmp_path / "out.jsonl"
    served = [d for d in cat.details.values() if d.outcome == "tweet"]
    edited, gone = served[0], served[1]
    with StandIn(cat, min_interval={"semantic_scholar": 0.2}) as server:
        run_crawl(out, server, settings=FAST)
        cat.advance_day(1)
        counts_only = run_crawl(out, server, "-a", "refresh=details", settings=FAST)
        report = json.loads((tmp_path / "out.run.json").read_text())
        assert report["changes_file"] is None  # likes and replies moved: history, not changes
        edited.text += " (edited)"
        gone.outcome = "missing"
        changed = run_crawl(out, server, "-a", "refresh=details", settings=FAST)
    assert counts_only.returncode == changed.returncode == 0
    report = json.loads((tmp_path / "out.run.json").read_text())
    lines = [json.loads(line) for line in Path(report["changes_file"]).read_text().splitlines()]
    found = {
        c["key"]: c["fields"] for line in lines for c in line["changes"] if c["what"] == "details"
    }
    assert set(found) == {edited.tweet_id, gone.tweet_id}
    assert found[edited.tweet_id]["text"]["after"].endswith(" (edited)")
    assert set(found[edited.tweet_id]) == {"text"}
    assert found[gone.tweet_id]["status"] == {"before": "ok", "after": "not_found"}


def test_impact_and_code_links_as_served(first_crawl: Any) -> None:
    cat, crawl, log, _, _, served = first_crawl
    s2 = [r for r in log if r.service == "semantic_scholar"]
    assert len(s2) == 1  # the samples cost exactly one Semantic Scholar request
    asked = [i.removeprefix("ARXIV:") for i in s2[0].ids]
    assert sorted(asked) == sorted({r["arxiv_id"] for r in crawl.records if r["arxiv_id"]})
    for record in crawl.records:
        citation = served["semantic_scholar"].get(record["arxiv_id"])
        block = record["semantic_scholar"]
        if citation is None:
            assert block["status"] == "not_found"
        else:  # an empty venue, TLDR or PDF link means "none" (null in the record)
            empty_is_none = {k: citation[k] or None for k in ("venue", "tldr", "open_access_pdf")}
            history = block["history"]
            assert {k: v for k, v in served_fields(block).items() if k != "history"} == (
                citation | empty_is_none
            )
            assert block["error"] is None and block["fetched_at"] is not None
            # The first fetch is the history's first observation (PAPER_HISTORY_MAX).
            assert history == [{
                "observed_at": block["fetched_at"], "citation_count": citation["citation_count"],
                "influential_citation_count": citation["influential_citation_count"],
            }]  # fmt: skip
        tweet_code = [u for t in record["tweets"] for u in cat.code_urls(t["id"])]
        texts = json.dumps([record["arxiv"].get("abstract"), record["arxiv"].get("comment"),
                            record["digest"]["abstract"]]).lower()  # fmt: skip
        for link in record["code_urls"]:
            url, sources = link["url"], link["sources"]
            host_path = url.removeprefix("https://").lower()
            assert url in tweet_code or host_path in texts or sources == ["hf"], link
            assert ("tweet" in sources) == (url in tweet_code), link
            assert ("hf" in sources) == (url == record["hf"]["github_repo"]), link
        assert [u["url"] for u in record["code_urls"] if u["url"] in tweet_code] == list(
            dict.fromkeys(tweet_code)
        )
    assert any(record["code_urls"] for record in crawl.records)


def test_services_turned_off_and_the_api_key(tmp_path: Path, catalogue: Catalogue) -> None:
    out = tmp_path / "out.jsonl"
    env_key = "s2-test-key-0123456789"
    os.environ["S2_API_KEY"] = env_key
    try:
        with StandIn(catalogue, min_interval={"semantic_scholar": 0.2}) as server:
            crawl = run_crawl(out, server, settings=FAST | {"TWEET_DETAILS": "False"})
            s2 = server.requests_for("semantic_scholar")
            assert server.requests_for("syndication") == []
            assert [r.api_key for r in s2] == [env_key]
            server.reset_log()
            off = run_crawl(
                tmp_path / "off.jsonl", server, settings=FAST | {"SEMANTIC_SCHOLAR": "0"}
            )
            assert server.requests_for("semantic_scholar") == []
    finally:
        del os.environ["S2_API_KEY"]
    assert crawl.returncode == 0 and off.returncode == 0
    assert {t["details"]["status"] for _, t in _tweets(crawl)} == {"disabled"}
    assert {r["semantic_scholar"]["status"] for r in off.records} == {"disabled"}
    assert {r["semantic_scholar"]["fetched_at"] for r in off.records} == {None}
    report = (tmp_path / "out.run.json").read_text()
    assert env_key not in crawl.log and env_key not in report
    with_setting = run_crawl(
        tmp_path / "k.jsonl", None, settings={"SEMANTIC_SCHOLAR_API_KEY": "secret-value-42",
                                             "ARXIV_DELAY": "nan"},
    )  # fmt: skip
    assert with_setting.returncode == 1 and "secret-value-42" not in with_setting.log


def test_unreachable_services_keep_good_values_and_say_so(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    out = tmp_path / "out.jsonl"
    with StandIn(catalogue, min_interval={"semantic_scholar": 0.2}) as server:
        good = run_crawl(out, server, settings=FAST)
        closed = {"SEMANTIC_SCHOLAR_URL": "http://127.0.0.1:9/graph/v1/paper/batch",
                  "SYNDICATION_URL": "http://127.0.0.1:9/tweet-result"}  # fmt: skip
        again = run_crawl(out, server, "-a", "refresh=all", settings=FAST | closed)
    assert good.returncode == 0
    assert again.returncode == 4, again.log[-2000:]
    assert "INCOMPLETE Semantic Scholar" in again.log and "INCOMPLETE Tweet details" in again.log
    assert [r["semantic_scholar"] for r in again.records] == [
        r["semantic_scholar"] for r in good.records
    ]  # the good values kept, with the time they were fetched
    assert [t["details"] for _, t in _tweets(again)] == [t["details"] for _, t in _tweets(good)]
    report = json.loads((tmp_path / "out.run.json").read_text())
    assert report["exit_status"] == 4
    assert set(report["incomplete_services"]) == {"semantic_scholar", "syndication"}
