"""Whether a stored value is still good enough, or must be fetched again.

The service decides how long a value lasts (``Service.ttl``: per status from ``STATE_TTL_DAYS``,
and for tweet details by the tweet's age); the ``refresh`` argument forces kinds to be fetched
again; errors, values a newer version wrote and values fetched "in the future" (a clock moved
back) are always fetched again; a value this run already fetched never is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from crawler.services.base import Service
from crawler.state.store import Row

FIXED_CHOICES = ("none", "all", "errors")


def refresh_choices(services: Iterable[type[Service[Any]]]) -> tuple[str, ...]:
    names = [name for service in services for name in service.refresh_names]
    return FIXED_CHOICES + tuple(dict.fromkeys(names))


def written_by_newer(service: Service[Any], row: Row) -> bool:
    """A stored value with fields this version does not know: a newer crawler wrote it, and
    what they mean (or how the others changed with them) is unknown here, so it is fetched
    again. It still serves as the last good value if that fetch fails."""
    return not set(row.value) <= {f.name for f in dataclasses.fields(service.value_type)}


def from_the_future(row: Row, now: float) -> bool:
    """Fetched after ``now``: the clock moved back, or the state came from another machine.
    A negative age proves nothing about how old the value is, so it is stale, not fresh for
    ever."""
    return row.fetched_at > now


class Freshness:
    def __init__(self, refresh: str) -> None:
        self.refresh = refresh  # checked by the spider and the crawl command

    def forced(self, service: Service[Any]) -> bool:
        return self.refresh == "all" or self.refresh in service.refresh_names

    def left_alone(self, service: Service[Any]) -> bool:
        """``refresh=details`` (any one service's name) fetches that and nothing else: the
        other services use whatever is stored, however old, and ask only for what is missing."""
        return self.refresh not in FIXED_CHOICES and not self.forced(service)

    def is_fresh(
        self, service: Service[Any], row: Row, value: Any, now: float, run_id: str, key: str = ""
    ) -> bool:
        if row.run_id == run_id or self.left_alone(service):
            return True  # fetched by this very run (once per crawl), or not to be refreshed
        if self.forced(service) or row.status == "error" or written_by_newer(service, row):
            return False
        if from_the_future(row, now):
            return False
        return now - row.fetched_at < service.ttl(value, now, key)
