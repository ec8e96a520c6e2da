"""arXiv enrichment: batch the IDs the spider announces, ask the export API, hand out results.

Why a pipeline that downloads (Scrapy's ``engine.download_async`` pattern) rather than spider
callbacks: each entry item simply awaits its paper, records stream out as soon as their batch
answers, and the downloader still does all HTTP (slots, delays, retries, stats). Politeness is the
downloader slot's job (one connection, ``ARXIV_DELAY`` between starts; see ``crawler.addon``).
"""

from __future__ import annotations

import asyncio
import logging
import re
from urllib.parse import urlencode

import arxiv
from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.http import Response
from twisted.internet.error import TimeoutError as TxTimeoutError

from crawler import signals
from crawler.enrich import PARSED, failure_text
from crawler.enrich.memo import Memo
from crawler.items import ArxivMeta, DigestEntry
from crawler.parsing.arxiv_feed import ApiError, FeedError, FeedPage, parse_feed
from crawler.parsing.arxiv_ids import MalformedArxivId, parse_arxiv_id, split_versioned
from crawler.state import State

logger = logging.getLogger(__name__)

ARXIV_SLOT = "arxiv-api"
MAX_RESULTS_CAP = 2000  # the API never returns more entries in one answer
_MAX_GET_URL = 2000  # longer id_lists go as a POST form, as the API allows


def _iso(dt: object) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")  # type: ignore[attr-defined]


def meta_from_result(result: arxiv.Result) -> ArxivMeta:
    ref = split_versioned(result.entry_id)
    versioned = f"{ref.base}v{ref.version}" if ref.version else ref.base
    return ArxivMeta(
        status="ok",
        id=versioned,
        version=ref.version,
        title=result.title,
        authors=[{"name": a.name, "affiliations": list(a.affiliation)} for a in result.authors],
        summary=result.summary,
        published=_iso(result.published),
        updated=_iso(result.updated),
        primary_category=result.primary_category or None,
        categories=list(result.categories),
        comment=result.comment,
        journal_ref=result.journal_ref,
        doi=result.doi,
        abs_url=f"https://arxiv.org/abs/{versioned}",
        pdf_url=f"https://arxiv.org/pdf/{versioned}",
    )


def build_request(api_url: str, ids: list[str]) -> Request:
    """One API request for ``ids``; ``max_results`` is set because it defaults to 10."""
    params = {"id_list": ",".join(ids), "max_results": str(len(ids))}
    meta = {"download_slot": ARXIV_SLOT, "allow_offsite": True, "service": "arxiv", "ids": ids}
    # A fresh connection per request: Twisted silently re-sends a GET that fails on a reused
    # keep-alive connection, which arXiv would see as two requests milliseconds apart.
    headers = {"Connection": "close"}
    url = f"{api_url}?{urlencode(params)}"
    if len(url) <= _MAX_GET_URL:
        return Request(url, headers=headers, meta=meta, dont_filter=True)
    return Request(
        api_url,
        method="POST",
        body=urlencode(params),
        headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
        meta=meta,
        dont_filter=True,
    )


_SUBJECT_CLASS = re.compile(r"\.[A-Z]{2}/")


def _canonical(base: str) -> str:
    """``math.GT/0309136`` and ``math/0309136`` name one paper; arXiv answers with the latter."""
    return _SUBJECT_CLASS.sub("/", base)


def match_results(ids: list[str], results: list[arxiv.Result]) -> dict[str, ArxivMeta]:
    """Pair requested IDs with feed entries; an ID without an entry was not found."""
    by_base: dict[str, list[arxiv.Result]] = {}
    for result in results:
        by_base.setdefault(_canonical(split_versioned(result.entry_id).base), []).append(result)
    out: dict[str, ArxivMeta] = {}
    for query in ids:
        ref = parse_arxiv_id(query)
        candidates = by_base.get(_canonical(ref.base), [])
        if ref.version is not None:
            candidates = [
                r for r in candidates if split_versioned(r.entry_id).version == ref.version
            ]
        if candidates:
            best = max(candidates, key=lambda r: split_versioned(r.entry_id).version or 0)
            out[query] = meta_from_result(best)
        else:
            out[query] = ArxivMeta(status="not_found", error=f"arXiv has no paper {query}")
    return out


def answer_problem(request: Request, response: Response) -> str | None:
    """Why a 200 answer cannot be used (worth a retry), or None. arXiv's 400 feed is not ours."""
    request.meta.pop(PARSED, None)
    try:
        page = parse_feed(response.body)
    except ApiError:
        return None
    except FeedError as exc:
        return str(exc)
    request.meta[PARSED] = page  # the pipeline reuses it instead of parsing the body again
    return page_problem(request.meta.get("ids") or [], page)


def page_problem(ids: list[str], page: FeedPage) -> str | None:
    # An empty feed is also arXiv's right answer for unknown IDs, so it is taken at its word:
    # an incident's empty answer turns into not_found, whose TTL (1 day) has it asked again soon.
    if page.total_results > len(page.results) and len(page.results) < len(ids):
        return f"incomplete feed ({len(page.results)} of {page.total_results} entries)"
    return None


class ArxivPipeline:
    """Fills ``entry.arxiv``; every distinct ID is asked for once per crawl."""

    def __init__(self, crawler: Crawler) -> None:
        settings = crawler.settings
        self.crawler = crawler
        self.stats = crawler.stats
        self.api_url = settings.get("ARXIV_API_URL")
        self.batch_size = max(1, min(settings.getint("ARXIV_BATCH_SIZE"), MAX_RESULTS_CAP))
        self.batch_wait = settings.getfloat("ARXIV_BATCH_WAIT")
        self.memo: Memo[ArxivMeta] = Memo("arxiv", crawler.get_extension(State))
        self._queue: list[str] = []
        self._in_flight = 0
        self._input_done = False
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # One request at a time, from here: a batch waiting for its turn is not yet in the
        # downloader, so the retry middleware's gate sees it before it can start.
        self._one_at_a_time = asyncio.Lock()
        crawler.signals.connect(self.want, signal=signals.entry_parsed)
        crawler.signals.connect(self.input_done, signal=signals.digests_exhausted)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ArxivPipeline:
        return cls(crawler)

    # -- collecting ---------------------------------------------------------------------------
    def want(self, entry: DigestEntry) -> None:
        key = entry.arxiv_query
        if key is None or not self.memo.needs_fetch(key):
            return
        try:
            parse_arxiv_id(key)  # never send a malformed ID: it would fail the whole batch
        except MalformedArxivId as exc:
            self.memo.remember(key, ArxivMeta(status="error", error=str(exc)))
            return
        self.memo.start(key)
        self.stats.inc_value("arxiv/ids_wanted")
        self._queue.append(key)
        self._flush(final=False)

    def input_done(self) -> None:
        self._input_done = True
        self._flush(final=True)

    def _flush(self, final: bool) -> None:
        while len(self._queue) >= self.batch_size:
            self._send(self._queue[: self.batch_size])
            del self._queue[: self.batch_size]
        if not self._queue:
            return
        if final or self._input_done:
            self._send(self._queue[:])
            self._queue.clear()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.batch_wait, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._in_flight:
            # The slot is busy anyway: keep filling the batch until it is free again.
            self._timer = asyncio.get_running_loop().call_later(self.batch_wait, self._on_timer)
            return
        self._flush(final=True)

    # -- fetching -----------------------------------------------------------------------------
    def _send(self, ids: list[str]) -> None:
        task = asyncio.get_running_loop().create_task(self._fetch(ids))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fetch(self, ids: list[str]) -> None:
        self._in_flight += 1
        self.stats.inc_value("arxiv/batches")
        self.stats.inc_value("arxiv/ids_requested", len(ids))
        try:
            async with self._one_at_a_time:
                outcome = await self._ask(ids)
        except Exception as exc:  # a bug must not leave entries waiting forever
            logger.error("arXiv batch failed unexpectedly: %s", failure_text(exc), exc_info=exc)
            outcome = _all_error(ids, f"internal error: {failure_text(exc)}")
        finally:
            self._in_flight -= 1
        if outcome is None:
            return  # split and re-queued
        values = [outcome[key] for key in ids]
        if self.memo.state:
            values = self.memo.state.save("arxiv", list(zip(ids, values, strict=True)))
        for key, value in zip(ids, values, strict=True):
            self.stats.inc_value(f"arxiv/ids/{value.status}")
            self.memo.finish(key, value)

    async def _ask(self, ids: list[str]) -> dict[str, ArxivMeta] | None:
        try:
            response = await self.crawler.engine.download_async(build_request(self.api_url, ids))
        except (TimeoutError, TxTimeoutError) as exc:
            return _all_error(ids, f"arXiv request timed out ({exc.__class__.__name__})")
        except Exception as exc:  # connection errors, cut bodies: whatever the downloader raised
            return _all_error(ids, f"arXiv request failed: {failure_text(exc)}")
        if response.status not in (200, 400):
            return _all_error(ids, f"arXiv answered HTTP {response.status}")
        try:
            page = response.meta.get(PARSED) or parse_feed(response.body)
        except ApiError as exc:
            if len(ids) > 1:
                # Something in this batch is refused: split it so the rest are still enriched.
                self.stats.inc_value("arxiv/batch_splits")
                half = len(ids) // 2
                for part in (ids[:half], ids[half:]):
                    self._send(part)
                return None
            return _all_error(ids, f"arXiv refused {ids[0]}: {exc}")
        except FeedError as exc:
            return _all_error(ids, f"arXiv answer unusable: {exc}")
        if response.status == 400:
            return _all_error(ids, "arXiv answered HTTP 400")
        if problem := page_problem(ids, page):
            return _all_error(ids, f"arXiv answer unusable: {problem}")
        return match_results(ids, page.results)

    async def process_item(self, item: object) -> object:
        if not isinstance(item, DigestEntry):
            return item
        if item.arxiv_query is None:
            item.arxiv = ArxivMeta(status="error", error=item.arxiv_problem or "no arXiv ID")
            return item
        meta = await self.memo.value(item.arxiv_query)
        if meta is None:
            # Not announced by the spider, or it went stale since: ask for it now.
            self.want(item)
            meta = await self.memo.value(item.arxiv_query)
        item.arxiv = meta
        return item

    def close_spider(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


def _all_error(ids: list[str], message: str) -> dict[str, ArxivMeta]:
    return {key: ArxivMeta(status="error", error=message) for key in ids}
