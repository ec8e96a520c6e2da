"""Synthetic upstream answers and a fake engine: the enrichment runner without a network.

The formats are the stand-in's (arXiv Atom feeds, its 400 error feed, oEmbed JSON), small
enough to read in a test; the fake engine records every request with the loop's time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from scrapy import Request
from scrapy.http import Response, TextResponse

from crawler.items import DigestEntry, Post, Tweet

FEED_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<feed xmlns="http://www.w3.org/2005/Atom" '
    'xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" '
    'xmlns:arxiv="http://arxiv.org/schemas/atom">\n'
)
ENTRY = """<entry>
  <id>http://arxiv.org/abs/{id}v1</id>
  <updated>2021-01-02T00:00:00Z</updated><published>2021-01-01T00:00:00Z</published>
  <title>Paper {id}</title><summary>About {id}.</summary><author><name>Ada</name></author>
  <arxiv:primary_category term="cs.LG"/><category term="cs.LG"/>
</entry>
"""


def arxiv_ids(request: Request) -> list[str]:
    query = request.body.decode() if request.method == "POST" else urlsplit(request.url).query
    return parse_qs(query)["id_list"][0].split(",")


def arxiv_feed(request: Request, known: Collection[str], refused: Collection[str] = ()) -> Response:
    """arXiv's answer: entries for the known IDs (the rest is absent), or the 400 error feed
    when the batch holds a refused ID."""
    ids = arxiv_ids(request)
    if bad := [i for i in ids if i in refused]:
        body = FEED_HEAD + (
            f"<entry><id>https://arxiv.org/api/errors#incorrect_id_format_for_{bad[0]}</id>"
            f"<title>Error</title><summary>incorrect id format for {bad[0]}</summary></entry>"
            "</feed>"
        )
        return text_response(request, body, status=400)
    found = [i for i in ids if i in known]
    body = FEED_HEAD + (
        f"<opensearch:totalResults>{len(found)}</opensearch:totalResults>"
        "<opensearch:startIndex>0</opensearch:startIndex>"
        f"<opensearch:itemsPerPage>{len(ids)}</opensearch:itemsPerPage>\n"
        + "".join(ENTRY.format(id=i) for i in found)
        + "</feed>"
    )
    return text_response(request, body)


def tweet_id(request: Request) -> str:
    return parse_qs(urlsplit(request.url).query)["url"][0].rsplit("/", 1)[1]


def oembed_answer(request: Request, status: int = 200) -> Response:
    key = tweet_id(request)
    if status != 200:
        return text_response(request, "", status=status)
    html = (
        f'<blockquote class="twitter-tweet"><p lang="en" dir="ltr">Tweet {key}</p>&mdash; '
        f'Ada (@ada) <a href="https://twitter.com/ada/status/{key}">June 1, 2021</a>'
        "</blockquote>\n"
    )
    answer = {
        "url": f"https://twitter.com/ada/status/{key}", "author_name": "Ada",
        "author_url": "https://twitter.com/ada", "html": html, "type": "rich",
    }  # fmt: skip
    return text_response(request, json.dumps(answer))


def hf_id(request: Request) -> str:
    return urlsplit(request.url).path.rsplit("/", 1)[1]


def hf_answer(request: Request, status: int = 200) -> Response:
    """Hugging Face's paper page for the ID in the path, or its 404 (no page)."""
    key = hf_id(request)
    if status != 200:
        return text_response(request, json.dumps({"error": "Paper not found"}), status=status)
    return text_response(request, json.dumps({"id": key, "title": f"Paper {key}", "upvotes": 7}))


def text_response(request: Request, body: str, status: int = 200) -> Response:
    return TextResponse(request.url, status=status, body=body.encode(), request=request)


Answerer = Callable[[Request], Response | BaseException | Awaitable[Response]]


@dataclass
class FakeEngine:
    """``crawler.engine`` for the runner: ``download_async`` answers with ``answer``."""

    answer: Answerer
    requests: list[tuple[float, Request]] = field(default_factory=list)
    spider: Any = None

    async def download_async(self, request: Request) -> Response:
        self.requests.append((asyncio.get_running_loop().time(), request))
        result = self.answer(request)
        if isinstance(result, BaseException):
            raise result
        if isinstance(result, Response):
            return result
        return await result

    def times(self) -> list[float]:
        return [when for when, _ in self.requests]


def entry(arxiv_id: str | None = None, tweets: Sequence[str] = (), rank: int = 1) -> DigestEntry:
    post = Post(source="digest.md", slug="hot-papers", title=None, published_at=None)
    return DigestEntry(
        post=post, rank=rank, line=1, title="A paper", authors=["Ada"], retweets=None,
        favorites=None, counts_at=None, abs_url=None, pdf_url=None, categories=[], abstract="",
        arxiv_id=arxiv_id, arxiv_version=None, arxiv_problem=None if arxiv_id else "no link",
        tweets=[
            Tweet(id=t, url=f"https://twitter.com/ada/status/{t}", author_handle="ada",
                  author_name="Ada", lang="en", date_text=None, text=f"Tweet {t}")
            for t in tweets
        ],
    )  # fmt: skip
