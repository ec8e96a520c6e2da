"""What was fetched, kept between runs: a refresh asks upstream only for what is missing or stale.

One SQLite file (``STATE_DB``) in WAL mode: each write is one transaction, so a kill -9 at any
moment leaves either the old row or the new one, never half of either. Values are the
:class:`~crawler.items.ArxivMeta` / :class:`~crawler.items.Embed` of a fetch, as JSON.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured

from crawler.items import ArxivMeta, Embed

logger = logging.getLogger(__name__)

Kind = Literal["arxiv", "embed"]
DAY = 86400.0
REFRESH_CHOICES = ("none", "all", "arxiv", "tweets", "errors")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS fetched (
    kind       TEXT NOT NULL,          -- 'arxiv' (key: ID as asked) or 'embed' (key: tweet ID)
    key        TEXT NOT NULL,
    status     TEXT NOT NULL,
    value      TEXT NOT NULL,          -- JSON of ArxivMeta / Embed
    fetched_at REAL NOT NULL,          -- Unix time
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class Stored:
    value: ArxivMeta | Embed
    fetched_at: float


def _decode(kind: Kind, text: str) -> ArxivMeta | Embed:
    data = json.loads(text)
    return ArxivMeta(**data) if kind == "arxiv" else Embed(**data)


class StateStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable per transaction on crash
        self.db.execute("PRAGMA busy_timeout=10000")
        self.db.executescript(_SCHEMA)

    def get(self, kind: Kind, key: str) -> Stored | None:
        row = self.db.execute(
            "SELECT value, fetched_at FROM fetched WHERE kind = ? AND key = ?", (kind, key)
        ).fetchone()
        return Stored(_decode(kind, row[0]), row[1]) if row else None

    def put_many(
        self, kind: Kind, items: Iterable[tuple[str, ArxivMeta | Embed]], now: float
    ) -> None:
        rows = [
            (kind, key, value.status, json.dumps(asdict(value), ensure_ascii=False), now)
            for key, value in items
        ]
        with self.db:  # one transaction: all of a batch or none of it
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT INTO fetched (kind, key, status, value, fetched_at) VALUES (?,?,?,?,?) "
                "ON CONFLICT (kind, key) DO UPDATE SET status = excluded.status, "
                "value = excluded.value, fetched_at = excluded.fetched_at",
                rows,
            )

    def mark_stale(self, kind: Kind, keys: list[str]) -> None:
        """Keep the values but make the next run fetch them again."""
        if keys:
            with self.db:
                self.db.execute("BEGIN")
                self.db.executemany(
                    "UPDATE fetched SET fetched_at = 0 WHERE kind = ? AND key = ?",
                    [(kind, key) for key in keys],
                )

    def close(self) -> None:
        self.db.close()


class Freshness:
    """Decides from settings whether a stored fetch is still good enough."""

    def __init__(self, ttl_days: dict[str, float], refresh: str) -> None:
        if refresh not in REFRESH_CHOICES:
            raise ValueError(
                f"refresh must be one of {', '.join(REFRESH_CHOICES)}, not {refresh!r}"
            )
        self.ttl = {name: float(days) * DAY for name, days in ttl_days.items()}
        self.refresh = refresh

    def is_fresh(self, kind: Kind, stored: Stored, now: float) -> bool:
        if self.refresh == "all" or (self.refresh, kind) in (
            ("arxiv", "arxiv"),
            ("tweets", "embed"),
        ):
            return False
        status = stored.value.status
        if status == "error":
            return False  # errors are always tried again
        ttl = self.ttl.get(f"{kind}/{status}", 0.0)
        return now - stored.fetched_at < ttl


class State:
    """The crawl's state: store + freshness + what changed since the last run.

    A Scrapy extension so the enrichment pipelines and the run report share one instance
    (``crawler.get_extension(State)``). Disabled (``NotConfigured``) when ``STATE_DB`` is empty.
    """

    def __init__(self, crawler: Crawler) -> None:
        settings = crawler.settings
        path = settings.get("STATE_DB")
        if not path:
            raise NotConfigured
        self.ttl_days = settings.getdict("STATE_TTL_DAYS")
        self.freshness = Freshness(self.ttl_days, "none")
        self.store = StateStore(path)
        self.stats = crawler.stats
        # key -> (before, after) for values that differ from what the last run stored
        self.changed: dict[tuple[Kind, str], tuple[dict[str, Any], dict[str, Any]]] = {}
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(self.close, signal=signals.engine_stopped)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> State:
        return cls(crawler)

    def spider_opened(self, spider: Any) -> None:
        # `-a refresh=...` is a spider argument; the spider reports a value it does not know.
        refresh = getattr(spider, "refresh", None)
        if refresh in REFRESH_CHOICES:
            self.freshness = Freshness(self.ttl_days, refresh)

    def is_fresh(self, kind: Kind, key: str) -> bool:
        stored = self.store.get(kind, key)
        return stored is not None and self.freshness.is_fresh(kind, stored, time.time())

    def stored_value(self, kind: Kind, key: str) -> ArxivMeta | Embed | None:
        """What is stored, fresh or not: for keys fetched earlier in this very crawl."""
        stored = self.store.get(kind, key)
        return stored.value if stored else None

    def lookup(self, kind: Kind, key: str) -> ArxivMeta | Embed | None:
        """A stored value that is still fresh, or None (then it must be fetched)."""
        stored = self.store.get(kind, key)
        if stored is None:
            return None
        if not self.freshness.is_fresh(kind, stored, time.time()):
            self.stats.inc_value(f"state/{kind}/stale")
            return None
        self.stats.inc_value(f"state/{kind}/reused")
        return stored.value

    def save(
        self, kind: Kind, items: list[tuple[str, ArxivMeta | Embed]]
    ) -> list[ArxivMeta | Embed]:
        """Store fresh fetches and return the values the records should carry.

        A failure does not overwrite a good value fetched before: the records keep the last good
        value (so a snapshot does not flap with upstream hiccups), and the row is marked stale
        so the next run asks again. Values that differ from the previous good one are noted as
        changes.
        """
        keep: list[ArxivMeta | Embed] = []
        rows: list[tuple[str, ArxivMeta | Embed]] = []
        stale: list[str] = []
        for key, value in items:
            old = self.store.get(kind, key)
            if value.status == "error" and old is not None and old.value.status != "error":
                keep.append(old.value)
                stale.append(key)
                self.stats.inc_value(f"state/{kind}/kept_after_error")
                continue
            if old is not None and old.value.status != "error" and value.status != "error":
                before, after = asdict(old.value), asdict(value)
                if before != after:
                    self.changed[(kind, key)] = (before, after)
            keep.append(value)
            rows.append((key, value))
        self.store.put_many(kind, rows, time.time())
        self.store.mark_stale(kind, stale)
        self.stats.inc_value(f"state/{kind}/saved", len(rows))
        return keep

    def close(self) -> None:
        self.store.close()
