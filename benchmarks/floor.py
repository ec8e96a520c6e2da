"""The floor spider: our crawl's requests, replayed by a bare Scrapy spider that does nothing.

    python -m benchmarks.floor --requests crawl-requests.jsonl --base http://127.0.0.1:PORT \
        [--arxiv-delay 0.1] [--s2-delay 0.05] [--concurrency 16]

Issue 21 asks how much of the crawler's CPU is the engine itself. This spider sends the very
requests a crawl sent (the stand-in's log of it: method, path, query, body, service), to the
same stand-in, obeying the same spacing (arXiv: one at a time, ``ARXIV_DELAY`` between starts
and, as the crawler's default ``ARXIV_HOLD_AFTER_ANSWER``, after each answer; Semantic Scholar
and OpenAlex: one at a time, ``S2_DELAY`` and ``OPENALEX_DELAY`` apart; Hugging Face 4 at once;
each tweet service at most ``--concurrency`` in flight, the crawler's adaptive cap), and
throws every answer away. No parsing, no state, no records: its CPU seconds are the least
Scrapy needs to move those requests, the physical limit of our engine.

It imports nothing from ``crawler``: it is Scrapy's stock downloader, default handlers and
middlewares, the asyncio reactor the crawler uses too. Prints one JSON line (requests answered,
statuses) on stdout; the caller measures time and CPU from outside.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import scrapy
from scrapy.crawler import CrawlerProcess
from scrapy.http import Response
from scrapy.settings import default_settings

SLOTTED = ("arxiv", "semantic_scholar", "openalex")  # one at a time, spaced
FIXED = {"hf_papers": 4}  # the crawler's fixed concurrency (HF_CONCURRENCY); the rest adapt to 16


def dump_requests(served: Iterable[Any], path: Path) -> int:
    """The stand-in's log as replayable lines (service, method, path, query, body), by start."""
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for r in sorted(served, key=lambda r: r.start):
            line = {
                "service": r.service,
                "method": r.method,
                "path": r.path,
                "query": urlencode(r.params, doseq=True),
                "body": r.body.decode("utf-8", "surrogateescape"),
            }
            fh.write(json.dumps(line) + "\n")
            n += 1
    return n


def load_requests(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


class FloorSpider(scrapy.Spider):
    """Replays the logged requests; every answer is counted and dropped."""

    name = "floor"

    def __init__(
        self, requests: list[dict[str, str]], base: str, arxiv_delay: float, **kw: Any
    ) -> None:
        super().__init__(**kw)
        self.logged = requests
        self.base = base.rstrip("/")
        self.arxiv_delay = arxiv_delay
        self.statuses: Counter[int] = Counter()

    def _request(self, logged: dict[str, str], **kw: Any) -> scrapy.Request:
        query = f"?{logged['query']}" if logged["query"] else ""
        body = logged["body"].encode("utf-8", "surrogateescape")
        headers = {"Content-Type": "application/json"} if body else {}
        return scrapy.Request(
            self.base + logged["path"] + query,
            method=logged["method"],
            body=body,
            headers=headers,
            dont_filter=True,
            meta={"download_slot": logged["service"], "handle_httpstatus_all": True},
            **kw,
        )

    async def start(self) -> AsyncIterator[scrapy.Request]:
        """Every non-arXiv request at once (the slots space them); arXiv's first one, the rest
        of arXiv chained from its answers, since the crawler never sends one before then."""
        arxiv = [r for r in self.logged if r["service"] == "arxiv"]
        if arxiv:
            yield self._request(arxiv[0], callback=self.arxiv_answer, cb_kwargs={"rest": arxiv[1:]})
        for logged in self.logged:
            if logged["service"] != "arxiv":
                yield self._request(logged, callback=self.drop)

    def drop(self, response: Response) -> None:
        self.statuses[response.status] += 1

    async def arxiv_answer(
        self, response: Response, rest: list[dict[str, str]]
    ) -> AsyncIterator[scrapy.Request]:
        """The next arXiv request ``ARXIV_DELAY`` after this answer (hold after answer)."""
        self.drop(response)
        if rest:
            await asyncio.sleep(self.arxiv_delay)
            yield self._request(rest[0], callback=self.arxiv_answer, cb_kwargs={"rest": rest[1:]})

    def closed(self, reason: str) -> None:
        print(json.dumps({"answered": sum(self.statuses.values()), "statuses": self.statuses}))


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """Stock Scrapy, told the crawler's politeness: per-service slots, no randomised delay."""
    slots = {
        "arxiv": {"concurrency": 1, "delay": args.arxiv_delay, "randomize_delay": False},
        "semantic_scholar": {"concurrency": 1, "delay": args.s2_delay, "randomize_delay": False},
        "openalex": {"concurrency": 1, "delay": args.openalex_delay, "randomize_delay": False},
    }
    for service in args.services:
        if service not in SLOTTED:
            concurrency = FIXED.get(service, args.concurrency)
            slots[service] = {"concurrency": concurrency, "delay": 0.0}
    return {
        "TWISTED_REACTOR": "twisted.internet.asyncioreactor.AsyncioSelectorReactor",
        "DOWNLOAD_SLOTS": slots,
        "CONCURRENT_REQUESTS": args.concurrency * max(1, len(slots)),
        "CONCURRENT_REQUESTS_PER_DOMAIN": args.concurrency * max(1, len(slots)),
        "SCHEDULER_MEMORY_QUEUE": "scrapy.squeues.FifoMemoryQueue",
        "ROBOTSTXT_OBEY": False,
        "RETRY_ENABLED": False,
        "COOKIES_ENABLED": False,
        "LOG_LEVEL": "INFO",
        "LOGSTATS_INTERVAL": 0,
        "TELNETCONSOLE_ENABLED": False,
        # As the crawler has it (crawler/settings.py): no remote-control console, and its
        # module (aiohttp) not imported, so the engine measured is the crawler's.
        "REMOTE_CONTROL_ENABLED": False,
        "EXTENSIONS_BASE": {
            path: order
            for path, order in default_settings.EXTENSIONS_BASE.items()
            if path != "scrapy.extensions.remote_control.RemoteControl"
        },
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="replay a crawl's requests, do nothing with them")
    ap.add_argument("--requests", type=Path, required=True, help="from dump_requests")
    ap.add_argument("--base", required=True, help="the stand-in, http://127.0.0.1:PORT")
    ap.add_argument("--arxiv-delay", type=float, default=3.0)
    ap.add_argument("--s2-delay", type=float, default=1.0)
    ap.add_argument("--openalex-delay", type=float, default=0.1)
    ap.add_argument("--concurrency", type=int, default=16, help="per tweet service")
    args = ap.parse_args(argv)
    logged = load_requests(args.requests)
    args.services = sorted({r["service"] for r in logged})
    if not math.isfinite(args.arxiv_delay) or args.arxiv_delay < 0:
        ap.error("--arxiv-delay must be a finite number >= 0")
    process = CrawlerProcess(settings(args), install_root_handler=True)
    process.crawl(FloorSpider, requests=logged, base=args.base, arxiv_delay=args.arxiv_delay)
    process.start()


if __name__ == "__main__":
    main()
