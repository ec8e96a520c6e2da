"""``-o x.csv``: Scrapy's CSV exporter, with nested values (lists, objects) as JSON text.

Scrapy joins a list of strings with commas and writes any other list or a dict as its Python
repr (``[{'name': 'A'}]``, ``True``, ``None``), which no CSV reader can parse back. Each nested
cell here is the JSON of the value, encoded as the JSON Lines snapshot encodes it (UTF-8, no
escapes), so ``json.loads`` reads every such cell; ``null`` at the top level stays an empty cell.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from scrapy.exporters import CsvItemExporter


class JsonCellCsvItemExporter(CsvItemExporter):
    def serialize_field(self, field: Mapping[str, Any], name: str, value: Any) -> Any:
        serializer = field.get("serializer")
        if serializer is not None:
            return serializer(value)
        if isinstance(value, list | tuple | dict):
            return json.dumps(value, ensure_ascii=False)
        return value
