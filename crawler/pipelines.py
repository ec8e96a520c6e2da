"""Item pipelines, in order: arXiv enrichment, tweet embeds, then the output record.

The two enrichment pipelines live in :mod:`crawler.enrich`; they are re-exported here so the
``ITEM_PIPELINES`` setting reads as the whole flow.
"""

from __future__ import annotations

import logging
from typing import Any

from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem

from crawler.enrich.arxiv import ArxivPipeline
from crawler.enrich.oembed import TweetEmbedPipeline
from crawler.items import DigestEntry
from crawler.record import build_record, schema_errors

__all__ = ["ArxivPipeline", "RecordPipeline", "TweetEmbedPipeline"]

logger = logging.getLogger(__name__)


class RecordPipeline:
    """Turns the enriched entry into the output record and refuses anything off-schema."""

    def __init__(self, crawler: Crawler) -> None:
        self.stats = crawler.stats

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RecordPipeline:
        return cls(crawler)

    def process_item(self, item: Any) -> Any:
        if not isinstance(item, DigestEntry):
            return item
        record = build_record(item)
        errors = schema_errors(record)
        if errors:
            # A bug of ours, not bad input: say exactly where, and keep the feed clean.
            self.stats.inc_value("records/invalid")
            raise DropItem(
                f"{item.post.source}:{item.line}: record for entry {item.rank} breaks the schema: "
                + "; ".join(errors[:3])
            )
        self.stats.inc_value("records/written")
        self.stats.inc_value(f"records/arxiv/{record['arxiv']['status']}")
        for tweet in record["tweets"]:
            self.stats.inc_value(f"records/embeds/{tweet['embed']['status']}")
        return record
