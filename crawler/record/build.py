"""The output contract: a :class:`DigestEntry` -> one JSON-ready record, checked against the schema.

The shape is documented in README ("Output") and fixed by ``crawler/record/record.schema.json``;
bump ``SCHEMA_VERSION`` with any change a downstream reader could notice. Derived fields
(``code_urls``, ``tweets[].created_at``, ``linked_arxiv_ids``, ``links_paper``) are computed here
from what enrichment found, so they never disagree with it.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from crawler.items import ArxivMeta, DigestEntry, Embed, Impact, Tweet, TweetDetails
from crawler.parsing.arxiv_ids import canonical
from crawler.parsing.links import code_urls, linked_arxiv_ids
from crawler.parsing.tweets import snowflake_created_at

SCHEMA_VERSION = 2

Value = ArxivMeta | Embed | TweetDetails | Impact


def _status_block(obj: Value | None, fields: tuple[str, ...]) -> dict[str, Any]:
    if obj is None:
        return {"status": "error", "error": "not enriched (pipeline disabled?)"}
    if obj.status == "disabled":
        return {"status": "disabled"}
    if obj.status == "tombstone":
        assert isinstance(obj, TweetDetails)
        return {"status": "tombstone", "reason": obj.reason or ""}
    if obj.status != "ok":
        return {"status": obj.status, "error": obj.error or obj.status}
    data = asdict(obj)
    return {"status": "ok", **{name: data[name] for name in fields}}


ARXIV_FIELDS = (
    "id", "version", "title", "authors", "summary", "published", "updated", "primary_category",
    "categories", "comment", "journal_ref", "doi", "abs_url", "pdf_url",
)  # fmt: skip
EMBED_FIELDS = ("text", "html", "author_name", "author_url", "url")
DETAILS_FIELDS = (
    "created_at", "favorite_count", "reply_count", "lang", "text", "author", "urls", "media",
    "quoted_tweet_id", "in_reply_to_id", "possibly_sensitive", "history",
)  # fmt: skip
IMPACT_FIELDS = (
    "semantic_scholar_id", "citation_count", "influential_citation_count", "reference_count",
    "venue", "year", "publication_date", "tldr", "open_access_pdf",
)  # fmt: skip


def _expanded_urls(details: TweetDetails | None) -> list[str | None]:
    if details is None or details.status != "ok":
        return []
    return [u.get("expanded_url") for u in details.urls]


def _tweet(tweet: Tweet, paper: str | None) -> dict[str, Any]:
    linked = (
        linked_arxiv_ids(_expanded_urls(tweet.details))
        if tweet.details is not None and tweet.details.status == "ok"
        else None
    )
    return {
        "id": tweet.id,
        "url": tweet.url,
        "author_handle": tweet.author_handle,
        "author_name": tweet.author_name,
        "lang": tweet.lang,
        "date_text": tweet.date_text,
        "text": tweet.text,
        "created_at": snowflake_created_at(tweet.id),
        "embed": _status_block(tweet.embed, EMBED_FIELDS),
        "details": _status_block(tweet.details, DETAILS_FIELDS),
        "linked_arxiv_ids": linked,
        "links_paper": None
        if linked is None
        else (paper is not None and canonical(paper) in {canonical(i) for i in linked}),
    }


def _code_urls(entry: DigestEntry) -> list[str]:
    """Code links, first seen first: arXiv abstract, arXiv comment, digest abstract, tweets."""
    meta = entry.arxiv if entry.arxiv is not None and entry.arxiv.status == "ok" else None
    texts: list[str | None] = [meta.summary, meta.comment] if meta else []
    texts.append(entry.abstract)
    for tweet in entry.tweets:
        texts.extend(_expanded_urls(tweet.details))
    return code_urls(texts)


def build_record(entry: DigestEntry) -> dict[str, Any]:
    post = entry.post
    return {
        "schema_version": SCHEMA_VERSION,
        "post": {
            "slug": post.slug,
            "title": post.title,
            "date": post.date,
            "tags": post.tags,
            "category": post.category,
            "source": post.source,
        },
        "rank": entry.rank,
        "arxiv_id": entry.arxiv_id,
        "digest": {
            "title": entry.title,
            "authors": entry.authors,
            "retweets": entry.retweets,
            "favorites": entry.favorites,
            "counts_at": entry.counts_at,
            "abstract": entry.abstract,
            "categories": entry.categories,
            "abs_url": entry.abs_url,
            "pdf_url": entry.pdf_url,
            "arxiv_version": entry.arxiv_version,
        },
        "arxiv": _status_block(entry.arxiv, ARXIV_FIELDS),
        "impact": _status_block(entry.impact, IMPACT_FIELDS),
        "code_urls": _code_urls(entry),
        "tweets": [_tweet(t, entry.arxiv_id) for t in entry.tweets],
    }
