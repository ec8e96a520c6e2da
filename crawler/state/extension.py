"""The state between runs, as a Scrapy extension: the only reader and writer of ``STATE_DB``.

A refresh asks upstream only for what is missing or stale. A failure never replaces a good value
fetched before: the records keep the last good value, and the row is marked stale so the next
run asks again. A value that differs from the previous good one is queued as a change in the
same transaction, so the change feed survives a kill.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Set as AbstractSet
from typing import Any, TypeVar

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured

from crawler.outcome import Outcome
from crawler.services.base import Service
from crawler.state.freshness import Freshness, from_the_future
from crawler.state.store import FORMAT, Row, StateError, StateStore, Write, utc_ms_text

logger = logging.getLogger(__name__)

V = TypeVar("V")


utc_now_text = utc_ms_text  # fetch times and observations: ISO 8601 UTC with milliseconds


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _fields(value: Any) -> dict[str, Any]:
    """A value's fields by name, in order: what ``asdict`` gives for a value without nested
    dataclasses (none has any), without its deep copy; the store only encodes it as JSON."""
    cls = type(value)
    if cls not in _FIELD_NAMES:
        _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return {name: getattr(value, name) for name in _FIELD_NAMES[cls]}


class State:
    """Disabled (``NotConfigured``) when ``STATE_DB`` is empty; a database that cannot be used
    stops the crawl before it starts, with one line naming the file."""

    def __init__(self, crawler: Crawler) -> None:
        settings = crawler.settings
        path = settings.get("STATE_DB")
        if not path:
            raise NotConfigured
        self.crawler = crawler
        self.store = StateStore(path, history_max=max(1, settings.getint("DETAILS_HISTORY_MAX")))
        if self.store.upgraded is not None:
            old, count = self.store.upgraded
            logger.warning(
                "STATE_DB %s: upgraded from format %d to %d (record schema 3 field names, "
                "fetch times kept with each value): %d stored values",
                path, old, FORMAT, count,
            )  # fmt: skip
        # `-a refresh=...`, handed over by the spider as this setting before extensions exist.
        self.freshness = Freshness(settings.get("REFRESH") or "none")
        self.stats = crawler.stats
        self._warned: set[str] = set()
        self._future: set[tuple[str, str]] = set()  # (kind, key) stored with a future time
        # When the first value this run used or stored goes stale: until then, a rerun on the
        # same inputs would fetch nothing (crawler/reuse.py).
        self.valid_until = math.inf
        crawler.signals.connect(self.close, signal=signals.engine_stopped)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> State:
        return cls(crawler)

    @property
    def run_id(self) -> str:
        return Outcome.of(self.crawler).run_id

    # -- reading ------------------------------------------------------------------------------
    def _decode(self, service: Service[V], key: str, row: Row) -> V | None:
        try:
            return service.decode(row.value)
        except (TypeError, ValueError) as exc:
            # Written by another version, or damaged: fetch it again rather than drop records.
            self.stats.inc_value(f"state/{service.kind}/undecodable")
            if service.kind not in self._warned:
                self._warned.add(service.kind)
                logger.warning(
                    "STATE_DB %s: stored %s values that cannot be read (or are out of range) are "
                    "fetched again (first: %s: %s)", self.store.path, service.kind, key, exc,
                )  # fmt: skip
            return None

    def _with_history(self, service: Service[V], key: str, value: V) -> V:
        if getattr(value, "status", None) != "ok" or service.observation(value, "") is None:
            return value
        return service.with_history(value, self.store.history(service.kind, key))

    def fresh(self, service: Service[V], key: str, *, count: bool = True) -> V | None:
        """The stored value if it is still good (or this run fetched it), else None."""
        row = self.store.get(service.kind, key)
        if row is None:
            return None
        value = self._decode(service, key, row)
        if value is None:
            return None
        now = time.time()
        if not self.freshness.is_fresh(service, row, value, now, self.run_id, key):
            if count:
                self.stats.inc_value(f"state/{service.kind}/stale")
            if from_the_future(row, now) and (service.kind, key) not in self._future:
                self._future.add((service.kind, key))
                self.stats.inc_value(f"state/{service.kind}/from_the_future")
            return None
        if row.run_id != self.run_id:
            self._lasts(service, key, value, row.fetched_at, now)
            if count:
                self.stats.inc_value(f"state/{service.kind}/reused")
        return self._with_history(service, key, value) if count else value

    def _lasts(
        self, service: Service[V], key: str, value: V, fetched_at: float, now: float
    ) -> None:
        """Note when ``value`` stops being fresh, or may (its TTL may change at an age)."""
        stale_at = fetched_at + service.ttl(value, now, key)
        self.valid_until = min(
            self.valid_until, stale_at, service.ttl_steady_until(value, now, key)
        )

    def stored(self, service: Service[V], key: str) -> V | None:
        """What is stored, fresh or not."""
        row = self.store.get(service.kind, key)
        return self._decode(service, key, row) if row is not None else None

    def stored_many(self, service: Service[V], keys: list[str]) -> dict[str, V | None]:
        """:meth:`stored` for each of ``keys``, read in one statement (a batch's keys)."""
        rows = self.store.get_many(service.kind, keys)
        return {
            key: self._decode(service, key, row) if row is not None else None
            for key, row in rows.items()
        }

    def control_key(self, service: Service[Any], exclude: AbstractSet[str]) -> str | None:
        """A key an earlier run stored as good, not in ``exclude``: a control for a probe."""
        return self.store.some_key_with_status(service.kind, "ok", exclude, self.run_id)

    # -- writing ------------------------------------------------------------------------------
    def save(
        self,
        service: Service[V],
        fetched: dict[str, V],
        held: AbstractSet[str] = frozenset(),
    ) -> dict[str, V]:
        """Store a fetch's values; return what the records should carry.

        ``held`` keys contradict a good stored value without proof that the service answers
        correctly: like failures, they keep the stored value and are asked again next run.
        """
        now = time.time()
        observed_at = utc_now_text(now)
        writes: list[Write] = []
        keep: dict[str, V] = {}
        olds = self.stored_many(service, list(fetched))
        for key, value in fetched.items():
            old = olds[key]
            good_before = old is not None and getattr(old, "status", "error") != "error"
            failed = getattr(value, "status", "error") == "error"
            if good_before and (failed or key in held):
                assert old is not None
                keep[key] = old
                writes.append(Write(key, None))
                self.valid_until = min(self.valid_until, now)  # marked stale: asked again
                self.stats.inc_value(f"state/{service.kind}/kept")
                continue
            change = None
            if old is not None and good_before and not failed:
                before, after = service.comparable(old), service.comparable(value)
                if before != after:
                    change = (before, after)
            when = getattr(value, "fetched_at", None) or observed_at
            point = service.observation(value, when)
            writes.append(
                Write(
                    key,
                    _fields(value),
                    status=getattr(value, "status", "error"),
                    # Keyed by the observation's own time: the history's order and uniqueness
                    observation=(when, point) if point is not None else None,
                    change=change,
                    history_max=service.history_max,
                )
            )
            keep[key] = value
            self._lasts(service, key, value, now, now)
        self.store.write(service.kind, writes, now, self.run_id)
        self.stats.inc_value(f"state/{service.kind}/saved", len(writes))
        return {key: self._with_history(service, key, value) for key, value in keep.items()}

    def close(self) -> None:
        if self._future:
            kinds = ", ".join(sorted({kind for kind, _ in self._future}))
            logger.warning(
                "STATE_DB %s: %d stored values (%s) were fetched in the future (the clock moved "
                "back, or the state comes from another machine): fetched again",
                self.store.path, len(self._future), kinds,
            )  # fmt: skip
        with contextlib.suppress(StateError):
            self.store.close()
