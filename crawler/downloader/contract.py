"""What a service request tells the downloader layer, through its ``meta``.

The downloader knows no service and no pipeline: a request to an upstream carries its service's
name, its politeness rules and the check that says whether a 200 answer is usable. Service
modules build such requests with :func:`service_meta`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scrapy import Request
from scrapy.http import Response

from crawler.logredact import redact_url_secrets

SERVICE = "service"  # the service's name: stats keys retry/<name>/..., gates, slots
POLITENESS = "politeness"  # a Politeness
# Callable[[Request, Response], Any]: the parsed answer, or AnswerUnusable
ANSWER_CHECK = "answer_check"
PARSED = "parsed_answer"  # what ANSWER_CHECK returned for the final answer, parsed once
# tuple[str, ...]: query parameters a same-host redirect keeps when its target lacks them
# (an API key, a field selection), so the redirected request is asked for the same way.
KEEP_ON_REDIRECT = "keep_on_redirect"


class AnswerUnusable(ValueError):
    """A 200 answer that is not what the endpoint returns (HTML page, cut feed, wrong shape):
    retried like a 503, since the next answer is usually fine."""


@dataclass(frozen=True, slots=True)
class Politeness:
    """How hard a service may be asked. Slots enforce ``concurrency`` and ``delay``; the retry
    middleware enforces the rest for every attempt, retries included."""

    concurrency: int = 1  # requests in flight at once (the starting point when adaptive)
    # Seconds between two starts, never randomised; counted from when an attempt really starts
    # (after every wait), retries included.
    delay: float = 0.0
    # The next request starts at least this long after the previous answer or failure arrived:
    # the server then sees starts at least that far apart, whatever connection set-up took.
    hold_after_answer: float = 0.0
    # 429/503 add an extra pause (doubling from ``delay``), after the answer, on top of ``delay``
    slow_down_on_throttle: bool = False
    slow_down_max: float = 60.0
    concurrency_max: int = 0  # > concurrency: adapt between them (AIMD on throttling, latency)
    max_answer_bytes: int = 32 * 1024 * 1024  # answers (decompressed) larger than this fail
    # Statuses that mean "too fast" besides 429/503 (OpenAlex's per-second limit is 403):
    # retried with backoff, honouring Retry-After, slowing down like a 429.
    throttle_codes: frozenset[int] = frozenset()
    # Statuses that mean the service's allowance is spent for longer than a run lasts (a daily
    # budget): never retried, and no further request of the service is sent this run.
    quota_codes: frozenset[int] = frozenset()
    quota_message: str = "allowance spent; no more requests this run"  # logged once

    @property
    def adaptive(self) -> bool:
        return self.concurrency_max > self.concurrency

    @property
    def slot_concurrency(self) -> int:
        return max(self.concurrency, self.concurrency_max)


def service_meta(
    name: str, politeness: Politeness, check: Callable[[Request, Response], Any], **extra: Any
) -> dict[str, Any]:
    """Meta for a request to an upstream service: its own downloader slot, never off-site,
    redirects handled by the retry middleware (same host only), the answer size capped."""
    return {
        SERVICE: name,
        POLITENESS: politeness,
        ANSWER_CHECK: check,
        "download_slot": name,
        "allow_offsite": True,
        "dont_redirect": True,
        "download_maxsize": politeness.max_answer_bytes,
        "download_warnsize": 0,
        **extra,
    }


def service_of(request: Request) -> str | None:
    name = request.meta.get(SERVICE)
    return name if isinstance(name, str) else None


def short_url(url: str, limit: int = 120) -> str:
    """URLs in messages: a 100-ID arXiv query is 2 KB, which buries the line it is in; secret
    query parameters (``api_key=…``) are masked."""
    url = redact_url_secrets(url)
    return url if len(url) <= limit else f"{url[: limit - 25]}…({len(url)} chars)"
