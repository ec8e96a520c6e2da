"""Switchable faults, so tests can make the stand-in misbehave the way the real services do.

Two modes: explicit faults (``add``) consumed by the next matching requests, and a deterministic
"mixed" mode for chaos runs where a stable share of request keys fails a fixed number of times
before succeeding, so a retrying client must still end up with complete output.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .catalogue import stable_fraction

PLAIN_KINDS = frozenset({"drop", "reset", "cut", "slow", "html", "truncated", "empty", "bad_json"})
DEFAULT_MIXED_KINDS = (
    "status:503",
    "status:429",
    "status:500",
    "status:502",
    "drop",
    "reset",
    "cut",
    "html",
    "truncated",
)


@dataclass(frozen=True)
class Fault:
    """One kind of misbehaviour; ``times`` counts how many matching requests it hits.

    kind: ``status:<code>``, ``drop``, ``reset``, ``cut``, ``slow``, ``html``, ``truncated``,
    ``empty`` or ``bad_json``. ``retry_after``: seconds (number) or ``"date:<seconds>"`` for an
    HTTP-date that far ahead. ``match``: substring of the raw query/body or of the tweet id.
    """

    kind: str
    service: str = "*"
    times: int = 1
    retry_after: float | str | None = None
    match: str | None = None
    delay: float = 0.0

    def __post_init__(self) -> None:
        if self.kind.startswith("status:"):
            int(self.kind.removeprefix("status:"))  # raises on a malformed code
        elif self.kind not in PLAIN_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if self.service not in ("*", "arxiv", "oembed"):
            raise ValueError(f"unknown service {self.service!r}")
        if isinstance(self.retry_after, str) and not self.retry_after.startswith("date:"):
            raise ValueError("retry_after must be seconds or 'date:<seconds>'")

    @property
    def status(self) -> int | None:
        return int(self.kind[7:]) if self.kind.startswith("status:") else None


@dataclass(frozen=True)
class MixedMode:
    share: float
    repeat: int
    kinds: tuple[str, ...]
    seed: int
    services: tuple[str, ...]
    retry_after: float | str | None
    delay: float

    def is_faulty(self, service: str, key: str) -> bool:
        return service in self.services and stable_fraction(self.seed, key) < self.share

    def fault_for(self, service: str, key: str, attempt: int) -> Fault | None:
        """The fault for the ``attempt``-th (0-based) try of ``key``, or None to succeed."""
        if attempt >= self.repeat or not self.is_faulty(service, key):
            return None
        offset = int(stable_fraction(self.seed, "kind", key) * len(self.kinds))
        kind = self.kinds[(offset + attempt) % len(self.kinds)]
        return Fault(kind, service, retry_after=self.retry_after, delay=self.delay)


class FaultSet:
    """Thread-safe registry the server consults once per request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[list] = []  # [fault, remaining]
        self._mixed: MixedMode | None = None
        self._attempts: dict[str, int] = {}

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._pending.append([fault, fault.times])
        return fault

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()
            self._mixed = None
            self._attempts.clear()

    def mixed(
        self,
        share: float = 1 / 3,
        repeat: int = 3,
        kinds: Sequence[str] = DEFAULT_MIXED_KINDS,
        seed: int = 0,
        services: Iterable[str] = ("arxiv", "oembed"),
        retry_after: float | str | None = None,
        delay: float = 0.0,
    ) -> MixedMode:
        """Fault the first ``repeat`` attempts of a stable ``share`` of request keys."""
        for kind in kinds:
            Fault(kind)  # validate early
        mode = MixedMode(share, repeat, tuple(kinds), seed, tuple(services), retry_after, delay)
        with self._lock:
            self._mixed = mode
            self._attempts.clear()
        return mode

    @property
    def mixed_mode(self) -> MixedMode | None:
        return self._mixed

    def pending(self) -> list[tuple[Fault, int]]:
        with self._lock:
            return [(f, n) for f, n in self._pending]

    def pick(self, service: str, key: str, haystacks: Iterable[str]) -> Fault | None:
        """Consume and return the fault for this request, if any (explicit faults first)."""
        texts = [h for h in haystacks if h]
        with self._lock:
            for entry in self._pending:
                fault, remaining = entry
                if fault.service not in ("*", service):
                    continue
                if fault.match is not None and not any(fault.match in t for t in texts):
                    continue
                entry[1] = remaining - 1
                if entry[1] <= 0:
                    self._pending.remove(entry)
                return fault
            if self._mixed is None or service not in self._mixed.services:
                return None
            attempt = self._attempts.get(key, 0)
            self._attempts[key] = attempt + 1
            return self._mixed.fault_for(service, key, attempt)
