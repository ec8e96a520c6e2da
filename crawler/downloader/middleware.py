"""Retries with backoff, Retry-After, politeness gates and answers that only look fine.

Replaces Scrapy's RetryMiddleware for requests to upstream services (same settings, stats
under ``retry/<service>/``); other requests (digests over HTTP) keep Scrapy's behaviour. What it
knows about a service comes from the request (:mod:`crawler.downloader.contract`):

- the wait before a retry is tenacity's ``wait_exponential_jitter`` capped by
  ``RETRY_BACKOFF_MAX``, never shorter than the ``Retry-After`` of a 429/503; tenacity drives the
  waits through its public ``AsyncRetrying`` iterator, one per original request;
- a 200 whose body the service's check refuses (an HTML maintenance page, a cut-off feed, a
  payload of the wrong shape) is retried like a 503;
- a ``Retry-After`` gates the whole service, not just the request that got it;
- a service announcing its window in ``RateLimit`` headers (IETF draft) gets no new request
  once the window is spent (``RATELIMIT_RESERVE`` left), until it resets; a 429 without
  ``Retry-After`` waits the header's reset;
- a service may ask that its next request start only some time after the previous answer
  (arXiv: ``ARXIV_DELAY``), and that 429/503 add a doubling extra pause;
- in-flight requests per service are limited, adaptively where the service allows it;
- redirects are followed only to the endpoint's own host, keeping the query parameters the
  service names (``KEEP_ON_REDIRECT``: its API key);
- an answer that says the service's allowance is spent (``Politeness.quota_codes``: OpenAlex's
  429, a daily budget) is not retried, and no further request of that service is sent this
  run: one log line says so;
- after ``RETRY_UNREACHABLE_AFTER`` connection failures in a row without any answer, a
  service's requests are no longer retried until it answers again (circuit breaker);
- every wait ends at once when the crawl is stopping.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

from scrapy import Request, signals
from scrapy.crawler import Crawler
from scrapy.downloadermiddlewares.retry import RetryMiddleware, get_retry_request
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response
from tenacity import AsyncRetrying, AttemptManager, RetryCallState, wait_exponential_jitter
from tenacity.wait import wait_base

from crawler.downloader.contract import (
    ANSWER_CHECK,
    KEEP_ON_REDIRECT,
    PARSED,
    POLITENESS,
    AnswerUnusable,
    Politeness,
    service_of,
    short_url,
)
from crawler.downloader.gate import (
    ConcurrencyLimit,
    Sent,
    ServiceGate,
    parse_ratelimit,
    parse_ratelimit_policy,
)
from crawler.outcome import Outcome

logger = logging.getLogger(__name__)

THROTTLE_CODES = frozenset({429, 503})  # the only answers whose Retry-After is honoured
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 3
LONG_WAIT = 30.0  # seconds: a wait this long is worth a log line
UNREACHABLE_QUIET = 10.0  # seconds without any answer before the circuit breaker may open
_RETRIES = "_tenacity_attempts"  # meta: the tenacity iterator shared by a request's retries
_ATTEMPT = "_tenacity_attempt"  # meta: the current AttemptManager
_PERMIT = "_service_permit"  # meta: this attempt holds a place in the service's limit
_STARTED = "_attempt_started"
_LEVEL = "_attempt_level"  # meta: places of the service's limit held as it went out, its own too
_ON_WIRE = "_attempt_on_wire"  # meta: this attempt counts against the service's window
_SENT = "_attempt_sent"  # meta: the window's view of this attempt's start (what its r may miss)


def retry_after_seconds(value: bytes | str | None, now: float | None = None) -> float | None:
    """``Retry-After`` in either form (seconds, or an HTTP date) -> seconds from now."""
    if not value:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip()
    if text.isascii() and text.isdigit():  # '²'.isdigit() is True
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class Retryable(Exception):
    """One failed attempt, as tenacity sees it."""

    def __init__(self, reason: str, retry_after: float | None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class wait_backoff_or_retry_after(wait_base):
    """Exponential backoff with jitter, never shorter than the server's Retry-After."""

    def __init__(self, base: float, cap: float) -> None:
        self.backoff = wait_exponential_jitter(multiplier=base, max=cap, jitter=base)

    def __call__(self, retry_state: RetryCallState) -> float:
        wait = self.backoff(retry_state)
        outcome = retry_state.outcome
        failure = outcome.exception() if outcome is not None and outcome.failed else None
        if isinstance(failure, Retryable) and failure.retry_after is not None:
            wait = max(wait, failure.retry_after)
        return wait


class _ShortUrls:
    """Scrapy's retry helper logs whole requests; a 100-ID query would fill the line."""

    def debug(self, msg: str, args: dict[str, Any], **kw: Any) -> None:
        logger.debug(msg, self._short(args), **kw)

    def error(self, msg: str, args: dict[str, Any], **kw: Any) -> None:
        logger.error(msg, self._short(args), **kw)

    def log(self, level: int, msg: str, args: dict[str, Any], **kw: Any) -> None:
        logger.log(level, msg, self._short(args), **kw)

    @staticmethod
    def _short(args: dict[str, Any]) -> dict[str, Any]:
        request = args.get("request")
        if isinstance(request, Request):
            args = {**args, "request": f"<{request.method} {short_url(request.url)}>"}
        return args


class BackoffRetryMiddleware(RetryMiddleware):
    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler.settings)
        self.crawler = crawler
        s = crawler.settings
        self.stats = crawler.stats
        self.wait = wait_backoff_or_retry_after(
            s.getfloat("RETRY_BACKOFF_BASE"), s.getfloat("RETRY_BACKOFF_MAX")
        )
        self.retry_after_max = s.getfloat("RETRY_AFTER_MAX")
        self.unreachable_after = s.getint("RETRY_UNREACHABLE_AFTER")
        self.stopping = Outcome.of(crawler).stopping
        self.gate = ServiceGate(reserve=s.getint("RATELIMIT_RESERVE"))
        self._told_wait: dict[str, float] = {}  # service -> the end of the wait last logged
        self.limits: dict[str, ConcurrencyLimit] = {}
        self._failures_in_a_row: dict[str, int] = {}
        self._last_answer: dict[str, float] = {}
        self.spent: dict[str, str] = {}  # service -> why no more of its requests go this run
        self._log = _ShortUrls()
        crawler.signals.connect(self._left_downloader, signal=signals.request_left_downloader)
        # Where time comes from; unit tests put the event loop's virtual clock here (waits
        # themselves run on the loop's timers already).
        self.clock: Callable[[], float] = time.monotonic
        self.wall_clock: Callable[[], float] = time.time  # for Retry-After's HTTP dates

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> BackoffRetryMiddleware:
        return cls(crawler)

    # -- waiting ------------------------------------------------------------------------------
    async def _sleep(self, seconds: float) -> None:
        """Sleep, unless the crawl stops first: then the request is dropped at once."""
        if seconds > 0:
            try:
                await asyncio.wait_for(self.stopping.wait(), seconds)
            except TimeoutError:
                return
        if self.stopping.is_set():
            raise IgnoreRequest("the crawl is stopping")

    def limit_for(self, service: str, politeness: Politeness) -> ConcurrencyLimit:
        if service not in self.limits:
            self.limits[service] = ConcurrencyLimit(
                politeness.concurrency, politeness.concurrency_max or politeness.concurrency
            )
        return self.limits[service]

    async def process_request(self, request: Request) -> None:
        service = service_of(request)
        if service is None:
            return
        if self.stopping.is_set():
            raise IgnoreRequest("the crawl is stopping")
        self._refuse_if_spent(service)
        limit = self.limit_for(service, request.meta[POLITENESS])
        if not await self._acquire(limit):
            raise IgnoreRequest("the crawl is stopping")
        request.meta[_PERMIT] = True
        try:
            # Re-checked after each sleep: a parallel answer may have brought a longer wait.
            while (wait := self.gate.wait_for(service, self.clock())) > 0:
                self.stats.inc_value(f"retry/{service}/gated")
                self._tell_wait(service, wait)
                await self._sleep(wait)
            await self._sleep(0)
            self._refuse_if_spent(service)  # spent while this one waited at the gate
        except BaseException:
            self._release(request, service)
            raise
        started = request.meta[_STARTED] = self.clock()
        request.meta[_LEVEL] = limit.in_flight
        request.meta[_SENT] = self.gate.budget(service).started(started)
        request.meta[_ON_WIRE] = True
        politeness: Politeness = request.meta[POLITENESS]
        if politeness.delay:
            # Counted here, where the attempt really starts: the slot's own delay counts from
            # when it handed the request over, before the waits above.
            self.gate.hold_until(service, started + politeness.delay)
        self.stats.inc_value(f"service/{service}/requests")

    def _refuse_if_spent(self, service: str) -> None:
        if service in self.spent:
            self.stats.inc_value(f"service/{service}/not_sent_quota_spent")
            raise IgnoreRequest(self.spent[service])

    def _quota_spent(self, service: str, politeness: Politeness) -> None:
        """The service said its allowance is spent: one line, and none of its requests go
        again this run (asking again would only be refused, and may count against it)."""
        if service not in self.spent:
            self.spent[service] = politeness.quota_message
            self.stats.inc_value(f"service/{service}/quota_spent")
            logger.error("%s", politeness.quota_message)

    def _tell_wait(self, service: str, wait: float) -> None:
        """One line per long hold of a service (a spent rate-limit window: minutes)."""
        until = self.clock() + wait
        if wait >= LONG_WAIT and until > self._told_wait.get(service, 0.0) + 1.0:
            self._told_wait[service] = until
            logger.warning("%s: holding its requests for %.0f s (rate limit)", service, wait)

    async def _acquire(self, limit: ConcurrencyLimit) -> bool:
        """Take a place in the service's limit, waiting unless the crawl stops first (then
        False, without a place): a full limit must not hold a request through the shutdown."""
        if limit.in_flight < int(limit.limit):
            await limit.acquire()  # a place is free: taken at once
            return True
        acquiring = asyncio.ensure_future(limit.acquire())
        stopped = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait((acquiring, stopped), return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            if acquiring.done():
                limit.release()
            acquiring.cancel()
            raise
        finally:
            stopped.cancel()
        if acquiring.done():
            return True
        acquiring.cancel()  # still waiting: it gives up its turn (or passes it on)
        return False

    def _release(self, request: Request, service: str) -> None:
        if request.meta.pop(_PERMIT, False):
            self.limits[service].release()
        if request.meta.pop(_ON_WIRE, False):
            self.gate.budget(service).ended()

    def _left_downloader(self, request: Request, **_: Any) -> None:
        """The transfer is over, whatever becomes of its answer: a middleware closer to the
        downloader may refuse it (a decompression bomb is IgnoreRequest in Scrapy's
        HttpCompressionMiddleware), and then neither method below sees it. Its place in the
        service's limit would leak, and once the limit was used up the crawl hung."""
        service = service_of(request)
        if service is not None:
            self._release(request, service)
            self._hold(service, request.meta[POLITENESS], self.clock())

    # -- answers ------------------------------------------------------------------------------
    # Scrapy (2.14+) awaits these when they are coroutines; RetryMiddleware's are plain methods.
    async def process_response(  # type: ignore[override]
        self, request: Request, response: Response
    ) -> Request | Response:
        service = service_of(request)
        if service is None:
            return super().process_response(request, response)
        self._release(request, service)
        now = self.clock()
        politeness: Politeness = request.meta[POLITENESS]
        if response.status in politeness.quota_codes:
            self._quota_spent(service, politeness)
            self._failures_in_a_row[service] = 0
            self._last_answer[service] = now
            return response  # never retried: the service's values say why
        throttled = response.status in THROTTLE_CODES | politeness.throttle_codes
        latency = now - request.meta.get(_STARTED, now)
        self.limits[service].answered(latency, throttled, now, request.meta.get(_LEVEL))
        if throttled:
            self.stats.inc_value(f"service/{service}/throttled")
        self._failures_in_a_row[service] = 0  # it answered: reachable
        self._last_answer[service] = now
        if response.status in REDIRECT_CODES:
            return self._redirect(request, response, service)
        retry_after = self._window(service, response, now, throttled, request.meta.get(_SENT))
        if retry_after is not None:
            self.gate.hold_until(service, now + min(retry_after, self.retry_after_max))
        reason = self._problem(request, response)
        if politeness.slow_down_on_throttle:
            if throttled:
                self.gate.slow_down(service, politeness.delay, politeness.slow_down_max)
            elif reason is None:
                self.gate.recover(service)
        self._hold(service, politeness, now)
        if reason is None or request.meta.get("dont_retry", False):
            return response
        return await self._retry_later(request, service, reason, retry_after) or response

    def _window(
        self, service: str, response: Response, now: float, throttled: bool, sent: Sent | None
    ) -> float | None:
        """Learn what is left of the service's window from RateLimit headers; for a throttled
        answer, how long to wait: its Retry-After, else the window's reset if the header says
        the window is spent. Hugging Face puts its window on every answer: a 503 (or a 429 of
        another limit) with requests left is not about the window, and waiting out its reset
        (minutes) held the whole service for nothing (issue 22); it gets the usual backoff."""
        headers = response.headers
        window = parse_ratelimit(
            headers.get(b"RateLimit"),
            headers.get(b"RateLimit-Remaining"),
            headers.get(b"RateLimit-Reset"),
            self.gate.reserve,
        )
        if window is not None:
            self.gate.budget(service).answered(*window, now, sent)
        policy = parse_ratelimit_policy(headers.get(b"RateLimit-Policy"))
        if policy is not None:  # the progress line's ETA paces the service by it
            self.stats.set_value(f"ratelimit/{service}/quota", policy[0])
            self.stats.set_value(f"ratelimit/{service}/window", policy[1])
        if not throttled:
            return None
        retry_after = retry_after_seconds(headers.get(b"Retry-After"), self.wall_clock())
        if retry_after is None and window is not None and window[0] <= self.gate.reserve:
            self.stats.inc_value(f"service/{service}/window_waits")
            return window[1]
        return retry_after

    def _problem(self, request: Request, response: Response) -> str | None:
        """Why this answer is worth another try, or None. A usable 200 is parsed once here."""
        request.meta.pop(PARSED, None)  # a retry copies its original's meta
        throttle_codes: frozenset[int] = request.meta[POLITENESS].throttle_codes
        if response.status in self.retry_http_codes or response.status in throttle_codes:
            return f"HTTP {response.status}"
        if response.status != 200:
            return None
        try:
            request.meta[PARSED] = request.meta[ANSWER_CHECK](request, response)
        except AnswerUnusable as exc:
            return str(exc)
        except Exception as exc:  # an answer nobody foresaw must not crash the download
            logger.warning("%s: unexpected answer: %r", short_url(request.url), exc)
            return f"unexpected answer ({type(exc).__name__})"
        return None

    def _hold(self, service: str, politeness: Politeness, now: float) -> None:
        extra = self.gate.extra.get(service, 0.0)
        if extra:  # slowed down after throttling: the whole delay again, after the answer
            pause = max(politeness.delay, politeness.hold_after_answer) + extra
            self.gate.hold_until(service, now + pause)
        elif politeness.hold_after_answer:
            self.gate.hold_until(service, now + politeness.hold_after_answer)

    def _redirect(self, request: Request, response: Response, service: str) -> Request:
        """Follow a redirect only to the endpoint's own host: a service request must never be
        sent (and trusted) elsewhere."""
        location = (response.headers.get(b"Location") or b"").decode("latin-1")
        target = urljoin(request.url, location)
        hops = request.meta.get("redirect_times", 0)
        if not location or urlsplit(target).hostname != urlsplit(request.url).hostname:
            self.stats.inc_value(f"service/{service}/redirect_refused")
            raise IgnoreRequest(
                f"HTTP {response.status} redirect to another host refused: {short_url(target)}"
            )
        if hops >= MAX_REDIRECTS:
            raise IgnoreRequest(f"more than {MAX_REDIRECTS} redirects")
        redirected = request.replace(
            url=_keep_params(target, request.url, request.meta.get(KEEP_ON_REDIRECT, ())),
            dont_filter=True,
        )
        redirected.meta["redirect_times"] = hops + 1
        # Another resource: its own retries and backoff, not what is left of the original's
        # (at most MAX_REDIRECTS hops, so the attempts stay bounded).
        for key in ("retry_times", "retry_reason", _RETRIES, _ATTEMPT):
            redirected.meta.pop(key, None)
        if response.status == 303 or (response.status in (301, 302) and request.method == "POST"):
            redirected = redirected.replace(method="GET", body=b"")
        return redirected

    # -- failures -----------------------------------------------------------------------------
    async def process_exception(  # type: ignore[override]  # a coroutine, as process_response
        self, request: Request, exception: Exception
    ) -> Request | Response | None:
        service = service_of(request)
        if service is None:
            return super().process_exception(request, exception)
        self._release(request, service)
        if isinstance(exception, IgnoreRequest) or request.meta.get("dont_retry"):
            return None
        self._hold(service, request.meta[POLITENESS], self.clock())
        if not isinstance(exception, self.exceptions_to_retry):
            return None
        failures = self._failures_in_a_row.get(service, 0) + 1
        self._failures_in_a_row[service] = failures
        if self.unreachable_after and failures > self.unreachable_after and self._quiet(service):
            self.stats.inc_value(f"retry/{service}/unreachable")
            if failures == self.unreachable_after + 1:
                logger.error(
                    "%s: %d failures in a row without any answer; not retrying its requests "
                    "until it answers again (RETRY_UNREACHABLE_AFTER)", service, failures - 1,
                )  # fmt: skip
            return None
        return await self._retry_later(request, service, type(exception).__name__, None)

    def _quiet(self, service: str) -> bool:
        """No answer from the service for a while (or ever): with many requests in flight, a
        burst of dropped connections alone must not open the breaker on a service that is
        answering the others."""
        last = self._last_answer.get(service)
        return last is None or self.clock() - last >= UNREACHABLE_QUIET

    async def _retry_later(
        self, request: Request, service: str, reason: str, retry_after: float | None
    ) -> Request | None:
        if retry_after is not None and retry_after > self.retry_after_max:
            logger.error(
                "Gave up %s: the server asks to retry after %.0f s (RETRY_AFTER_MAX is %.0f s)",
                short_url(request.url), retry_after, self.retry_after_max,
            )  # fmt: skip
            self.stats.inc_value(f"retry/{service}/max_reached")
            return None
        assert self.crawler.spider is not None
        retry = get_retry_request(
            request,
            spider=self.crawler.spider,
            reason=reason.split(" (", 1)[0],  # stats keys: the kind of failure, not its detail
            max_retry_times=request.meta.get("max_retry_times", self.max_retry_times),
            logger=self._log,  # type: ignore[arg-type]  # duck-typed: debug, error and log only
            give_up_log_level=request.meta.get("give_up_log_level", self.give_up_log_level),
            stats_base_key=f"retry/{service}",
        )
        if retry is None:
            return None
        retry.meta["retry_reason"] = reason
        retry.meta[_ATTEMPT] = await self._wait_next(request, reason, retry_after, service)
        # The retry copied the meta before the first failure created the iterator: without it,
        # every retry would start a new iterator and wait the first backoff step again.
        retry.meta[_RETRIES] = request.meta[_RETRIES]
        return retry

    async def _wait_next(
        self, request: Request, reason: str, retry_after: float | None, service: str
    ) -> AttemptManager:
        """Record the failed attempt with tenacity, which waits (backoff or Retry-After) and
        hands out the next attempt."""
        attempts = request.meta.get(_RETRIES)
        if attempts is None:
            attempts = aiter(AsyncRetrying(sleep=self._sleep_logged(service), wait=self.wait))
            request.meta[_RETRIES] = attempts
            request.meta[_ATTEMPT] = await anext(attempts)
        with request.meta[_ATTEMPT]:
            raise Retryable(reason, retry_after)
        return await anext(attempts)

    def _sleep_logged(self, service: str) -> Any:
        async def sleep(seconds: float) -> None:
            if seconds >= LONG_WAIT:
                logger.warning("%s: waiting %.0f s before the next try", service, seconds)
            await self._sleep(seconds)

        return sleep


def _keep_params(target: str, original: str, names: tuple[str, ...]) -> str:
    """``target`` with the original's values of ``names`` where it lacks them: a server that
    redirects a merged record to its canonical one drops the query (the API key with it)."""
    if not names:
        return target
    parts = urlsplit(target)
    have = {name for name, _ in parse_qsl(parts.query, keep_blank_values=True)}
    extra = [
        (name, value)
        for name, value in parse_qsl(urlsplit(original).query, keep_blank_values=True)
        if name in names and name not in have
    ]
    if not extra:
        return target
    query = "&".join(q for q in (parts.query, urlencode(extra, safe=":/|,")) if q)
    return parts._replace(query=query).geturl()
