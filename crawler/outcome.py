"""A run's outcome, owned in one place: why it finished, its exit status, and whether the snapshot
may replace the previous one.

The crawl command, the feed storage and the run files all ask :class:`Outcome`; nothing else
decides. Stats keys that drive these decisions are named here, so a renamed counter cannot
silently change an exit status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

from scrapy import signals
from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

# --- stats keys used as control flow ---------------------------------------------------------
ARGUMENTS_INVALID = "arguments/invalid"
DIGESTS_TOTAL = "digests/total"
DIGESTS_READ = "digests/read"
DIGESTS_EMPTY = "digests/empty"
DIGESTS_UNREADABLE = "digests/unreadable"
DIGESTS_MISSING = "digests/missing"
# Problems in a digest: "error" ones lost input (an entry, a tweet, a paper link), "warning" ones
# lost nothing. The spider counts them under these keys; errors decide the exit status.
INPUT_LOST = "digests/problems/error"
INPUT_WARNINGS = "digests/problems/warning"
ENTRIES_PARSED = "entries/parsed"
RECORDS_WRITTEN = "records/written"  # left the record pipeline, valid
RECORDS_INVALID = "records/invalid"  # dropped: broke the schema (a bug of ours)
RECORDS_REPAIRED = "records/repaired"  # an enrichment block that broke the schema was replaced
RECORDS_SCRUBBED = "records/scrubbed"  # carried lone surrogates, logged as U+FFFD (a warning)
OUTPUT_STORED = "output/records_stored"  # lines in the snapshot that was actually stored
OUTPUT_FAILED = "output/failed"


def failed_key(service: str) -> str:
    """Values of ``service`` that could not be fetched or refreshed this run (errors, kept
    good values, incidents): any of them makes the run's enrichment incomplete."""
    return f"enrichment/{service}/failed"


class ExitStatus(IntEnum):
    OK = 0
    NOT_COMPLETED = 1  # refused arguments/settings, lock held, error while starting, stopped
    SOURCE_UNREADABLE = 2  # a source could not be read at all, or none was; the rest was written
    INVALID_RECORDS = 3  # a record broke the schema and was dropped (a bug)
    ENRICHMENT_INCOMPLETE = 4  # a service failed for some values; good values were kept
    OUTPUT_FAILED = 5  # the snapshot could not be written


class Outcome:
    """Scrapy extension: collects what decides the run's outcome and answers for it.

    Ordered before the feed exporter in ``EXTENSIONS`` so its ``spider_closed`` handler has
    noted the finish reason before any feed is stored.
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.stats = crawler.stats
        self.started = datetime.now(UTC)
        self.run_id = self.started.strftime("%Y%m%dT%H%M%S.%fZ")
        self.reason: str | None = None
        self.output_problems: list[str] = []
        self.snapshots: dict[str, bool] = {}  # feed file -> replaced by this run?
        self.stop_problem: str | None = None  # why we stopped the crawl ourselves
        # Set as soon as the crawl is stopping (Ctrl-C, SIGTERM, our own stop): long waits
        # (backoff, Retry-After, batches) end at once instead of holding the shutdown.
        self.stopping = asyncio.Event()
        self._watch: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Outcome:
        return cls(crawler)

    @staticmethod
    def of(crawler: Crawler) -> Outcome:
        """The crawl's outcome, for components built later (extensions cannot look each
        other up while they are being built)."""
        outcome = crawler.get_extension(Outcome)
        if outcome is None:
            raise RuntimeError("the crawler.outcome.Outcome extension is not enabled")
        return outcome

    def spider_opened(self, spider: Any) -> None:
        self._watch = asyncio.get_running_loop().create_task(self._watch_engine())

    async def _watch_engine(self) -> None:
        # Scrapy has no signal for "a stop was requested": Crawler.stop_async() (Ctrl-C,
        # SIGTERM) clears crawler.crawling, and the engine stops running. (The spider opens
        # before the engine runs, so only a change from running counts; a stop before the
        # first look at the engine shows only in crawler.crawling.)
        engine = self.crawler.engine
        started = False
        while not self.stopping.is_set():
            running = engine is not None and engine.running
            if not self.crawler.crawling or (started and not running):
                self.stopping.set()
                return
            started = started or running
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), 0.25)

    def spider_closed(self, spider: Any, reason: str) -> None:
        self.reason = reason
        self.stopping.set()
        if self._watch is not None:
            self._watch.cancel()

    # -- facts reported by components ------------------------------------------------------
    def output_failed(self, message: str) -> None:
        """The snapshot (or a file beside it) could not be written: one line, no traceback."""
        logger.error("%s", message)
        self.output_problems.append(message)
        self.stats.inc_value(OUTPUT_FAILED)

    def snapshot_stored(self, path: str, replaced: bool) -> None:
        self.snapshots[path] = replaced

    def stop_because(self, message: str, reason: str = "failed") -> None:
        """We are stopping the crawl ourselves (e.g. the state database became unusable)."""
        if self.stop_problem is not None:
            return
        self.stop_problem = message
        logger.error("%s; stopping the crawl", message)
        self.stopping.set()
        engine = self.crawler.engine
        if engine is not None and engine.spider is not None:
            # Kept: the event loop holds tasks only weakly.
            self._closing = asyncio.get_running_loop().create_task(
                engine.close_spider_async(reason=reason)
            )

    # -- decisions ---------------------------------------------------------------------------
    def _get(self, key: str) -> int:
        return int(self.stats.get_value(key, 0) or 0)

    def keep_previous_because(self, records_in_file: int | None = None) -> str | None:
        """Why the snapshot must not replace the previous one, or None when it may.

        ``records_in_file`` is what the exporter wrote into the new file (duplicates collapsed
        included); fewer than the entries parsed means records were lost on the way.
        """
        if self.stop_problem:
            return self.stop_problem
        if self.reason not in (None, "finished"):
            return f"the crawl ended early ({self.reason})"
        if not self.crawler.crawling:
            return "the crawl was stopped before it finished"
        if self._get(ARGUMENTS_INVALID):
            return "the crawl's arguments were refused"
        if not self._get(DIGESTS_READ):
            return "no digest could be read"
        if self.output_problems:
            return self.output_problems[0]
        parsed = self._get(ENTRIES_PARSED)
        if records_in_file is not None and records_in_file < parsed:
            return f"only {records_in_file} of {parsed} entries reached the file"
        return None

    def incomplete_services(self) -> dict[str, int]:
        prefix, suffix = "enrichment/", "/failed"
        return {
            key[len(prefix) : -len(suffix)]: int(value)
            for key, value in self.stats.get_stats().items()
            if key.startswith(prefix) and key.endswith(suffix) and value
        }

    def exit_status(self) -> ExitStatus:
        """The first that applies, most serious first: not completed (we stopped, the crawl
        did not finish, arguments refused) 1; output failed 5; records invalid 3; a source
        unreadable or missing, input lost inside a digest (an error-level problem), or no
        digest read at all, 2; enrichment incomplete 4; else 0."""
        if self.stop_problem or self.reason != "finished" or self._get(ARGUMENTS_INVALID):
            return ExitStatus.NOT_COMPLETED
        if self._get(OUTPUT_FAILED):
            return ExitStatus.OUTPUT_FAILED
        if self._get(RECORDS_INVALID):
            return ExitStatus.INVALID_RECORDS
        unread = self._get(DIGESTS_UNREADABLE) or self._get(DIGESTS_MISSING)
        if unread or self._get(INPUT_LOST) or not self._get(DIGESTS_READ):
            return ExitStatus.SOURCE_UNREADABLE
        if self.incomplete_services():
            return ExitStatus.ENRICHMENT_INCOMPLETE
        return ExitStatus.OK
