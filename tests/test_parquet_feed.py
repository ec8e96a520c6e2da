"""The Parquet feed exporter (``-O out.parquet``): the entries table, in snapshot order."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from scrapy.utils.misc import load_object

from crawler.export.dataset import write_dataset
from crawler.export.parquet import ParquetItemExporter
from crawler.export.tables import ENTRIES
from tests.records_v2 import LORA, small_corpus, write_snapshot


def _export(path: Path, records: list[dict], **options: object) -> ParquetItemExporter:
    with path.open("wb") as file:
        exporter = ParquetItemExporter(file, **options)  # type: ignore[arg-type]
        exporter.start_exporting()
        for record in records:
            exporter.export_item(record)
        exporter.finish_exporting()
        assert not file.closed  # Scrapy's feed storage closes (and renames) it
    return exporter


def test_sorted_deduplicated_entries_like_the_snapshot(tmp_path: Path) -> None:
    records = small_corpus()
    shuffled = [*records[::-1], records[2]]  # completion order, and one digest read twice
    random.Random(0).shuffle(shuffled)
    exporter = _export(tmp_path / "out.parquet", shuffled, batch_size=4)
    table = pq.read_table(tmp_path / "out.parquet")
    assert exporter.records_written == table.num_rows == 6
    assert table.schema.equals(ENTRIES)
    keys = list(zip(table.column("post_slug").to_pylist(), table.column("rank").to_pylist(), strict=True))  # fmt: skip
    assert keys == [
        ("hot-papers-2021-06-18", 1), ("hot-papers-2021-06-18", 2), ("hot-papers-2021-06-18", 3),
        ("hot-papers-2021-06-20", 1), ("hot-papers-2021-06-20", 2), ("hot-papers-2021-06-22", 1),
    ]  # fmt: skip
    assert table.column("arxiv_id").to_pylist()[0] == LORA
    meta = pq.ParquetFile(tmp_path / "out.parquet").metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [4, 2]
    assert meta.row_group(0).column(0).compression == "ZSTD"
    # exactly the dataset's entries.parquet for the same records
    snapshot = write_snapshot(tmp_path / "digests.jsonl", records)
    write_dataset(snapshot, tmp_path / "digests.dataset")
    assert table.equals(pq.read_table(tmp_path / "digests.dataset" / "entries.parquet"))


def test_no_records_still_make_a_typed_file(tmp_path: Path) -> None:
    exporter = _export(tmp_path / "empty.parquet", [])
    table = pq.read_table(tmp_path / "empty.parquet")
    assert exporter.records_written == table.num_rows == 0
    assert table.schema.equals(ENTRIES)


def test_appending_to_a_parquet_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "out.parquet"
    _export(target, small_corpus()[:1])
    with target.open("ab") as file:
        exporter = ParquetItemExporter(file)
        with pytest.raises(ValueError, match="cannot be appended to; use -O"):
            exporter.start_exporting()
    assert pq.read_table(target).num_rows == 1  # untouched


def test_scrapy_can_load_it_with_feed_options(tmp_path: Path) -> None:
    cls = load_object("crawler.export.parquet.ParquetItemExporter")
    with (tmp_path / "out.parquet").open("wb") as file:
        exporter = cls(file, fields_to_export=None, encoding="utf-8", indent=None)
    assert isinstance(exporter, ParquetItemExporter) and exporter.records_written == 0
