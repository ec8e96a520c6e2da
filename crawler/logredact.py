"""Secrets never reach a log line: Scrapy logs every overridden setting at start-up.

A filter on Scrapy's loggers masks the value of any setting whose name says it is a secret
(``*_API_KEY``, ``*_TOKEN``, ``*_PASSWORD``, ``*_SECRET``), in the "Overridden settings" line
or wherever a settings dict is logged.
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


def is_secret(name: object) -> bool:
    return isinstance(name, str) and name.upper().endswith(SECRET_SUFFIXES)


def redact(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: MASK if is_secret(k) and v else redact(v) for k, v in value.items()}
    if isinstance(value, str):
        return _IN_TEXT.sub(lambda m: f"{m['key']}'{MASK}'", value)
    return value


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, Mapping):
            record.args = redact(record.args)
        elif isinstance(record.args, tuple):
            record.args = tuple(redact(a) for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


_FILTER = RedactSecrets()


def install() -> None:
    """Idempotent: on the loggers that print settings."""
    for name in ("scrapy.crawler", "scrapy.utils.log", "scrapy.addons", "scrapy"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
