"""Components built the way a crawl builds them, with synthetic requests and answers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.http import Response, TextResponse
from scrapy.utils.misc import build_from_crawler
from scrapy.utils.spider import DefaultSpider

from crawler.downloader.contract import Politeness, service_meta
from crawler.downloader.middleware import BackoffRetryMiddleware
from crawler.outcome import Outcome
from tests.helpers import project_crawler

# An answer in a scenario: a status, (status, headers), (status, headers, body), or an exception.
Reply = int | tuple[int, dict[str, str]] | tuple[int, dict[str, str], bytes]
Answer = Reply | Exception


def unit_crawler(**settings: Any) -> Crawler:
    """The project's crawler with a spider, no state database and no feed (nothing on disk)."""
    crawler = project_crawler(DefaultSpider, **({"STATE_DB": "", "DEFAULT_FEED": ""} | settings))
    crawler.spider = crawler._create_spider()
    return crawler


def outcome_of(crawler: Crawler) -> Outcome:
    return Outcome.of(crawler)


def middleware(
    crawler: Crawler, clock: Callable[[], float], wall: float = 1e9
) -> BackoffRetryMiddleware:
    """The retry middleware on ``clock`` (the loop's), with a fixed wall-clock time."""
    mw = build_from_crawler(BackoffRetryMiddleware, crawler)
    mw.clock = clock
    mw.wall_clock = lambda: wall
    return mw


def accept(request: Request, response: Response) -> Any:
    """An answer check that takes any 200 and parses it as its text."""
    return response.body.decode()


def service_request(
    url: str = "http://svc.test/q",
    service: str = "svc",
    politeness: Politeness | None = None,
    check: Callable[[Request, Response], Any] = accept,
    method: str = "GET",
    **meta: Any,
) -> Request:
    return Request(
        url,
        method=method,
        meta=service_meta(service, politeness or Politeness(concurrency=4), check, **meta),
        dont_filter=True,
    )


def respond(request: Request, answer: Reply) -> Response:
    if isinstance(answer, int):
        answer = (answer, {})
    status, headers, *rest = answer
    body = rest[0] if rest else b"ok"
    return TextResponse(request.url, status=status, headers=headers, body=body, request=request)


@dataclass
class Trace:
    """What one request went through: the final result and when each attempt started."""

    result: Response | Exception | None = None
    starts: list[float] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)


async def download(
    mw: BackoffRetryMiddleware,
    request: Request,
    answers: Iterable[Answer],
    clock: Callable[[], float],
    trace: Trace | None = None,
    latency: float = 0.0,
) -> Trace:
    """What Scrapy's downloader does with a request: the middleware around each attempt,
    retries and redirects included, until an answer or a failure is final."""
    trace = trace if trace is not None else Trace()
    pending = iter(answers)
    while True:
        await mw.process_request(request)
        trace.starts.append(clock())
        trace.requests.append(request)
        answer = next(pending)
        if latency:
            await asyncio.sleep(latency)
        outcome: Request | Response | None
        if isinstance(answer, Exception):
            outcome = await mw.process_exception(request, answer)
            if outcome is None:
                trace.result = answer
                return trace
        else:
            outcome = await mw.process_response(request, respond(request, answer))
        if isinstance(outcome, Request):
            request = outcome
            continue
        trace.result = outcome
        return trace
