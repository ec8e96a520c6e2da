"""Per-service figures from the stand-in's request log (issue 14).

Computed for every service name the log holds, not for a fixed list, so that a service the
crawler starts to call (``syndication``, ``semantic_scholar``, ...) shows up in the results as
soon as the stand-in serves it, without touching the harness.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Protocol, TypedDict

# Answers that tell a client to slow down: 429 Too Many Requests, and 503, which arXiv sends
# when it is asked too fast. The crawler slows down on both (README, "Resilient").
THROTTLE_STATUSES = frozenset({429, 503})


class LoggedRequest(Protocol):
    """What the harness reads of ``tests.standin.RequestRecord`` (one request as served)."""

    service: str
    start: float  # time.monotonic() when the request arrived
    end: float  # when the answer's headers were logged; NaN if never finished
    status: int | None  # None: no answer (dropped or reset connection)
    concurrent: int  # requests of this service in flight when it arrived, itself included


class ServiceFigures(TypedDict):
    """One service's figures in a ``results.json`` row (``crawler_services``)."""

    requests: int
    throttled: int
    peak_concurrency: int
    mean_latency_s: float | None  # None: no request finished
    span_s: float  # first start to last end: how long the service saw the crawl


def service_figures(log: Iterable[LoggedRequest]) -> dict[str, ServiceFigures]:
    """Requests, throttled answers, peak concurrency and mean latency for each service."""
    by_service: dict[str, list[LoggedRequest]] = {}
    for record in log:
        by_service.setdefault(record.service, []).append(record)
    return {name: _figures(records) for name, records in sorted(by_service.items())}


def _figures(records: list[LoggedRequest]) -> ServiceFigures:
    finished = [r for r in records if not math.isnan(r.end)]
    latencies = [r.end - r.start for r in finished]
    span = max(r.end for r in finished) - min(r.start for r in records) if finished else 0.0
    return {
        "requests": len(records),
        "throttled": sum(r.status in THROTTLE_STATUSES for r in records),
        "peak_concurrency": max(r.concurrent for r in records),
        "mean_latency_s": round(sum(latencies) / len(latencies), 4) if latencies else None,
        "span_s": round(span, 3),
    }
