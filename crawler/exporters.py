"""JSON Lines in a fixed order, so an unchanged refresh writes a byte-identical file.

Records arrive in completion order. They are parked in a temporary SQLite file (memory stays
flat however many there are) and written out at the end sorted by post date, slug, rank and
source, one ``json.dumps`` per line with a fixed key order. Combined with the atomic file
storage, readers only ever see a complete, sorted snapshot.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from typing import IO, Any

from itemadapter import ItemAdapter
from scrapy.exporters import BaseItemExporter


def sort_key(record: dict[str, Any]) -> str:
    post = record.get("post") or {}
    return "\x00".join(
        (post.get("date") or "", post.get("slug") or "", f"{record.get('rank', 0):010d}",
         post.get("source") or "")
    )  # fmt: skip


def dumps(record: dict[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n"


class SortedJsonLinesExporter(BaseItemExporter):
    def __init__(self, file: IO[bytes], **kwargs: Any) -> None:
        super().__init__(dont_fail=True, **kwargs)
        self.file = file
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._db: sqlite3.Connection | None = None
        self._rows: list[tuple[str, bytes]] = []

    def start_exporting(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="hot-papers-sort-")
        self._db = sqlite3.connect(f"{self._tmp.name}/records.sqlite3")
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        # Identical records collapse: a digest read twice (a resumed JOBDIR crawl re-reads the
        # digests it had queued) must not appear twice in the snapshot.
        self._db.execute("CREATE TABLE r (k TEXT, line BLOB, PRIMARY KEY (k, line)) WITHOUT ROWID")

    def export_item(self, item: Any) -> None:
        assert self._db is not None
        record = item if isinstance(item, dict) else ItemAdapter(item).asdict()
        self._rows.append((sort_key(record), dumps(record)))
        if len(self._rows) >= 500:
            self._insert()

    def _insert(self) -> None:
        assert self._db is not None
        self._db.executemany("INSERT OR IGNORE INTO r VALUES (?, ?)", self._rows)
        self._rows.clear()

    def finish_exporting(self) -> None:
        assert self._db is not None and self._tmp is not None
        self._insert()
        self._db.commit()
        # Equal keys (two entries with one rank in a damaged post) sort by content, so the order
        # never depends on timing.
        for (line,) in self._db.execute("SELECT line FROM r ORDER BY k, line"):
            self.file.write(line)
        self._db.close()
        self._tmp.cleanup()
