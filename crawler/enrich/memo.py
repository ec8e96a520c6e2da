"""What the enrichment pipelines remember during a crawl, with bounded memory.

Each distinct ID or tweet is fetched once per crawl. Without a state database every result stays
in memory until the crawl ends. With one (``STATE_DB``), a result leaves memory as soon as it is
stored; a later entry naming the same paper or tweet reads it back from the database. Memory then
holds only what is in flight plus a set of keys, however many digests there are.
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

from crawler.items import ArxivMeta, Embed
from crawler.state import Kind, State

V = TypeVar("V", ArxivMeta, Embed)


class Memo(Generic[V]):
    def __init__(self, kind: Kind, state: State | None) -> None:
        self.kind = kind
        self.state = state
        self._pending: dict[str, asyncio.Future[V]] = {}
        self._kept: dict[str, V] = {}  # no state database: everything stays here
        self._fetched: set[str] = set()  # with one: stored this run, read back on demand

    def needs_fetch(self, key: str) -> bool:
        """True when nothing in flight, fetched this crawl or fresh in the state covers ``key``."""
        if key in self._pending or key in self._kept or key in self._fetched:
            return False
        return self.state is None or not self.state.is_fresh(self.kind, key)

    def start(self, key: str) -> asyncio.Future[V]:
        """Register ``key`` as in flight; :meth:`finish` resolves it."""
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        return future

    def finish(self, key: str, value: V) -> None:
        future = self._pending.pop(key, None)
        if future is not None and not future.done():
            future.set_result(value)
        if self.state is None:
            self._kept[key] = value
        else:
            self._fetched.add(key)

    def remember(self, key: str, value: V) -> None:
        """A value known without asking upstream (e.g. an error found before sending)."""
        self._kept[key] = value

    async def value(self, key: str) -> V | None:
        """The value for ``key`` if it is known or on its way; None if it must be fetched."""
        if key in self._pending:
            return await asyncio.shield(self._pending[key])
        if key in self._kept:
            return self._kept[key]
        if self.state is not None:
            if key in self._fetched:
                stored = self.state.stored_value(self.kind, key)
            else:
                stored = self.state.lookup(self.kind, key)
            return stored  # type: ignore[return-value]
        return None
