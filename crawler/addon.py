"""Derives settings from ours before Scrapy freezes them: one downloader slot per service, the
download handlers, and the default feed.

Politeness is enforced where Scrapy already enforces it: each service's slot allows its
concurrency, with its delay between starts and no random jitter, so no retry, cache miss or
batch can ever be sent sooner. (arXiv: one request at a time, ``ARXIV_DELAY`` apart.)
"""

from __future__ import annotations

from scrapy.settings import BaseSettings

from crawler import logredact
from crawler.services.registry import SERVICES


class ServiceSlotsAddon:
    def update_settings(self, settings: BaseSettings) -> None:
        logredact.install()  # before Scrapy logs the overridden settings (an API key)
        slots = settings.getdict("DOWNLOAD_SLOTS")
        for cls in SERVICES:
            if not cls.enabled(settings):
                continue
            politeness = cls(settings).politeness
            slots[cls.name] = {
                "concurrency": politeness.slot_concurrency,
                "delay": politeness.delay,
                "jitter": 0,
            }
        settings.set("DOWNLOAD_SLOTS", slots, priority="addon")
        handlers = settings.getdict("DOWNLOAD_HANDLERS")
        for scheme in ("http", "https"):
            handlers.setdefault(scheme, "crawler.downloader.handlers.NoResendHTTPDownloadHandler")
        handlers.setdefault("file", "crawler.downloader.handlers.CappedFileDownloadHandler")
        settings.set("DOWNLOAD_HANDLERS", handlers, priority="addon")
        default_feed = settings.get("DEFAULT_FEED")
        if default_feed and not settings.getdict("FEEDS"):
            feed = {"format": "jsonlines", "encoding": "utf8", "overwrite": True}
            settings.set("FEEDS", {default_feed: feed}, priority="addon")
