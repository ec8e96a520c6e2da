"""The enrichment item pipeline: every registered service fills its part of each entry.

Why a pipeline that downloads (Scrapy's ``engine.download_async`` pattern) rather than spider
callbacks: each entry simply awaits its values, records stream out as soon as their last answer
arrives, and the downloader still does all HTTP. Services run side by side: an entry waits for
the slowest of them, not for their sum.
"""

from __future__ import annotations

import asyncio
from typing import Any

from scrapy import signals as scrapy_signals
from scrapy.crawler import Crawler

from crawler import signals
from crawler.enrich.runner import ServiceRunner
from crawler.items import DigestEntry
from crawler.outcome import Outcome
from crawler.services.base import Service
from crawler.services.registry import SERVICES
from crawler.state.extension import State


class EnrichmentPipeline:
    def __init__(self, crawler: Crawler) -> None:
        outcome = self.outcome = Outcome.of(crawler)
        state = crawler.get_extension(State)
        self.runners: list[ServiceRunner[Any]] = []
        self.disabled: list[Service[Any]] = []
        for cls in SERVICES:
            if cls.enabled(crawler.settings):
                self.runners.append(ServiceRunner(cls(crawler.settings), crawler, state, outcome))
            else:
                self.disabled.append(cls(crawler.settings))  # for its "disabled" values
        for runner in self.runners:
            runner.peers = self.runners  # a partial batch waits while any service works
        self._watch: asyncio.Task[None] | None = None
        crawler.signals.connect(self.want, signal=signals.entry_parsed)
        crawler.signals.connect(self.input_done, signal=signals.digests_exhausted)
        crawler.signals.connect(self.spider_opened, signal=scrapy_signals.spider_opened)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> EnrichmentPipeline:
        return cls(crawler)

    def spider_opened(self, spider: Any) -> None:
        self._watch = asyncio.get_running_loop().create_task(self._stop_when_stopping())

    async def _stop_when_stopping(self) -> None:
        await self.outcome.stopping.wait()
        for runner in self.runners:
            runner.stop()

    def want(self, entry: DigestEntry) -> None:
        for runner in self.runners:
            runner.want(entry)

    def input_done(self) -> None:
        for runner in self.runners:
            runner.input_done()

    async def process_item(self, item: Any) -> Any:
        if not isinstance(item, DigestEntry):
            return item
        # Every service looks its keys up (and wants what is missing) as the entry arrives,
        # then the entry waits for them one service after another: the same values as a task
        # per service, at ~15 KB less per entry in flight (~1,100 of them in a backfill).
        claims = [runner.claim(item) for runner in self.runners]
        for runner, claimed in zip(self.runners, claims, strict=True):
            await runner.fill(item, claimed)
        for service in self.disabled:
            service.attach(item, {key: service.disabled() for key in service.keys(item)})
        return item

    def close_spider(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
