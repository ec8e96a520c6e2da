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
import sys
from typing import Any

from scrapy import signals
from scrapy.commands.crawl import Command as ScrapyCrawl
from scrapy.crawler import Crawler
from scrapy.settings import BaseSettings

EXIT_SOURCE_UNREADABLE = 2
EXIT_INVALID_RECORDS = 3


# Our numeric settings and their lowest sensible value.
_NUMBERS: dict[str, tuple[type, float]] = {
    "ARXIV_DELAY": (float, 0), "ARXIV_DELAY_MARGIN": (float, 0), "ARXIV_BATCH_SIZE": (int, 1),
    "ARXIV_BATCH_WAIT": (float, 0), "ARXIV_SLOWDOWN_MAX": (float, 0),
    "OEMBED_CONCURRENCY": (int, 1), "OEMBED_DELAY": (float, 0), "RETRY_TIMES": (int, 0),
    "RETRY_BACKOFF_BASE": (float, 0), "RETRY_BACKOFF_MAX": (float, 0),
    "RETRY_AFTER_MAX": (float, 0), "RETRY_UNREACHABLE_AFTER": (int, 0),
    "PROGRESS_INTERVAL": (float, -1),
}  # fmt: skip


def settings_problems(settings: BaseSettings) -> list[str]:
    """One line per setting a crawl cannot run with (checked before anything starts)."""
    problems = []
    for name, (kind, lowest) in _NUMBERS.items():
        try:
            value = (settings.getint if kind is int else settings.getfloat)(name)
        except (TypeError, ValueError):
            problems.append(f"{name} must be a number, not {settings.get(name)!r}")
            continue
        if value < lowest:
            problems.append(f"{name} must be at least {lowest}, not {value}")
    try:
        ttl = settings.getdict("STATE_TTL_DAYS")
        bad = [k for k, v in ttl.items() if not isinstance(v, int | float) or v < 0]
    except (TypeError, ValueError):
        bad = ["(not a JSON object)"]
    if bad:
        problems.append(f"STATE_TTL_DAYS needs numbers of days >= 0; wrong: {', '.join(bad)}")
    return problems


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

    def process_options(self, args: list[str], opts: argparse.Namespace) -> None:
        super().process_options(args, opts)
        assert self.settings is not None
        if problems := settings_problems(self.settings):
            for problem in problems:
                print(f"error: {problem}", file=sys.stderr)
            raise SystemExit(1)

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        super().run(args, opts)
        if not self.exitcode:
            self.exitcode = exit_status(self._final_stats, self._reason)
