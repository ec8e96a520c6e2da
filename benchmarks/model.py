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
S2_BATCH_SIZE = 500  # crawler.settings.S2_BATCH_SIZE (the API's maximum)
TWEET_CONCURRENCY_MAX = 16  # crawler.settings.OEMBED_CONCURRENCY_MAX, SYNDICATION_CONCURRENCY_MAX
YEAR_POSTS = 175  # ~4,000 entries / ~5,000 tweet embeds: a year of digests by upstreams.md
TWEET_SERVICES = ("oembed", "syndication")
SERVICE_ORDER = ("arxiv", "oembed", "syndication", "semantic_scholar")


@dataclass
class Config:
    """Rules and latencies of one kind of run (a *mode*), applied to the stand-in and the crawler
    alike, so the crawler is never measured against a stricter or looser service than it was
    told about."""

    label: str  # "real", "fast", "throttle" or "scaled"
    arxiv_delay: float
    arxiv_margin: float | None  # None: the crawler's default ARXIV_DELAY_MARGIN
    arxiv_latency: float
    oembed_latency: float
    peer_max_posts: int
    syndication_latency: float = 0.0
    s2_latency: float = 0.0
    s2_delay: float = 1.0  # the crawler's S2_DELAY and the stand-in's min_interval, both
    # Per service: requests the stand-in serves at once; one more gets 429 (the throttle mode).
    max_in_flight: dict[str, int] = field(default_factory=dict)

    @property
    def latency(self) -> dict[str, float]:
        """The stand-in's ``latency`` argument."""
        return {
            "arxiv": self.arxiv_latency,
            "oembed": self.oembed_latency,
            "syndication": self.syndication_latency,
            "semantic_scholar": self.s2_latency,
        }


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
    # The floor: arXiv's rule, (B-1)·max(delay, latency) + latency (issue 14).
    bound_s: float
    bound_arxiv_s: float
    bound_oembed_s: float  # at TWEET_CONCURRENCY_MAX: context, not the floor
    syndication_latency: float = 0.0
    s2_latency: float = 0.0
    s2_delay: float = 0.0
    max_in_flight: dict[str, int] = field(default_factory=dict)
    bound_syndication_s: float = 0.0
    distinct_papers: int = 0  # the keys Semantic Scholar is asked for (arXiv IDs of entries)
    crawler_wall_s: float = 0.0
    crawler_rss_mb: float = 0.0  # the whole process: crawl, then dataset and HTML report
    crawler_rss_crawl_mb: float = 0.0  # until the snapshot was written (the crawl itself)
    crawler_snapshot_s: float | None = None  # seconds from start until the snapshot appeared
    crawler_records: int = 0
    crawler_stats: dict[str, Any] = field(default_factory=dict)
    crawler_rss_timeline: list[tuple[float, float]] = field(default_factory=list)
    # Per service name found in the stand-in's log during the crawl (issue 14). Empty in rows
    # measured before the harness recorded it; the report shows those as "—".
    crawler_services: dict[str, ServiceFigures] = field(default_factory=dict)
    # Per tweet service: [seconds since its first request, requests in flight] (the crawl's
    # concurrency over time, as the stand-in saw it).
    crawler_concurrency: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    peer_posts: int = 0
    peer_entries: int = 0
    peer_wall_measured_s: float = 0.0
    peer_wall_s: float = 0.0
    peer_extrapolated: bool = False
    peer_requests: dict[str, float] = field(default_factory=dict)  # per service, extrapolated
    peer_rss_mb: float = 0.0
    parse_entries_per_s: float = 0.0
    corpus_mb: float = 0.0
    faults: float = 0.0
    # Provenance: the harness command that measured the row, when, and who else used the CPUs
    # during the crawl (``benchmarks.measure.CpuShare``): the machine is shared.
    command: str = ""
    measured_at: str = ""
    crawler_cpu: dict[str, float] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.crawler_wall_s / self.bound_s if self.bound_s else math.nan

    @property
    def engine_ratio(self) -> float:
        """Scrapy's ``elapsed_time_seconds`` over the floor: without interpreter start-up."""
        elapsed = self.crawler_stats.get("elapsed_time_seconds")
        return elapsed / self.bound_s if elapsed and self.bound_s else math.nan

    @property
    def speedup(self) -> float:
        return self.peer_wall_s / self.crawler_wall_s if self.crawler_wall_s else math.nan

    @property
    def expected_s2_requests(self) -> int:
        return math.ceil(self.distinct_papers / S2_BATCH_SIZE)

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


MODE_ORDER = ("real", "fast", "throttle", "scaled")


def ordered(rows: list[Row]) -> list[Row]:
    """Table order: real rows first, then the other modes, each by corpus size."""
    rank = {m: i for i, m in enumerate(MODE_ORDER)}
    return sorted(rows, key=lambda r: (rank.get(r.mode, len(rank)), r.entries))
