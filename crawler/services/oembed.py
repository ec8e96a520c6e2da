"""Twitter's oEmbed endpoint: one request per tweet, the embed markup and its plain text.

404 means deleted (or never existed, or the account is suspended) and 403 protected; both are
final answers. A 200 that is not the JSON oEmbed returns, or has fields of the wrong type, is
retried and never stored over a good value, and so is one whose ``url`` names another tweet
(a cache that ignores the query string answers every request with one tweet's embed).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import ClassVar
from urllib.parse import urlencode

from scrapy import Request
from scrapy.http import Response
from scrapy.settings import BaseSettings

from crawler.downloader.contract import AnswerUnusable, Politeness, service_meta
from crawler.items import DigestEntry, Embed, EmbedStatus
from crawler.parsing.text import shorten
from crawler.parsing.tweets import TweetParseError, blockquote_text, parse_status_url
from crawler.services.base import Service, clean_str

FINAL_STATUSES: dict[int, EmbedStatus] = {404: "deleted", 403: "protected"}


# --- answers ---------------------------------------------------------------------------------
def parse_oembed(body: bytes) -> Embed:
    """A 200 answer -> :class:`Embed`; ``AnswerUnusable`` if it is not oEmbed's JSON."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, nesting
        raise AnswerUnusable(f"invalid JSON from oEmbed ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("html"), str):
        raise AnswerUnusable("oEmbed answer has no 'html'")
    try:
        html = clean_str(data["html"]) or ""
        fields = {name: clean_str(data.get(name)) for name in ("author_name", "author_url", "url")}
        text = blockquote_text(html)
    except (ValueError, TweetParseError) as exc:
        raise AnswerUnusable(f"oEmbed answer of the wrong shape ({exc})") from exc
    return Embed(status="ok", text=text, html=html, **fields)


# --- the service -----------------------------------------------------------------------------
class OEmbed(Service[Embed]):
    name = "oembed"
    label = "oEmbed"
    kind = "embed"
    record_block = "embed"
    value_type = Embed
    url_setting = "OEMBED_URL"
    refresh_names = ("tweets", "embeds")
    ttl_days: ClassVar[dict[str, float]] = {"ok": 30, "deleted": 180, "protected": 30}
    downgrades = frozenset({"deleted", "protected"})
    numbers: ClassVar[dict[str, tuple[type, float]]] = {
        "OEMBED_CONCURRENCY": (int, 1), "OEMBED_CONCURRENCY_MAX": (int, 0),
        "OEMBED_DELAY": (float, 0),
    }  # fmt: skip

    def __init__(self, settings: BaseSettings) -> None:
        super().__init__(settings)
        self.politeness = Politeness(
            concurrency=settings.getint("OEMBED_CONCURRENCY"),
            concurrency_max=settings.getint("OEMBED_CONCURRENCY_MAX"),
            delay=settings.getfloat("OEMBED_DELAY"),
            max_answer_bytes=256 * 1024,  # answers are a few KB; a bomb stops here
        )

    def keys(self, entry: DigestEntry) -> list[str]:
        return [tweet.id for tweet in entry.tweets]

    def hint(self, entry: DigestEntry, key: str) -> str | None:
        return next((tweet.url for tweet in entry.tweets if tweet.id == key), None)

    def build_request(self, keys: list[str], hints: Mapping[str, str | None]) -> Request:
        (tweet_id,) = keys
        # The handle in the URL is not checked by oEmbed; the ID is what counts.
        tweet_url = hints.get(tweet_id) or f"https://twitter.com/i/status/{tweet_id}"
        query = urlencode({"url": tweet_url, "omit_script": "1", "dnt": "true"})
        meta = service_meta(self.name, self.politeness, self.check, keys=keys)
        return Request(f"{self.url}?{query}", meta=meta, dont_filter=True)

    def parse(self, request: Request, response: Response) -> Embed:
        return parse_oembed(response.body)

    def about_other(self, keys: list[str], parsed: Embed) -> str | None:
        """oEmbed's ``url`` is the tweet's canonical link: its status ID must be the one asked."""
        (asked,) = keys
        link = parse_status_url(parsed.url or "")
        if link is None:
            return f"oEmbed answer names no tweet (url {shorten(repr(parsed.url), 80)})"
        if link[2] != asked:
            return f"oEmbed answer is about tweet {link[2]}, not {asked}"
        return None

    def values(self, keys: list[str], response: Response) -> dict[str, Embed]:
        (key,) = keys
        if response.status in FINAL_STATUSES:
            status = FINAL_STATUSES[response.status]
            return {key: Embed(status=status, error=f"oEmbed answered HTTP {response.status}")}
        if response.status != 200:
            return {key: self.error(f"oEmbed answered HTTP {response.status}")}
        try:
            return {key: self.parsed(response)}
        except AnswerUnusable as exc:
            return {key: self.error(str(exc))}

    def attach(self, entry: DigestEntry, values: Mapping[str, Embed]) -> None:
        for tweet in entry.tweets:
            tweet.embed = values[tweet.id]
