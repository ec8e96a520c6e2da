"""The retry middleware in-process: each rule a crawl relies on, on a virtual clock.

Scenarios drive ``process_request`` / ``process_response`` / ``process_exception`` the way
Scrapy's downloader does (:func:`tests.unit.helpers.download`); times are the loop's virtual
clock, so a 60 s backoff is checked exactly and takes no real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest
from scrapy import Request
from scrapy.exceptions import DownloadConnectionRefusedError, IgnoreRequest
from scrapy.http import Response

from crawler.downloader.contract import PARSED, AnswerUnusable, Politeness
from crawler.downloader.middleware import BackoffRetryMiddleware, retry_after_seconds
from crawler.services.arxiv import Arxiv
from tests.unit.helpers import (
    Answer,
    Trace,
    download,
    middleware,
    outcome_of,
    respond,
    service_request,
    unit_crawler,
)
from tests.unit.vtime import run, ticks

WALL = 1_700_000_000.0  # the wall clock the middleware sees (a whole second, for HTTP dates)


def _setup(**settings: Any) -> tuple[BackoffRetryMiddleware, asyncio.AbstractEventLoop]:
    loop = asyncio.get_running_loop()
    return middleware(unit_crawler(**settings), loop.time, wall=WALL), loop


def _gaps(starts: list[float]) -> list[float]:
    return [round(b - a, 6) for a, b in itertools.pairwise(starts)]


def _stat(mw: BackoffRetryMiddleware, key: str) -> Any:
    return mw.stats.get_value(key)


def _http_date(seconds_from_now: float) -> str:
    return format_datetime(datetime.fromtimestamp(WALL + seconds_from_now, UTC), usegmt=True)


def _refused() -> DownloadConnectionRefusedError:
    return DownloadConnectionRefusedError("Connection was refused by other side")


# -- Retry-After ---------------------------------------------------------------------------------
def test_retry_after_parsing() -> None:
    assert retry_after_seconds(b"7") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0
    assert retry_after_seconds(b"soon") is None
    assert retry_after_seconds(None) is None


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("form", ["seconds", "date"])
def test_retry_after_holds_the_request_and_every_request_of_its_service(
    status: int, form: str
) -> None:
    value = "7" if form == "seconds" else _http_date(7)

    async def scenario() -> tuple[Trace, float, float, BackoffRetryMiddleware]:
        mw, loop = _setup(RETRY_BACKOFF_BASE=1.0)
        first = asyncio.create_task(
            download(mw, service_request(), [(status, {"Retry-After": value}), 200], loop.time)
        )
        await asyncio.sleep(1)  # the throttled answer came at 0; other requests start at 1
        await mw.process_request(service_request(service="elsewhere"))
        elsewhere_started = loop.time()
        await mw.process_request(service_request(url="http://svc.test/other"))
        other_started = loop.time()
        return await first, other_started, elsewhere_started, mw

    trace, other_started, elsewhere_started, mw = run(scenario())
    assert trace.starts == [0.0, 7.0]  # the backoff (1-2 s) is raised to the Retry-After
    assert isinstance(trace.result, Response) and trace.result.status == 200
    assert other_started == 7.0  # held by the gate although it never got a 429 itself
    assert elsewhere_started == 1.0  # other services are not held
    assert _stat(mw, "retry/svc/gated") == 1


@pytest.mark.parametrize(("status", "attempts"), [(200, 1), (500, 2), (404, 1)])
def test_retry_after_is_ignored_unless_the_answer_is_429_or_503(status: int, attempts: int) -> None:
    async def scenario() -> tuple[Trace, float, BackoffRetryMiddleware]:
        mw, loop = _setup(RETRY_BACKOFF_BASE=1.0)
        first = asyncio.create_task(
            download(mw, service_request(), [(status, {"Retry-After": "30"}), 200], loop.time)
        )
        await ticks()
        await mw.process_request(service_request(url="http://svc.test/other"))
        other_started = loop.time()
        return await first, other_started, mw

    trace, other_started, mw = run(scenario())
    assert len(trace.starts) == attempts
    if attempts == 2:
        assert 1.0 <= trace.starts[1] <= 2.0  # backoff only, not 30 s
    assert other_started == 0.0
    assert _stat(mw, "retry/svc/gated") is None


# -- backoff and giving up -----------------------------------------------------------------------
def test_backoff_grows_exponentially_with_jitter_up_to_its_cap() -> None:
    async def scenario() -> Trace:
        mw, loop = _setup(RETRY_TIMES=6, RETRY_BACKOFF_BASE=1.0, RETRY_BACKOFF_MAX=10.0)
        return await download(mw, service_request(), [503] * 6 + [200], loop.time)

    gaps = _gaps(run(scenario()).starts)
    assert len(gaps) == 6
    for n, gap in enumerate(gaps):
        # base * 2**n plus up to one base of jitter, capped
        assert min(2**n, 10) <= gap <= min(2**n + 1, 10), gaps
    assert gaps[-2:] == [10.0, 10.0]


def test_backoff_jitter_differs_between_requests() -> None:
    async def scenario() -> list[float]:
        mw, loop = _setup(RETRY_BACKOFF_BASE=1.0)
        traces = [
            await download(mw, service_request(url=f"http://svc.test/{n}"), [503, 200], loop.time)
            for n in range(20)
        ]
        return [t.starts[1] - t.starts[0] for t in traces]

    first_waits = run(scenario())
    assert all(1.0 <= wait <= 2.0 for wait in first_waits)
    assert len(set(first_waits)) > 10  # random jitter, not a fixed step


def test_retry_after_is_a_floor_not_a_replacement_for_backoff() -> None:
    async def scenario() -> Trace:
        mw, loop = _setup(RETRY_BACKOFF_BASE=1.0)
        throttled = (503, {"Retry-After": "1"})
        return await download(mw, service_request(), [throttled] * 3 + [200], loop.time)

    gaps = _gaps(run(scenario()).starts)
    assert 1 <= gaps[0] <= 2 and 2 <= gaps[1] <= 3 and 4 <= gaps[2] <= 5


def test_gives_up_after_retry_times() -> None:
    async def scenario() -> tuple[Trace, BackoffRetryMiddleware]:
        mw, loop = _setup(RETRY_TIMES=2, RETRY_BACKOFF_BASE=0.1)
        return await download(mw, service_request(), [503, 503, 503, 200], loop.time), mw

    trace, mw = run(scenario())
    assert len(trace.starts) == 3
    assert isinstance(trace.result, Response) and trace.result.status == 503
    assert _stat(mw, "retry/svc/max_reached") == 1
    assert _stat(mw, "retry/svc/count") == 2
    assert _stat(mw, "retry/svc/reason_count/HTTP 503") == 2


def test_a_retry_after_beyond_retry_after_max_gives_up_at_once() -> None:
    async def scenario() -> tuple[Trace, float, float, BackoffRetryMiddleware]:
        mw, loop = _setup(RETRY_AFTER_MAX=60.0)
        trace = await download(
            mw, service_request(), [(429, {"Retry-After": "3600"}), 200], loop.time
        )
        answered_at = loop.time()
        await mw.process_request(service_request(url="http://svc.test/other"))
        return trace, answered_at, loop.time(), mw

    trace, answered_at, other_started, mw = run(scenario())
    assert isinstance(trace.result, Response) and trace.result.status == 429
    assert (trace.starts, answered_at) == ([0.0], 0.0)  # no wait at all
    assert _stat(mw, "retry/svc/max_reached") == 1
    assert other_started == 60.0  # the service is still held, but no longer than the maximum


# -- circuit breaker -----------------------------------------------------------------------------
def test_circuit_breaker_stops_retries_until_the_service_answers() -> None:
    async def scenario() -> tuple[list[Trace], BackoffRetryMiddleware]:
        mw, loop = _setup(RETRY_UNREACHABLE_AFTER=3, RETRY_TIMES=10, RETRY_BACKOFF_BASE=0.1)
        traces = []
        steps: list[tuple[str, list[Answer]]] = [
            ("svc", [_refused() for _ in range(10)]),  # 3 failures retried, the 4th not
            ("svc", [_refused(), 200]),  # the breaker is open: no retry
            ("other", [_refused(), 200]),  # per service
            ("svc", [404]),  # an answer, whatever it says: reachable again
            ("svc", [_refused(), 200]),  # retried again
        ]
        for n, (service, answers) in enumerate(steps):
            request = service_request(url=f"http://svc.test/{n}", service=service)
            traces.append(await download(mw, request, answers, loop.time))
        return traces, mw

    traces, mw = run(scenario())
    assert [len(t.starts) for t in traces] == [4, 1, 2, 1, 2]
    assert isinstance(traces[0].result, DownloadConnectionRefusedError)
    assert isinstance(traces[1].result, DownloadConnectionRefusedError)
    assert isinstance(traces[4].result, Response) and traces[4].result.status == 200
    assert _stat(mw, "retry/svc/unreachable") == 2
    assert _stat(mw, "retry/other/unreachable") is None


def test_circuit_breaker_off_when_zero() -> None:
    async def scenario() -> tuple[Trace, BackoffRetryMiddleware]:
        mw, loop = _setup(RETRY_UNREACHABLE_AFTER=0, RETRY_TIMES=12, RETRY_BACKOFF_BASE=0.01)
        answers = [_refused() for _ in range(13)]
        return await download(mw, service_request(), answers, loop.time), mw

    trace, mw = run(scenario())
    assert len(trace.starts) == 13
    assert _stat(mw, "retry/svc/max_reached") == 1
    assert _stat(mw, "retry/svc/unreachable") is None


# -- arXiv's politeness --------------------------------------------------------------------------
def _arxiv_starts(statuses: Sequence[Answer], latency: float = 0.0, **settings: Any) -> list[float]:
    async def scenario() -> list[float]:
        settings.setdefault("ARXIV_DELAY_MARGIN", 0.0)
        mw, loop = _setup(ARXIV_DELAY=3.0, ARXIV_SLOWDOWN_MAX=10.0, **settings)
        polite = Arxiv(mw.crawler.settings).politeness
        starts = []
        for n, status in enumerate(statuses):
            request = service_request(
                url=f"http://arxiv.test/{n}", service="arxiv", politeness=polite, dont_retry=True
            )
            trace = await download(mw, request, [status], loop.time, latency=latency)
            starts += trace.starts
        return starts

    return run(scenario())


def test_arxiv_slows_down_on_throttling_and_recovers_on_good_answers() -> None:
    starts = _arxiv_starts([200, 503, 503, 503, 200, 200, 200])
    # ARXIV_DELAY between starts; after a throttled answer ARXIV_DELAY plus an extra pause:
    # doubled by each 503 from 3 s up to ARXIV_SLOWDOWN_MAX (10 s), halved by each good answer.
    assert _gaps(starts) == [3.0, 3 + 3, 3 + 6, 3 + 10, 3 + 5, 3 + 2.5]


def test_arxiv_extra_pause_fades_to_nothing() -> None:
    gaps = _gaps(_arxiv_starts([503] + [200] * 10))
    assert gaps[0] == 6.0 and gaps[-1] == 3.0
    assert gaps == sorted(gaps, reverse=True)


def test_arxiv_waits_after_the_answer_by_default() -> None:
    # Answers take 2 s: the next start is 3 s after the answer, 5 s after the previous start.
    assert _gaps(_arxiv_starts([200, 200, 200], latency=2.0)) == [5.0, 5.0]


def test_arxiv_start_to_start_only_when_asked() -> None:
    only_starts = {"ARXIV_HOLD_AFTER_ANSWER": False, "ARXIV_DELAY_MARGIN": 0.25}
    assert _gaps(_arxiv_starts([200] * 4, latency=0.5, **only_starts)) == [3.25] * 3
    # Slower than the delay: one at a time, the next goes as the answer arrives.
    assert _gaps(_arxiv_starts([200] * 3, latency=4.0, **only_starts)) == [4.0, 4.0]


def test_arxiv_start_to_start_counts_from_the_real_start_after_a_retry_after_hold() -> None:
    """The slot counts its delay from when it hands a request over; a Retry-After wait in the
    middleware comes after that. The delay must count from the start the server sees."""

    async def scenario() -> list[float]:
        mw, loop = _setup(ARXIV_DELAY=3.0, ARXIV_HOLD_AFTER_ANSWER=False, RETRY_BACKOFF_BASE=0.1)
        polite = Arxiv(mw.crawler.settings).politeness
        mw.gate.hold_until("arxiv", loop.time() + 2.0)  # e.g. a Retry-After from before
        first = service_request(url="http://arxiv.test/1", service="arxiv", politeness=polite)
        second = service_request(url="http://arxiv.test/2", service="arxiv", politeness=polite)
        starts = (await download(mw, first, [200], loop.time)).starts
        return starts + (await download(mw, second, [200], loop.time)).starts

    assert _gaps(run(scenario())) == [3.0]  # not 1 s: the first really started at 2


def test_arxiv_retries_wait_for_the_hold_too() -> None:
    async def scenario() -> Trace:
        mw, loop = _setup(ARXIV_DELAY=3.0, ARXIV_DELAY_MARGIN=0.0, RETRY_BACKOFF_BASE=1.0)
        polite = Arxiv(mw.crawler.settings).politeness
        request = service_request(service="arxiv", politeness=polite)
        return await download(mw, request, [_refused(), 503, 200], loop.time)

    # The backoff (1-2 s, then 2-3 s) is shorter than the delay between starts (3 s), and
    # than the pause after the 503 (3 s, plus 3 s of slow-down).
    assert _gaps(run(scenario()).starts) == [3.0, 6.0]


# -- answers that only look fine -----------------------------------------------------------------
def _check(request: Request, response: Response) -> dict[str, str]:
    if response.body.startswith(b"<html"):
        raise AnswerUnusable("answer is an HTML page")
    if response.body == b"surprise":
        raise KeyError("entry")
    return {"parsed": response.text}


def test_an_unusable_200_is_retried_and_a_good_one_parsed_once() -> None:
    async def scenario() -> tuple[Trace, BackoffRetryMiddleware]:
        mw, loop = _setup(RETRY_BACKOFF_BASE=0.1)
        answers: list[Answer] = [
            (200, {}, b"<html>maintenance</html>"), (200, {}, b"surprise"), 200,
        ]  # fmt: skip
        request = service_request(check=_check)
        return await download(mw, request, answers, loop.time), mw

    trace, mw = run(scenario())
    assert len(trace.starts) == 3
    assert [r.meta.get("retry_reason") for r in trace.requests] == [
        None, "answer is an HTML page", "unexpected answer (KeyError)",
    ]  # fmt: skip
    assert isinstance(trace.result, Response)
    assert trace.result.meta[PARSED] == {"parsed": "ok"}
    assert _stat(mw, "retry/svc/reason_count/answer is an HTML page") == 1
    assert _stat(mw, "retry/svc/reason_count/unexpected answer") == 1


def test_no_parsed_answer_survives_from_an_earlier_attempt() -> None:
    async def scenario() -> Trace:
        mw, loop = _setup(RETRY_BACKOFF_BASE=0.1)
        stale = service_request(check=_check)
        stale.meta[PARSED] = {"parsed": "from another attempt"}
        return await download(mw, stale, [404], loop.time)

    trace = run(scenario())
    assert isinstance(trace.result, Response) and PARSED not in trace.result.meta


# -- redirects -----------------------------------------------------------------------------------
def _redirect(
    request: Request, status: int, location: str | None
) -> tuple[Request | Response | Exception, BackoffRetryMiddleware]:
    async def scenario() -> tuple[Request | Response | Exception, BackoffRetryMiddleware]:
        mw, _ = _setup()
        await mw.process_request(request)
        headers = {"Location": location} if location is not None else {}
        try:
            outcome: Request | Response | Exception = await mw.process_response(
                request, respond(request, (status, headers))
            )
        except IgnoreRequest as exc:
            outcome = exc
        assert mw.limits["svc"].in_flight == 0
        return outcome, mw

    return run(scenario())


@pytest.mark.parametrize(
    ("status", "method", "location", "url", "new_method"),
    [
        (301, "GET", "/moved?id=1", "http://svc.test/moved?id=1", "GET"),
        (302, "GET", "http://svc.test/x", "http://svc.test/x", "GET"),
        (303, "POST", "/answer", "http://svc.test/answer", "GET"),
        (302, "POST", "/answer", "http://svc.test/answer", "GET"),
        (307, "POST", "/answer", "http://svc.test/answer", "POST"),
    ],
)
def test_a_redirect_to_the_same_host_is_followed(
    status: int, method: str, location: str, url: str, new_method: str
) -> None:
    request = service_request(url="http://svc.test/q?id=1", method=method)
    followed, _ = _redirect(request, status, location)
    assert isinstance(followed, Request)
    assert (followed.url, followed.method, followed.meta["redirect_times"]) == (url, new_method, 1)
    assert followed.dont_filter and followed.meta["service"] == "svc"


@pytest.mark.parametrize("location", ["http://evil.test/q", "//evil.test/q", "", None])
def test_a_redirect_elsewhere_is_refused(location: str | None) -> None:
    refused, mw = _redirect(service_request(), 302, location)
    assert isinstance(refused, IgnoreRequest)
    assert "redirect to another host refused" in str(refused)
    assert _stat(mw, "service/svc/redirect_refused") == 1


def test_redirects_are_followed_three_times_at_most() -> None:
    refused, _ = _redirect(service_request(redirect_times=3), 302, "/again")
    assert isinstance(refused, IgnoreRequest) and "more than 3 redirects" in str(refused)


def test_a_followed_redirect_gets_retries_of_its_own() -> None:
    """The target is another resource (OpenAlex's merged work): the failures before the 301
    must not use up its retries. Found in the chaos test once a cut 301 really was cut."""

    async def scenario() -> tuple[Response | Exception | None, list[str]]:
        mw, loop = _setup(RETRY_TIMES=4, RETRY_BACKOFF_BASE=0.01)
        answers: list[Answer] = [503, 503, 503, (301, {"Location": "/works/W1"}), 503, 503, 503]
        answers.append(200)
        trace = await download(mw, service_request(url="http://svc.test/works/doi:1"), answers,
                               loop.time)  # fmt: skip
        return trace.result, [r.url for r in trace.requests]

    result, urls = run(scenario())
    assert isinstance(result, Response) and result.status == 200
    assert urls == ["http://svc.test/works/doi:1"] * 4 + ["http://svc.test/works/W1"] * 4


# -- the per-service limit -----------------------------------------------------------------------
ONE = Politeness(concurrency=1)


def test_the_permit_is_released_on_every_path() -> None:
    async def scenario() -> list[tuple[str, int, int]]:
        mw, _ = _setup(RETRY_BACKOFF_BASE=0.1)
        seen = []

        async def path(name: str, finish: Any) -> None:
            request = service_request(url=f"http://svc.test/{name}", politeness=ONE)
            await mw.process_request(request)
            during = mw.limits["svc"].in_flight
            with contextlib.suppress(IgnoreRequest):
                await finish(request)
            seen.append((name, during, mw.limits["svc"].in_flight))

        await path("answer", lambda r: mw.process_response(r, respond(r, 200)))
        await path("retried", lambda r: mw.process_response(r, respond(r, 503)))
        await path("failure", lambda r: mw.process_exception(r, ValueError("bug")))
        await path("retried failure", lambda r: mw.process_exception(r, _refused()))
        await path("dropped", lambda r: mw.process_exception(r, IgnoreRequest("x")))
        await path("redirect refused", lambda r: mw.process_response(r, respond(r, (302, {}))))
        return seen

    for name, during, after in run(scenario()):
        assert (name, during, after) == (name, 1, 0)


def test_a_request_in_backoff_holds_no_permit() -> None:
    async def scenario() -> tuple[Trace, float]:
        mw, loop = _setup(RETRY_BACKOFF_BASE=5.0)
        first = asyncio.create_task(
            download(mw, service_request(politeness=ONE), [503, 200], loop.time)
        )
        await ticks()  # the first got its 503 at 0 and waits 5-10 s before its retry
        other = service_request(url="http://svc.test/2", politeness=ONE)
        await mw.process_request(other)
        other_started = loop.time()
        await mw.process_response(other, respond(other, 200))
        return await first, other_started

    trace, other_started = run(scenario())
    assert other_started == 0.0
    assert 5.0 <= trace.starts[1] <= 10.0


def test_releasing_twice_frees_one_place_only() -> None:
    async def scenario() -> tuple[int, bool]:
        mw, _ = _setup()
        first = service_request(politeness=ONE)
        await mw.process_request(first)
        second = asyncio.create_task(mw.process_request(service_request(politeness=ONE)))
        await ticks()
        await mw.process_exception(first, ValueError("x"))
        await ticks()
        await mw.process_exception(first, ValueError("reported twice"))
        third = asyncio.create_task(mw.process_request(service_request(politeness=ONE)))
        await ticks()
        done = third.done()
        third.cancel()
        assert second.done()
        return mw.limits["svc"].in_flight, done

    in_flight, third_started = run(scenario())
    assert (in_flight, third_started) == (1, False)


# -- stopping ------------------------------------------------------------------------------------
def test_every_wait_ends_at_once_when_the_crawl_stops() -> None:
    async def scenario() -> dict[str, tuple[float, str]]:
        mw, loop = _setup(RETRY_BACKOFF_BASE=500.0)
        ended: dict[str, tuple[float, str]] = {}

        async def watch(name: str, waiting: Any) -> None:
            try:
                await waiting
                ended[name] = (loop.time(), "went on")
            except IgnoreRequest:
                ended[name] = (loop.time(), "dropped")

        one = Politeness(concurrency=1)
        in_flight = service_request(url="http://p.test/1", service="permit", politeness=one)
        await mw.process_request(in_flight)  # holds the only place of service "permit"
        throttled = service_request(url="http://svc.test/1")

        async def gated() -> None:
            await asyncio.sleep(0.5)  # after the 429 below: held until 500
            await mw.process_request(service_request())

        waits = {
            "backoff": download(mw, service_request(url="http://b.test/"), [503], loop.time),
            "retry-after": download(mw, throttled, [(429, {"Retry-After": "500"})], loop.time),
            "gate": gated(),
            "permit": mw.process_request(service_request(service="permit", politeness=one)),
        }
        tasks = [asyncio.create_task(watch(name, w)) for name, w in waits.items()]
        await asyncio.sleep(1)
        assert not ended, ended  # all of them are still waiting at t=1
        outcome_of(mw.crawler).stopping.set()
        await ticks()
        for task in tasks:
            task.cancel()
        assert mw.limits["permit"].in_flight == 1  # only the request that was in flight
        assert mw.limits["svc"].in_flight == 0
        with pytest.raises(IgnoreRequest, match="stopping"):
            await mw.process_request(service_request(url="http://svc.test/new"))
        return ended

    ended = run(scenario())
    assert ended == {
        name: (1.0, "dropped") for name in ("backoff", "retry-after", "gate", "permit")
    }
