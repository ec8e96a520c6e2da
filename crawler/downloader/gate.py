"""Per-service gates: the earliest start (Retry-After, politeness hold), an adaptive extra pause
after throttling, and how many requests may be in flight.

Scrapy's AutoThrottle adapts a slot's *delay* towards a target concurrency from latency alone;
it neither reacts to 429/503 nor probes concurrency upward, which is what the tweet services
need (issue 14). :class:`ConcurrencyLimit` is the small limiter that does.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from dataclasses import dataclass, field


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

    The refused level is the one its request went out at (the places held then, its own
    included) when some answer was clean and that level is above every level answered cleanly
    since the last cut: a loaded machine reads answers in bursts, and clean ones read before the
    429 raise the limit past the level refused. A 429 within a round trip of a cut (of any
    kind) at such a level, at or under the ceiling, lowers the ceiling to one below it. Either
    way never deeper than half the limit at the cut, as a second throttle would. A 429 at a
    level answered cleanly says nothing about concurrency (a rate, a passing fault): the limit
    falls from where it is, as above.
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
        # The most places held as a clean (and fast) answer's request went out, since the last
        # cut lowered it to the ceiling; and half the limit at the last cut (see _throttled).
        self._clean_peak = 0
        self._floor = 1

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

    def answered(
        self, latency: float, throttled: bool, now: float | None = None, level: int | None = None
    ) -> None:
        """Feedback from one attempt: its latency (s), whether it was throttled, and ``level``:
        how many places of the limit were held as it went out, its own included."""
        now = time.monotonic() if now is None else now
        if throttled:
            self.throttled += 1
        if not self.adaptive:
            return
        base = self._base_latency
        self._base_latency = latency if base is None else min(latency, base * 1.02)
        window = max(latency, 0.05)
        if throttled:
            self._throttled(now, window, level)
        elif base is not None and latency > 3 * base and latency - base > 0.05:
            if self._may_cut(now, window):
                self.limit = max(1.0, self.limit * 0.9)
        else:
            self._clean_peak = max(self._clean_peak, level or 0)
            self._grow()

    def _may_cut(self, now: float, window: float) -> bool:
        if now - self._last_cut < window:
            return False
        self._last_cut = now
        return True

    def _throttled(self, now: float, window: float, level: int | None) -> None:
        # The level believed as in the class docstring: a ceiling set from the limit when the
        # 429 was read was refused again, one step down at a time.
        believed = level if level is not None and 0 < self._clean_peak < level else None
        refused = int(self.limit)
        if believed is not None:
            refused = min(refused, max(believed, refused // 2 + 1))  # no deeper than a halving
        recent = now - self._last_cut < 4 * window
        if not self._may_cut(now, window):
            if believed is not None:
                self._within_a_cut(believed)
            return
        self._floor = max(1, int(self.limit) // 2)
        if recent:  # throttled again right after a cut: the limit is a rate, back off hard
            self.limit = max(1.0, self.limit / 2)
        else:
            self.limit = float(max(1, refused - 1))
        if self.ceiling is not None and refused >= self.ceiling:
            self._probe_after *= 2  # a probe above the ceiling was refused: probe less often
        self.ceiling = int(self.limit)
        self._clean_at_ceiling = 0
        self._clean_peak = min(self._clean_peak, self.ceiling)  # what is above was refused

    def _within_a_cut(self, level: int) -> None:
        """A believed refusal within a round trip of the last cut, at a level it kept."""
        if self.ceiling is None or level > self.ceiling:
            return
        self.ceiling = max(level - 1, self._floor)
        self.limit = min(self.limit, float(self.ceiling))
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


_RATELIMIT_ITEM = re.compile(r"(?:^|;)\s*(?P<param>[rt])\s*=\s*(?P<value>\d{1,18})\s*(?=;|$)")


def parse_ratelimit(
    header: bytes | str | None,
    remaining: bytes | str | None = None,
    reset: bytes | str | None = None,
    reserve: int = 0,
) -> tuple[int, float] | None:
    """(requests left, seconds until the window resets) from the IETF draft's headers.

    ``RateLimit: "api";r=487;t=212`` (draft 7 on; a list of policies counts as its tightest),
    or the earlier drafts' ``RateLimit-Remaining: 487`` and ``RateLimit-Reset: 212``. None when
    absent or unreadable: a header nobody foresaw must not stop or speed up a crawl. When
    several policies are spent (``reserve`` or fewer left), the one resetting last counts:
    restarting when the first resets would only meet the others' 429s.
    """
    found: list[tuple[int, float]] = []
    for item in _text(header).split(","):
        params = {m["param"]: int(m["value"]) for m in _RATELIMIT_ITEM.finditer(item)}
        if "r" in params and "t" in params:
            found.append((params["r"], float(params["t"])))
    left, seconds = _text(remaining).strip(), _text(reset).strip()
    if not found and left.isascii() and left.isdigit() and seconds.isascii() and seconds.isdigit():
        found.append((int(left), float(seconds)))
    spent = [policy for policy in found if policy[0] <= reserve]
    if spent:
        return max(spent, key=lambda policy: (policy[1], -policy[0]))
    return min(found) if found else None


_POLICY_ITEM = re.compile(r"(?:^|;)\s*(?P<param>[qw])\s*=\s*(?P<value>\d{1,18})\s*(?=;|$)")


def parse_ratelimit_policy(header: bytes | str | None) -> tuple[int, float] | None:
    """(quota, window seconds) from ``RateLimit-Policy: "fixed window";"api";q=500;w=300``
    (a list of policies counts as its slowest pace); None when absent or unreadable."""
    found: list[tuple[int, float]] = []
    for item in _text(header).split(","):
        params = {m["param"]: int(m["value"]) for m in _POLICY_ITEM.finditer(item)}
        if params.get("q", 0) > 0 and "w" in params:
            found.append((params["q"], float(params["w"])))
    return max(found, key=lambda p: p[1] / p[0]) if found else None


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode("latin-1") if isinstance(value, bytes) else value


ROUNDING = 1.0  # seconds either way: ``t`` is whole seconds, rounded up, down or to the nearest


@dataclass(frozen=True)
class Sent:
    """When a request of the service started, and how many of its requests had ended by then
    (answered, or failed). The server counted those before it could answer this one; any other
    request started so far may be missing from the ``r`` this one brings back."""

    at: float
    settled: int


@dataclass(frozen=True)
class Window:
    """One fixed window as answers describe it: its reset lies in ``[earliest, latest]``, and
    ``base`` minus the requests started so far is what is surely left of it. ``first_read``:
    when the first answer about it came back."""

    earliest: float
    latest: float
    base: int
    first_read: float

    def merged(self, other: Window) -> Window:
        """Two descriptions that may be of one window: the smaller count and every reset either
        allows, so that holding until ``latest`` outlasts both if they were two windows."""
        return Window(
            min(self.earliest, other.earliest),
            max(self.latest, other.latest),
            min(self.base, other.base),
            min(self.first_read, other.first_read),
        )


@dataclass
class RateBudget:
    """What is surely left of a service's fixed window, from its RateLimit headers.

    An answer's ``r`` and ``t`` are facts as of when the server produced it: some time between
    the request's start and its answer's arrival, and answers arrive out of order (requests in
    flight at once). So each answer says: the reset lies between ``start + t - 1`` and
    ``arrival + t + 1`` (``t`` is whole seconds, rounded one way or the other), and at most
    ``r`` minus the requests it may not count are left, minus every request started since. It
    may not count any request of ours but those whose answers came back before it started.

    A window is known by its reset. Answers whose resets may coincide describe one window as far
    as anyone can tell: the smaller count wins and a later-read answer never raises it. One
    whose reset is surely later shows that the earlier window has ended (the server answered
    from the next one). One whose reset is surely earlier comes from a window already over, and
    is ignored, unless it was sent after an answer of the later window came back: then it is
    newer yet names an earlier reset, another limit than the fixed window (issue 22's 429
    ``r=0;t=1``), and it holds the service until its own reset too. Once ``reserve`` or fewer
    are left of a window, no request starts before its latest reset; after that the next
    window is unknown until an answer describes it (requests go, as many as the service's
    concurrency allows: far fewer than any window's quota).
    """

    windows: list[Window] = field(default_factory=list)
    starts: int = 0
    settled: int = 0

    @property
    def on_wire(self) -> int:
        return self.starts - self.settled

    @property
    def remaining(self) -> int | None:
        """What is surely left of the tightest window known; None when none is."""
        return min((w.base - self.starts for w in self.windows), default=None)

    def started(self, now: float) -> Sent:
        sent = Sent(now, self.settled)
        self.starts += 1
        return sent

    def ended(self) -> None:
        self.settled = min(self.starts, self.settled + 1)

    def answered(self, left: int, reset_in: float, now: float, sent: Sent | None = None) -> None:
        """Learn from one answer; ``sent`` is its request's :meth:`started`. Without it the
        answer counts as produced ``now``, its own request not among ours (requests still on
        the wire are in doubt)."""
        if sent is None:
            sent, base = Sent(now, self.settled), left + self.settled
        else:
            base = left + 1 + sent.settled  # its own request is among the starts, and counted
        new = Window(sent.at + reset_in - ROUNDING, now + reset_in + ROUNDING, base, now)
        if any(new.latest < w.earliest and sent.at < w.first_read for w in self.windows):
            return  # from a window before one already described: over, and it says nothing
        kept = [w for w in self.windows if w.latest >= new.earliest]  # the others have ended
        self.windows = _merge_overlapping([*kept, new])

    def wait(self, now: float, reserve: int) -> float:
        """Seconds until a request may start: until the latest reset of every window known to
        have ``reserve`` or fewer left."""
        self.windows = [w for w in self.windows if now < w.latest]  # surely reset: forgotten
        spent = [w.latest - now for w in self.windows if w.base - self.starts <= reserve]
        return max(spent, default=0.0)


def _merge_overlapping(windows: list[Window]) -> list[Window]:
    merged: list[Window] = []
    for window in sorted(windows, key=lambda w: w.earliest):
        if merged and window.earliest <= merged[-1].latest:
            merged[-1] = merged[-1].merged(window)
        else:
            merged.append(window)
    return merged


class ServiceGate:
    """Earliest start time per service, the adaptive extra pause after throttling, and what
    is left of a service's rate-limit window."""

    def __init__(self, reserve: int = 0) -> None:
        self.not_before: dict[str, float] = {}
        self.extra: dict[str, float] = {}
        self.budgets: dict[str, RateBudget] = {}
        self.reserve = reserve

    def budget(self, service: str) -> RateBudget:
        return self.budgets.setdefault(service, RateBudget())

    def hold_until(self, service: str, when: float) -> None:
        self.not_before[service] = max(self.not_before.get(service, 0.0), when)

    def slow_down(self, service: str, base: float, cap: float) -> None:
        """Double the extra pause (starting at ``base``), up to ``cap``."""
        self.extra[service] = min(cap, max(base, self.extra.get(service, 0.0) * 2))

    def recover(self, service: str) -> None:
        extra = self.extra.get(service, 0.0) / 2
        self.extra[service] = extra if extra >= 0.05 else 0.0

    def wait_for(self, service: str, now: float) -> float:
        held = self.not_before.get(service, 0.0) - now
        budget = self.budgets.get(service)
        window = budget.wait(now, self.reserve) if budget is not None else 0.0
        return max(0.0, held, window)
