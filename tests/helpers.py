"""Building components the way a crawl builds them, without a crawl (Scrapy's test style)."""

from __future__ import annotations

from typing import Any

from scrapy import Spider
from scrapy.crawler import Crawler
from scrapy.settings import Settings
from scrapy.utils.test import get_crawler


def project_settings(**overrides: Any) -> Settings:
    """The project's settings (crawler/settings.py) with overrides, as a crawl would see them."""
    settings = Settings()
    settings.setmodule("crawler.settings", priority="project")
    for name, value in overrides.items():
        settings.set(name, value, priority="cmdline")
    return settings


def project_crawler(spidercls: type[Spider] = Spider, /, **overrides: Any) -> Crawler:
    """A crawler with the project's extensions built (Outcome, State, ...), no engine run."""
    import crawler.settings as project

    settings = {name: getattr(project, name) for name in dir(project) if name.isupper()}
    del settings["TWISTED_REACTOR"]  # in-process: whatever reactor (or none) the test has
    return get_crawler(spidercls, settings | overrides)
