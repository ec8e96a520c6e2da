"""The ``digests`` spider: read digests, announce their entries, yield them to the pipelines.

Thin on purpose: parsing is :func:`crawler.parsing.digest.parse_digest_bytes` (run in a daemon
thread, so a huge digest never freezes the crawl or holds up a Ctrl-C), enrichment and the
output record are item pipelines. The spider's one extra duty is bookkeeping of its sources, so
it can tell the pipelines when no more entries will come.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urljoin

import scrapy
from scrapy import signals as scrapy_signals
from scrapy.crawler import Crawler
from scrapy.http import Response
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.python.failure import Failure

from crawler import signals
from crawler.downloader.contract import short_url
from crawler.items import DigestEntry
from crawler.outcome import (
    DIGESTS_EMPTY,
    DIGESTS_MISSING,
    DIGESTS_READ,
    DIGESTS_TOTAL,
    DIGESTS_UNREADABLE,
    ENTRIES_PARSED,
    INPUT_LOST,
    INPUT_WARNINGS,
    Outcome,
)
from crawler.parsing.digest import Digest, DigestError, parse_digest_bytes
from crawler.services.registry import SERVICES
from crawler.sources import SCAN_MAX, Expanded, basic_auth, expand_sources, without_userinfo
from crawler.state.freshness import refresh_choices

logger = logging.getLogger(__name__)

ARGUMENTS = ("source", "refresh")

T = TypeVar("T")


class CrawlStopping(Exception):
    """The crawl stopped while a digest was being parsed; its parse was abandoned."""


async def in_daemon_thread(stopping: asyncio.Event, func: Callable[..., T], *args: Any) -> T:
    """``func(*args)`` in a daemon thread, abandoned (:class:`CrawlStopping`) once the crawl
    is stopping.

    Not ``asyncio.to_thread``: the engine waits for this callback before it closes, and the
    default executor's threads are joined at exit, so a digest that takes a minute to parse
    held a Ctrl-C or SIGTERM for that minute. An abandoned daemon thread holds nothing.
    """
    loop = asyncio.get_running_loop()
    result: asyncio.Future[T] = loop.create_future()

    def settle(value: Any, failed: bool) -> None:
        if not result.done():
            (result.set_exception if failed else result.set_result)(value)

    def work() -> None:
        value: Any
        try:
            value, failed = func(*args), False
        except BaseException as exc:  # handed to the awaiting coroutine
            value, failed = exc, True
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, value, failed)

    threading.Thread(target=work, name="digest-parser", daemon=True).start()
    stopped = asyncio.ensure_future(stopping.wait())
    either: set[asyncio.Future[Any]] = {result, stopped}
    try:
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if not result.done():
        raise CrawlStopping
    return result.result()


class DigestsSpider(scrapy.Spider):
    name = "digests"

    @classmethod
    def argument_problems(cls, args: dict[str, Any]) -> list[str]:
        """One line per argument the spider cannot run with (a typo must not crawl the
        samples into a production snapshot)."""
        problems = [
            f"unknown spider argument {name!r} (known: {', '.join(ARGUMENTS)})"
            for name in args
            if name not in ARGUMENTS and not name.startswith("_")  # Scrapyd passes _job
        ]
        source = args.get("source")
        if source is not None and not any(p.strip() for p in str(source).split(",")):
            problems.append(f"source={source!r} names no file, folder, pattern or URL")
        refresh = args.get("refresh", "none")
        if refresh not in (choices := refresh_choices(SERVICES)):
            problems.append(f"refresh={refresh}: must be one of {', '.join(choices)}")
        return problems

    def __init__(
        self, source: str | None = None, refresh: str | None = None, **kwargs: Any
    ) -> None:
        args = {name: value for name, value in kwargs.items() if name != "name"}
        args["refresh"] = refresh or "none"
        if source is not None:
            args["source"] = source
        if problems := self.argument_problems(args):
            raise ValueError("; ".join(problems))
        super().__init__(**kwargs)
        self.source = source
        self.refresh = refresh or "none"
        self._unread = 0

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> DigestsSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        # Handed over once, as a setting, to the state extension built next.
        crawler.settings.set("REFRESH", spider.refresh, priority="spider")
        return spider

    async def _expand(self) -> Expanded | None:
        """The sources, walked in a daemon thread (a folder tree, a slow or hung filesystem
        must not freeze the crawl or hold up a stop); None once the crawl is stopping."""
        limit = self.crawler.settings.getint("SOURCE_SCAN_MAX", SCAN_MAX)
        stopping = Outcome.of(self.crawler).stopping
        try:
            return await in_daemon_thread(stopping, expand_sources, self.source, limit)
        except CrawlStopping:
            logger.info("Stopped while expanding the source argument")
            self._announce_exhausted()
            return None

    async def start(self) -> AsyncIterator[scrapy.Request]:
        stats = self.crawler.stats
        expanded = await self._expand()
        if expanded is None:
            return
        for problem in expanded.problems:
            logger.error("source %s", problem)
            stats.inc_value(DIGESTS_MISSING)
        self._unread = len(expanded.sources)
        stats.set_value(DIGESTS_TOTAL, len(expanded.sources))
        if not expanded.sources:
            self._announce_exhausted()
        for source in expanded.sources:
            # Scrapy reads start() on while the engine backs out, so a backfill's every digest
            # request sat in the scheduler (~15 MB at 10,000 posts): hand them over lazily.
            engine = self.crawler.engine
            if engine is not None and engine.needs_backout():
                await self.crawler.signals.wait_for(scrapy_signals.scheduler_empty)
            yield scrapy.Request(
                without_userinfo(source.url),
                headers=basic_auth(source.url),
                callback=self.parse_digest,
                errback=self.source_failed,
                cb_kwargs={"name": source.name, "record_name": source.record_name},
                dont_filter=True,
            )

    async def _read(self, response: Response, name: str) -> Digest | None:
        stopping = Outcome.of(self.crawler).stopping
        try:
            max_entries = self.crawler.settings.getint("MAX_ENTRIES_PER_DIGEST")
            return await in_daemon_thread(
                stopping, partial(parse_digest_bytes, max_entries=max_entries), response.body, name
            )
        except CrawlStopping:
            raise
        except DigestError as exc:
            logger.error("%s: unreadable digest: %s", name, exc)
        except Exception as exc:  # a parser bug: say where, keep crawling the rest
            logger.error(
                "%s: digest could not be parsed (%s: %s); please report this file",
                name, type(exc).__name__, exc,
            )  # fmt: skip
        self.crawler.stats.inc_value(DIGESTS_UNREADABLE)
        return None

    async def parse_digest(
        self, response: Response, name: str, record_name: str = ""
    ) -> AsyncIterator[DigestEntry]:
        stats = self.crawler.stats
        try:
            try:
                digest = await self._read(response, name)
            except CrawlStopping:
                return
            if digest is None:
                return
            stats.inc_value(DIGESTS_READ)
            digest.post.record_source = record_name or name  # post.source of the records
            warnings = self._log_problems(digest, name)
            self.crawler.signals.send_catch_log(
                signals.digest_read,
                post=digest.post,
                source=(response.request.url if response.request else response.url, name,
                        record_name),
                sha256=hashlib.sha256(response.body).hexdigest(),
                warnings=warnings,
            )  # fmt: skip
            if not digest.entries:
                stats.inc_value(DIGESTS_EMPTY)
            for entry in digest.entries:
                entry.post.record_source = record_name or name  # post.source of the records
                stats.inc_value(ENTRIES_PARSED)
                self.crawler.signals.send_catch_log(signals.entry_parsed, entry=entry)
                yield entry
        finally:
            self._source_done()

    def _log_problems(self, digest: Digest, name: str) -> list[str]:
        """Log and count the digest's problems; the warning lines, as logged."""
        warnings = []
        for problem in digest.problems:
            where = f"{name}:{problem.line}" if problem.line else name
            lost = problem.severity == "error"
            (logger.error if lost else logger.warning)("%s: %s", where, problem.message)
            self.crawler.stats.inc_value(INPUT_LOST if lost else INPUT_WARNINGS)
            if not lost:
                warnings.append(f"{where}: {problem.message}")
        return warnings

    def source_failed(self, failure: Failure) -> None:
        request = failure.request  # type: ignore[attr-defined]  # Scrapy adds it for errbacks
        name = request.cb_kwargs.get("name", request.url)
        if isinstance(failure.value, HttpError):
            response = failure.value.response
            reason = f"HTTP {response.status}"
            location = response.headers.get(b"Location")
            if 300 <= response.status < 400 and location:
                # Scrapy follows redirects to http(s) only and hands anything else over as is.
                target = urljoin(response.url, location.decode("latin-1"))
                reason += f" redirect to {short_url(target)} not followed (only http and https)"
        else:
            reason = failure.getErrorMessage() or type(failure.value).__name__
        logger.error("%s: cannot read: %s", name, reason)
        self.crawler.stats.inc_value(DIGESTS_UNREADABLE)
        self._source_done()

    def _source_done(self) -> None:
        self._unread -= 1
        if self._unread == 0:
            self._announce_exhausted()

    def _announce_exhausted(self) -> None:
        self.crawler.signals.send_catch_log(signals.digests_exhausted)
