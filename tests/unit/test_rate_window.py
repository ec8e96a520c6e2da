"""The estimate of a fixed rate-limit window (Hugging Face's) when answers arrive out of order.

A server of fixed windows is simulated beside the estimate: requests in flight at once, each
with its own time to the server and back, answers read in whatever order they come, ``t``
rounded up, down or to the nearest second. The politeness rule under test: the server never
counts more requests in a window than its quota, whatever the order and timing.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crawler.downloader.gate import RateBudget

ROUNDINGS: dict[str, Callable[[float], int]] = {
    "up": lambda s: max(1, math.ceil(s)),  # the stand-in's
    "down": math.floor,
    "nearest": lambda s: math.floor(s + 0.5),
}


@dataclass
class FixedWindows:
    """A server counting requests in fixed windows of ``seconds``, the first one starting at
    ``phase``; every answer says ``r`` (left after this one) and ``t`` (rounded)."""

    quota: int
    seconds: int
    phase: float
    rounding: Callable[[float], int]
    used: Counter[int] = field(default_factory=Counter)

    def admit(self, at: float) -> tuple[int, int]:
        number = math.floor((at - self.phase) / self.seconds)
        self.used[number] += 1
        reset = self.phase + (number + 1) * self.seconds
        return max(0, self.quota - self.used[number]), self.rounding(reset - at)

    def reset_after(self, at: float) -> float:
        return self.phase + (math.floor((at - self.phase) / self.seconds) + 1) * self.seconds


def crawl(
    server: FixedWindows, trips: list[tuple[float, float, float]], concurrency: int, reserve: int
) -> int:
    """One request per (wait before it is ready, time to the server, time back): at most
    ``concurrency`` at once, each once it is ready and the estimate allows, as the middleware
    sends them; the number of requests answered."""
    budget = RateBudget()
    events: list[tuple[float, int, str, Any]] = []
    order = itertools.count()
    ready = list(itertools.accumulate(gap for gap, _, _ in trips))
    pending = deque(zip(ready, trips, strict=True))
    in_flight = answered = 0

    def push(at: float, kind: str, what: Any = None) -> None:
        heapq.heappush(events, (at, next(order), kind, what))

    def start_what_may(now: float) -> None:
        nonlocal in_flight
        while in_flight < concurrency and pending:
            wait = max(budget.wait(now, reserve), pending[0][0] - now)
            if wait > 0:
                push(now + wait, "try")
                return
            _, (_, there, back) = pending.popleft()
            in_flight += 1
            push(now + there, "arrive", (budget.started(now), back))

    push(0.0, "try")
    while events:
        now, _, kind, what = heapq.heappop(events)
        if kind == "arrive":
            sent, back = what
            push(now + back, "read", (sent, *server.admit(now)))
        elif kind == "read":
            sent, left, reset_in = what
            in_flight -= 1
            answered += 1
            budget.ended()
            budget.answered(left, float(reset_in), now, sent)
        start_what_may(now)
    return answered


trip = st.floats(0.0, 3.0, allow_nan=False)


@given(
    data=st.data(),
    quota=st.integers(1, 12),
    seconds=st.integers(1, 6),
    rounding=st.sampled_from(sorted(ROUNDINGS)),
    reserve=st.integers(0, 2),
    trips=st.lists(st.tuples(trip, trip, trip), min_size=1, max_size=60),
)
def test_no_window_ever_gets_more_requests_than_its_quota(
    data: st.DataObject,
    quota: int,
    seconds: int,
    rounding: str,
    reserve: int,
    trips: list[tuple[float, float, float]],
) -> None:
    """Any order of answers, any timing: a window never counts more than its quota. (Before a
    first answer nothing is known, and as many requests go as the concurrency allows: the
    property holds for a concurrency up to the quota, as Hugging Face's 4 of 500.)"""
    phase = data.draw(st.floats(0.0, seconds, exclude_max=True), label="phase")
    concurrency = data.draw(st.integers(1, min(quota, 6)), label="concurrency")
    server = FixedWindows(quota, seconds, phase, ROUNDINGS[rounding])
    assert crawl(server, trips, concurrency, reserve) == len(trips)  # and every one went
    assert max(server.used.values()) <= quota, dict(server.used)


@given(
    seconds=st.integers(1, 300),
    at=st.floats(0.0, 1000.0, allow_nan=False),
    there=trip,
    back=trip,
    rounding=st.sampled_from(sorted(ROUNDINGS)),
)
def test_a_spent_window_is_held_past_its_real_reset_and_not_much_longer(
    seconds: int, at: float, there: float, back: float, rounding: str
) -> None:
    """Whichever way the server rounds ``t``, the hold outlasts the real reset, by at most the
    2 s of rounding either way plus the answer's time on its way back."""
    server = FixedWindows(1, seconds, 0.0, ROUNDINGS[rounding])
    produced = at + there
    left, reset_in = server.admit(produced)
    budget = RateBudget()
    sent = budget.started(at)
    budget.ended()
    read = produced + back
    budget.answered(left, float(reset_in), read, sent)
    assert left == 0
    real = server.reset_after(produced)
    if read >= real:  # read after the reset: no hold would be polite, any is allowed
        return
    held_until = read + budget.wait(read, reserve=0)
    assert real <= held_until <= real + 2 + back


def test_an_answer_read_late_never_raises_what_is_left() -> None:
    """The review's case: a window of 20; three answers saying "1 s" (r=18, 17, 16), then one
    produced earlier but read last saying "2 s" (r=19). It opened a fresh window and counted 19
    left where 16 remain: enough to send three requests past the window."""
    budget = RateBudget()
    budget.answered(18, 1.0, now=1.2)
    budget.answered(17, 1.0, now=1.2)
    budget.answered(16, 1.0, now=1.2)
    budget.answered(19, 2.0, now=1.3)
    assert budget.remaining == 16


def test_an_answer_counts_none_of_the_requests_sent_after_the_server_answered() -> None:
    """Four requests in flight, read out of order. The first one's answer (r=19, produced when
    it got there) comes back last: the three others were sent after it and it counts none of
    them, though none is on the wire any more when it is read. Each of the three may miss the
    other two (they were on their way together)."""
    budget = RateBudget()
    first = budget.started(0.5)
    others = [budget.started(1.1) for _ in range(3)]
    for left, sent in zip((18, 17, 16), others, strict=True):
        budget.ended()
        budget.answered(left, 1.0, now=1.15, sent=sent)
    assert budget.remaining == 13  # 16 - 3: the others' own doubts about each other
    budget.ended()
    budget.answered(19, 2.0, now=1.2, sent=first)
    assert (budget.remaining, budget.on_wire) == (13, 0)  # 19 - 3 would do; it is not raised
    # Held until the latest reset either answer allows (as two windows, they would end by then).
    assert budget.wait(1.2, reserve=13) == pytest.approx(1.2 + 2 + 1 - 1.2)


def test_an_answer_from_a_window_already_over_is_ignored() -> None:
    """Sent before the new window's first answer came back and naming an earlier reset: it
    was produced in the window before, which is over; its ``r=0`` must not hold anything."""
    budget = RateBudget()
    late = budget.started(99.0)
    fresh = budget.started(99.9)
    budget.ended()
    budget.answered(498, 299.0, now=100.0, sent=fresh)
    budget.ended()
    budget.answered(0, 1.0, now=100.2, sent=late)
    # 498 less the late one, which the fresh answer may not count (it did: the window before).
    assert (budget.remaining, budget.wait(100.2, reserve=0)) == (497, 0.0)


def test_an_answer_from_a_later_window_ends_the_spent_one_at_once() -> None:
    """A request on its way across the reset comes back from the next window: the spent one
    is over, whatever margin its reset had."""
    budget = RateBudget()
    crossing = budget.started(9.5)
    spending = budget.started(9.6)
    budget.ended()
    budget.answered(0, 1.0, now=9.7, sent=spending)
    assert budget.wait(9.7, reserve=0) == pytest.approx(1.0 + 1.0)  # t plus the margin
    budget.ended()
    budget.answered(18, 4.0, now=10.2, sent=crossing)  # produced after the reset at 10
    assert (budget.remaining, budget.wait(10.2, reserve=0)) == (18 + 1 + 0 - 2, 0.0)
