"""What a person watching the crawl sees: a progress line every few seconds and a summary."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from typing import Any

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured

logger = logging.getLogger(__name__)


def _fmt_eta(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class CrawlReport:
    """``PROGRESS_INTERVAL`` (seconds, 0 = off) progress lines and an end-of-crawl summary."""

    def __init__(self, crawler: Crawler) -> None:
        s = crawler.settings
        self.interval = s.getfloat("PROGRESS_INTERVAL")
        if self.interval < 0:
            raise NotConfigured
        self.stats = crawler.stats
        self.batch_size = max(1, s.getint("ARXIV_BATCH_SIZE"))
        self.arxiv_gap = s.getfloat("ARXIV_DELAY") + s.getfloat("ARXIV_DELAY_MARGIN")
        self.errors: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None
        self._started = time.monotonic()
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)
        crawler.signals.connect(self.item_scraped, signal=signals.item_scraped)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CrawlReport:
        return cls(crawler)

    def spider_opened(self, spider: Any) -> None:
        self._started = time.monotonic()
        if self.interval > 0:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            logger.info(self.progress_line())

    def item_scraped(self, item: Any, **_: Any) -> None:
        if not isinstance(item, dict):
            return
        if item["arxiv"]["status"] == "error":
            self.errors[f"arXiv: {item['arxiv']['error']}"] += 1
        for tweet in item["tweets"]:
            if tweet["embed"]["status"] == "error":
                self.errors[f"oEmbed: {tweet['embed']['error']}"] += 1

    def _get(self, key: str) -> int:
        return int(self.stats.get_value(key, 0) or 0)

    def eta(self, elapsed: float) -> float:
        """Seconds left: the larger of what the arXiv queue needs at the polite pace and what the
        whole crawl needs at its rate so far (entries still unparsed estimated from the share of
        digests read: with backpressure only a window of digests is ever parsed ahead)."""
        g = self._get
        ids_left = max(0, g("arxiv/ids_wanted") - g("arxiv/ids_requested"))
        arxiv_left = math.ceil(ids_left / self.batch_size) * self.arxiv_gap
        written, parsed = g("records/written"), g("entries/parsed")
        read, total = g("digests/read") + g("digests/unreadable"), g("digests/total")
        if not written or not read or elapsed <= 0:
            return arxiv_left
        expected = parsed * max(total, read) / read
        return max(arxiv_left, elapsed * max(0.0, expected - written) / written)

    def progress_line(self) -> str:
        g = self._get
        elapsed = time.monotonic() - self._started
        tweets_done = sum(g(f"oembed/tweets/{s}") for s in ("ok", "deleted", "protected", "error"))
        ids_left = max(0, g("arxiv/ids_wanted") - g("arxiv/ids_requested"))
        retries = g("retry/arxiv/count") + g("retry/oembed/count")
        return (
            f"Progress: {g('records/written')}/{g('entries/parsed')} entries written "
            f"({g('digests/read')}/{g('digests/total')} digests read), "
            f"arXiv batches {g('arxiv/batches')} ({ids_left} IDs waiting), "
            f"tweets {tweets_done}/{g('oembed/tweets_wanted')}, retries {retries}, "
            f"ETA {_fmt_eta(self.eta(elapsed))}"
        )

    def summary(self) -> str:
        g = self._get
        lines = [
            f"Crawl summary: {g('records/written')} records from {g('digests/read')} of "
            f"{g('digests/total')} digests ({g('digests/unreadable')} unreadable, "
            f"{g('digests/missing')} sources missing) in {time.monotonic() - self._started:.1f} s",
            f"  arXiv:  {g('records/arxiv/ok')} ok, {g('records/arxiv/not_found')} not found, "
            f"{g('records/arxiv/error')} errors; {g('arxiv/batches')} requests for "
            f"{g('arxiv/ids_requested')} IDs, {g('retry/arxiv/count')} retries, "
            f"{g('retry/arxiv/max_reached')} given up",
            f"  tweets: {g('records/embeds/ok')} ok, {g('records/embeds/deleted')} deleted, "
            f"{g('records/embeds/protected')} protected, {g('records/embeds/error')} errors; "
            f"{g('oembed/tweets_requested')} requests, {g('retry/oembed/count')} retries, "
            f"{g('retry/oembed/max_reached')} given up",
            f"  input:  {g('digests/problems/error')} errors, "
            f"{g('digests/problems/warning')} warnings (see the log lines naming file:line)",
        ]
        if g("records/invalid"):
            lines.append(f"  BUG: {g('records/invalid')} records broke the schema and were dropped")
        for message, count in self.errors.most_common(5):
            lines.append(f"  failed x{count}: {message}")
        return "\n".join(lines)

    def spider_closed(self, spider: Any, reason: str) -> None:
        if self._task is not None:
            self._task.cancel()
        logger.info("%s", self.summary())
