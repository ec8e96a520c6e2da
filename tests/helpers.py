"""Building components the way a crawl builds them, without a crawl (Scrapy's test style)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
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


def project_crawler(spidercls: type[Spider] = Spider, **overrides: Any) -> Crawler:
    """A crawler with the project's extensions built (Outcome, State, ...), no engine run."""
    import crawler.settings as project

    settings = {name: getattr(project, name) for name in dir(project) if name.isupper()}
    del settings["TWISTED_REACTOR"]  # in-process: whatever reactor (or none) the test has
    return get_crawler(spidercls, settings | overrides)


def wait_until(
    condition: Callable[[], bool],
    what: str,
    limit: float = 120.0,
    detail: Callable[[], str] = str,
) -> None:
    """Wait until ``condition()`` holds: something another process brings about (a crawl's
    requests, a Scrapyd job) that signals nothing this process could wait on, so it is polled.

    ``limit`` asserts nothing about speed: it turns a hang into a failure naming ``what``,
    followed by ``detail()`` (a log, say).
    """
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting after {limit:.0f} s for {what}\n{detail()}")
        time.sleep(0.02)  # the pause between two looks, not a guess at how long it takes


# Fields of an enrichment block that say how the fetch went, not what the service served.
FETCH_FIELDS = ("error", "reason", "fetched_at")


def served(block: dict[str, Any], *, status: bool = True) -> dict[str, Any]:
    """A record's block without the fetch's own fields (a stand-in cannot know when it was
    asked); ``status=False`` drops ``status`` too."""
    drop = FETCH_FIELDS if status else (*FETCH_FIELDS, "status")
    return {k: v for k, v in block.items() if k not in drop}


def nonnull(block: dict[str, Any]) -> dict[str, Any]:
    """A dense block's fields that hold a value, without ``fetched_at``: what schema 2 wrote
    for a failure (``{"status": "error", "error": "..."}``)."""
    return {k: v for k, v in block.items() if v is not None and k != "fetched_at"}
