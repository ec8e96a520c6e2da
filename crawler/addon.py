"""Derives settings from ours before Scrapy freezes them: downloader slots and the default feed.

Politeness is enforced where Scrapy already enforces it: the arXiv slot allows one request at a
time, ``ARXIV_DELAY`` seconds apart (measured between starts), with no random jitter, so no
retry, cache miss or batch can ever be sent sooner.
"""

from __future__ import annotations

from scrapy.settings import BaseSettings

from crawler.enrich.arxiv import ARXIV_SLOT
from crawler.enrich.oembed import OEMBED_SLOT


class ServiceSlotsAddon:
    def update_settings(self, settings: BaseSettings) -> None:
        slots = settings.getdict("DOWNLOAD_SLOTS")
        slots[ARXIV_SLOT] = {
            "concurrency": 1,
            "delay": settings.getfloat("ARXIV_DELAY") + settings.getfloat("ARXIV_DELAY_MARGIN"),
            "jitter": 0,
        }
        slots[OEMBED_SLOT] = {
            "concurrency": settings.getint("OEMBED_CONCURRENCY"),
            "delay": settings.getfloat("OEMBED_DELAY"),
            "jitter": 0,
        }
        settings.set("DOWNLOAD_SLOTS", slots, priority="addon")
        default_feed = settings.get("DEFAULT_FEED")
        if default_feed and not settings.getdict("FEEDS"):
            feed = {"format": "jsonlines", "encoding": "utf8", "overwrite": True}
            settings.set("FEEDS", {default_feed: feed}, priority="addon")
