"""What the export modules share, importable without pyarrow, Scrapy or the record package.

The dataset and report steps run in processes of their own after the crawl; importing
``crawler.record`` there (lxml, ftfy, fastjsonschema) or ``crawler.export.jsonlines`` (Scrapy,
Twisted) cost them ~40 MB they never used. The record schema is read from its file (through
the top package's resources, so it works from a Scrapyd egg): the file is the contract.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

SCHEMA_FILE = "record/record.schema.json"  # inside the ``crawler`` package (an egg too)

# The dataset's tables, in the order the manifest, the card and the report list them.
TABLE_NAMES = (
    "entries",
    "papers",
    "tweets",
    "entry_tweets",
    "tweet_history",
    "paper_history",
    "citations_by_year",
    "posts",
)

OBSERVED = "observed_at"  # paper_history's time column, shared by every service's series
# Primary and foreign keys, declared in the DuckDB file and checked after writing it.
PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "entries": ("entry_id",),
    "papers": ("arxiv_id",),
    "tweets": ("tweet_id",),
    "entry_tweets": ("entry_id", "position"),
    "tweet_history": ("tweet_id", "observed_at"),
    "paper_history": ("arxiv_id", "service", OBSERVED),
    "citations_by_year": ("arxiv_id", "year"),
    "posts": ("post_id",),
}
# (table, columns, referenced table): entries -> papers holds where the paper is known (a null
# arxiv_id is not checked, as SQL has it).
FOREIGN_KEYS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("entries", ("post_id",), "posts"),
    ("entries", ("arxiv_id",), "papers"),
    ("entry_tweets", ("entry_id",), "entries"),
    ("entry_tweets", ("tweet_id",), "tweets"),
    ("tweet_history", ("tweet_id",), "tweets"),
    ("paper_history", ("arxiv_id",), "papers"),
    ("citations_by_year", ("arxiv_id",), "papers"),
)


def sql_string(text: str) -> str:
    """``text`` as a DuckDB string literal (paths, descriptions)."""
    return "'" + text.replace("'", "''") + "'"


@cache
def record_schema() -> dict[str, Any]:
    """The record's JSON Schema (``crawler/record/record.schema.json``)."""
    # The top package only: ``resources.files("crawler.record")`` would import the record package.
    text = resources.files("crawler").joinpath(SCHEMA_FILE).read_text("utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


SCHEMA_VERSION: int = record_schema()["properties"]["schema_version"]["const"]


def sort_key(record: dict[str, Any]) -> str:
    """The snapshot's order: post date, slug, rank, source."""
    post = record.get("post") or {}
    return "\x00".join(
        (post.get("published_at") or "", post.get("slug") or "", f"{record.get('rank', 0):010d}",
         post.get("source") or "")
    )  # fmt: skip
