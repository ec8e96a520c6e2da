"""Secrets never reach a log line: Scrapy logs every overridden setting at start-up, and
request URLs (OpenAlex takes its key as ``api_key=`` in the query).

A filter on Scrapy's loggers masks the value of any setting whose name says it is a secret
(``*_API_KEY``, ``*_TOKEN``, ``*_PASSWORD``, ``*_SECRET``), in the "Overridden settings" line
or wherever a settings dict is logged, and the value of secret query parameters in any URL
(:func:`redact_url_secrets`, also used for messages and records' ``error``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

SECRET_SUFFIXES = ("_API_KEY", "_TOKEN", "_PASSWORD", "_SECRET")
MASK = "***"
# 'NAME_API_KEY': 'value' as pprint writes a settings dict into the message.
_IN_TEXT = re.compile(
    r"""(?P<key>['"]\w*(?:_API_KEY|_TOKEN|_PASSWORD|_SECRET)['"]\s*:\s*)(?P<q>['"]).*?(?P=q)""",
    re.I | re.S,
)


# ?api_key=VALUE / &token=VALUE in a URL (also percent-encoded inside another URL's query).
_URL_SECRET = re.compile(
    r"(?P<key>(?:[?&]|%26|%3F)(?:api[_-]?key|access[_-]?token|token|key|password|secret)"
    r"(?:=|%3D))[^&#\s'\"<>]*",
    re.I,
)


def redact_url_secrets(text: str) -> str:
    """``…?api_key=abc&x=1`` -> ``…?api_key=***&x=1`` wherever it stands in ``text``."""
    return _URL_SECRET.sub(lambda m: f"{m['key']}{MASK}", text)


def is_secret(name: object) -> bool:
    return isinstance(name, str) and name.upper().endswith(SECRET_SUFFIXES)


def redact(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: MASK if is_secret(k) and v else redact(v) for k, v in value.items()}
    if isinstance(value, str):
        return redact_url_secrets(_IN_TEXT.sub(lambda m: f"{m['key']}'{MASK}'", value))
    if isinstance(value, BaseException | tuple | list) or hasattr(value, "url"):
        # a Request, a Failure's exception, a list of URLs: masked as text
        text = str(value)
        masked = redact_url_secrets(text)
        return masked if masked != text else value
    return value


def _lowest_level(logger: logging.Logger) -> int:
    """The lowest level any handler the record reaches would emit (as ``callHandlers`` walks
    them, ``lastResort`` when there are none); above every level when nothing would."""
    levels: list[int] = []
    node: logging.Logger | None = logger
    while node is not None:
        levels += [handler.level for handler in node.handlers]
        node = node.parent if node.propagate else None
    if not levels and logging.lastResort is not None:
        levels.append(logging.lastResort.level)
    return min(levels, default=logging.CRITICAL + 1)


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # Scrapy's root logger lets DEBUG records through to its handler, which drops them at
        # LOG_LEVEL: a record no handler will emit is not masked (one "Crawled (200)" line per
        # request was, and cost more CPU than the request's own middleware).
        if record.levelno < _lowest_level(logging.getLogger(record.name)):
            return True
        if isinstance(record.args, Mapping):
            record.args = redact(record.args)
        elif isinstance(record.args, tuple):
            record.args = tuple(redact(a) for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


_FILTER = RedactSecrets()


# Loggers that print settings, or request URLs (Scrapy's "Crawled (200) <GET …>" lines, its
# download errors, ours). A logger's filter does not apply to its children: each is named.
LOGGERS = (
    "scrapy.crawler", "scrapy.utils.log", "scrapy.addons", "scrapy", "scrapy.core.engine",
    "scrapy.core.scraper", "scrapy.core.downloader.handlers.http11",
    "scrapy.core.downloader.handlers.http2", "scrapy.downloadermiddlewares.redirect",
    "scrapy.downloadermiddlewares.retry", "scrapy.downloadermiddlewares.offsite",
    "scrapy.extensions.feedexport", "crawler.downloader.middleware",
    "crawler.downloader.handlers", "crawler.enrich.runner", "crawler.enrich.pipeline",
    "crawler.progress", "crawler.outcome", "spiders.digests",
)  # fmt: skip


def install() -> None:
    """Idempotent: on the loggers that print settings or URLs."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
