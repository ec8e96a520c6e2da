"""Tweet enrichment: one oEmbed request per distinct tweet, started as soon as it is announced."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlencode

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.http import Response

from crawler import signals
from crawler.enrich import PARSED, failure_text
from crawler.enrich.memo import Memo
from crawler.items import DigestEntry, Embed, Tweet
from crawler.parsing.oembed import EmbedError, parse_oembed
from crawler.state import State

logger = logging.getLogger(__name__)

OEMBED_SLOT = "oembed"
_STATUS_BY_CODE = {404: "deleted", 403: "protected"}


def build_request(oembed_url: str, tweet: Tweet) -> Request:
    query = urlencode({"url": tweet.url, "omit_script": "1", "dnt": "true"})
    return Request(
        f"{oembed_url}?{query}",
        meta={"download_slot": OEMBED_SLOT, "allow_offsite": True, "service": "oembed"},
        dont_filter=True,
    )


def answer_problem(request: Request, response: Response) -> str | None:
    """Why a 200 answer cannot be used (worth a retry), or None."""
    request.meta.pop(PARSED, None)
    try:
        request.meta[PARSED] = parse_oembed(response.body)
    except EmbedError as exc:
        return str(exc)
    return None


class TweetEmbedPipeline:
    """Fills ``tweet.embed`` for every tweet of an entry, in post order."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.stats = crawler.stats
        self.oembed_url = crawler.settings.get("OEMBED_URL")
        self.memo: Memo[Embed] = Memo("embed", crawler.get_extension(State))
        self._tasks: set[asyncio.Task[None]] = set()
        # Only as many requests in the downloader as the slot runs at once, so the retry
        # middleware's gate (Retry-After) sees each request before it starts.
        self._slots = asyncio.Semaphore(max(1, crawler.settings.getint("OEMBED_CONCURRENCY")))
        crawler.signals.connect(self.want, signal=signals.entry_parsed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> TweetEmbedPipeline:
        return cls(crawler)

    def want(self, entry: DigestEntry) -> None:
        for tweet in entry.tweets:
            if not self.memo.needs_fetch(tweet.id):
                continue
            self.stats.inc_value("oembed/tweets_wanted")
            self.memo.start(tweet.id)
            task = asyncio.get_running_loop().create_task(self._fetch(tweet))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _fetch(self, tweet: Tweet) -> None:
        self.stats.inc_value("oembed/tweets_requested")
        try:
            async with self._slots:
                embed = await self._ask(tweet)
            if self.memo.state:
                (embed,) = self.memo.state.save("embed", [(tweet.id, embed)])
        except Exception as exc:  # a bug must not leave entries waiting forever
            logger.error("oEmbed fetch failed unexpectedly: %s", failure_text(exc), exc_info=exc)
            embed = Embed(status="error", error=f"internal error: {failure_text(exc)}")
        self.stats.inc_value(f"oembed/tweets/{embed.status}")
        self.memo.finish(tweet.id, embed)

    async def _ask(self, tweet: Tweet) -> Embed:
        try:
            response = await self.crawler.engine.download_async(
                build_request(self.oembed_url, tweet)
            )
        except Exception as exc:  # connection errors, timeouts, cut bodies
            return Embed(status="error", error=f"oEmbed request failed: {failure_text(exc)}")
        if response.status in _STATUS_BY_CODE:
            status = _STATUS_BY_CODE[response.status]
            return Embed(status=status, error=f"oEmbed answered HTTP {response.status}")  # type: ignore[arg-type]
        if response.status != 200:
            return Embed(status="error", error=f"oEmbed answered HTTP {response.status}")
        try:
            return response.meta.get(PARSED) or parse_oembed(response.body)
        except EmbedError as exc:
            return Embed(status="error", error=str(exc))

    async def process_item(self, item: object) -> object:
        if not isinstance(item, DigestEntry):
            return item
        for tweet in item.tweets:
            embed = await self.memo.value(tweet.id)
            if embed is None:  # not announced by the spider, or stale since
                self.want(item)
                embed = await self.memo.value(tweet.id)
            tweet.embed = embed
        return item
