"""Pacing by RateLimit headers (IETF draft, as Hugging Face sends them), on a virtual clock."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response

from crawler.downloader.contract import Politeness
from crawler.downloader.gate import RateBudget, parse_ratelimit, parse_ratelimit_policy
from crawler.downloader.middleware import BackoffRetryMiddleware
from tests.unit.helpers import (
    Trace,
    download,
    middleware,
    outcome_of,
    respond,
    service_request,
    unit_crawler,
)
from tests.unit.vtime import run, ticks

ONE = Politeness(concurrency=1)


def _window(left: int, reset: int) -> dict[str, str]:
    return {
        "RateLimit": f'"api";r={left};t={reset}',
        "RateLimit-Policy": '"fixed window";"api";q=500;w=300',
    }


def _setup(**settings: Any) -> tuple[BackoffRetryMiddleware, asyncio.AbstractEventLoop]:
    loop = asyncio.get_running_loop()
    return middleware(unit_crawler(**settings), loop.time), loop


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('"api";r=487;t=212', (487, 212.0)),
        ('"api";r=0;t=5', (0, 5.0)),
        ('"burst";r=9;t=1, "day";r=3;t=40000', (3, 40000.0)),  # the tightest policy
        ('"burst";r=0;t=10, "api";r=0;t=200', (0, 200.0)),  # both spent: the later reset
        ('"api";r=0;t=200, "burst";r=0;t=10', (0, 200.0)),
        ('"burst";r=0;t=10, "day";r=5;t=900', (0, 10.0)),  # only the burst is spent
        ('"api";t=212;r=487', (487, 212.0)),
        ('"api";r=487', None),
        ('"api";r=-1;t=5', None),
        ('"api";r=1.5;t=5', None),
        ("garbage", None),
        ("", None),
    ],
)
def test_ratelimit_header_parsing(header: str, expected: tuple[int, float] | None) -> None:
    assert parse_ratelimit(header.encode()) == expected


def test_earlier_drafts_headers_are_read_too() -> None:
    assert parse_ratelimit(None, b"12", b"30") == (12, 30.0)
    assert parse_ratelimit(None, b"12", None) is None
    assert parse_ratelimit(b'"api";r=1;t=2', b"12", b"30") == (1, 2.0)  # the current one wins


def test_spent_policies_within_the_reserve_wait_for_the_last_reset() -> None:
    header = b'"burst";r=2;t=10, "api";r=3;t=200, "day";r=400;t=9000'
    assert parse_ratelimit(header) == (2, 10.0)  # nothing spent: the tightest
    assert parse_ratelimit(header, reserve=3) == (3, 200.0)  # two spent: the later reset


def test_a_late_answer_from_the_window_before_holds_only_until_its_own_reset() -> None:
    """A late ``r=10;t=0`` after the new window's ``r=499;t=300`` must not hold ~489 allowed
    requests until the new window's reset (5 minutes): its count holds with its own reset."""
    budget = RateBudget()
    budget.answered(499, 300.0, now=100.0)
    budget.answered(10, 0.0, now=100.2)
    for _ in range(10):
        budget.started(100.2)
        budget.ended()
    assert budget.wait(100.3, reserve=0) == pytest.approx(0.9)  # t=0 plus the 1 s margin
    assert budget.wait(101.2, reserve=0) == 0.0
    assert _state(budget) == (489, 401.0)  # what the long window said, less the ten


def test_policy_parsing() -> None:
    assert parse_ratelimit_policy(b'"fixed window";"api";q=500;w=300') == (500, 300.0)
    # a list: the slowest pace (0.6 s per request, not 0.1)
    assert parse_ratelimit_policy(b'"a";q=10;w=1, "b";q=500;w=300') == (500, 300.0)
    assert parse_ratelimit_policy(b'"a";q=0;w=300') is None
    assert parse_ratelimit_policy(None) is None


def test_a_budget_takes_requests_on_the_wire_off_and_keeps_the_smallest_estimate() -> None:
    budget = RateBudget()
    for _ in range(3):
        budget.started(0.0)
    budget.ended()
    budget.answered(10, 5.0, now=0.0)  # two others on the wire may not be counted yet
    assert budget.remaining == 8
    budget.answered(12, 5.0, now=0.1)  # an older answer, arriving late: not believed
    assert budget.remaining == 8
    budget.started(1.0)
    assert (budget.remaining, budget.wait(1.0, reserve=0)) == (7, 0.0)
    budget.answered(100, 300.0, now=2.0)  # a reset clearly later: a new window
    assert _state(budget) == (97, 303.0)  # t plus the margin


def test_a_spent_window_holds_until_its_reset_then_is_unknown() -> None:
    budget = RateBudget()
    budget.answered(3, 10.0, now=0.0)
    assert budget.wait(1.0, reserve=3) == 10.0  # the reserve is reached; t plus 1 s margin
    assert budget.wait(1.0, reserve=2) == 0.0
    budget.started(1.0)
    assert budget.wait(1.0, reserve=2) == 10.0
    assert budget.wait(10.5, reserve=2) == 0.5
    assert budget.wait(11.0, reserve=2) == 0.0 and budget.remaining is None


def test_no_request_starts_once_the_window_is_spent_until_it_resets() -> None:
    async def scenario() -> tuple[list[float], BackoffRetryMiddleware]:
        mw, loop = _setup()
        starts = []
        for n, left in enumerate([2, 1, 0, 499]):
            trace = await download(
                mw, service_request(url=f"http://hf.test/{n}", politeness=ONE),
                [(200, _window(left, 60 - int(loop.time())))], loop.time,
            )  # fmt: skip
            starts += trace.starts
        return starts, mw

    starts, mw = run(scenario())
    assert starts == [0.0, 0.0, 0.0, 61.0]  # the fourth waits for the window the third spent (+1 s)
    assert mw.stats.get_value("retry/svc/gated") == 1
    assert mw.stats.get_value("ratelimit/svc/quota") == 500
    assert mw.stats.get_value("ratelimit/svc/window") == 300.0


def test_the_reserve_setting_keeps_requests_of_the_window_unused() -> None:
    async def scenario() -> list[float]:
        mw, loop = _setup(RATELIMIT_RESERVE=5)
        first = await download(
            mw, service_request(politeness=ONE), [(200, _window(5, 30))], loop.time
        )
        second = await download(mw, service_request(politeness=ONE), [200], loop.time)
        return first.starts + second.starts

    assert run(scenario()) == [0.0, 31.0]


def test_requests_in_flight_count_against_the_window() -> None:
    """Four at once, two left in the window: the two answers' peers may use them, so the
    next requests wait for the reset instead of trusting ``r``."""

    async def scenario() -> list[float]:
        mw, loop = _setup()
        four = Politeness(concurrency=4)
        requests = [service_request(url=f"http://hf.test/{n}", politeness=four) for n in range(4)]
        for request in requests:
            await mw.process_request(request)
        await mw.process_response(requests[0], respond(requests[0], (200, _window(2, 20))))
        nxt = service_request(url="http://hf.test/next", politeness=four)
        task = asyncio.create_task(mw.process_request(nxt))
        await ticks()
        waiting = not task.done()
        await task
        return [float(waiting), loop.time()]

    assert run(scenario()) == [1.0, 21.0]  # 2 left - 3 on the wire: spent; t + 1 s margin


@pytest.mark.parametrize(
    ("headers", "waited"),
    [
        (_window(0, 42), 42.0),  # the reset the header names
        (_window(0, 42) | {"Retry-After": "7"}, 7.0),  # Retry-After, when present, wins
    ],
)
def test_a_429_waits_the_window_and_is_retried(headers: dict[str, str], waited: float) -> None:
    async def scenario() -> tuple[Trace, BackoffRetryMiddleware]:
        mw, loop = _setup(RETRY_BACKOFF_BASE=0.01)
        # The reset (42 s) also holds the service when Retry-After says 7: the window is spent.
        trace = await download(
            mw, service_request(politeness=ONE), [(429, headers), (200, _window(499, 300))],
            loop.time,
        )  # fmt: skip
        return trace, mw

    trace, mw = run(scenario())
    assert isinstance(trace.result, Response) and trace.result.status == 200
    assert trace.starts == [0.0, pytest.approx(43.0)]  # t plus the 1 s margin
    if "Retry-After" not in headers:
        assert mw.stats.get_value("service/svc/window_waits") == 1
    assert waited <= trace.starts[1]


def test_a_stop_ends_a_window_wait_at_once() -> None:
    async def scenario() -> tuple[float, str]:
        mw, loop = _setup()
        await download(mw, service_request(politeness=ONE), [(200, _window(0, 300))], loop.time)
        waiting = asyncio.create_task(mw.process_request(service_request(politeness=ONE)))
        await asyncio.sleep(5)
        outcome_of(mw.crawler).stopping.set()
        try:
            await waiting
        except IgnoreRequest as exc:
            return loop.time(), str(exc)
        return loop.time(), "went on"

    assert run(scenario()) == (5.0, "the crawl is stopping")


def test_a_window_wait_of_minutes_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        mw, loop = _setup()
        await download(mw, service_request(politeness=Politeness(concurrency=2)),
                       [(200, _window(0, 212))], loop.time)  # fmt: skip
        two = [
            asyncio.create_task(mw.process_request(service_request(url=f"http://hf.test/{n}")))
            for n in range(2)
        ]
        await asyncio.gather(*two)

    run(scenario())
    lines = [r.getMessage() for r in caplog.records if "rate limit" in r.getMessage()]
    assert lines == ["svc: holding its requests for 213 s (rate limit)"]


def test_two_spent_policies_hold_until_the_later_reset() -> None:
    """Restarting when the burst window resets would meet the spent api window's 429s."""

    async def scenario() -> list[float]:
        mw, loop = _setup()
        spent = {"RateLimit": '"burst";r=0;t=10, "api";r=0;t=200'}
        first = await download(mw, service_request(politeness=ONE), [(200, spent)], loop.time)
        second = await download(mw, service_request(politeness=ONE), [200], loop.time)
        return first.starts + second.starts

    assert run(scenario()) == [0.0, 201.0]


@pytest.mark.parametrize("status", [503, 429])
def test_a_throttled_answer_with_requests_left_backs_off_instead_of_waiting_the_window(
    status: int,
) -> None:
    """Issue 22's hang: Hugging Face puts its window on every answer, a 503 of a passing
    outage too. ``r=483`` says the window is not why: waiting its reset (298 s) stalled the
    whole service; the answer is retried after the ordinary backoff."""

    async def scenario() -> tuple[Trace, BackoffRetryMiddleware]:
        mw, loop = _setup(RETRY_BACKOFF_BASE=0.5, RETRY_BACKOFF_MAX=4)
        trace = await download(
            mw, service_request(politeness=ONE),
            [(status, _window(483, 298)), (200, _window(482, 297))], loop.time,
        )  # fmt: skip
        later = await download(mw, service_request(politeness=ONE), [200], loop.time)
        return Trace(result=trace.result, starts=trace.starts + later.starts), mw

    trace, mw = run(scenario())
    assert isinstance(trace.result, Response) and trace.result.status == 200
    assert len(trace.starts) == 3 and trace.starts[0] == 0.0
    assert 0.5 <= trace.starts[1] <= 1.0  # the first backoff step, with its jitter
    assert trace.starts[2] == trace.starts[1]  # the service was not held either
    assert mw.stats.get_value("service/svc/window_waits") is None


def test_an_answer_naming_an_earlier_reset_is_believed_with_its_own_reset() -> None:
    """Issue 22's second stall: a 429 saying ``r=0;t=1`` (its window ends in a second) after
    answers saying ``t=298`` was merged into "nothing left until 298 s": the smallest estimate
    paired with the latest reset. A count is only true together with the reset it came with."""
    budget = RateBudget()
    budget.answered(483, 298.0, now=0.0)
    budget.answered(0, 1.0, now=0.2)
    assert budget.wait(0.5, reserve=0) == pytest.approx(1.7)  # t plus the 1 s margin
    assert budget.wait(2.2, reserve=0) == 0.0
    assert budget.remaining == 483  # the long window's count stays what it was
    budget.answered(481, 296.0, now=3.0)  # the next answer: the long window again
    assert _state(budget) == (481, 300.0)


def _state(budget: RateBudget) -> tuple[int | None, float]:
    """What is left, and the latest reset any window known allows."""
    return budget.remaining, max((w.latest for w in budget.windows), default=0.0)


def test_a_429_spending_a_short_window_holds_the_service_for_that_window_only() -> None:
    async def scenario() -> list[float]:
        mw, loop = _setup(RETRY_BACKOFF_BASE=0.01)
        first = await download(
            mw, service_request(politeness=ONE), [(200, _window(483, 298))], loop.time
        )
        throttled = await download(
            mw, service_request(url="http://hf.test/2", politeness=ONE),
            [(429, _window(0, 1)), (200, _window(481, 297))], loop.time,
        )  # fmt: skip
        later = await download(mw, service_request(url="http://hf.test/3"), [200], loop.time)
        return first.starts + throttled.starts + later.starts

    starts = run(scenario())
    assert starts[:2] == [0.0, 0.0]
    assert starts[2] == pytest.approx(2.0, abs=0.05)  # the 429's reset (+1 s), not 298 s
    assert starts[3] == starts[2]


def test_a_late_answer_does_not_reopen_the_window_for_the_next_request() -> None:
    """The review's order through the middleware: the first of four answers (r=19, "2 s") is
    read after the three sent later ("1 s", r=18, 17, 16). 16 are left, and a reserve of 16
    means none may go; reading the late answer as a fresh window let the next one start."""

    async def scenario() -> float:
        mw, loop = _setup(RATELIMIT_RESERVE=16)
        four = Politeness(concurrency=4)
        first = service_request(url="http://hf.test/first", politeness=four)
        await asyncio.sleep(0.5)
        await mw.process_request(first)
        await asyncio.sleep(0.6)
        others = [service_request(url=f"http://hf.test/{n}", politeness=four) for n in range(3)]
        for request in others:
            await mw.process_request(request)
        await asyncio.sleep(0.05)
        for request, left in zip(others, (18, 17, 16), strict=True):
            await mw.process_response(request, respond(request, (200, _window(left, 1))))
        await asyncio.sleep(0.05)
        await mw.process_response(first, respond(first, (200, _window(19, 2))))
        await mw.process_request(service_request(url="http://hf.test/next", politeness=four))
        return loop.time()

    # Held until the latest reset either answer allows: 1.2 s + t=2 + the 1 s margin.
    assert run(scenario()) == pytest.approx(4.2)
