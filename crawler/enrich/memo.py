"""What enrichment knows during a crawl, with memory that does not grow with the corpus.

Each distinct key is fetched once per crawl. With a state database (``STATE_DB``) a value leaves
memory as soon as it is stored, and "fetched by this run" is a column of its row, so memory holds
only what is in flight. Without one, values stay here until the crawl ends.
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

from crawler.services.base import Service
from crawler.state.extension import State

V = TypeVar("V")


class Memo(Generic[V]):
    def __init__(self, service: Service[V], state: State | None) -> None:
        self.service = service
        self.state = state
        self.pending: dict[str, asyncio.Future[V]] = {}
        self._kept: dict[str, V] = {}  # no state database, or decided without asking upstream

    def needs_fetch(self, key: str) -> bool:
        """True when nothing in flight, known this crawl or fresh in the state covers ``key``."""
        if key in self.pending or key in self._kept:
            return False
        return self.state is None or self.state.fresh(self.service, key, count=False) is None

    def start(self, key: str) -> None:
        """Register ``key`` as in flight; :meth:`finish` resolves it."""
        self.pending[key] = asyncio.get_running_loop().create_future()

    def finish(self, key: str, value: V) -> None:
        future = self.pending.pop(key, None)
        if future is not None and not future.done():
            future.set_result(value)
        if self.state is None:
            self._kept[key] = value

    def remember(self, key: str, value: V) -> None:
        """A value known without asking upstream (e.g. a key that must never be sent)."""
        self._kept[key] = value

    def now(self, key: str) -> V | asyncio.Future[V] | None:
        """The value for ``key`` if it is known, the future of one on its way, or None if it
        must be fetched: looked up at once, awaited later (:func:`settled`)."""
        if key in self.pending:
            return self.pending[key]
        if key in self._kept:
            return self._kept[key]
        return self.state.fresh(self.service, key) if self.state is not None else None

    async def value(self, key: str) -> V | None:
        """The value for ``key`` if it is known or on its way; None if it must be fetched."""
        return await settled(self.now(key))


async def settled(got: V | asyncio.Future[V] | None) -> V | None:
    """A value of :meth:`Memo.now`, its future awaited; shielded, since one future serves
    every entry waiting for the key and a waiter cancelled must not cancel it for the rest."""
    return await asyncio.shield(got) if isinstance(got, asyncio.Future) else got
