"""A file feed storage that never leaves a half-written file behind.

Records go to a temporary file beside the target; only when the crawl finishes is it flushed to
disk and renamed over the target, which is atomic on POSIX. A crash leaves the previous file as
it was, plus a stray ``.NAME.*.tmp`` that the next run to the same file removes (one writer
per file is assumed, as for any snapshot). Appending (``-o``) starts from a copy of the
old file, so it is atomic too.

A crawl that did not really run keeps the previous snapshot instead of replacing it with a
partial or empty one: stopped early (Ctrl-C, SIGTERM), refused arguments, or no digest read.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.extensions.feedexport import FileFeedStorage

logger = logging.getLogger(__name__)


class AtomicFileFeedStorage(FileFeedStorage):
    def __init__(
        self,
        uri: str,
        *,
        feed_options: dict[str, Any] | None = None,
        crawler: Crawler | None = None,
    ) -> None:
        super().__init__(uri, feed_options=feed_options)
        self.crawler = crawler

    @classmethod
    def from_crawler(
        cls, crawler: Crawler, uri: str, *, feed_options: dict[str, Any] | None = None
    ) -> AtomicFileFeedStorage:
        return cls(uri, feed_options=feed_options, crawler=crawler)

    def _keep_previous_because(self) -> str | None:
        if self.crawler is None:
            return None
        closed = self.crawler.get_extension(FinishReason)
        reason = closed.reason if closed else None
        if reason not in (None, "finished"):
            return f"the crawl ended early ({reason})"
        if not self.crawler.crawling:
            return "the crawl was stopped before it finished"
        if not self.crawler.stats.get_value("digests/read"):
            return "no digest could be read"
        return None

    def open(self, spider: Any) -> IO[Any]:
        target = Path(self.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        for stale in target.parent.glob(f".{target.name}.*.tmp"):
            stale.unlink(missing_ok=True)  # left by a run that was killed
        tmp = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in store()
            mode="w+b", prefix=f".{target.name}.", suffix=".tmp", dir=target.parent, delete=False
        )
        if self.write_mode == "ab" and target.exists():
            with target.open("rb") as old:
                shutil.copyfileobj(old, tmp)
        return tmp

    def store(self, file: IO[Any]) -> None:
        target = Path(self.path)
        if reason := self._keep_previous_because():
            file.close()
            os.unlink(file.name)
            logger.warning("%s not replaced: %s; the previous file stays as it was", target, reason)
            return
        file.flush()
        os.fsync(file.fileno())
        file.close()
        os.chmod(file.name, 0o644)
        os.replace(file.name, target)
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class FinishReason:
    """Why the spider closed, noted before the feed exporter stores its feeds.

    Ordered before Scrapy's FeedExporter in ``EXTENSIONS``, so its ``spider_closed`` handler
    runs first: the storage then knows whether the run finished or was cut short (Ctrl-C,
    CLOSESPIDER_*, MEMUSAGE_LIMIT, refused arguments).
    """

    def __init__(self, crawler: Crawler) -> None:
        self.reason: str | None = None
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> FinishReason:
        return cls(crawler)

    def spider_closed(self, spider: Any, reason: str) -> None:
        self.reason = reason
