"""``scrapy crawl`` with an exit status that tells a scheduler what went wrong.

0  every source was read and every record written (enrichment failures are in the records,
   with their status, and are retried by the next run);
1  the crawl did not run to completion: refused arguments (``-a refresh=sometimes``), settings,
   spider name, an error while starting, or stopped early (Ctrl-C, SIGTERM);
2  at least one source could not be read at all (missing path, unreadable file, failed URL);
3  at least one record was dropped for breaking the output schema (a bug: please report it).
"""

from __future__ import annotations

import argparse
from typing import Any

from scrapy import signals
from scrapy.commands.crawl import Command as ScrapyCrawl
from scrapy.crawler import Crawler

EXIT_SOURCE_UNREADABLE = 2
EXIT_INVALID_RECORDS = 3


def exit_status(stats: dict[str, Any], reason: str) -> int:
    if reason != "finished" or stats.get("arguments/invalid"):
        return 1
    if stats.get("records/invalid"):
        return EXIT_INVALID_RECORDS
    if stats.get("digests/unreadable") or stats.get("digests/missing"):
        return EXIT_SOURCE_UNREADABLE
    return 0


class Command(ScrapyCrawl):
    def __init__(self) -> None:
        super().__init__()
        self._final_stats: dict[str, Any] = {}
        self._reason = "finished"

    def _create_crawler(self, spidercls: Any) -> Crawler:
        crawler = super()._create_crawler(spidercls)

        def keep_stats(spider: Any, reason: str) -> None:
            self._final_stats = dict(crawler.stats.get_stats())
            self._reason = reason

        crawler.signals.connect(keep_stats, signal=signals.spider_closed, weak=False)
        return crawler

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        super().run(args, opts)
        if not self.exitcode:
            self.exitcode = exit_status(self._final_stats, self._reason)
