"""Issue 19, items 3, 4, 5 and 8: what a service answers and what the state holds, end to end.

Every crawl is a real ``scrapy crawl`` process against the stand-in: values no table can hold,
an answer about another tweet, values fetched "in the future", and a Semantic Scholar 400 caused
by one ID of a batch.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from tests.conftest import Crawl, run_crawl
from tests.standin import Catalogue, Fault, StandIn

pytestmark = pytest.mark.e2e

FAST: dict[str, object] = {
    "ARXIV_DELAY": 0.2, "RETRY_BACKOFF_BASE": 0.05, "S2_DELAY": 0.2, "RETRY_TIMES": 1,
}  # fmt: skip
# Only arXiv and oEmbed, where the other two services do not matter.
TWO_SERVICES = FAST | {
    "TWEET_DETAILS": False, "SEMANTIC_SCHOLAR": False, "HF_PAPERS": False, "OPENALEX": False,
}  # fmt: skip
INT64_MAX = 2**63 - 1


def _details(crawl: Crawl) -> dict[str, dict[str, Any]]:
    return {t["id"]: t["details"] for r in crawl.records for t in r["tweets"]}


def _embeds(crawl: Crawl) -> dict[str, dict[str, Any]]:
    return {t["id"]: t["embed"] for r in crawl.records for t in r["tweets"]}


def _impacts(crawl: Crawl) -> dict[str, dict[str, Any]]:
    return {
        r["arxiv_id"]: {
            k: v for k, v in r["semantic_scholar"].items() if k not in ("fetched_at", "history")
        }
        for r in crawl.records
        if r["arxiv_id"]
    }  # without the fetch time and the observations: compared across runs


def _run_report(out: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(out.with_name(f"{out.stem}.run.json").read_text())
    return report


def _max_int(table: Any, column: str) -> int:
    return max((v for v in table.column(column).to_pylist() if v is not None), default=0)


def _ok_tweet(cat: Catalogue) -> str:
    return min(t for t, d in cat.details.items() if d.expected()["status"] == "ok")


# === item 3: one value poisons every run ========================================================
def test_values_no_table_can_hold_are_errors_and_the_next_run_is_complete(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    cat = catalogue.copy()
    out = tmp_path / "digests.jsonl"
    tweet = _ok_tweet(cat)
    with StandIn(cat, min_interval={"semantic_scholar": 0.2}) as server:
        server.faults.add(Fault("shape:huge_counts", match=tweet, times=1000))
        server.faults.add(Fault("shape:huge_numbers", times=1000))
        first = run_crawl(out, server, settings=FAST, analysis=True)
        report = _run_report(out)
        entries = pq.read_table(out.with_name("digests.dataset") / "entries.parquet").num_rows
        server.faults.clear()
        second = run_crawl(out, server, settings=FAST, analysis=True)
    assert first.returncode == 4, first.log[-3000:]
    assert "OverflowError" not in first.log
    details = _details(first)[tweet]
    assert details["status"] == "error" and details["like_count"] is None
    assert "favorite_count 9223372036854775808 is out of range" in details["error"]
    found = {aid: i for aid, i in _impacts(first).items() if cat.citations.get(aid) is not None}
    assert found
    for impact in found.values():
        assert impact["status"] == "error" and impact.get("citation_count") is None
        assert "citationCount 100000000000000000000 is out of range" in impact["error"]
    failed = sum(r["semantic_scholar"]["status"] == "error" for r in first.records)
    assert report["incomplete_services"] == {"syndication": 1, "semantic_scholar": failed}
    assert entries == len(first.records)  # the dataset was written
    # The next run over the same state asks again for what failed, and is complete.
    assert second.returncode == 0, second.log[-3000:]
    assert _details(second)[tweet]["status"] == "ok"
    assert all(_impacts(second)[aid]["status"] == "ok" for aid in found)
    dataset = out.with_name("digests.dataset")
    assert pq.read_table(dataset / "entries.parquet").num_rows == len(second.records)


def test_valid_like_counts_whose_sum_no_int64_holds_cost_only_that_total(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    """Every tweet's likes at 2^62, valid for the record and the state: a paper with two such
    tweets sums to 2^63. SQLite's sum() raised "integer overflow" there, the tables step failed
    and the run exited 5 without its dataset. Now the run is complete, that paper's
    ``tweet_like_count_total`` is null with one line naming it, and every count is kept."""
    out = tmp_path / "digests.jsonl"
    with StandIn(catalogue.copy()) as server:
        server.faults.add(Fault("shape:big_counts", times=10_000))
        done = run_crawl(out, server, settings=FAST, analysis=True)
    assert done.returncode == 0, done.log[-3000:]
    assert _run_report(out)["dataset"] == "written"
    liked: dict[str, set[str]] = {}
    for r in done.records:
        for t in r["tweets"]:
            if r["arxiv_id"] and t["details"]["status"] == "ok":
                assert t["details"]["like_count"] == 2**62
                liked.setdefault(r["arxiv_id"], set()).add(t["id"])
    past = sorted(paper for paper, tweets in liked.items() if len(tweets) >= 2)
    assert past and len(past) < len(liked)  # both kinds of paper are in the sample digests
    dataset = out.with_name("digests.dataset")
    totals = {
        row["arxiv_id"]: row["tweet_like_count_total"]
        for row in pq.read_table(dataset / "papers.parquet").to_pylist()
    }
    assert {p: totals[p] for p in liked} == {p: None if p in past else 2**62 for p in liked}
    warned = sorted(
        line.split("papers: ", 1)[1].split(":", 1)[0]
        for line in done.log.splitlines()
        if "tweet_like_count_total left null" in line
    )
    assert warned == past
    ok = {t["id"] for r in done.records for t in r["tweets"] if t["details"]["status"] == "ok"}
    kept = pq.read_table(dataset / "tweets.parquet").column("details_like_count").to_pylist()
    assert kept.count(2**62) == len(ok)  # every count as fetched


def test_a_steps_warning_goes_to_the_crawls_log_file_in_its_format(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    """The dataset step's own warnings (here a like total left null) went to stderr in a
    format of their own while the crawl's lines went to LOG_FILE: a scheduled job keeps its
    log file, not the stderr of the cron line."""
    out, log = tmp_path / "digests.jsonl", tmp_path / "crawl.log"
    with StandIn(catalogue.copy()) as server:
        server.faults.add(Fault("shape:big_counts", times=10_000))
        done = run_crawl(out, server, settings={**FAST, "LOG_FILE": str(log)}, analysis=True)
    assert done.returncode == 0, done.log[-3000:]
    lines = log.read_text("utf-8").splitlines()
    warned = [line for line in lines if "tweet_like_count_total left null" in line]
    assert warned and all(
        re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[crawler\.export\.dataset\] WARNING: .+", w)
        for w in warned
    ), warned
    assert "tweet_like_count_total" not in done.log  # stderr
    assert any("Spider closed (finished)" in line for line in lines)  # the crawl's own lines


def _poison(state: Path) -> dict[str, int]:
    """Values today's main stored from such answers, written straight into the state: the good
    rows (and history points) per kind, still fresh."""
    huge = {
        "details": {"like_count": 2**63},
        "impact": {"citation_count": 10**20, "publication_year": 10**12},
    }
    db = sqlite3.connect(state)
    rows = db.execute("SELECT kind, key, value FROM fetched WHERE status = 'ok'").fetchall()
    poisoned = {kind: 0 for kind in huge}
    for kind, key, value in rows:
        if kind in huge:
            changed = json.dumps(json.loads(value) | huge[kind])
            db.execute(
                "UPDATE fetched SET value = ? WHERE kind = ? AND key = ?", (changed, kind, key)
            )
            poisoned[kind] += 1
    point = json.dumps({"observed_at": "2020-01-01T00:00:00.000Z", "like_count": 2**63})
    db.execute("UPDATE observations SET data = ? WHERE kind = 'details'", (point,))
    db.commit()
    db.close()
    return poisoned


def test_a_state_holding_values_no_table_can_hold_fetches_them_again(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    out = tmp_path / "digests.jsonl"
    with StandIn(catalogue, min_interval={"semantic_scholar": 0.2}) as server:
        first = run_crawl(out, server, settings=FAST)
        assert first.returncode == 0, first.log[-3000:]
        poisoned = _poison(tmp_path / "state.sqlite3")
        server.reset_log()
        again = run_crawl(out, server, settings=FAST, analysis=True)
        details_asked = len(server.requests_for("syndication"))
        impacts_asked = sum(len(r.ids) for r in server.requests_for("semantic_scholar"))
    assert again.returncode == 0, again.log[-3000:]
    assert (details_asked, impacts_asked) == (poisoned["details"], poisoned["impact"])
    lines = [line for line in again.log.splitlines() if "(or are out of range)" in line]
    assert len(lines) == 2, lines  # one line per kind, naming the field
    assert any("like_count 9223372036854775808 is out of range" in x for x in lines)
    for details in _details(again).values():
        if details["status"] == "ok":  # the stored point is left out, the new one kept
            assert [p["like_count"] for p in details["history"]] == [details["like_count"]]
    dataset = out.with_name("digests.dataset")
    history = pq.read_table(dataset / "tweet_history.parquet")
    assert 0 < _max_int(history, "like_count") <= INT64_MAX
    assert pq.read_table(dataset / "tweets.parquet").num_rows == len(_details(again))


# === item 4: an answer about another tweet ======================================================
def test_an_oembed_answer_about_another_tweet_is_never_accepted(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    out = tmp_path / "digests.jsonl"
    first_id = min(t for t, tweet in catalogue.tweets.items() if tweet.status == "ok")
    with StandIn(catalogue) as server:
        server.faults.add(Fault("shape:one_tweet_for_all", times=100_000))
        done = run_crawl(out, server, settings=TWO_SERVICES)
    assert done.returncode == 4, done.log[-3000:]
    embeds = _embeds(done)
    assert embeds[first_id]["status"] == "ok"
    others = {k: e for k, e in embeds.items() if k != first_id}
    assert others and all(e["status"] == "error" and e.get("url") is None for e in others.values())
    example = next(iter(others))
    assert embeds[example]["error"].endswith(f"about tweet {first_id}, not {example}")
    db = sqlite3.connect(tmp_path / "state.sqlite3")
    stored = db.execute("SELECT key FROM fetched WHERE kind = 'embed' AND status = 'ok'")
    assert [key for (key,) in stored] == [first_id]  # never stored as good
    assert _run_report(out)["incomplete_services"] == {"oembed": len(others)}


# === item 5: the future never goes stale ========================================================
def test_values_fetched_in_the_future_are_fetched_again_with_one_line(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    out = tmp_path / "digests.jsonl"
    state = tmp_path / "state.sqlite3"
    with StandIn(catalogue) as server:
        first = run_crawl(out, server, settings=TWO_SERVICES)
        assert first.returncode == 0, first.log[-3000:]
        db = sqlite3.connect(state)
        moved = db.execute(
            "UPDATE fetched SET fetched_at = fetched_at + 365 * 86400 WHERE fetched_at > 0"
        ).rowcount
        db.commit()
        db.close()
        server.reset_log()
        again = run_crawl(out, server, settings=TWO_SERVICES)
        embeds_asked = {r.ids[0] for r in server.requests_for("oembed")}
        papers_asked = {i for r in server.requests_for("arxiv") for i in r.ids}
    assert again.returncode == 0, again.log[-3000:]
    assert embeds_asked == set(_embeds(first))  # every tweet asked again
    assert papers_asked == {r["arxiv_id"] for r in first.records if r["arxiv_id"]}
    lines = [line for line in again.log.splitlines() if "fetched in the future" in line]
    assert len(lines) == 1, lines
    assert f": {moved} stored values (arxiv, embed) were fetched in the future" in lines[0]
    db = sqlite3.connect(state)
    assert db.execute("SELECT max(fetched_at) FROM fetched").fetchone()[0] <= time.time()


# === item 8: one refused ID costs only its own paper ============================================
def test_a_semantic_scholar_400_for_one_id_costs_only_that_paper(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    out = tmp_path / "digests.jsonl"
    settings = FAST | {"TWEET_DETAILS": False}
    with StandIn(catalogue, min_interval={"semantic_scholar": 0.2}) as server:
        (tmp_path / "clean").mkdir()
        clean = run_crawl(tmp_path / "clean" / "clean.jsonl", server, settings=settings)
        bad = sorted(_impacts(clean))[len(_impacts(clean)) // 2]
        server.faults.add(Fault("status:400", service="semantic_scholar", match=bad, times=1000))
        done = run_crawl(out, server, settings=settings)
        refused = [r for r in server.requests_for("semantic_scholar") if r.status == 400]
    assert done.returncode == 4, done.log[-3000:]
    impacts = _impacts(done)
    assert impacts[bad]["status"] == "error"
    assert "Invalid paper ID in the request" in impacts[bad]["error"]
    assert {k: v for k, v in impacts.items() if k != bad} == {
        k: v for k, v in _impacts(clean).items() if k != bad
    }
    assert _run_report(out)["incomplete_services"] == {"semantic_scholar": 1}
    assert _run_report(out)["stats"]["semantic_scholar/batch_splits"] == len(refused) - 1


def test_semantic_scholar_refusing_every_request_costs_log_n_requests(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    """Every S2 request answered 400 (a changed field name, a key problem): splitting each
    batch down to single IDs cost 2n-1 requests; depth first it costs O(log n)."""
    out = tmp_path / "digests.jsonl"
    with StandIn(catalogue, min_interval={"semantic_scholar": 0.0}) as server:
        server.faults.add(Fault("status:400", service="semantic_scholar", times=100000))
        done = run_crawl(out, server, settings=FAST | {"TWEET_DETAILS": False})
        asked = server.requests_for("semantic_scholar")
    impacts = _impacts(done)
    papers = len(impacts)
    assert papers > 64
    assert {r.status for r in asked} == {400}
    assert len(asked) <= 2 * papers.bit_length() + 2, len(asked)  # split to leaves: 2n-1
    assert {v["status"] for v in impacts.values()} == {"error"}
    assert done.returncode == 4, done.log[-3000:]
    assert done.log.count("Semantic Scholar refuses every request") == 1
    assert _run_report(out)["incomplete_services"] == {"semantic_scholar": papers}
