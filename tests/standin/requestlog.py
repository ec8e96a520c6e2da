"""What the stand-in saw: one record per request, for politeness and correctness checks."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

# Why the stand-in itself (not a scripted fault) answered 429 at once.
REFUSALS = ("max_in_flight", "rate_limit")


@dataclass
class RequestRecord:
    """One request as seen by the stand-in; ``status`` is None when no answer was sent.

    ``concurrent`` counts this service's requests in flight when it arrived (itself included,
    refused ones too: what the client attempted); ``admitted`` counts the admitted ones (0 when
    refused). ``token_ok`` is set for syndication requests only. ``api_key`` is the
    ``x-api-key`` header, kept out of ``repr`` so a failing test never prints it.
    """

    service: str
    method: str
    path: str
    params: dict[str, list[str]]
    start: float
    end: float = math.nan
    status: int | None = None
    fault: str | None = None
    concurrent: int = 1
    key: str = ""
    ids: tuple[str, ...] = ()
    refused: str | None = None
    admitted: int = 0
    token_ok: bool | None = None
    api_key: str | None = field(default=None, repr=False)
    authorization: str | None = field(default=None, repr=False)
    # (requests left, seconds to the reset) of the service's fixed window when it was admitted
    window: tuple[int, int] | None = None
    # (r, t) as the RateLimit header told the client: a scripted 429 names a window of its own
    told: tuple[int, int] | None = None
    body: bytes = field(default=b"", repr=False)

    @property
    def ok(self) -> bool:
        return (
            self.status == 200
            and self.fault is None
            and self.refused is None
            and self.token_ok is not False
        )

    @property
    def throttled(self) -> bool:
        """Refused with 429 by the in-flight cap or the rate limit."""
        return self.refused in REFUSALS


def max_concurrency(records: Iterable[RequestRecord]) -> int:
    return max((r.concurrent for r in records), default=0)


def peak_admitted(records: Iterable[RequestRecord]) -> int:
    return max((r.admitted for r in records), default=0)


def throttled_share(records: Iterable[RequestRecord]) -> float:
    rs = list(records)
    return sum(r.throttled for r in rs) / len(rs) if rs else 0.0


def min_start_gap(records: Iterable[RequestRecord]) -> float:
    starts = sorted(r.start for r in records)
    return min((b - a for a, b in itertools.pairwise(starts)), default=math.inf)
