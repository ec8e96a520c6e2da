"""Per-service gates: the earliest start (Retry-After, politeness hold), an adaptive extra pause
after throttling, and how many requests may be in flight.

Scrapy's AutoThrottle adapts a slot's *delay* towards a target concurrency from latency alone;
it neither reacts to 429/503 nor probes concurrency upward, which is what the tweet services
need (issue 14). :class:`ConcurrencyLimit` is the small limiter that does.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque


class ConcurrencyLimit:
    """At most ``limit`` requests in flight; the limit adapts between 1 and ``cap``.

    Additive increase (+1 per ``limit`` clean answers) while answers stay fast. A throttled
    answer (429/503) shows where the service's limit is: the limit drops at once to one below
    the level that was refused and stays under that ceiling; a second throttle soon after halves
    it (the service limits by rate, not by concurrency). Above the ceiling it probes again only
    after a clean stretch that doubles with every probe that is refused, so a service that
    refuses more than N at once sees a handful of refusals in a whole backfill, not one every
    few dozen answers as plain AIMD would. Latency climbing well above the fastest seen cuts
    gently. Cuts happen at most once per round trip, so one burst of 429s counts once.
    """

    PROBE_AFTER = 100  # clean answers at the ceiling before the first probe above it

    def __init__(self, start: int, cap: int) -> None:
        self.cap = max(1, cap)
        self.limit = float(min(max(1, start), self.cap))
        self.adaptive = cap > start
        self.in_flight = 0
        self.peak = 0
        self.throttled = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._base_latency: float | None = None
        self._last_cut = -1e9
        self.ceiling: int | None = None  # learned from throttling: the most that is accepted
        self._probe_after = self.PROBE_AFTER
        self._clean_at_ceiling = 0

    async def acquire(self) -> None:
        while self.in_flight >= int(self.limit):
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif waiter.done() and not waiter.cancelled():
                    self._wake()  # woken, then cancelled before taking the place: pass it on
                raise
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)

    def release(self) -> None:
        self.in_flight = max(0, self.in_flight - 1)
        self._wake()

    def _wake(self) -> None:
        free = int(self.limit) - self.in_flight
        while free > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                free -= 1

    def answered(self, latency: float, throttled: bool, now: float | None = None) -> None:
        """Feedback from one attempt: its latency (s) and whether it was throttled."""
        now = time.monotonic() if now is None else now
        if throttled:
            self.throttled += 1
        if not self.adaptive:
            return
        base = self._base_latency
        self._base_latency = latency if base is None else min(latency, base * 1.02)
        window = max(latency, 0.05)
        if throttled:
            self._throttled(now, window)
        elif base is not None and latency > 3 * base and latency - base > 0.05:
            if self._may_cut(now, window):
                self.limit = max(1.0, self.limit * 0.9)
        else:
            self._grow()

    def _may_cut(self, now: float, window: float) -> bool:
        if now - self._last_cut < window:
            return False
        self._last_cut = now
        return True

    def _throttled(self, now: float, window: float) -> None:
        recent = now - self._last_cut < 4 * window
        if not self._may_cut(now, window):
            return
        refused = int(self.limit)
        if recent:  # throttled again right after a cut: the limit is a rate, back off hard
            self.limit = max(1.0, self.limit / 2)
        else:
            self.limit = float(max(1, refused - 1))
        if self.ceiling is not None and refused >= self.ceiling:
            self._probe_after *= 2  # a probe above the ceiling was refused: probe less often
        self.ceiling = int(self.limit)
        self._clean_at_ceiling = 0

    def _grow(self) -> None:
        top = float(self.cap if self.ceiling is None else min(self.cap, self.ceiling))
        if self.limit < top:
            self.limit = min(top, self.limit + 1 / self.limit)
        elif self.ceiling is not None and self.ceiling < self.cap:
            self._clean_at_ceiling += 1
            if self._clean_at_ceiling >= self._probe_after:
                self.ceiling += 1  # probe one above what was refused before
                self._clean_at_ceiling = 0
        self._wake()


class ServiceGate:
    """Earliest start time per service, and the adaptive extra pause after throttling."""

    def __init__(self) -> None:
        self.not_before: dict[str, float] = {}
        self.extra: dict[str, float] = {}

    def hold_until(self, service: str, when: float) -> None:
        self.not_before[service] = max(self.not_before.get(service, 0.0), when)

    def slow_down(self, service: str, base: float, cap: float) -> None:
        """Double the extra pause (starting at ``base``), up to ``cap``."""
        self.extra[service] = min(cap, max(base, self.extra.get(service, 0.0) * 2))

    def recover(self, service: str) -> None:
        extra = self.extra.get(service, 0.0) / 2
        self.extra[service] = extra if extra >= 0.05 else 0.0

    def wait_for(self, service: str, now: float) -> float:
        return max(0.0, self.not_before.get(service, 0.0) - now)
