"""The per-service gate and the adaptive concurrency limit, alone."""

from __future__ import annotations

import asyncio

import pytest

from crawler.downloader.gate import ConcurrencyLimit, ServiceGate
from tests.unit.vtime import run, ticks


# -- ConcurrencyLimit: AIMD ----------------------------------------------------------------------
def test_additive_increase_one_place_per_limit_clean_answers_up_to_the_cap() -> None:
    limit = ConcurrencyLimit(start=4, cap=6)
    for n in range(4):
        limit.answered(latency=0.1, throttled=False, now=float(n))
    assert 4.9 < limit.limit < 5.0  # about +1 after `limit` answers
    for n in range(4, 40):
        limit.answered(latency=0.1, throttled=False, now=float(n))
    assert limit.limit == 6.0


def test_a_throttled_answer_sets_a_ceiling_below_the_refused_level_once_per_round_trip() -> None:
    limit = ConcurrencyLimit(start=8, cap=16)
    limit.answered(latency=0.2, throttled=True, now=100.0)
    assert (limit.limit, limit.ceiling) == (7.0, 7)  # one below the 8 that were refused
    limit.answered(latency=0.2, throttled=True, now=100.1)  # the same burst of 429s
    assert limit.limit == 7.0
    limit.answered(latency=0.2, throttled=True, now=100.5)  # soon after: a rate limit
    assert (limit.limit, limit.ceiling) == (3.5, 3)
    limit.answered(latency=0.2, throttled=True, now=200.0)  # long after: one below again
    assert (limit.limit, limit.ceiling) == (2.0, 2)
    assert limit.throttled == 4


def _clean_up_to(limit: ConcurrencyLimit, level: int, now: float = 0.0) -> None:
    for n in range(1, level + 1):
        limit.answered(latency=0.01, throttled=False, now=now + n / 1000, level=n)


def test_a_429_sets_the_ceiling_from_the_level_its_request_went_out_at() -> None:
    # A loaded machine reads answers in bursts: clean answers read before the 429 raised the
    # limit to 11, but the refused request went out as the 9th. Taken from the limit, the
    # ceiling was 10, refused again, then 9: one step down per burst, refusals each time.
    limit = ConcurrencyLimit(start=4, cap=16)
    _clean_up_to(limit, 8)
    limit.limit = 11.0
    limit.answered(latency=0.01, throttled=True, now=10.0, level=9)
    assert (limit.limit, limit.ceiling) == (8.0, 8)
    limit.answered(latency=0.01, throttled=True, now=10.001, level=10)  # the same burst
    limit.answered(latency=0.01, throttled=True, now=10.002, level=11)
    assert (limit.limit, limit.ceiling) == (8.0, 8)  # higher levels say nothing new


def test_a_429_of_the_same_burst_at_a_lower_refused_level_lowers_the_ceiling_once() -> None:
    limit = ConcurrencyLimit(start=4, cap=16)
    _clean_up_to(limit, 8)
    limit.limit = 11.0
    limit.answered(latency=0.01, throttled=True, now=10.0, level=11)  # read first
    assert (limit.limit, limit.ceiling) == (10.0, 10)
    limit.answered(latency=0.01, throttled=True, now=10.001, level=9)  # went out 9th
    assert (limit.limit, limit.ceiling) == (8.0, 8)  # one below it, not halved
    assert limit.throttled == 2


def test_a_429_at_a_level_answered_cleanly_falls_from_the_limit_as_before() -> None:
    # A lone 503 that went out when one place was held says nothing about concurrency: the
    # ceiling is one below the limit, not 0 (it took 734 answers to climb back from 1).
    limit = ConcurrencyLimit(start=8, cap=16)
    _clean_up_to(limit, 8)
    limit.answered(latency=0.01, throttled=True, now=10.0, level=1)
    assert (limit.limit, limit.ceiling) == (7.0, 7)
    # A rate limit's burst at levels all answered cleanly before: counted once, not clamped.
    for n, level in enumerate((7, 5, 3, 2, 1)):
        limit.answered(latency=0.01, throttled=True, now=10.001 + n / 1000, level=level)
    assert (limit.limit, limit.ceiling) == (7.0, 7)


def test_a_429_before_any_clean_answer_falls_from_the_limit_as_before() -> None:
    limit = ConcurrencyLimit(start=4, cap=16)  # a service refusing everything as the run starts
    limit.answered(latency=0.01, throttled=True, now=0.0, level=1)
    limit.answered(latency=0.01, throttled=True, now=0.001, level=2)  # the same burst
    assert (limit.limit, limit.ceiling) == (3.0, 3)


def test_believed_levels_never_take_the_ceiling_deeper_than_a_halving() -> None:
    # One clean answer at level 1, then 429s read at 4, 3, 2: each believed (above the clean
    # peak), each one step down. Unbounded that was a ceiling of 1 (734 answers to climb to 8).
    limit = ConcurrencyLimit(start=4, cap=16)
    _clean_up_to(limit, 1)
    for n, level in enumerate((4, 3, 2)):
        limit.answered(latency=0.01, throttled=True, now=10.0 + n / 1000, level=level)
    assert (limit.limit, limit.ceiling) == (2.0, 2)
    # Grown to 16 while 3 were ever in flight, then a burst at 16 down to 4: half of 16 at most.
    limit = ConcurrencyLimit(start=4, cap=16)
    _clean_up_to(limit, 3)
    limit.limit = 16.0
    for n, level in enumerate(range(16, 3, -1)):
        limit.answered(latency=0.01, throttled=True, now=10.0 + n / 1000, level=level)
    assert (limit.limit, limit.ceiling) == (8.0, 8)


def test_probes_above_the_ceiling_after_a_clean_stretch_that_doubles_when_refused() -> None:
    limit = ConcurrencyLimit(start=9, cap=16)
    limit.answered(latency=0.1, throttled=True, now=0.0)  # 9 refused: ceiling 8
    now = 100.0
    for _ in range(ConcurrencyLimit.PROBE_AFTER - 1):
        now += 1
        limit.answered(latency=0.1, throttled=False, now=now)
    assert (limit.limit, limit.ceiling) == (8.0, 8)  # no probe yet
    limit.answered(latency=0.1, throttled=False, now=now + 1)
    assert limit.ceiling == 9  # probes one above
    for _ in range(20):
        now += 1
        limit.answered(latency=0.1, throttled=False, now=now)
    assert int(limit.limit) == 9
    limit.answered(latency=0.1, throttled=True, now=now + 1000)  # 9 refused again
    assert (limit.limit, limit.ceiling) == (8.0, 8)
    for _ in range(2 * ConcurrencyLimit.PROBE_AFTER - 1):
        now += 1
        limit.answered(latency=0.1, throttled=False, now=now + 1000)
    assert limit.ceiling == 8  # the next probe waits twice as long
    limit.answered(latency=0.1, throttled=False, now=now + 2000)
    assert limit.ceiling == 9


def test_the_limit_never_drops_below_one() -> None:
    limit = ConcurrencyLimit(start=2, cap=8)
    for n in range(10):
        limit.answered(latency=0.1, throttled=True, now=float(n))
    assert limit.limit == 1.0


def test_rising_latency_cuts_gently() -> None:
    limit = ConcurrencyLimit(start=10, cap=16)
    limit.answered(latency=0.1, throttled=False, now=0.0)  # the fastest seen so far
    grown = limit.limit
    limit.answered(latency=0.5, throttled=False, now=1.0)  # 5x the fastest, 0.4 s more
    assert limit.limit == pytest.approx(grown * 0.9)
    limit.answered(latency=0.25, throttled=False, now=2.0)  # under 3x: still growing
    assert limit.limit > grown * 0.9


def test_small_absolute_latency_changes_do_not_cut() -> None:
    limit = ConcurrencyLimit(start=4, cap=16)
    limit.answered(latency=0.01, throttled=False, now=0.0)
    before = limit.limit
    limit.answered(latency=0.05, throttled=False, now=1.0)  # 5x, but only 40 ms more
    assert limit.limit > before


def test_a_fixed_limit_does_not_adapt_but_counts_throttling() -> None:
    limit = ConcurrencyLimit(start=1, cap=1)
    for n in range(5):
        limit.answered(latency=0.1, throttled=n % 2 == 0, now=float(n))
    assert (limit.limit, limit.adaptive, limit.throttled) == (1.0, False, 3)


# -- ConcurrencyLimit: waiting -------------------------------------------------------------------
def test_waiters_get_places_in_arrival_order_and_never_more_than_the_limit() -> None:
    async def scenario() -> tuple[list[str], int]:
        limit = ConcurrencyLimit(start=2, cap=2)
        order: list[str] = []

        async def worker(name: str) -> None:
            await limit.acquire()
            order.append(name)

        tasks = [asyncio.create_task(worker(name)) for name in "abcdef"]
        await ticks()
        assert order == ["a", "b"] and limit.in_flight == 2
        for _ in range(4):
            limit.release()
            await ticks()
        await asyncio.gather(*tasks)
        return order, limit.peak

    order, peak = run(scenario())
    assert order == list("abcdef")
    assert peak == 2


def test_a_cancelled_waiter_gives_up_its_turn() -> None:
    async def scenario() -> tuple[bool, bool, int]:
        limit = ConcurrencyLimit(start=1, cap=1)
        await limit.acquire()
        second = asyncio.create_task(limit.acquire())
        third = asyncio.create_task(limit.acquire())
        await ticks()
        second.cancel()
        await ticks()
        limit.release()
        await ticks()
        return second.cancelled(), third.done(), limit.in_flight

    assert run(scenario()) == (True, True, 1)


def test_a_waiter_cancelled_after_being_woken_passes_its_place_on() -> None:
    async def scenario() -> tuple[bool, int]:
        limit = ConcurrencyLimit(start=1, cap=1)
        await limit.acquire()
        second = asyncio.create_task(limit.acquire())
        third = asyncio.create_task(limit.acquire())
        await ticks()
        limit.release()  # wakes the second...
        second.cancel()  # ...which is cancelled before it could take the place
        await ticks()
        done = third.done()
        third.cancel()
        return done, limit.in_flight

    assert run(scenario()) == (True, 1)


# -- ServiceGate ---------------------------------------------------------------------------------
def test_gate_holds_until_the_latest_time_asked() -> None:
    gate = ServiceGate()
    assert gate.wait_for("arxiv", now=10.0) == 0.0
    gate.hold_until("arxiv", 20.0)
    gate.hold_until("arxiv", 15.0)  # an earlier hold never shortens a later one
    assert gate.wait_for("arxiv", now=10.0) == 10.0
    assert gate.wait_for("arxiv", now=25.0) == 0.0
    assert gate.wait_for("oembed", now=10.0) == 0.0


def test_slow_down_doubles_from_its_base_up_to_its_cap_and_recovery_halves_to_nothing() -> None:
    gate = ServiceGate()
    steps = []
    for _ in range(4):
        gate.slow_down("arxiv", base=3.0, cap=10.0)
        steps.append(gate.extra["arxiv"])
    assert steps == [3.0, 6.0, 10.0, 10.0]
    recovered = []
    for _ in range(9):
        gate.recover("arxiv")
        recovered.append(gate.extra["arxiv"])
    assert recovered[:3] == [5.0, 2.5, 1.25]
    assert recovered[-1] == 0.0 and all(e >= 0.05 for e in recovered if e)
