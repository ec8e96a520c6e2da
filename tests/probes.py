"""Extensions that tests add to a real crawl (``-s EXTENSIONS=...``) to observe Scrapy's
internals from the outside; they write what they saw to ``PROBE_FILE`` as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scrapy import signals
from scrapy.crawler import Crawler


class SchedulerProbe:
    """The most requests the scheduler held at once."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.path = Path(crawler.settings.get("PROBE_FILE"))
        self.most = 0
        crawler.signals.connect(self.scheduled, signal=signals.request_scheduled)
        crawler.signals.connect(self.closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SchedulerProbe:
        return cls(crawler)

    def scheduled(self, request: Any, **_: Any) -> None:
        stats = self.crawler.stats
        # Sent before the scheduler counts it: this request is the +1.
        held = stats.get_value("scheduler/enqueued", 0) - stats.get_value("scheduler/dequeued", 0)
        self.most = max(self.most, held + 1)

    def closed(self, spider: Any) -> None:
        self.path.write_text(json.dumps({"most_scheduled": self.most}))
