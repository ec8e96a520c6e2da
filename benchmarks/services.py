"""Per-service figures from the stand-in's request log (issue 14).

Computed for every service name the log holds, not for a fixed list, so that a service the
crawler starts to call shows up in the results as soon as the stand-in serves it, without
touching the harness.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Protocol, TypedDict

# Answers that tell a client to slow down: 429 Too Many Requests, and 503, which arXiv sends
# when it is asked too fast. The crawler slows down on both (README, "Resilient").
THROTTLE_STATUSES = frozenset({429, 503})
TIMELINE_POINTS = 120  # buckets of the concurrency timeline kept per service


class LoggedRequest(Protocol):
    """What the harness reads of ``tests.standin.RequestRecord`` (one request as served)."""

    service: str
    start: float  # time.monotonic() when the request arrived
    end: float  # when the answer's headers were logged; NaN if never finished
    status: int | None  # None: no answer (dropped or reset connection)
    concurrent: int  # requests of this service in flight when it arrived, itself included
    admitted: int  # requests the stand-in was serving once it admitted this one (0: refused)


class ServiceFigures(TypedDict, total=False):
    """One service's figures in a ``results.json`` row (``crawler_services``)."""

    requests: int
    throttled: int
    peak_concurrency: int  # most requests in flight at once, refused ones included
    peak_admitted: int  # most the stand-in served at once (never above its max_in_flight)
    mean_latency_s: float | None  # None: no request finished
    span_s: float  # first start to last end: how long the service saw the crawl
    # The second half of the service's requests (by start): where the crawl has settled.
    late_peak_concurrency: int
    late_p95_concurrency: int  # 95 % of them arrived with at most this many in flight
    late_throttled: int
    last_throttle_s: float | None  # seconds from the first request to the last throttled one


def service_figures(log: Iterable[LoggedRequest]) -> dict[str, ServiceFigures]:
    """Requests, throttled answers, peak concurrency and mean latency for each service."""
    return {name: _figures(records) for name, records in _by_service(log).items()}


def _by_service(log: Iterable[LoggedRequest]) -> dict[str, list[LoggedRequest]]:
    by_service: dict[str, list[LoggedRequest]] = {}
    for record in log:
        by_service.setdefault(record.service, []).append(record)
    return {name: sorted(rs, key=lambda r: r.start) for name, rs in sorted(by_service.items())}


def _throttled(record: LoggedRequest) -> bool:
    return record.status in THROTTLE_STATUSES


def _figures(records: list[LoggedRequest]) -> ServiceFigures:
    finished = [r for r in records if not math.isnan(r.end)]
    latencies = [r.end - r.start for r in finished]
    first = records[0].start
    span = max(r.end for r in finished) - first if finished else 0.0
    late = records[len(records) // 2 :]
    throttled = [r for r in records if _throttled(r)]
    return {
        "requests": len(records),
        "throttled": len(throttled),
        "peak_concurrency": max(r.concurrent for r in records),
        "peak_admitted": max(r.admitted for r in records),
        "mean_latency_s": round(sum(latencies) / len(latencies), 4) if latencies else None,
        "span_s": round(span, 3),
        "late_peak_concurrency": max(r.concurrent for r in late),
        "late_p95_concurrency": sorted(r.concurrent for r in late)[int(0.95 * (len(late) - 1))],
        "late_throttled": sum(_throttled(r) for r in late),
        "last_throttle_s": round(throttled[-1].start - first, 2) if throttled else None,
    }


def concurrency_timeline(
    log: Iterable[LoggedRequest], services: Iterable[str], points: int = TIMELINE_POINTS
) -> dict[str, list[tuple[float, int]]]:
    """Per service, the most requests in flight at an arrival in each of ``points`` equal
    stretches of its span: how the adaptive limit moved during the crawl."""
    by_service = _by_service(log)
    out: dict[str, list[tuple[float, int]]] = {}
    for name in services:
        records = by_service.get(name)
        if not records:
            continue
        first = records[0].start
        width = max((records[-1].start - first) / points, 1e-6)
        buckets: dict[int, int] = {}
        for r in records:
            i = int((r.start - first) / width)
            buckets[i] = max(buckets.get(i, 0), r.concurrent)
        out[name] = [(round(i * width, 2), c) for i, c in sorted(buckets.items())]
    return out
