"""JSON Lines in a fixed order, so an unchanged refresh writes a byte-identical file.

Records arrive in completion order. They are parked in a temporary SQLite file beside the output
(memory stays flat however many there are, and a full ``TMPDIR`` does not matter) and written
out at the end sorted by post date, slug, rank and source, one ``json.dumps`` per line with a
fixed key order. The exporter tells the feed storage what it wrote (``file.records_in_file``) or
why it failed (``file.export_failed``), so a snapshot that lost records never replaces a good one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from itemadapter import ItemAdapter
from scrapy.exporters import BaseItemExporter

from crawler.export.contract import sort_key
from crawler.export.ownership import mark_folder

logger = logging.getLogger(__name__)

__all__ = ["sort_key"]  # the snapshot's order, defined where the dataset step reads it too

RECORDS_IN_FILE = "records_in_file"  # attribute set on the file: records accounted for
EXPORT_FAILED = "export_failed"  # attribute set on the file: why the export failed


def dumps(record: dict[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n"


def mark_failed(file: Any, reason: str) -> None:
    """Note on the feed file why it must not replace the previous snapshot. The feed storage
    reports it, once, as the run's output failure."""
    if not getattr(file, EXPORT_FAILED, None):
        logger.debug("export to %s failed: %s", getattr(file, "name", "the feed"), reason)
        with contextlib.suppress(AttributeError):
            setattr(file, EXPORT_FAILED, reason)


# Folders where records wait to be sorted, beside the output; a killed run may leave one.
SORT_DIR_PREFIX = ".hot-papers-sort-"


class RecordPark:
    """Records parked in a temporary SQLite file beside the output, read back sorted.

    Shared by the JSONL and Parquet exporters: the same order, identical records collapsed
    once, and a count of what was accounted for, or the reason it failed, on the feed file.
    """

    def __init__(self, file: Any) -> None:
        self.file = file
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._db: sqlite3.Connection | None = None
        self._rows: list[tuple[str, bytes]] = []
        self.received = 0
        self.collapsed = 0  # identical records written once
        self.failed = False

    def _work_dir(self) -> str | None:
        name = getattr(self.file, "name", None)
        return os.path.dirname(name) if isinstance(name, str) and os.path.isabs(name) else None

    def open(self) -> None:
        try:
            self._tmp = tempfile.TemporaryDirectory(prefix=SORT_DIR_PREFIX, dir=self._work_dir())
            mark_folder(Path(self._tmp.name))  # a killed run's leftover is removed as ours
            self._db = sqlite3.connect(f"{self._tmp.name}/records.sqlite3")
            self._db.execute("PRAGMA journal_mode=OFF")
            self._db.execute("PRAGMA synchronous=OFF")
            # Identical records collapse: a digest read twice (a resumed JOBDIR crawl re-reads
            # the digests it had queued) must not appear twice in the snapshot.
            self._db.execute(
                "CREATE TABLE r (k TEXT, line BLOB, PRIMARY KEY (k, line)) WITHOUT ROWID"
            )
        except (OSError, sqlite3.Error) as exc:
            self.fail(f"cannot park records for sorting: {exc}")

    def fail(self, reason: str) -> None:
        self.failed = True
        mark_failed(self.file, reason)

    def add(self, item: Any) -> None:
        self.received += 1
        if self.failed:
            return
        record = item if isinstance(item, dict) else ItemAdapter(item).asdict()
        try:
            self._rows.append((sort_key(record), dumps(record)))
        except (TypeError, ValueError) as exc:  # not JSON, or text that is not UTF-8
            self.fail(f"record {self.received} cannot be written as JSON: {exc}")
            return
        if len(self._rows) >= 500:
            self._insert()

    def _insert(self) -> None:
        if self._db is None or self.failed:
            return
        try:
            inserted = self._db.executemany("INSERT OR IGNORE INTO r VALUES (?, ?)", self._rows)
            self.collapsed += len(self._rows) - inserted.rowcount
        except sqlite3.Error as exc:
            self.fail(f"cannot park records for sorting: {exc}")
        self._rows.clear()

    def sorted_lines(self) -> Iterator[bytes]:
        """The parked records as JSON lines, in snapshot order (nothing if the park failed).

        Equal keys (two entries with one rank in a damaged post) sort by content, so the order
        never depends on timing.
        """
        self._insert()
        if self._db is None or self.failed:
            return
        try:
            for (line,) in self._db.execute("SELECT line FROM r ORDER BY k, line"):
                yield line
        except sqlite3.Error as exc:
            self.fail(f"cannot read the parked records back: {exc}")

    def close(self, written: int) -> None:
        """Tell the feed storage how many records the file accounts for."""
        if self._db is not None:
            self._db.close()
        if self._tmp is not None:
            self._tmp.cleanup()
        if not self.failed:
            setattr(self.file, RECORDS_IN_FILE, written + self.collapsed)


class SortedJsonLinesExporter(BaseItemExporter):
    def __init__(self, file: IO[bytes], **kwargs: Any) -> None:
        super().__init__(dont_fail=True, **kwargs)
        self.file = file
        self.park = RecordPark(file)

    def start_exporting(self) -> None:
        self.park.open()

    def export_item(self, item: Any) -> None:
        self.park.add(item)

    def finish_exporting(self) -> None:
        written = 0
        try:
            for line in self.park.sorted_lines():
                self.file.write(line)
                written += 1
        except OSError as exc:
            self.park.fail(f"cannot write the sorted records: {exc}")
        finally:
            self.park.close(written)
