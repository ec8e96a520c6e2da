"""The record pipeline: the enriched entry becomes the output record, checked and repaired."""

from __future__ import annotations

import logging
from typing import Any

from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem

from crawler.items import DigestEntry
from crawler.outcome import (
    RECORDS_INVALID,
    RECORDS_REPAIRED,
    RECORDS_SCRUBBED,
    RECORDS_WRITTEN,
    failed_key,
)
from crawler.record.build import PAPER_BLOCKS, build_record
from crawler.record.validate import repair, schema_errors, scrub_text
from crawler.services.registry import SERVICES

logger = logging.getLogger(__name__)

_SERVICE_OF_BLOCK = {service.record_block: service.name for service in SERVICES}


class RecordPipeline:
    """Turns the enriched entry into the output record and never lets an off-schema one out."""

    def __init__(self, crawler: Crawler) -> None:
        self.stats = crawler.stats

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RecordPipeline:
        return cls(crawler)

    def process_item(self, item: Any) -> Any:
        if not isinstance(item, DigestEntry):
            return item
        where = f"{item.post.source}:{item.line}: entry {item.rank}"
        record, scrubbed = scrub_text(build_record(item))
        if scrubbed:
            logger.warning("%s: %d characters that are not text became U+FFFD", where, scrubbed)
            self.stats.inc_value(RECORDS_SCRUBBED)
        if schema_errors(record):
            repaired, remaining = repair(record)
            for problem in repaired:
                logger.error("%s: enrichment replaced by an error: %s", where, problem)
                block = problem.split(":", 1)[0].rsplit("/", 1)[-1]
                self.stats.inc_value(failed_key(_SERVICE_OF_BLOCK.get(block, block)))
            if repaired:
                self.stats.inc_value(RECORDS_REPAIRED)
            if remaining:
                # A bug of ours, not bad input: say exactly where, and keep the feed clean.
                self.stats.inc_value(RECORDS_INVALID)
                raise DropItem(f"{where}: record breaks the schema: " + "; ".join(remaining[:3]))
        self.stats.inc_value(RECORDS_WRITTEN)
        self._count(record)
        return record

    def _count(self, record: dict[str, Any]) -> None:
        for block in PAPER_BLOCKS:
            self.stats.inc_value(f"records/{block}/{record[block]['status']}")
        for tweet in record["tweets"]:
            for block in ("embed", "details"):
                self.stats.inc_value(f"records/{block}/{tweet[block]['status']}")
