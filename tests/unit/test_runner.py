"""Batching and judging in the enrichment runner, with a fake engine on a virtual clock."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response

from crawler.enrich.runner import ServiceRunner
from crawler.items import ArxivMeta, DigestEntry, Embed, HfPaper
from crawler.outcome import DIGESTS_READ, ExitStatus, Outcome
from crawler.services.arxiv import Arxiv
from crawler.services.base import Service
from crawler.services.hf_papers import HfPapers
from crawler.services.oembed import OEmbed
from crawler.state.extension import State
from crawler.state.store import Write
from tests.unit.answers import (
    Answerer,
    FakeEngine,
    arxiv_feed,
    arxiv_ids,
    entry,
    hf_answer,
    hf_id,
    oembed_answer,
    tweet_id,
)
from tests.unit.helpers import unit_crawler
from tests.unit.vtime import run, ticks

IDS = [f"2101.{n:05d}" for n in range(1, 41)]


def _runner(
    service: type[Service[Any]], answer: Answerer, crawler: Crawler | None = None, **settings: Any
) -> tuple[ServiceRunner[Any], FakeEngine]:
    crawler = crawler or unit_crawler(**settings)
    engine = FakeEngine(answer)
    crawler.engine = engine  # type: ignore[assignment]  # a stand-in with download_async only
    runner = ServiceRunner(
        service(crawler.settings), crawler, crawler.get_extension(State), Outcome.of(crawler)
    )
    runner.clock = asyncio.get_running_loop().time
    return runner, engine


def _arxiv(**settings: Any) -> tuple[ServiceRunner[ArxivMeta], FakeEngine]:
    return _runner(Arxiv, lambda r: arxiv_feed(r, known=set(IDS)), **settings)


def _asked(engine: FakeEngine) -> list[list[str]]:
    return [arxiv_ids(request) for _, request in engine.requests]


async def _fill_all(runner: ServiceRunner[Any], entries: list[DigestEntry]) -> None:
    await asyncio.gather(*(runner.fill(e) for e in entries))


# -- batching ------------------------------------------------------------------------------------
def test_full_batches_go_at_once_and_the_rest_when_input_ends() -> None:
    async def scenario() -> tuple[list[list[str]], list[list[str]], list[float]]:
        runner, engine = _arxiv(ARXIV_BATCH_SIZE=3, ARXIV_BATCH_WAIT=60.0)
        entries = [entry(i) for i in IDS[:7]]
        for e in entries:
            runner.want(e)
        await ticks()
        full = _asked(engine)
        runner.input_done()
        await _fill_all(runner, entries)
        assert [e.arxiv.status for e in entries if e.arxiv] == ["ok"] * 7
        return full, _asked(engine), engine.times()

    full, asked, times = run(scenario())
    assert full == [IDS[0:3], IDS[3:6]]
    assert asked == [IDS[0:3], IDS[3:6], IDS[6:7]]
    assert times == [0.0, 0.0, 0.0]  # nothing waited for the batch timer


def test_no_partial_batch_while_keys_keep_arriving() -> None:
    async def scenario() -> tuple[list[float], list[list[str]]]:
        runner, engine = _arxiv(ARXIV_BATCH_SIZE=100, ARXIV_BATCH_WAIT=2.0)
        entries = [entry(i) for i in IDS[:4]]
        for e in entries:  # one new key a second, each within the batch wait of the last
            runner.want(e)
            await asyncio.sleep(1)
        assert engine.requests == []
        await _fill_all(runner, entries)
        return engine.times(), _asked(engine)

    times, asked = run(scenario())
    assert asked == [IDS[:4]]
    # The last key came at 3: the batch goes once 2 s passed without one (checked every 2 s).
    assert 3 + 2 <= times[0] <= 3 + 2 * 2


def test_a_partial_batch_waits_while_a_request_is_under_way() -> None:
    async def answer_slowly(request: Request) -> Response:
        await asyncio.sleep(10)
        return arxiv_feed(request, known=set(IDS))

    async def scenario() -> tuple[int, list[float]]:
        runner, engine = _runner(Arxiv, answer_slowly, ARXIV_BATCH_SIZE=2, ARXIV_BATCH_WAIT=2.0)
        entries = [entry(i) for i in IDS[:3]]
        for e in entries:
            runner.want(e)
        await asyncio.sleep(9)  # idle for far longer than the batch wait
        batches = runner.stats.get_value("arxiv/batches")
        await _fill_all(runner, entries)
        return batches, engine.times()

    batches, (first, second) = run(scenario())
    assert batches == 1  # the partial batch stayed queued: the full one was still out
    assert first == 0.0
    assert 10.0 <= second <= 10.0 + 2.0  # after the answer, at the next check of the timer


@pytest.mark.parametrize("other_busy", [False, True])
def test_a_partial_batch_waits_while_another_service_is_at_work(other_busy: bool) -> None:
    """Input stalls while entries wait for another service (arXiv's 3 s rule): that stall
    must not send this service's partial batch (Semantic Scholar sent 17 where 11 suffice)."""

    async def answer_slowly(request: Request) -> Response:
        await asyncio.sleep(10)
        return arxiv_feed(request, known=set(IDS))

    async def scenario() -> tuple[list[float], list[float]]:
        other, other_engine = _runner(Arxiv, answer_slowly, ARXIV_BATCH_SIZE=1)
        mine, engine = _arxiv(ARXIV_BATCH_SIZE=100, ARXIV_BATCH_WAIT=2.0)
        mine.peers = [other, mine]
        other_entry = entry(IDS[39])
        if other_busy:
            other.want(other_entry)  # a full batch of one: under way from 0 to 10
        entries = [entry(i) for i in IDS[:3]]
        for e in entries:
            mine.want(e)
        await _fill_all(mine, entries)
        if other_busy:
            await other.fill(other_entry)
        return engine.times(), other_engine.times()

    times, other_times = run(scenario())
    assert other_times == ([0.0] if other_busy else [])
    if other_busy:
        assert 10.0 <= times[0] <= 10.0 + 2.0  # at the first check after the other answered
    else:
        assert times == [2.0]


def test_input_ending_sends_the_partial_batch_even_while_a_request_is_under_way() -> None:
    async def answer_slowly(request: Request) -> Response:
        await asyncio.sleep(10)
        return arxiv_feed(request, known=set(IDS))

    async def scenario() -> tuple[int, list[float]]:
        runner, engine = _runner(Arxiv, answer_slowly, ARXIV_BATCH_SIZE=2, ARXIV_BATCH_WAIT=60)
        entries = [entry(i) for i in IDS[:3]]
        for e in entries:
            runner.want(e)
        await asyncio.sleep(1)
        runner.input_done()
        await ticks()
        batches = runner.stats.get_value("arxiv/batches")
        await _fill_all(runner, entries)
        return batches, engine.times()

    batches, times = run(scenario())
    assert batches == 2  # the partial batch left the queue at 1, not after the 60 s wait...
    assert times == [0.0, 10.0]  # ...and went as soon as arXiv's one request at a time allows


@pytest.mark.parametrize("state", [False, True])
def test_every_key_is_asked_once_per_crawl(tmp_path: Path, state: bool) -> None:
    async def scenario() -> tuple[list[list[str]], list[str]]:
        crawler = unit_crawler(
            ARXIV_BATCH_SIZE=100,
            ARXIV_BATCH_WAIT=1.0,
            STATE_DB=str(tmp_path / "s.db") if state else "",
        )
        runner, engine = _runner(Arxiv, lambda r: arxiv_feed(r, known=set(IDS)), crawler)
        shared = [entry(IDS[n % 3], rank=n) for n in range(50)]
        for e in shared:
            runner.want(e)
        await _fill_all(runner, shared)
        later = [entry(IDS[0], rank=99), entry(IDS[1], rank=100)]  # after their values came
        for e in later:
            runner.want(e)
        await _fill_all(runner, later)
        statuses = [e.arxiv.status if e.arxiv else "missing" for e in shared + later]
        return _asked(engine), statuses

    asked, statuses = run(scenario())
    assert asked == [IDS[:3]]
    assert statuses == ["ok"] * 52


def test_a_refused_batch_is_split_until_the_bad_key_is_alone() -> None:
    bad = IDS[5]

    async def scenario() -> tuple[list[list[str]], dict[str, ArxivMeta], int]:
        runner, engine = _runner(
            Arxiv, lambda r: arxiv_feed(r, known=set(IDS), refused={bad}), ARXIV_BATCH_SIZE=8
        )
        entries = [entry(i) for i in IDS[:8]]
        for e in entries:
            runner.want(e)
        await _fill_all(runner, entries)
        values = {e.arxiv_id or "": e.arxiv for e in entries if e.arxiv}
        return _asked(engine), values, runner.stats.get_value("arxiv/batch_splits")

    asked, values, splits = run(scenario())
    assert asked == [
        IDS[:8], IDS[:4], IDS[4:8], IDS[4:6], IDS[6:8], [IDS[4]], [IDS[5]],
    ]  # fmt: skip
    assert splits == 3
    assert values[bad] == ArxivMeta(
        status="error", error=f"arXiv refused {bad}: incorrect id format for {bad}"
    )
    assert {k: v.status for k, v in values.items() if k != bad} == {
        k: "ok" for k in IDS[:8] if k != bad
    }


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        (IgnoreRequest("the crawl is stopping"), "arXiv request dropped: the crawl is stopping"),
        (
            ConnectionRefusedError("refused"),
            "arXiv request failed: ConnectionRefusedError: refused",
        ),
    ],
)
def test_a_failed_request_gives_every_key_an_error(failure: Exception, error: str) -> None:
    async def scenario() -> list[ArxivMeta | None]:
        runner, _ = _runner(Arxiv, lambda r: failure)
        entries = [entry(i) for i in IDS[:2]]
        for e in entries:
            runner.want(e)
        runner.input_done()
        await _fill_all(runner, entries)
        return [e.arxiv for e in entries]

    assert run(scenario()) == [ArxivMeta(status="error", error=error)] * 2


def test_a_stop_resolves_every_waiting_entry_at_once() -> None:
    async def never(request: Request) -> Response:
        await asyncio.get_running_loop().create_future()
        raise AssertionError("unreachable")

    async def scenario() -> tuple[float, list[ArxivMeta | None]]:
        runner, engine = _runner(Arxiv, never, ARXIV_BATCH_SIZE=2, ARXIV_BATCH_WAIT=3600)
        entries = [entry(i) for i in IDS[:3]]  # two in flight (forever), one queued
        for e in entries:
            runner.want(e)
        fills = asyncio.ensure_future(_fill_all(runner, entries))
        await asyncio.sleep(1)
        assert not fills.done() and len(engine.requests) == 1
        runner.stop()
        await fills
        return asyncio.get_running_loop().time(), [e.arxiv for e in entries]

    stopped_at, values = run(scenario())
    assert stopped_at == 1.0
    assert values == [
        ArxivMeta(status="error", error="arXiv request not completed: crawl stopped"),
        ArxivMeta(status="error", error="arXiv request not completed: crawl stopped"),
        ArxivMeta(status="error", error="arXiv request not sent: crawl stopped"),
    ]


# -- downgrades of stored good values ------------------------------------------------------------
def _stored(crawler: Crawler, service: Service[Any], values: dict[str, Any]) -> None:
    """Values a previous run stored, stale by now (so this run asks again)."""
    state = crawler.get_extension(State)
    assert state is not None
    writes = [Write(k, dataclasses.asdict(v), status=v.status) for k, v in values.items()]
    state.store.write(service.kind, writes, now=0.0, run_id="an earlier run")


def _good_paper(arxiv_id: str) -> ArxivMeta:
    return ArxivMeta(
        status="ok", versioned_id=f"{arxiv_id}v1", version=1, title=f"Paper {arxiv_id}"
    )


@pytest.mark.parametrize(
    ("still_known", "held"),
    [
        (set(), True),  # every stored paper vanished at once: an incident, not the truth
        ({IDS[1]}, False),  # the same answer still finds a stored paper: believed
    ],
)
def test_batch_service_believes_a_downgrade_only_within_a_healthy_answer(
    tmp_path: Path, still_known: set[str], held: bool
) -> None:
    async def scenario() -> tuple[dict[str, ArxivMeta | None], Crawler]:
        crawler = unit_crawler(STATE_DB=str(tmp_path / "s.db"))
        _stored(crawler, Arxiv(crawler.settings), {i: _good_paper(i) for i in IDS[:2]})
        runner, _ = _runner(Arxiv, lambda r: arxiv_feed(r, known=still_known), crawler)
        entries = [entry(i) for i in IDS[:2]]
        for e in entries:
            runner.want(e)
        runner.input_done()
        await _fill_all(runner, entries)
        return {e.arxiv_id or "": e.arxiv for e in entries}, crawler

    values, crawler = run(scenario())
    stats = crawler.stats
    first = values[IDS[0]]
    assert first is not None
    if held:
        assert first.status == "ok" and first.title == f"Paper {IDS[0]}"  # the stored value
        assert stats.get_value("arxiv/incidents") == 2
        assert stats.get_value("enrichment/arxiv/failed") == 2
        Outcome.of(crawler).reason = "finished"
        stats.set_value(DIGESTS_READ, 1)
        assert Outcome.of(crawler).exit_status() == ExitStatus.ENRICHMENT_INCOMPLETE
    else:
        assert first.status == "not_found"
        assert stats.get_value("arxiv/incidents") is None
        assert stats.get_value("enrichment/arxiv/failed") is None


def _embed(status: str) -> Embed:
    return Embed(status=status, text="stored") if status == "ok" else Embed(status=status)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("probe_status", "held"),
    [
        (404, True),  # the control tweet is "deleted" too: the endpoint is broken
        (200, False),  # the control is still there: the tweet really was deleted
    ],
)
def test_per_key_service_probes_a_stored_good_key_before_believing_a_downgrade(
    tmp_path: Path, probe_status: int, held: bool
) -> None:
    target, control = "1410000000000000001", "1410000000000000002"

    def answer(request: Request) -> Response:
        return oembed_answer(request, 404 if tweet_id(request) == target else probe_status)

    async def scenario() -> tuple[Embed | None, list[str], Crawler]:
        crawler = unit_crawler(STATE_DB=str(tmp_path / "s.db"))
        _stored(crawler, OEmbed(crawler.settings), {target: _embed("ok"), control: _embed("ok")})
        runner, engine = _runner(OEmbed, answer, crawler)
        e = entry(tweets=[target])
        runner.want(e)
        await runner.fill(e)
        return e.tweets[0].embed, [tweet_id(r) for _, r in engine.requests], crawler

    embed, asked, crawler = run(scenario())
    assert asked == [target, control]
    assert crawler.stats.get_value("oembed/probes") == 1
    assert embed is not None
    if held:
        assert embed == Embed(status="ok", text="stored")
        assert crawler.stats.get_value("oembed/incidents") == 1
    else:
        assert (embed.status, embed.error) == ("deleted", "oEmbed answered HTTP 404")
        assert embed.fetched_at is not None  # when the answer came: the record's fetched_at
        assert crawler.stats.get_value("oembed/incidents") is None


GONE, GOOD, CONTROL = "1410000000000000001", "1410000000000000003", "1410000000000000002"


def _probe_race(
    tmp_path: Path, probe_status: int, *, good_after: float, probe_after: float, stored: list[str]
) -> tuple[str | None, Crawler]:
    """A 404 for GONE first, then a probe of CONTROL (stored as good, with ``stored``) and a
    good answer for GOOD, each after its delay: GONE's status, and the crawler."""

    async def answer(request: Request) -> Response:
        if tweet_id(request) == GOOD:
            await asyncio.sleep(good_after)
            return oembed_answer(request, 200)
        if tweet_id(request) == CONTROL:
            await asyncio.sleep(probe_after)
            return oembed_answer(request, probe_status)
        return oembed_answer(request, 404)

    async def scenario() -> tuple[str | None, Crawler]:
        crawler = unit_crawler(STATE_DB=str(tmp_path / "s.db"))
        _stored(crawler, OEmbed(crawler.settings), {key: _embed("ok") for key in stored})
        runner, _ = _runner(OEmbed, answer, crawler)
        entries = [entry(tweets=[GONE]), entry(tweets=[GOOD], rank=2)]
        for e in entries:
            runner.want(e)
        runner.input_done()
        await _fill_all(runner, entries)
        assert entries[1].tweets[0].embed is not None
        assert entries[1].tweets[0].embed.status == "ok"
        embed = entries[0].tweets[0].embed
        return (embed.status if embed else None), crawler

    return run(scenario())


@pytest.mark.parametrize("probe_status", [503, 404, 200])
def test_a_good_answer_while_the_probe_is_out_is_the_evidence_whatever_the_probe_says(
    tmp_path: Path, probe_status: int
) -> None:
    """A 404 comes first and a probe goes out; another tweet's good answer comes back before
    the probe's (an error, a 404 or a 200). The good answer shows the service works, as README
    says: the 404 is believed. The probe's verdict, taken alone, held it as an incident (a false
    exit 4), and a probe that got no answer counted as proof the service was broken."""
    status, crawler = _probe_race(
        tmp_path, probe_status, good_after=1, probe_after=10, stored=[CONTROL]
    )
    assert status == "deleted"
    assert crawler.stats.get_value("oembed/probes") == 1
    assert crawler.stats.get_value("oembed/incidents") is None


@pytest.mark.parametrize(("probe_status", "held"), [(503, False), (404, True), (200, False)])
def test_a_probe_that_gets_no_answer_is_no_verdict(
    tmp_path: Path, probe_status: int, held: bool
) -> None:
    """The probe's error says nothing about the service: the 404 then waits for this crawl's
    first good answer (here another tweet's, after the probe's), as with nothing stored to
    probe with. It counted as proof of a broken service: the 404 was held, a false exit 4.
    A control found gone too is that proof (held), and a control still there clears it."""
    status, crawler = _probe_race(
        tmp_path, probe_status, good_after=5, probe_after=1, stored=[GONE, CONTROL]
    )
    assert status == ("ok" if held else "deleted")  # held: the stored value is kept
    assert crawler.stats.get_value("oembed/probes") == 1
    assert crawler.stats.get_value("oembed/incidents") == (1 if held else None)


def test_per_key_service_needs_no_probe_once_it_answered_correctly(tmp_path: Path) -> None:
    target, fresh = "1410000000000000001", "1410000000000000003"

    def answer(request: Request) -> Response:
        return oembed_answer(request, 404 if tweet_id(request) == target else 200)

    async def scenario() -> tuple[Embed | None, list[str]]:
        crawler = unit_crawler(STATE_DB=str(tmp_path / "s.db"))
        _stored(crawler, OEmbed(crawler.settings), {target: _embed("ok")})
        runner, engine = _runner(OEmbed, answer, crawler)
        first, second = entry(tweets=[fresh]), entry(tweets=[target])
        runner.want(first)
        await runner.fill(first)  # an "ok" answer: the endpoint works
        runner.want(second)
        await runner.fill(second)
        return second.tweets[0].embed, [tweet_id(r) for _, r in engine.requests]

    embed, asked = run(scenario())
    assert asked == [fresh, target]
    assert embed is not None
    assert (embed.status, embed.error) == ("deleted", "oEmbed answered HTTP 404")


# What a per-key test needs of its service: how an entry holds a key, what the service answers
# (a 404 for "gone"), which key a request asks for, and the entry's value.
PER_KEY: dict[str, tuple[type[Service[Any]], Any, Any, Any, Any]] = {
    "hf_papers": (
        HfPapers, lambda key, rank: entry(key, rank=rank), hf_answer, hf_id, lambda e: e.hf,
    ),
    "oembed": (
        OEmbed, lambda key, rank: entry(tweets=[key], rank=rank), oembed_answer, tweet_id,
        lambda e: e.tweets[0].embed,
    ),
}  # fmt: skip
PER_KEY_IDS = {"hf_papers": ("2106.09578", "2106.09647"), "oembed": ("1405", "1406")}


@pytest.mark.parametrize("name", sorted(PER_KEY))
def test_a_probe_never_asks_again_for_a_key_this_crawl_fetched(tmp_path: Path, name: str) -> None:
    """A first run: the first answer is a 404, and another key's good answer is stored before
    the probe judging the 404 starts. That answer is the evidence; the probe took it for a
    control an earlier run stored and asked for it a second time (a CI run of
    test_hf_papers_e2e: 104 Hugging Face requests for 103 papers, 2106.09647 twice)."""
    service, make_entry, answer_of, key_of, value_of = PER_KEY[name]
    gone, good = PER_KEY_IDS[name]

    def answer(request: Request) -> Response:
        return answer_of(request, 404 if key_of(request) == gone else 200)  # type: ignore[no-any-return]

    async def scenario() -> tuple[list[str], list[str], Crawler]:
        crawler = unit_crawler(STATE_DB=str(tmp_path / "s.db"))
        runner, engine = _runner(service, answer, crawler)
        entries = [make_entry(gone, 1), make_entry(good, 2)]
        for e in entries:
            runner.want(e)  # both under way at once; the 404 is judged first
        await _fill_all(runner, entries)
        statuses = [value_of(e).status for e in entries]
        return statuses, [key_of(r) for _, r in engine.requests], crawler

    statuses, asked, crawler = run(scenario())
    assert asked == [gone, good]  # each key once: no probe
    assert crawler.stats.get_value(f"{name}/probes") is None
    assert statuses == ["not_indexed" if name == "hf_papers" else "deleted", "ok"]


@pytest.mark.parametrize("wanted_at", [1.0, 10.0])  # while the probe is on its way, after it
def test_a_probe_answer_is_the_fetch_of_its_control_key_when_the_crawl_wants_it(
    tmp_path: Path, wanted_at: float
) -> None:
    """The probe asks for a key an earlier run stored as good. When an entry of this crawl
    wants that key too (stale, or refreshed), the probe's answer is its value: asking again
    sent two requests for one paper."""
    unpaged, control = "2106.09578", "2106.09647"

    async def answer(request: Request) -> Response:
        if hf_id(request) == control:
            await asyncio.sleep(5)
        return hf_answer(request, 404 if hf_id(request) == unpaged else 200)

    async def scenario() -> tuple[HfPaper | None, HfPaper | None, list[str], Crawler]:
        crawler = unit_crawler(STATE_DB=str(tmp_path / "s.db"))
        _stored(crawler, HfPapers(crawler.settings), {control: HfPaper(status="ok", upvotes=1)})
        runner, engine = _runner(HfPapers, answer, crawler)
        first, second = entry(unpaged), entry(control, rank=2)
        runner.want(first)
        filled = asyncio.ensure_future(runner.fill(first))
        await asyncio.sleep(wanted_at)
        runner.want(second)
        await runner.fill(second)
        await filled
        return first.hf, second.hf, [hf_id(r) for _, r in engine.requests], crawler

    first, second, asked, crawler = run(scenario())
    assert asked == [unpaged, control]
    assert crawler.stats.get_value("hf_papers/probes") == 1
    assert first is not None and first.status == "not_indexed"  # the control still has a page
    assert second is not None and (second.status, second.upvotes) == ("ok", 7)  # as answered
    assert second.history == [
        {"observed_at": second.fetched_at, "upvotes": 7, "github_stars": None}
    ]
    state = crawler.get_extension(State)
    assert state is not None
    kept = state.fresh(HfPapers(crawler.settings), control)  # stored as this run's fetch
    assert kept is not None and kept.upvotes == 7


def test_a_service_refusing_every_request_costs_log_n_requests_not_2n(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A changed field name or a key problem refuses every request: splitting a 32-key batch
    down to single keys would cost 63 requests, all refused."""

    async def scenario() -> tuple[list[list[str]], dict[str, ArxivMeta]]:
        runner, engine = _runner(
            Arxiv, lambda r: arxiv_feed(r, known=set(IDS), refused=set(IDS)),
            ARXIV_BATCH_SIZE=32,
        )  # fmt: skip
        entries = [entry(i) for i in IDS[:32]]
        for e in entries:
            runner.want(e)
        await _fill_all(runner, entries)
        return _asked(engine), {e.arxiv_id or "": e.arxiv for e in entries if e.arxiv}

    asked, values = run(scenario())
    assert asked == [IDS[:32], IDS[:16], IDS[:8], IDS[:4], IDS[:2], [IDS[0]], [IDS[1]]]
    assert values[IDS[0]].error == f"arXiv refused {IDS[0]}: incorrect id format for {IDS[0]}"
    assert {k: v.status for k, v in values.items()} == {k: "error" for k in IDS[:32]}
    assert values[IDS[20]].error == (
        "arXiv refused the request, as every request so far (not split): "
        f"incorrect id format for {IDS[1]}"
    )
    lines = [r.getMessage() for r in caplog.records if "refuses every request" in r.getMessage()]
    assert lines == [
        f"arXiv refuses every request (incorrect id format for {IDS[1]}): "
        "its refused batches are not split further"
    ]


def test_a_bad_first_key_with_nothing_accepted_yet_costs_only_itself() -> None:
    """Depth first, the first refused single key is no proof: its sibling is accepted."""
    bad = IDS[0]

    async def scenario() -> tuple[list[list[str]], dict[str, ArxivMeta]]:
        runner, engine = _runner(
            Arxiv, lambda r: arxiv_feed(r, known=set(IDS), refused={bad}), ARXIV_BATCH_SIZE=8
        )
        entries = [entry(i) for i in IDS[:8]]
        for e in entries:
            runner.want(e)
        await _fill_all(runner, entries)
        return _asked(engine), {e.arxiv_id or "": e.arxiv for e in entries if e.arxiv}

    asked, values = run(scenario())
    assert asked == [IDS[:8], IDS[:4], IDS[:2], [IDS[0]], [IDS[1]], IDS[4:8], IDS[2:4]]
    assert values[bad].error == f"arXiv refused {bad}: incorrect id format for {bad}"
    assert {k: v.status for k, v in values.items() if k != bad} == {
        k: "ok" for k in IDS[:8] if k != bad
    }
