"""What a benchmark run is and what it yields: shared by measuring, reporting and plotting.

Kept apart from them so that ``benchmarks.report`` can rebuild the table from ``results.json``
without importing anything that runs crawls.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.services import ServiceFigures

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BATCH_SIZE = 100  # crawler.settings.ARXIV_BATCH_SIZE
OEMBED_CONCURRENCY = 4  # crawler.settings.OEMBED_CONCURRENCY
YEAR_POSTS = 175  # ~4,000 entries / ~5,000 tweet embeds: a year of digests by upstreams.md


@dataclass
class Config:
    """Delays and latencies of one kind of run: ``real`` (arXiv's rule) or ``scaled``."""

    label: str  # "real" or "scaled"
    arxiv_delay: float
    arxiv_margin: float | None  # None: the crawler's default ARXIV_DELAY_MARGIN
    arxiv_latency: float
    oembed_latency: float
    peer_max_posts: int


@dataclass
class Row:
    """One (mode, posts) run: one line of the table, one object in ``results.json``."""

    mode: str
    posts: int
    entries: int
    tweet_embeds: int
    distinct_ids: int
    distinct_tweets: int
    arxiv_delay: float
    arxiv_margin: float | None
    arxiv_latency: float
    oembed_latency: float
    bound_s: float
    bound_arxiv_s: float
    bound_oembed_s: float
    crawler_wall_s: float = 0.0
    crawler_rss_mb: float = 0.0
    crawler_records: int = 0
    crawler_arxiv_requests: int = 0
    crawler_oembed_requests: int = 0
    crawler_stats: dict[str, Any] = field(default_factory=dict)
    crawler_rss_timeline: list[tuple[float, float]] = field(default_factory=list)
    # Per service name found in the stand-in's log during the crawl (issue 14). Empty in rows
    # measured before the harness recorded it; the report shows those as "—".
    crawler_services: dict[str, ServiceFigures] = field(default_factory=dict)
    peer_posts: int = 0
    peer_entries: int = 0
    peer_wall_measured_s: float = 0.0
    peer_wall_s: float = 0.0
    peer_extrapolated: bool = False
    peer_arxiv_requests: float = 0
    peer_oembed_requests: float = 0
    peer_rss_mb: float = 0.0
    parse_entries_per_s: float = 0.0
    corpus_mb: float = 0.0
    faults: float = 0.0

    @property
    def ratio(self) -> float:
        return self.crawler_wall_s / self.bound_s if self.bound_s else math.nan

    @property
    def speedup(self) -> float:
        return self.peer_wall_s / self.crawler_wall_s if self.crawler_wall_s else math.nan

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Row:
        """A row from ``results.json``, old or new: unknown keys (a newer harness) are dropped,
        missing optional ones (an older harness) take their defaults."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def row_key(row: dict[str, Any] | Row) -> tuple[str, int]:
    """Rows are identified by mode and size: a re-run of the same pair replaces the old row."""
    if isinstance(row, Row):
        return row.mode, row.posts
    return row["mode"], row["posts"]


def ordered(rows: list[Row]) -> list[Row]:
    """Table order: real rows first, then by corpus size."""
    return sorted(rows, key=lambda r: (r.mode != "real", r.entries))
