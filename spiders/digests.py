"""The ``digests`` spider: read digests, announce their entries, yield them to the pipelines.

Thin on purpose: parsing is :func:`crawler.parsing.digest.parse_digest_bytes`, enrichment and the
output record are item pipelines. The spider's one extra duty is bookkeeping of its sources, so
it can tell the pipelines when no more entries will come.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import scrapy
from scrapy.exceptions import CloseSpider
from scrapy.http import Response
from twisted.python.failure import Failure

from crawler import signals
from crawler.items import DigestEntry
from crawler.parsing.digest import DigestError, parse_digest_bytes
from crawler.sources import expand_sources
from crawler.state import REFRESH_CHOICES

logger = logging.getLogger(__name__)


class DigestsSpider(scrapy.Spider):
    name = "digests"

    def __init__(
        self, source: str | None = None, refresh: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.refresh = refresh or "none"
        self._unread = 0

    async def start(self) -> AsyncIterator[scrapy.Request]:
        if self.refresh not in REFRESH_CHOICES:
            logger.error("refresh=%s: must be one of %s", self.refresh, ", ".join(REFRESH_CHOICES))
            self.crawler.stats.inc_value("arguments/invalid")
            raise CloseSpider("invalid_argument")
        expanded = expand_sources(self.source)
        for problem in expanded.problems:
            logger.error("source %s", problem)
            self.crawler.stats.inc_value("digests/missing")
        self._unread = len(expanded.sources)
        self.crawler.stats.set_value("digests/total", len(expanded.sources))
        if not expanded.sources:
            self._announce_exhausted()
        for source in expanded.sources:
            yield scrapy.Request(
                source.url,
                callback=self.parse_digest,
                errback=self.source_failed,
                cb_kwargs={"name": source.name},
                dont_filter=True,
            )

    def parse_digest(self, response: Response, name: str) -> Iterator[DigestEntry]:
        stats = self.crawler.stats
        try:
            try:
                digest = parse_digest_bytes(response.body, name)
            except DigestError as exc:
                logger.error("%s: unreadable digest: %s", name, exc)
                stats.inc_value("digests/unreadable")
                return
            except Exception as exc:  # a parser bug: say where, keep crawling the rest
                logger.error(
                    "%s: digest could not be parsed (%s: %s); please report this file",
                    name, type(exc).__name__, exc,
                )  # fmt: skip
                stats.inc_value("digests/unreadable")
                return
            stats.inc_value("digests/read")
            for problem in digest.problems:
                where = f"{name}:{problem.line}" if problem.line else name
                log = logger.error if problem.severity == "error" else logger.warning
                log("%s: %s", where, problem.message)
                stats.inc_value(f"digests/problems/{problem.severity}")
            for entry in digest.entries:
                stats.inc_value("entries/parsed")
                self.crawler.signals.send_catch_log(signals.entry_parsed, entry=entry)
                yield entry
        finally:
            self._source_done()

    def source_failed(self, failure: Failure) -> None:
        name = failure.request.cb_kwargs.get("name", failure.request.url)
        logger.error("%s: cannot read: %s", name, failure.getErrorMessage())
        self.crawler.stats.inc_value("digests/unreadable")
        self._source_done()

    def _source_done(self) -> None:
        self._unread -= 1
        if self._unread == 0:
            self._announce_exhausted()

    def _announce_exhausted(self) -> None:
        self.crawler.signals.send_catch_log(signals.digests_exhausted)
