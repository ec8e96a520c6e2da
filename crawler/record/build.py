"""The output contract: a :class:`DigestEntry` -> one JSON-ready record, checked against the schema.

The shape is documented in README ("Output") and fixed by ``crawler/record/record.schema.json``
(schema 3: dense, every key in every record); bump ``SCHEMA_VERSION`` with any change a
downstream reader could notice. Derived fields (``entry_id``, ``post.id``, ``post.digest_date``,
``code_urls``, ``tweets[].created_at``, ``availability``, ``linked_arxiv_ids``, ``links_paper``)
are computed here from what enrichment found, so they never disagree with it.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from crawler.items import (
    ArxivMeta,
    DigestEntry,
    Embed,
    HfPaper,
    Impact,
    OpenAlexWork,
    Post,
    Tweet,
    TweetDetails,
)
from crawler.parsing.arxiv_ids import canonical
from crawler.parsing.links import code_urls, linked_arxiv_ids
from crawler.parsing.tweets import snowflake_created_at
from crawler.record.availability import availability

SCHEMA_VERSION = 3

Value = ArxivMeta | Embed | TweetDetails | Impact | HfPaper | OpenAlexWork

# Every field of each enrichment block after ``status``, in record order (the schema's order).
ARXIV_FIELDS = (
    "error", "fetched_at", "versioned_id", "version", "title", "authors", "abstract",
    "published_at", "updated_at", "primary_category", "categories", "comment", "journal_ref",
    "doi", "abs_url", "pdf_url",
)  # fmt: skip
SEMANTIC_SCHOLAR_FIELDS = (
    "error", "fetched_at", "semantic_scholar_id", "citation_count",
    "influential_citation_count", "reference_count", "venue", "publication_year",
    "publication_date", "tldr", "open_access_pdf", "history",
)  # fmt: skip
HF_FIELDS = (
    "error", "fetched_at", "upvotes", "comments", "github_repo", "github_stars", "project_page",
    "ai_summary", "ai_keywords", "published_at", "submitted_on_daily_at", "history",
)  # fmt: skip
OPENALEX_FIELDS = (
    "error", "fetched_at", "work_id", "cited_by_count", "counts_by_year", "published_version",
    "is_oa", "primary_topic", "history",
)  # fmt: skip
EMBED_FIELDS = ("error", "fetched_at", "text", "html", "author_name", "author_url", "url")
DETAILS_FIELDS = (
    "error", "reason", "fetched_at", "created_at", "like_count", "reply_count", "lang", "text",
    "author", "urls", "media", "quoted_tweet_id", "in_reply_to_id", "possibly_sensitive",
    "history",
)  # fmt: skip
# The record's blocks: path steps (as validate.py sees them) -> their fields.
BLOCK_FIELDS: dict[str, tuple[str, ...]] = {
    "arxiv": ARXIV_FIELDS,
    "semantic_scholar": SEMANTIC_SCHOLAR_FIELDS,
    "hf": HF_FIELDS,
    "openalex": OPENALEX_FIELDS,
    "embed": EMBED_FIELDS,
    "details": DETAILS_FIELDS,
}
# Fields a value keeps whatever its status; the rest are null unless it is ok.
_ALWAYS = frozenset({"error", "fetched_at", "reason"})
_FAILURES = frozenset({"not_found", "not_indexed", "error", "deleted", "protected"})
# The blocks of a record about its paper, in record order (the rest are per tweet).
PAPER_BLOCKS = ("arxiv", "semantic_scholar", "hf", "openalex")
# Where a code link was found, in the order sources are searched (``code_urls[].sources``).
CODE_SOURCES = ("arxiv_abstract", "arxiv_comment", "digest_abstract", "tweet", "hf")
_DAY = re.compile(r"(\d{4})-(\d{2})-(\d{2})")


def error_block(block: str, message: str) -> dict[str, Any]:
    """A dense ``status: error`` block: every field present, null but ``error``."""
    return {"status": "error", **dict.fromkeys(BLOCK_FIELDS[block]), "error": message}


def _status_block(obj: Value | None, block: str) -> dict[str, Any]:
    if obj is None:
        return error_block(block, "not enriched (pipeline disabled?)")
    # The fields as they are, not ``asdict``'s deep copy (the top cost of building a record):
    # the record pipeline's ``scrub_text`` rebuilds every list and dict of the record anyway,
    # so no record shares a container with a value (values hold no nested dataclasses).
    ok = obj.status == "ok"
    out: dict[str, Any] = {"status": obj.status}
    out.update((n, getattr(obj, n) if ok or n in _ALWAYS else None) for n in BLOCK_FIELDS[block])
    out["error"] = (obj.error or obj.status) if obj.status in _FAILURES else None
    if "reason" in out:
        out["reason"] = (getattr(obj, "reason", None) or "") if obj.status == "tombstone" else None
    if obj.status == "disabled":
        out["fetched_at"] = None
    return out


def _key(*parts: str) -> str:
    """The first 16 hex digits of SHA-256 over the parts joined by newlines (UTF-8)."""
    text = "\n".join(parts).encode("utf-8", "surrogatepass")
    return hashlib.sha256(text).hexdigest()[:16]


def _valid_day(match: re.Match[str] | None) -> str | None:
    if match is None:
        return None
    year, month, day = (int(g) for g in match.groups())
    if not (1000 <= year <= 9999 and 1 <= month <= 12 and 1 <= day <= 31):
        return None
    return match.group(0)


def digest_date(slug: str, title: str | None) -> str | None:
    """The day the digest covers: a slug ending in ``YYYY-MM-DD``, else the title's first."""
    from_slug = _valid_day(_DAY.search(slug[-10:])) if len(slug) >= 10 else None
    if from_slug is not None and slug.endswith(from_slug):
        return from_slug
    return _valid_day(_DAY.search(title or ""))


def record_source(post: Post) -> str:
    return post.record_source if post.record_source is not None else post.source


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
    seen, reason = availability(tweet.embed, tweet.details)
    return {
        "id": tweet.id,
        "url": tweet.url,
        "author_handle": tweet.author_handle,
        "author_name": tweet.author_name,
        "lang": tweet.lang,
        "date_text": tweet.date_text,
        "text": tweet.text,
        "created_at": snowflake_created_at(tweet.id),
        "availability": seen,
        "availability_reason": reason,
        "embed": _status_block(tweet.embed, "embed"),
        "details": _status_block(tweet.details, "details"),
        "linked_arxiv_ids": linked,
        "links_paper": None
        if linked is None
        else (paper is not None and canonical(paper) in {canonical(i) for i in linked}),
    }


def _code_texts(entry: DigestEntry) -> dict[str, list[str | None]]:
    """The texts each code-link source offers, by source, in :data:`CODE_SOURCES` order."""
    meta = entry.arxiv if entry.arxiv is not None and entry.arxiv.status == "ok" else None
    hf = entry.hf if entry.hf is not None and entry.hf.status == "ok" else None
    return {
        "arxiv_abstract": [meta.abstract] if meta else [],
        "arxiv_comment": [meta.comment] if meta else [],
        "digest_abstract": [entry.abstract],
        "tweet": [url for tweet in entry.tweets for url in _expanded_urls(tweet.details)],
        "hf": [hf.github_repo] if hf else [],
    }


def _code_urls(entry: DigestEntry) -> list[dict[str, Any]]:
    """Code links with every source naming them; first seen first, the first spelling kept
    (duplicates ignoring case, as the hosts treat them)."""
    found: dict[str, dict[str, Any]] = {}
    for source, texts in _code_texts(entry).items():
        for url in code_urls(texts):
            link = found.setdefault(url.lower(), {"url": url, "sources": []})
            if source not in link["sources"]:
                link["sources"].append(source)
    return list(found.values())


def _post(post: Post, source: str) -> dict[str, Any]:
    return {
        "id": _key(source, post.slug),
        "slug": post.slug,
        "title": post.title,
        "published_at": post.published_at,
        "digest_date": digest_date(post.slug, post.title),
        "tags": post.tags,
        "category": post.category,
        "source": source,
    }


def entry_id(source: str, entry: DigestEntry) -> str:
    """The entry's key; a repeated rank gets ``#k`` so a digest numbering two entries alike still
    gives each its own key, while every other entry's key stays what it always was."""
    rank = str(entry.rank) if not entry.rank_repeat else f"{entry.rank}#{entry.rank_repeat}"
    return _key(source, entry.post.slug, rank)


def post_block(post: Post) -> dict[str, Any]:
    """The record's ``post`` block for ``post``, also for a digest without entries."""
    return _post(post, record_source(post))


def build_record(entry: DigestEntry) -> dict[str, Any]:
    source = record_source(entry.post)
    return {
        "schema_version": SCHEMA_VERSION,
        "entry_id": entry_id(source, entry),
        "post": _post(entry.post, source),
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
            "linked_version": entry.arxiv_version,
        },
        "arxiv": _status_block(entry.arxiv, "arxiv"),
        "semantic_scholar": _status_block(entry.impact, "semantic_scholar"),
        "hf": _status_block(entry.hf, "hf"),
        "openalex": _status_block(entry.openalex, "openalex"),
        "code_urls": _code_urls(entry),
        "tweets": [_tweet(t, entry.arxiv_id) for t in entry.tweets],
    }
