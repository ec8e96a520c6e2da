"""Switchable faults, so tests can make the stand-in misbehave the way the real services do.

Three modes, consulted in this order for each request: scripts (``script``: the n-th request of
a key gets the n-th step, e.g. arXiv "503, then reset, then fine"), explicit faults (``add``)
consumed by the next matching requests, and a deterministic "mixed" mode for chaos runs where a
stable share of request keys fails a fixed number of times before succeeding, so a retrying
client must still end up with complete output.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .common import SERVICES
from .models import stable_fraction

PLAIN_KINDS = frozenset({"drop", "reset", "cut", "slow", "html", "truncated", "empty", "bad_json"})
# Answers of the right status and syntax but the wrong shape, each for one service.
SHAPE_KINDS = {
    "shape:author_name_number": "oembed",
    "shape:html_missing": "oembed",
    "shape:one_tweet_for_all": "oembed",  # a cache ignoring the query: one tweet's embed
    "shape:favorite_count_string": "syndication",
    "shape:user_list": "syndication",
    "shape:huge_counts": "syndication",  # favorite_count 2^63, conversation_count 10^20
    "shape:big_counts": "syndication",  # favorite_count 2^62: valid, but two add up past int64
    "shape:hf_other_paper": "hf_papers",
    "shape:hf_upvotes_string": "hf_papers",
    "shape:wrong_length": "semantic_scholar",
    "shape:object": "semantic_scholar",
    "shape:huge_numbers": "semantic_scholar",  # citationCount 10^20, referenceCount 2^63, ...
    "shape:unasked_ids": "arxiv",
    "shape:unversioned_id": "arxiv",
    "shape:v0": "arxiv",
    "shape:year_0999": "arxiv",
    "shape:unasked_doi": "openalex",
    "shape:results_object": "openalex",
}
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
    ``empty``, ``bad_json`` or one of :data:`SHAPE_KINDS` (which fixes the service).
    ``retry_after``: seconds (number) or ``"date:<seconds>"`` for an HTTP-date that far ahead.
    ``match``: substring of the raw query/body or of the tweet id.
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
        elif self.kind in SHAPE_KINDS:
            own = SHAPE_KINDS[self.kind]
            if self.service not in ("*", own):
                raise ValueError(f"{self.kind} is a fault of {own}, not {self.service}")
            object.__setattr__(self, "service", own)
        elif self.kind not in PLAIN_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if self.service not in ("*", *SERVICES):
            raise ValueError(f"unknown service {self.service!r}")
        if isinstance(self.retry_after, str) and not self.retry_after.startswith("date:"):
            raise ValueError("retry_after must be seconds or 'date:<seconds>'")

    @property
    def status(self) -> int | None:
        return int(self.kind[7:]) if self.kind.startswith("status:") else None


def applies(kind: str, service: str) -> bool:
    """Whether ``kind`` can happen to ``service`` (shape faults belong to one service)."""
    return SHAPE_KINDS.get(kind, service) == service


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
        # OpenAlex's 429 is its daily budget spent, not a passing fault: chaos runs leave it out.
        kinds = [
            k for k in self.kinds
            if applies(k, service) and not (service == "openalex" and k == "status:429")
        ]  # fmt: skip
        if not kinds:
            return None
        offset = int(stable_fraction(self.seed, "kind", key) * len(kinds))
        kind = kinds[(offset + attempt) % len(kinds)]
        return Fault(kind, service, retry_after=self.retry_after, delay=self.delay)


@dataclass
class Script:
    """Steps for successive requests of one service (narrowed by ``key`` or ``match``).

    A step of None answers normally; after the last step the script no longer applies.
    """

    service: str
    steps: tuple[Fault | None, ...]
    key: str | None = None
    match: str | None = None
    position: int = 0

    @property
    def done(self) -> bool:
        return self.position >= len(self.steps)

    def matches(self, service: str, key: str, texts: Sequence[str]) -> bool:
        if self.done or service != self.service:
            return False
        if self.key is not None and key != self.key:
            return False
        return self.match is None or any(self.match in t for t in texts)


class FaultSet:
    """Thread-safe registry the server consults once per request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[list] = []  # [fault, remaining]
        self._scripts: list[Script] = []
        self._mixed: MixedMode | None = None
        self._attempts: dict[str, int] = {}

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._pending.append([fault, fault.times])
        return fault

    def script(
        self,
        service: str,
        steps: Sequence[str | Fault | None],
        *,
        key: str | None = None,
        match: str | None = None,
    ) -> Script:
        """Script what the next requests of ``service`` get, one step each, in order.

        A step is a fault kind (``"status:503"``, ``"reset"``, ``"shape:v0"`` …), a
        :class:`Fault` (for ``retry_after`` or ``delay``), or ``None``/``"ok"`` for a normal
        answer. ``key`` restricts it to one request key (see ``request_key``), ``match`` to
        requests whose query, body or tweet ID contains the text.
        """
        if service not in SERVICES:
            raise ValueError(f"unknown service {service!r}")
        parsed: list[Fault | None] = []
        for step in steps:
            if step is None or step == "ok":
                parsed.append(None)
            elif isinstance(step, Fault):
                parsed.append(step)
            else:
                parsed.append(Fault(step, service))
        for fault in parsed:
            if fault is not None and fault.service not in ("*", service):
                raise ValueError(f"{fault.kind} cannot happen to {service}")
        script = Script(service, tuple(parsed), key, match)
        with self._lock:
            self._scripts.append(script)
        return script

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()
            self._scripts.clear()
            self._mixed = None
            self._attempts.clear()

    def mixed(
        self,
        share: float = 1 / 3,
        repeat: int = 3,
        kinds: Sequence[str] = DEFAULT_MIXED_KINDS,
        seed: int = 0,
        services: Iterable[str] = SERVICES,
        retry_after: float | str | None = None,
        delay: float = 0.0,
    ) -> MixedMode:
        """Fault the first ``repeat`` attempts of a stable ``share`` of request keys.

        Shape kinds in ``kinds`` only hit their own service.
        """
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

    def scripts(self) -> list[Script]:
        with self._lock:
            return list(self._scripts)

    def pick(self, service: str, key: str, haystacks: Iterable[str]) -> Fault | None:
        """Consume and return the fault for this request, if any (scripts, explicit, mixed)."""
        texts = [h for h in haystacks if h]
        with self._lock:
            for script in self._scripts:
                if script.matches(service, key, texts):
                    step = script.steps[script.position]
                    script.position += 1
                    return step
            for entry in self._pending:
                fault: Fault = entry[0]
                remaining: int = entry[1]
                if fault.service not in ("*", service) or not applies(fault.kind, service):
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
