"""The snapshot exporter: fixed order, fixed bytes, identical records once."""

from __future__ import annotations

import io
import json

from crawler.export.jsonlines import SortedJsonLinesExporter


def _record(date: str, slug: str, rank: int, title: str = "t") -> dict:
    return {
        "post": {"published_at": date, "slug": slug, "source": "s.md"},
        "rank": rank,
        "title": title,
    }


def test_sorted_by_post_date_slug_rank_and_deduplicated() -> None:
    out = io.BytesIO()
    exporter = SortedJsonLinesExporter(out)
    exporter.start_exporting()
    records = [
        _record("2021-06-02T00:00:00Z", "b", 10),
        _record("2021-06-02T00:00:00Z", "b", 2, "é ✓"),
        _record("2021-01-01T00:00:00Z", "z", 1),
        _record("2021-06-02T00:00:00Z", "a", 3),
        _record("2021-06-02T00:00:00Z", "b", 2, "é ✓"),  # the same digest read twice
    ]
    for record in records:
        exporter.export_item(record)
    exporter.finish_exporting()
    lines = out.getvalue().decode("utf-8").splitlines()
    keys = [(r["post"]["slug"], r["rank"]) for r in map(json.loads, lines)]
    assert keys == [("z", 1), ("a", 3), ("b", 2), ("b", 10)]
    assert lines[2] == json.dumps(records[1], ensure_ascii=False)  # UTF-8, not \\u escapes
