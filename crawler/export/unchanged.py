"""Whether the dataset and the report already show this snapshot, so a rerun can keep them.

An unchanged refresh writes a byte-identical snapshot; rebuilding the tables, the DuckDB file
and the report from it costs seconds and hundreds of megabytes (pyarrow, DuckDB, matplotlib)
to produce the same data. Both outputs therefore carry the key of what they were built from
(:func:`inputs_key`): the SHA-256 of every input (the snapshot's bytes, the posts list the
dataset's posts table comes from) and of the code that shapes them (every module of
``crawler/export`` and the record schema), so a new crawler version rebuilds too. The
dataset's manifest holds it as ``built_from``, the report as a ``<meta>`` tag. A run keeps both
only when the key it computes equals both of theirs and the dataset still has every table file
its manifest lists.

Light on purpose: imported by every crawl, it must not pull in pyarrow or DuckDB.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from crawler.export.ownership import MANIFEST

_EXPORT = Path(__file__).resolve().parent
_SCHEMA = _EXPORT.parent / "record" / "record.schema.json"
REPORT_META = "hot-papers-built-from"  # <meta name=... content=KEY> in the report's head
_META = re.compile(rb'<meta name="' + REPORT_META.encode() + rb'" content="([0-9a-f]{64})">')
_HEAD = 8 * 1024  # bytes of the report read to find its key


@cache
def _code_digest() -> bytes:
    """The code that decides what the dataset and report hold, hashed once per process."""
    h = hashlib.sha256()
    for path in [*sorted(_EXPORT.glob("*.py")), _SCHEMA]:
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.digest()


def inputs_key(inputs: Iterable[Path | bytes | None]) -> str:
    """SHA-256 over the code and each input: a file's bytes (an absent one counts as absent),
    or bytes given as they are. Raises OSError if an existing input cannot be read."""
    h = hashlib.sha256(_code_digest())
    for path in inputs:
        if isinstance(path, bytes):
            h.update(b"bytes\0" + hashlib.sha256(path).digest())
            continue
        if path is None or not path.exists():
            h.update(b"absent\0")
            continue
        h.update(b"file\0")
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()


def dataset_key(folder: Path) -> str | None:
    """The key in a dataset folder's manifest, if the folder still holds every table file."""
    try:
        manifest = json.loads((folder / MANIFEST).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict):
        return None
    tables = manifest.get("tables")
    if not isinstance(tables, dict) or not all(
        isinstance(t, dict) and (folder / str(t.get("file"))).is_file() for t in tables.values()
    ):
        return None
    key = manifest.get("built_from")
    return key if isinstance(key, str) else None


def report_key(report: Path) -> str | None:
    """The key in the report's head, if it is there."""
    try:
        with report.open("rb") as fh:
            head = fh.read(_HEAD)
    except OSError:
        return None
    found = _META.search(head)
    return found.group(1).decode() if found else None


def report_meta(key: str | None) -> str:
    """The tag that carries ``key`` in the report (nothing without a key)."""
    return f'<meta name="{REPORT_META}" content="{key}">' if key else ""


def up_to_date(key: str, dataset: Path, report: Path | None) -> bool:
    """Do the dataset (and the report, unless turned off) show exactly these inputs?"""
    return dataset_key(dataset) == key and (report is None or report_key(report) == key)
