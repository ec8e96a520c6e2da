"""A hostile network: faults, throttling, Retry-After, give-ups, refused IDs. All end to end."""

from __future__ import annotations

import itertools
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Crawl, run_crawl, unobserved
from tests.standin import Catalogue, Fault, StandIn

pytestmark = pytest.mark.e2e  # real crawls in a subprocess

FAST: dict[str, float] = {"ARXIV_DELAY": 0.3, "RETRY_BACKOFF_BASE": 0.05, "PROGRESS_INTERVAL": 1}


def _stats(out: Path) -> dict[str, Any]:
    """The run's stats, from the report beside the snapshot (NAME.run.json)."""
    report = json.loads(out.with_name(f"{out.stem}.run.json").read_text())
    stats: dict[str, Any] = report["stats"]
    return stats


def _sorted_lines(crawl: Crawl) -> list[bytes]:
    """The output regardless of order and of when tweets were observed."""
    return sorted(json.dumps(r).encode() for r in unobserved(crawl.records))


@pytest.fixture(scope="module")
def clean_output(tmp_path_factory: pytest.TempPathFactory, catalogue: Catalogue) -> list[bytes]:
    with StandIn(catalogue) as server:
        crawl = run_crawl(tmp_path_factory.mktemp("clean") / "out.jsonl", server, settings=FAST)
    assert crawl.returncode == 0 and len(crawl.records) == 103
    return _sorted_lines(crawl)


@pytest.mark.parametrize(("seed", "retry_after"), [(1, None), (2, 1)])
def test_a_third_failing_three_times_changes_nothing(
    tmp_path: Path,
    catalogue: Catalogue,
    clean_output: list[bytes],
    seed: int,
    retry_after: int | None,
) -> None:
    with StandIn(catalogue) as server:
        mixed = server.faults.mixed(share=1 / 3, repeat=3, seed=seed, retry_after=retry_after)
        crawl = run_crawl(tmp_path / "out.jsonl", server, settings=FAST)
        log = list(server.log)
    assert crawl.returncode == 0, crawl.log[-3000:]
    assert _sorted_lines(crawl) == clean_output
    # The faults really happened, in every kind, and each faulty request failed exactly 3 times.
    kinds = Counter(r.fault for r in log if r.fault)
    assert set(kinds) == {k for k in mixed.kinds}
    tries = Counter(r.key for r in log)
    faulty = {r.key for r in log if mixed.is_faulty(r.service, r.key)}
    assert faulty and all(tries[k] >= 4 for k in faulty)
    # 301: OpenAlex's single lookup of a merged preprint answers with its journal version.
    assert all(r.status in (200, 301, 403, 404) for r in log if r.key in faulty and not r.fault)
    # Politeness held throughout, and no retry came before the Retry-After its answer carried.
    if retry_after:
        for f in (r for r in log if r.fault in ("status:429", "status:503")):
            again = [r for r in log if r.key == f.key and r.start > f.end]
            assert again and min(r.start for r in again) >= f.end + retry_after
    assert server.min_start_gap("arxiv") >= FAST["ARXIV_DELAY"]
    assert server.max_concurrency("arxiv") == 1
    assert "Traceback" not in crawl.log
    assert "Crawl summary: 103 records from 5 of 5 digests" in crawl.log
    assert "Progress: " in crawl.log


def test_retry_after_is_never_undercut(tmp_path: Path, catalogue: Catalogue) -> None:
    with StandIn(catalogue) as server:
        server.faults.add(Fault("status:429", service="arxiv", times=1, retry_after=2))
        server.faults.add(Fault("status:503", service="oembed", times=3, retry_after="date:2"))
        # One oEmbed request at a time: a request already on its way when the 503 came back
        # (sent before the crawler read it) would otherwise look like one that undercut it.
        one: dict[str, float] = {"OEMBED_CONCURRENCY": 1, "OEMBED_CONCURRENCY_MAX": 0}
        crawl = run_crawl(tmp_path / "out.jsonl", server, settings=FAST | one)
        log = list(server.log)
    assert crawl.returncode == 0
    assert len(crawl.records) == 103
    assert all(r["arxiv"]["status"] != "error" for r in crawl.records)
    faulted = [r for r in log if r.fault]
    assert len(faulted) == 4
    for f in faulted:
        # Seconds form: exactly 2 s. HTTP-date form: whole seconds, so at least 1 s after the answer.
        floor = 2.0 if f.service == "arxiv" else 1.0
        later = [r for r in log if r.service == f.service and r.start > f.end + 0.05]
        assert later, f"no {f.service} request after the fault"
        assert min(r.start for r in later) >= f.end + floor


def test_arxiv_throttling_slows_following_requests_then_recovers(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    settings = FAST | {"ARXIV_DELAY": 0.2, "ARXIV_BATCH_SIZE": 10}
    with StandIn(catalogue) as server:
        # The second batch meets three 503s in a row (no Retry-After): the extra pause doubles
        # each time (0.2, 0.4, 0.8 s) and then halves with every good answer.
        server.faults.add(Fault("status:503", service="arxiv", times=3, match="id_list"))
        crawl = run_crawl(tmp_path / "out.jsonl", server, settings=settings)
        arxiv = server.requests_for("arxiv")
    assert crawl.returncode == 0 and len(crawl.records) == 103
    assert [r.fault for r in arxiv[:3]] == ["status:503"] * 3
    gaps = [b.start - a.end for a, b in itertools.pairwise(arxiv)]
    assert gaps[2] >= 0.8  # after the third 503
    assert gaps[3] >= 0.4  # recovering gradually (later steps hide under the slot delay)
    assert min(b.start - a.start for a, b in itertools.pairwise(arxiv)) >= 0.2
    # That the extra pause fades back to nothing is pinned in virtual time, without wall-clock
    # upper bounds, by tests/unit/test_middleware.py (test_arxiv_extra_pause_fades_to_nothing).
    assert len(arxiv) == 11 + 3


def test_when_attempts_run_out_records_say_why(tmp_path: Path, catalogue: Catalogue) -> None:
    tweet_id = next(t for t in catalogue.tweets.values() if t.status == "ok").tweet_id
    with StandIn(catalogue) as server:
        server.faults.add(Fault("status:503", service="arxiv", times=1000))
        server.faults.add(Fault("drop", service="oembed", times=1000, match=tweet_id))
        crawl = run_crawl(
            tmp_path / "out.jsonl", server, settings=FAST | {"RETRY_TIMES": 2, "ARXIV_DELAY": 0.1}
        )
        arxiv = server.requests_for("arxiv")
    assert crawl.returncode == 4  # enrichment incomplete (issue 8): not a silent 0
    assert len(crawl.records) == 103
    assert {r["arxiv"]["status"] for r in crawl.records} == {"error"}
    assert {r["arxiv"]["error"] for r in crawl.records} == {"arXiv answered HTTP 503"}
    assert len(arxiv) == 2 * 3  # two batches, three tries each, no more
    embeds = [t["embed"] for r in crawl.records for t in r["tweets"] if t["id"] == tweet_id]
    assert embeds and all(e["status"] == "error" for e in embeds)
    assert all(e["error"].startswith("oEmbed request failed: ") for e in embeds)
    others = [
        t["embed"]["status"] for r in crawl.records for t in r["tweets"] if t["id"] != tweet_id
    ]
    assert "error" not in others
    assert "failed x103: arXiv: arXiv answered HTTP 503" in crawl.log


def test_a_refused_id_is_isolated_by_splitting_its_batch(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    refused = sorted(catalogue.papers)[7]
    catalogue.refused.add(refused)
    try:
        with StandIn(catalogue) as server:
            crawl = run_crawl(tmp_path / "out.jsonl", server, settings=FAST | {"ARXIV_DELAY": 0.05})
            arxiv = server.requests_for("arxiv")
    finally:
        catalogue.refused.discard(refused)
    by_status: dict[str, list[str]] = defaultdict(list)
    for r in crawl.records:
        by_status[r["arxiv"]["status"]].append(r["arxiv_id"])
    assert by_status["error"] == [refused]
    assert len(by_status["ok"]) == 103 - 1 - len(catalogue.absent)
    bad = next(r for r in crawl.records if r["arxiv_id"] == refused)
    assert bad["arxiv"]["error"] == f"arXiv refused {refused}: incorrect id format for {refused}"
    assert sum(r.status == 400 for r in arxiv) <= 8  # halving finds one ID in log2(100) steps
    assert server.max_concurrency("arxiv") == 1


def test_slow_answers_time_out_and_are_retried(tmp_path: Path, catalogue: Catalogue) -> None:
    with StandIn(catalogue) as server:
        server.faults.add(Fault("slow", service="oembed", times=2, delay=6.0))
        crawl = run_crawl(tmp_path / "out.jsonl", server, settings=FAST | {"DOWNLOAD_TIMEOUT": 2})
        # A slow answer is logged when the stand-in is done with it, after the client gave up.
        assert server.wait_for(lambda: sum(r.fault == "slow" for r in server.log) == 2)
        slow = [r for r in server.requests_for("oembed") if r.fault == "slow"]
        later = {r.key: r for r in server.requests_for("oembed") if r.fault is None}
    assert crawl.returncode == 0
    assert sum(t["embed"]["status"] == "error" for r in crawl.records for t in r["tweets"]) == 0
    # Both slow answers were given up on (after 2 s, not the 6 s they took) and asked again.
    # (On a loaded machine another answer may time out too: at least these two did.)
    assert len(slow) == 2 and all(later[r.key].start > r.start for r in slow)
    stats = _stats(tmp_path / "out.jsonl")
    assert stats["retry/oembed/reason_count/DownloadTimeoutError"] >= 2


def test_an_unreachable_service_fails_fast(tmp_path: Path, catalogue: Catalogue) -> None:
    with StandIn(catalogue) as server:
        crawl = run_crawl(
            tmp_path / "out.jsonl",
            server,
            settings={"ARXIV_DELAY": 0.1, "OEMBED_URL": "http://127.0.0.1:9/oembed"},
        )
    assert crawl.returncode == 4 and len(crawl.records) == 103
    embeds = [t["embed"] for r in crawl.records for t in r["tweets"]]
    assert len(embeds) > 100 and {e["status"] for e in embeds} == {"error"}
    assert all("Connection" in e["error"] for e in embeds)
    assert {r["arxiv"]["status"] for r in crawl.records} == {"ok", "not_found"}
    assert "oembed: 10 failures in a row without any answer" in crawl.log
    # What the breaker did, from the run's stats: the first 10 failures (RETRY_UNREACHABLE_AFTER)
    # were retried, no later one was. Without it, each tweet would be tried 5 times (RETRY_TIMES
    # 4) with a backoff growing from 1 s: minutes of waiting.
    stats = _stats(tmp_path / "out.jsonl")
    tweets = len({t["id"] for r in crawl.records for t in r["tweets"]})
    assert stats["retry/oembed/count"] == 10
    assert stats["service/oembed/requests"] == tweets + 10  # every attempt that was sent
    assert stats["retry/oembed/unreachable"] == tweets  # the failures that were not retried
    assert "retry/oembed/max_reached" not in stats


def test_oversized_answers_are_refused(tmp_path: Path, catalogue: Catalogue) -> None:
    # DOWNLOAD_MAXSIZE caps every response and source: the digests (<= 74 kB) fit in 100 kB,
    # an arXiv feed of 100 entries does not.
    crawl = None
    with StandIn(catalogue) as server:
        crawl = run_crawl(
            tmp_path / "out.jsonl", server,
            settings=FAST | {"DOWNLOAD_MAXSIZE": 100_000, "RETRY_TIMES": 0},
        )  # fmt: skip
    assert crawl.returncode == 4 and len(crawl.records) == 103
    statuses = {r["arxiv"]["status"] for r in crawl.records}
    errors = {r["arxiv"].get("error") for r in crawl.records if r["arxiv"]["status"] == "error"}
    assert statuses == {"ok", "error"}  # the last batch (3 IDs) is small enough
    (error,) = errors
    assert error.startswith("arXiv request failed: DownloadCancelledError: Expected to receive ")
    assert error.endswith("larger than download max size (100000)")  # one line, no request dump
    assert {t["embed"]["status"] for r in crawl.records for t in r["tweets"]} >= {"ok"}


def test_tweet_services_adapt_to_a_limit_on_requests_at_once(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    # Both tweet services refuse a ninth request at once (429). They start at 4, find the limit
    # and settle just below it: a few refusals when they first meet it (what goes out before
    # the first 429 is read), no record lost. Plain AIMD would be refused every few dozen
    # answers; the share over a year of digests is in benchmarks/results.
    caps = {"oembed": 8, "syndication": 8}
    with StandIn(
        catalogue, max_in_flight=caps, latency={"oembed": 0.05, "syndication": 0.05}
    ) as server:
        crawl = run_crawl(tmp_path / "out.jsonl", server, settings=FAST)
        log = {service: server.requests_for(service) for service in caps}
        peaks = {service: server.peak_admitted(service) for service in caps}
    assert crawl.returncode == 0 and len(crawl.records) == 103
    assert {t["embed"]["status"] for r in crawl.records for t in r["tweets"]} <= {
        "ok", "deleted", "protected",
    }  # fmt: skip
    for service, requests in log.items():
        refused = [r for r in requests if r.refused]
        # 1-4 on a quiet machine. A loaded one reads the first 429 late, and every place freed
        # meanwhile goes out as the ninth and is refused too (5-7 seen under load, 11 and 16 in
        # CI before the ceiling came from the refused request's own level: it was set from the
        # limit when the 429 was read, above 8, and refused again one step down at a time).
        assert 1 <= len(refused) <= 2 * caps[service], (service, len(refused))
        assert peaks[service] == 8  # it grew from 4 to the limit, never above it
    stats = _stats(tmp_path / "out.jsonl")
    assert stats["service/oembed/throttled"] == len([r for r in log["oembed"] if r.refused])
