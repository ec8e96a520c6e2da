"""Answers that end a service for the run (a spent daily budget), extra throttling statuses, and
redirects that keep the API key: the middleware rules OpenAlex relies on, on a virtual clock."""

from __future__ import annotations

import asyncio
import logging

import pytest
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response

from crawler.downloader.contract import KEEP_ON_REDIRECT, Politeness
from crawler.downloader.middleware import BackoffRetryMiddleware
from crawler.services.openalex import BUDGET_SPENT
from tests.unit.helpers import (
    Trace,
    download,
    middleware,
    respond,
    service_request,
    unit_crawler,
)
from tests.unit.vtime import run

BUDGET = Politeness(
    concurrency=1,
    delay=0.1,
    throttle_codes=frozenset({403}),
    quota_codes=frozenset({429}),
    quota_message=BUDGET_SPENT,
)


def _setup() -> tuple[BackoffRetryMiddleware, asyncio.AbstractEventLoop]:
    loop = asyncio.get_running_loop()
    return middleware(unit_crawler(RETRY_BACKOFF_BASE=1.0), loop.time), loop


def test_a_quota_answer_is_final_and_no_later_request_of_the_service_goes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> tuple[Trace, list[str], BackoffRetryMiddleware]:
        mw, loop = _setup()
        first = await download(mw, service_request(politeness=BUDGET), [429, 200], loop.time)
        refused = []
        for n in range(3):
            with pytest.raises(IgnoreRequest) as info:
                await mw.process_request(service_request(f"http://svc.test/{n}", politeness=BUDGET))
            refused.append(str(info.value))
        await mw.process_request(service_request(service="other"))  # other services go on
        return first, refused, mw

    with caplog.at_level(logging.ERROR):
        trace, refused, mw = run(scenario())
    assert len(trace.starts) == 1  # 429 is in RETRY_HTTP_CODES, but for this service final
    assert isinstance(trace.result, Response) and trace.result.status == 429
    assert refused == [BUDGET_SPENT] * 3
    assert [r.getMessage() for r in caplog.records] == [BUDGET_SPENT]  # one line, once
    assert mw.stats.get_value("service/svc/requests") == 1
    assert mw.stats.get_value("service/svc/not_sent_quota_spent") == 3
    assert mw.stats.get_value("service/other/requests") == 1


def test_a_request_already_waiting_for_its_turn_is_dropped_when_the_quota_is_spent() -> None:
    async def scenario() -> tuple[int, BaseException | None, BackoffRetryMiddleware]:
        mw, _ = _setup()
        first = service_request(politeness=BUDGET)
        await mw.process_request(first)
        # One request at a time: the next one waits for the first answer, past the first check.
        waiting = asyncio.ensure_future(
            mw.process_request(service_request("http://svc.test/2", politeness=BUDGET))
        )
        await asyncio.sleep(0.05)
        answer = await mw.process_response(first, respond(first, 429))
        assert isinstance(answer, Response)
        try:
            await waiting
        except IgnoreRequest as exc:
            return answer.status, exc, mw
        return answer.status, None, mw

    status, error, mw = run(scenario())
    assert status == 429
    assert isinstance(error, IgnoreRequest) and str(error) == BUDGET_SPENT
    assert mw.stats.get_value("service/svc/requests") == 1


def test_an_extra_throttle_status_is_retried_with_backoff_and_retry_after() -> None:
    async def scenario() -> tuple[Trace, BackoffRetryMiddleware]:
        mw, loop = _setup()
        request = service_request(politeness=BUDGET)
        return await download(mw, request, [(403, {"Retry-After": "9"}), 200], loop.time), mw

    trace, mw = run(scenario())
    assert trace.starts == [0.0, 9.0]  # retried, after the Retry-After (longer than backoff)
    assert isinstance(trace.result, Response) and trace.result.status == 200
    assert mw.stats.get_value("service/svc/throttled") == 1
    assert mw.spent == {}


def test_403_of_a_service_without_throttle_codes_is_final() -> None:
    async def scenario() -> Trace:
        mw, loop = _setup()
        return await download(mw, service_request(), [403, 200], loop.time)

    trace = run(scenario())
    assert len(trace.starts) == 1
    assert isinstance(trace.result, Response) and trace.result.status == 403


@pytest.mark.parametrize(
    ("location", "followed"),
    [
        # the canonical work, without the query: key and select come along
        ("/works/W42", "http://svc.test/works/W42?select=id,doi&api_key=k1"),
        # a target with its own select keeps it; only the missing key is added
        ("/works/W42?select=id", "http://svc.test/works/W42?select=id&api_key=k1"),
    ],
)
def test_a_same_host_redirect_keeps_the_named_query_parameters(
    location: str, followed: str
) -> None:
    async def scenario() -> Trace:
        mw, loop = _setup()
        request = service_request(
            "http://svc.test/works/doi:10.48550/arXiv.2106.09685?select=id,doi&api_key=k1&x=1",
            politeness=BUDGET,
        )
        request.meta[KEEP_ON_REDIRECT] = ("api_key", "select")
        return await download(mw, request, [(301, {"Location": location}), 200], loop.time)

    trace = run(scenario())
    assert [r.url for r in trace.requests][1] == followed
