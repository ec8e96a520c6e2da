"""Downloader middleware: retries with backoff, Retry-After and answers that only look fine.

Replaces Scrapy's RetryMiddleware (same settings, same stats keys under ``retry/<service>/``):

- the wait before a retry is exponential with jitter (tenacity's ``wait_exponential_jitter``),
  capped by ``RETRY_BACKOFF_MAX``, and never shorter than the server's ``Retry-After``;
- a 200 whose body is not what the endpoint returns (an HTML maintenance page, a cut-off feed,
  invalid JSON) is retried like a 503, because the next answer is usually fine;
- a ``Retry-After`` or a 429/503 gates the whole service, not just the request that got it: no
  request to that service starts before the server said it may (the request gate), and arXiv's
  429/503 also adds an adaptive extra delay that halves back to zero with each good answer.

arXiv's politeness is exact here: the next arXiv request may start only ``ARXIV_DELAY`` after the
previous answer arrived (the downloader slot adds its own start-to-start delay on top).

Requests to a service reach this middleware one at a time per free slot place (the enrichment
pipelines hold back the rest), so the gate sees every request before it can start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.downloadermiddlewares.retry import RetryMiddleware, get_retry_request
from scrapy.http import Response
from tenacity import RetryCallState, wait_exponential_jitter

from crawler.enrich.arxiv import answer_problem as arxiv_problem
from crawler.enrich.oembed import answer_problem as oembed_problem

logger = logging.getLogger(__name__)

# Per service: a function saying why a 200 answer is unusable, or None when it is fine.
VALIDATORS: dict[str, Callable[[Request, Response], str | None]] = {
    "arxiv": arxiv_problem,
    "oembed": oembed_problem,
}
SLOWDOWN_CODES = {429, 503}


def retry_after_seconds(value: bytes | str | None, now: float | None = None) -> float | None:
    """``Retry-After`` in either form (seconds, or an HTTP date) -> seconds from now."""
    if not value:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class ServiceGate:
    """Earliest start time per service, and arXiv's adaptive extra delay."""

    def __init__(self, cap: float) -> None:
        self.cap = cap
        self.not_before: dict[str, float] = {}
        self.extra: dict[str, float] = {}

    def hold_until(self, service: str, when: float) -> None:
        self.not_before[service] = max(self.not_before.get(service, 0.0), when)

    def slow_down(self, service: str, base: float) -> None:
        self.extra[service] = min(self.cap, max(base, self.extra.get(service, 0.0) * 2))

    def recover(self, service: str) -> None:
        extra = self.extra.get(service, 0.0) / 2
        self.extra[service] = extra if extra >= 0.05 else 0.0

    def wait_for(self, service: str, now: float) -> float:
        return max(0.0, self.not_before.get(service, 0.0) - now)


class BackoffRetryMiddleware(RetryMiddleware):
    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler.settings)
        self.crawler = crawler
        s = crawler.settings
        self.stats = crawler.stats
        self.backoff = wait_exponential_jitter(
            initial=s.getfloat("RETRY_BACKOFF_BASE"),
            max=s.getfloat("RETRY_BACKOFF_MAX"),
            jitter=s.getfloat("RETRY_BACKOFF_BASE"),
        )
        self.retry_after_max = s.getfloat("RETRY_AFTER_MAX")
        self.arxiv_delay = s.getfloat("ARXIV_DELAY")
        self.gate = ServiceGate(cap=s.getfloat("ARXIV_SLOWDOWN_MAX"))
        # Circuit breaker: after this many connection-level failures in a row with no answer at
        # all from a service, its requests are no longer retried until it answers again, so an
        # unreachable service (no network, DNS down) fails the crawl's records in seconds.
        self.unreachable_after = s.getint("RETRY_UNREACHABLE_AFTER")
        self._failures_in_a_row: dict[str, int] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> BackoffRetryMiddleware:
        return cls(crawler)

    async def process_request(self, request: Request) -> None:
        service = request.meta.get("service")
        if service:
            # Re-checked after each sleep: a parallel request may have brought a longer wait.
            while (wait := self.gate.wait_for(service, time.monotonic())) > 0:
                self.stats.inc_value(f"retry/{service}/gated")
                await asyncio.sleep(wait)

    async def process_response(self, request: Request, response: Response) -> Request | Response:
        service = request.meta.get("service")
        if not service or request.meta.get("dont_retry", False):
            return self._plain(request, response)
        self._failures_in_a_row[service] = 0  # it answered: reachable
        now = time.monotonic()
        retry_after = retry_after_seconds(response.headers.get(b"Retry-After"))
        if retry_after is not None:
            self.gate.hold_until(service, now + retry_after)
        if response.status in self.retry_http_codes:
            reason = f"HTTP {response.status}"
        elif response.status == 200:
            reason = VALIDATORS[service](request, response)
        else:
            reason = None
        if service == "arxiv":
            # Adaptive delay: each 429/503 doubles an extra pause after every arXiv answer; each
            # good answer halves it, so the crawl speeds up again gradually.
            if response.status in SLOWDOWN_CODES:
                self.gate.slow_down(service, self.arxiv_delay)
            elif reason is None:
                self.gate.recover(service)
            self._hold_arxiv(now)
        if reason is None:
            return response
        return await self._retry_later(request, service, reason, retry_after) or response

    def _hold_arxiv(self, now: float) -> None:
        """The next arXiv request starts ARXIV_DELAY (plus any slow-down) after this answer or
        failure, so arXiv sees at least ARXIV_DELAY between two starts, whatever connection
        set-up took: the previous request cannot have started after its own answer."""
        self.gate.hold_until("arxiv", now + self.arxiv_delay + self.gate.extra.get("arxiv", 0.0))

    def _plain(self, request: Request, response: Response) -> Request | Response:
        if response.status in self.retry_http_codes and not request.meta.get("dont_retry"):
            return self._retry(request, f"HTTP {response.status}") or response
        return response

    async def process_exception(self, request: Request, exception: Exception) -> Request | None:
        service = request.meta.get("service")
        if not isinstance(exception, self.exceptions_to_retry) or request.meta.get("dont_retry"):
            return None
        if not service:
            return self._retry(request, exception)
        if service == "arxiv":
            self._hold_arxiv(time.monotonic())
        failures = self._failures_in_a_row.get(service, 0) + 1
        self._failures_in_a_row[service] = failures
        if self.unreachable_after and failures > self.unreachable_after:
            self.stats.inc_value(f"retry/{service}/unreachable")
            if failures == self.unreachable_after + 1:
                logger.error(
                    "%s: %d failures in a row without any answer; not retrying its requests "
                    "until it answers again (RETRY_UNREACHABLE_AFTER)", service, failures - 1,
                )  # fmt: skip
            return None
        reason = f"{type(exception).__name__}"
        return await self._retry_later(request, service, reason, None)

    async def _retry_later(
        self, request: Request, service: str, reason: str, retry_after: float | None
    ) -> Request | None:
        if retry_after is not None and retry_after > self.retry_after_max:
            logger.error(
                "Gave up %s: server asks to retry after %.0f s (RETRY_AFTER_MAX is %.0f s)",
                request.url, retry_after, self.retry_after_max,
            )  # fmt: skip
            self.stats.inc_value(f"retry/{service}/max_reached")
            return None
        assert self.crawler.spider is not None
        logger.debug("Retrying %s: %s", request.url, reason)
        retry = get_retry_request(
            request,
            spider=self.crawler.spider,
            reason=reason.split(" (", 1)[0],  # stats keys: the kind of failure, not its detail
            max_retry_times=request.meta.get("max_retry_times", self.max_retry_times),
            logger=logger,
            give_up_log_level=request.meta.get("give_up_log_level", self.give_up_log_level),
            stats_base_key=f"retry/{service}",
        )
        if retry is None:
            return None
        attempt = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        attempt.attempt_number = retry.meta["retry_times"]
        wait = max(self.backoff(attempt), retry_after or 0.0)
        retry.meta["retry_reason"] = reason
        await asyncio.sleep(wait)
        return retry
