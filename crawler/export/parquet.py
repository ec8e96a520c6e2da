"""A Scrapy feed exporter for Parquet: ``scrapy crawl digests -O out.parquet``.

It writes the ``entries`` table (the same schema as ``NAME.dataset/entries.parquet``) in the
order of the JSONL snapshot: records are parked and sorted by the same
:class:`crawler.export.jsonlines.RecordPark` as the JSONL exporter, then written in row groups of
``batch_size``. Memory stays flat however many records there are, and identical records (a
digest re-read by a resumed crawl) collapse exactly as they do in the JSONL snapshot.
"""

from __future__ import annotations

import json
from typing import IO, Any

from scrapy.exporters import BaseItemExporter

from crawler.export.jsonlines import RecordPark


class ParquetItemExporter(BaseItemExporter):
    """Registered in ``FEED_EXPORTERS`` as ``parquet``; the file is binary, left open."""

    def __init__(self, file: IO[bytes], *, batch_size: int = 4096, **kwargs: Any) -> None:
        super().__init__(dont_fail=True, **kwargs)
        self.file = file
        self.batch_size = batch_size
        self.records_written = 0
        self.park = RecordPark(file)

    def start_exporting(self) -> None:
        if self._appending():
            raise ValueError("a Parquet feed cannot be appended to; use -O (overwrite), not -o")
        self.park.open()

    def _appending(self) -> bool:
        """``-o`` hands over the old file positioned at its end: a second footer would not do."""
        try:
            return self.file.tell() > 0
        except (OSError, ValueError):  # not seekable: nothing was there before us
            return False

    def export_item(self, item: Any) -> None:
        self.park.add(item)

    def finish_exporting(self) -> None:
        written = 0
        try:
            # Imported here: Scrapy loads every registered exporter at start-up, and pyarrow
            # would cost every crawl ~50 MB of memory whether it writes Parquet or not.
            from crawler.export.tables import ENTRIES, TableWriter, entry_row

            writer = TableWriter(self.file, ENTRIES, batch_rows=self.batch_size)
            for line in self.park.sorted_lines():
                writer.append(entry_row(json.loads(line)))
            writer.close()
            written = writer.written
        except (OSError, ValueError) as exc:
            self.park.fail(f"cannot write the Parquet table: {exc}")
        finally:
            self.park.close(written)
        self.records_written = written
