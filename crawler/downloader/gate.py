"""Per-service gates: the earliest start (Retry-After, politeness hold), an adaptive extra pause
after throttling, and how many requests may be in flight.

Scrapy's AutoThrottle adapts a slot's *delay* towards a target concurrency from latency alone;
it neither reacts to 429/503 nor probes concurrency upward, which is what the tweet services
need (issue 14). :class:`ConcurrencyLimit` is the small AIMD limiter that does.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque


class ConcurrencyLimit:
    """At most ``limit`` requests in flight; the limit adapts between 1 and ``cap``.

    Additive increase (+1 per ``limit`` clean answers) while answers stay fast; multiplicative
    decrease (halve) on a throttled answer and a gentle cut when latency climbs well above the
    fastest seen, at most once per round trip so one burst of 429s counts once.
    """

    def __init__(self, start: int, cap: int) -> None:
        self.cap = max(1, cap)
        self.limit = float(min(max(1, start), self.cap))
        self.adaptive = cap > start
        self.in_flight = 0
        self.peak = 0
        self.throttled = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._base_latency: float | None = None
        self._last_cut = 0.0

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
            self._cut(0.5, now, window)
        elif base is not None and latency > 3 * base and latency - base > 0.05:
            self._cut(0.9, now, window)
        else:
            self.limit = min(float(self.cap), self.limit + 1 / self.limit)
            self._wake()

    def _cut(self, factor: float, now: float, window: float) -> None:
        if now - self._last_cut < window:
            return
        self._last_cut = now
        self.limit = max(1.0, self.limit * factor)


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
