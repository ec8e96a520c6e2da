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

from crawler.outcome import Outcome
from crawler.services.base import Service
from crawler.services.registry import SERVICES

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
        self.crawler = crawler
        self.services: list[Service[Any]] = [cls(s) for cls in SERVICES if cls.enabled(s)]
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
        labels = {s.record_block: s.label for s in self.services}
        blocks = [(k, item[k]) for k in ("arxiv", "semantic_scholar", "hf", "openalex")] + [
            (k, tweet[k]) for tweet in item["tweets"] for k in ("embed", "details")
        ]
        for kind, block in blocks:
            if block.get("status") == "error":
                self.errors[f"{labels.get(kind, kind)}: {block.get('error')}"] += 1

    def _get(self, key: str) -> int:
        return int(self.stats.get_value(key, 0) or 0)

    def _done(self, service: Service[Any]) -> int:
        prefix = f"{service.name}/values/"
        return sum(int(v) for k, v in self.stats.get_stats().items() if k.startswith(prefix))

    def eta(self, elapsed: float) -> float:
        """Seconds left: the larger of what the slowest service's queue needs at its polite
        pace and what the whole crawl needs at its rate so far (entries still unparsed are
        estimated from the share of digests read)."""
        g = self._get
        floor = 0.0
        for s in self.services:
            left = max(0, g(f"{s.name}/keys_wanted") - g(f"{s.name}/keys_requested"))
            floor = max(floor, math.ceil(left / max(1, s.batch_size)) * self._pace(s))
        written, parsed = g("records/written"), g("entries/parsed")
        read, total = g("digests/read") + g("digests/unreadable"), g("digests/total")
        if not written or not read or elapsed <= 0:
            return floor
        expected = parsed * max(total, read) / read
        return max(floor, elapsed * max(0.0, expected - written) / written)

    def _pace(self, service: Service[Any]) -> float:
        """Seconds per request at the service's polite pace: its delay, or its rate-limit
        window (as its RateLimit-Policy header says, else as documented) if that is slower.
        Hugging Face's window (500 per 5 minutes) is the longest pole of a first backfill."""
        pace = service.politeness.delay / max(1, service.politeness.concurrency)
        quota = self._get(f"ratelimit/{service.name}/quota")
        window = float(self.stats.get_value(f"ratelimit/{service.name}/window", 0) or 0)
        if not quota and service.expected_window is not None:
            quota, window = service.expected_window
        return max(pace, window / quota) if quota else pace

    def progress_line(self) -> str:
        g = self._get
        elapsed = time.monotonic() - self._started
        services = ", ".join(
            f"{s.label} {self._done(s)}/{g(f'{s.name}/keys_wanted')}" for s in self.services
        )
        retries = sum(g(f"retry/{s.name}/count") for s in self.services)
        return (
            f"Progress: {g('records/written')}/{g('entries/parsed')} entries written "
            f"({g('digests/read')}/{g('digests/total')} digests read), {services}, "
            f"retries {retries}, ETA {_fmt_eta(self.eta(elapsed))}"
        )

    def _statuses(self, kind: str) -> str:
        prefix = f"records/{kind}/"
        counts = {
            k[len(prefix) :]: int(v)
            for k, v in sorted(self.stats.get_stats().items())
            if k.startswith(prefix)
        }
        return ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in counts.items()) or "-"

    def summary(self) -> str:
        g = self._get
        lines = [
            f"Crawl summary: {g('records/written')} records from {g('digests/read')} of "
            f"{g('digests/total')} digests ({g('digests/unreadable')} unreadable, "
            f"{g('digests/missing')} sources missing, {g('digests/empty')} empty) in "
            f"{time.monotonic() - self._started:.1f} s",
        ]
        for s in self.services:
            n, statuses = s.name, self._statuses(s.record_block)
            lines.append(
                f"  {s.label + ':':<18}{statuses}; {g(f'service/{n}/requests')} "
                f"requests ({g(f'service/{n}/throttled')} throttled), {g(f'retry/{n}/count')} "
                f"retries, {g(f'retry/{n}/max_reached')} given up"
            )
        lines.append(
            f"  input:            {g('digests/problems/error')} errors, "
            f"{g('digests/problems/warning')} warnings (see the log lines naming file:line)"
        )
        incomplete = Outcome.of(self.crawler).incomplete_services()
        labels = {cls.name: cls.label for cls in SERVICES}
        for name, count in incomplete.items():
            lines.append(
                f"  INCOMPLETE {labels.get(name, name)}: {count} values could not be fetched or "
                "refreshed (stored good values kept; asked again next run)"
            )
        if g("records/invalid"):
            lines.append(f"  BUG: {g('records/invalid')} records broke the schema and were dropped")
        for message, count in self.errors.most_common(5):
            lines.append(f"  failed x{count}: {message}")
        return "\n".join(lines)

    def spider_closed(self, spider: Any, reason: str) -> None:
        if self._task is not None:
            self._task.cancel()
        logger.info("%s", self.summary())
