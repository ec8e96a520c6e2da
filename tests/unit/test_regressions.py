"""Regressions found by an independent review: each test pins one finding, fixed since."""

from __future__ import annotations

import asyncio
from typing import Any

from scrapy import Request
from scrapy.http import Response
from scrapy.settings import Settings

from crawler.outcome import DIGESTS_READ, ExitStatus, Outcome
from crawler.services.arxiv import Arxiv
from crawler.services.oembed import OEmbed
from crawler.services.semantic_scholar import parse_batch
from crawler.services.syndication import Syndication
from tests.unit.answers import arxiv_feed, entry, text_response
from tests.unit.helpers import unit_crawler
from tests.unit.test_runner import IDS, _runner
from tests.unit.vtime import run


# 1. A hostile answer that makes the service's check raise something other than
#    AnswerUnusable ends as "internal error" in the record, but the run exits 0.
def test_an_unexpected_parse_failure_makes_the_run_incomplete() -> None:
    deep = "[" * 50_000 + "]" * 50_000  # json.loads: RecursionError (parse_oembed lets it out)

    async def scenario() -> tuple[Any, Outcome]:
        runner, _ = _runner(OEmbed, lambda r: text_response(r, deep))
        e = entry(tweets=["1410000000000000001"])
        runner.want(e)
        await runner.fill(e)
        return e.tweets[0].embed, runner.outcome

    embed, outcome = run(scenario())
    assert embed.status == "error" and "invalid JSON from oEmbed" in embed.error
    outcome.reason = "finished"
    outcome.stats.set_value(DIGESTS_READ, 1)
    # A record went out with status "error": the run must not say "complete".
    assert outcome.exit_status() == ExitStatus.ENRICHMENT_INCOMPLETE


# 2. stop() cancels tasks; a task cancelled before its first step never runs _fetch's
#    handlers, so the keys it carries are never resolved and their entries wait forever.
def test_a_stop_right_after_a_batch_split_does_not_hang() -> None:
    bad = IDS[1]

    async def scenario() -> list[str]:
        holder: dict[str, Outcome] = {}

        def answer(request: Request) -> Response:
            holder["outcome"].stopping.set()  # SIGTERM lands while this answer is handled
            return arxiv_feed(request, known=set(IDS), refused={bad})

        runner, _ = _runner(Arxiv, answer, ARXIV_BATCH_SIZE=4)
        holder["outcome"] = runner.outcome

        async def stop_when_stopping() -> None:  # EnrichmentPipeline._stop_when_stopping
            await runner.outcome.stopping.wait()
            runner.stop()

        watcher = asyncio.ensure_future(stop_when_stopping())
        await asyncio.sleep(0)
        entries = [entry(i) for i in IDS[:4]]
        for e in entries:
            runner.want(e)
        await asyncio.gather(*(runner.fill(e) for e in entries))
        watcher.cancel()
        return [e.arxiv.status if e.arxiv else "missing" for e in entries]

    assert run(scenario()) == ["error"] * 4


# 3. README: DETAILS_TTL_BY_AGE "Give it as JSON with -s". Scrapy's getlist splits the JSON
#    text on commas, so every JSON value is refused.
def test_details_ttl_by_age_given_as_json_on_the_command_line() -> None:
    settings = Settings()
    settings.setmodule("crawler.settings")
    settings.set("DETAILS_TTL_BY_AGE", "[[7, 1], [30, 3]]", priority="cmdline")
    assert Syndication.settings_problems(settings) == []


# 4. An old-style ID with a subject class: arXiv's own module canonicalises math.GT/0309136 to
#    math/0309136; the Semantic Scholar module compares the raw strings and calls the answer
#    "about another paper".
def test_semantic_scholar_old_style_id_with_subject_class() -> None:
    body = b'[{"paperId": "abc", "externalIds": {"ArXiv": "math/0309136"}}]'
    impact = parse_batch(body, ["math.GT/0309136"])["math.GT/0309136"]
    assert impact.status == "ok", impact.error


# 5. Issue 21: the pipeline gathered a task per service for every entry in flight (~1,100 in a
#    backfill, six services): ~15 KB each, 10-15 MB of the crawl's peak. The entry now looks
#    its keys up as it arrives and waits for them in turn, with the same values.
def test_an_entry_in_flight_holds_no_task_per_service() -> None:
    from crawler.enrich.pipeline import EnrichmentPipeline
    from tests.unit.answers import FakeEngine, oembed_answer

    off = {"SEMANTIC_SCHOLAR": False, "HF_PAPERS": False, "OPENALEX": False}
    crawler = unit_crawler(TWEET_DETAILS=False, ARXIV_DELAY=0, **off)

    def answer(request: Request) -> Response:
        if "oembed" in request.url:
            return oembed_answer(request)
        return arxiv_feed(request, known=set(IDS))

    crawler.engine = FakeEngine(answer)  # type: ignore[assignment]  # download_async only
    pipeline = EnrichmentPipeline.from_crawler(crawler)
    ids, tweets = IDS[:3], ["1410000000000000001", "1410000000000000002"]
    entries = [entry(i, tweets=tweets) for i in ids]
    created: list[str] = []

    async def scenario() -> list[tuple[str, list[str]]]:
        loop = asyncio.get_running_loop()

        def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kw: Any) -> asyncio.Task[Any]:
            created.append(coro.__qualname__)
            return asyncio.Task(coro, loop=loop, **kw)

        loop.set_task_factory(factory)
        for e in entries:
            pipeline.want(e)
        pipeline.input_done()
        await asyncio.gather(*(pipeline.process_item(e) for e in entries))
        return [
            (e.arxiv.status, [t.embed.status for t in e.tweets])  # type: ignore[union-attr]
            for e in entries
        ]

    assert run(scenario()) == [("ok", ["ok", "ok"])] * 3
    assert [name for name in created if "fill" in name] == []
