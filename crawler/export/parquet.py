"""A Scrapy feed exporter for Parquet: ``scrapy crawl digests -O out.parquet``.

It writes the ``entries`` table (the same schema as ``NAME.dataset/entries.parquet``) in the
order of the JSONL snapshot. Records arrive in completion order, so, like
:class:`crawler.exporters.SortedJsonLinesExporter`, they are parked in a temporary SQLite file
keyed by :func:`crawler.exporters.sort_key` and written out sorted at the end, in row groups of
``batch_size``: memory stays flat however many records there are, and identical records (a
digest re-read by a resumed crawl) collapse exactly as they do in the JSONL snapshot.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from typing import IO, Any

from itemadapter import ItemAdapter
from scrapy.exporters import BaseItemExporter

from crawler.export.tables import ENTRIES, TableWriter, entry_row
from crawler.exporters import dumps, sort_key

_PARK_EVERY = 500  # records buffered before one executemany


class ParquetItemExporter(BaseItemExporter):
    """Registered in ``FEED_EXPORTERS`` as ``parquet``; the file is binary, left open."""

    def __init__(self, file: IO[bytes], *, batch_size: int = 4096, **kwargs: Any) -> None:
        super().__init__(dont_fail=True, **kwargs)
        self.file = file
        self.batch_size = batch_size
        self.records_written = 0
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._db: sqlite3.Connection | None = None
        self._rows: list[tuple[str, bytes]] = []

    def start_exporting(self) -> None:
        if self._appending():
            raise ValueError("a Parquet feed cannot be appended to; use -O (overwrite), not -o")
        self._tmp = tempfile.TemporaryDirectory(prefix="hot-papers-parquet-")
        self._db = sqlite3.connect(f"{self._tmp.name}/records.sqlite3")
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("CREATE TABLE r (k TEXT, line BLOB, PRIMARY KEY (k, line)) WITHOUT ROWID")

    def _appending(self) -> bool:
        """``-o`` hands over the old file positioned at its end: a second footer would not do."""
        try:
            return self.file.tell() > 0
        except (OSError, ValueError):  # not seekable: nothing was there before us
            return False

    def export_item(self, item: Any) -> None:
        record = item if isinstance(item, dict) else ItemAdapter(item).asdict()
        self._rows.append((sort_key(record), dumps(record)))
        if len(self._rows) >= _PARK_EVERY:
            self._park()

    def _park(self) -> None:
        assert self._db is not None, "start_exporting() was not called"
        self._db.executemany("INSERT OR IGNORE INTO r VALUES (?, ?)", self._rows)
        self._rows.clear()

    def finish_exporting(self) -> None:
        assert self._db is not None and self._tmp is not None, "start_exporting() was not called"
        try:
            self._park()
            self._db.commit()
            writer = TableWriter(self.file, ENTRIES, batch_rows=self.batch_size)
            # Equal keys sort by content, as in the JSONL snapshot: order never depends on timing.
            for (line,) in self._db.execute("SELECT line FROM r ORDER BY k, line"):
                writer.append(entry_row(json.loads(line)))
            writer.close()
            self.records_written = writer.written
        finally:
            self._db.close()
            self._tmp.cleanup()
