"""Items: plain data classes, filled in stages.

The spider yields a :class:`DigestEntry` holding what the post says; enrichment fills ``arxiv``,
``impact``, ``openalex`` and each tweet's ``embed`` and ``details``; the record layer turns the
result into the output record. Every enrichment value carries a ``status`` so an entry is never
silently bare.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ArxivStatus = Literal["ok", "not_found", "error"]
EmbedStatus = Literal["ok", "deleted", "protected", "error"]
# "disabled": the service is turned off by a setting (TWEET_DETAILS, SEMANTIC_SCHOLAR).
DetailsStatus = Literal["ok", "not_found", "tombstone", "error", "disabled"]
ImpactStatus = Literal["ok", "not_found", "error", "disabled"]
OpenAlexStatus = Literal["ok", "not_found", "error", "disabled"]
# "not_indexed": Hugging Face has no page for the paper (404).
HfStatus = Literal["ok", "not_indexed", "error", "disabled"]


@dataclass(slots=True)
class Post:
    source: str  # what messages call it: the path as given, or the URL
    slug: str
    title: str | None
    published_at: str | None  # ISO 8601 UTC, e.g. 2021-01-04T10:51:45Z
    tags: list[str] = field(default_factory=list)
    category: str | None = None
    encoding: str = "utf-8"
    # What records call it: relative to the `source` argument (see crawler/sources.py)
    record_source: str | None = None


@dataclass(slots=True)
class Embed:
    status: EmbedStatus
    error: str | None = None
    fetched_at: str | None = None  # when fetched upstream, ISO 8601 UTC with ms
    text: str | None = None
    html: str | None = None
    author_name: str | None = None
    author_url: str | None = None
    url: str | None = None


@dataclass(slots=True)
class TweetDetails:
    """What the syndication endpoint says about a tweet (see README, ``tweets[].details``)."""

    status: DetailsStatus
    error: str | None = None  # not_found, error
    reason: str | None = None  # tombstone: the tombstone's text
    fetched_at: str | None = None  # when fetched upstream, ISO 8601 UTC with ms
    created_at: str | None = None  # ISO 8601 UTC with milliseconds
    like_count: int | None = None  # the answer's favorite_count
    reply_count: int | None = None  # the answer's conversation_count
    lang: str | None = None
    text: str | None = None
    author: dict[str, object] | None = None  # {id, handle, name, blue_verified}
    urls: list[dict[str, str | None]] = field(default_factory=list)  # [{url, expanded_url}]
    media: list[dict[str, object]] = field(default_factory=list)  # [{type, url, video_url, …}]
    quoted_tweet_id: str | None = None
    in_reply_to_id: str | None = None
    possibly_sensitive: bool | None = None
    # [{observed_at, like_count, reply_count}], oldest first; kept across runs by the state
    history: list[dict[str, object]] = field(default_factory=list)


@dataclass(slots=True)
class Impact:
    """A paper's citation signals from Semantic Scholar."""

    status: ImpactStatus
    error: str | None = None
    fetched_at: str | None = None  # when fetched upstream, ISO 8601 UTC with ms
    semantic_scholar_id: str | None = None
    citation_count: int | None = None
    influential_citation_count: int | None = None
    reference_count: int | None = None
    venue: str | None = None
    publication_year: int | None = None
    publication_date: str | None = None  # YYYY-MM-DD
    tldr: str | None = None
    open_access_pdf: str | None = None
    # [{observed_at, citation_count, influential_citation_count}], oldest first; kept across
    # runs by the state
    history: list[dict[str, object]] = field(default_factory=list)


@dataclass(slots=True)
class OpenAlexWork:
    """A paper as OpenAlex knows it: citations over time and, when OpenAlex merged the
    preprint into its journal or conference version, that version."""

    status: OpenAlexStatus
    error: str | None = None
    fetched_at: str | None = None  # when fetched upstream, ISO 8601 UTC with ms
    work_id: str | None = None  # W2741809807 (the work's https://openalex.org/ ID)
    cited_by_count: int | None = None
    counts_by_year: list[dict[str, int]] = field(default_factory=list)  # [{year, cited_by_count}]
    # {doi, venue, year, type} of the journal/conference version, or None (the preprint itself)
    published_version: dict[str, object] | None = None
    is_oa: bool | None = None
    primary_topic: str | None = None  # its display name
    # [{observed_at, cited_by_count}], oldest first; kept across runs by the state
    history: list[dict[str, object]] = field(default_factory=list)


@dataclass(slots=True)
class HfPaper:
    """A paper's page on Hugging Face (``/api/papers/{id}``): attention and code links."""

    status: HfStatus
    error: str | None = None
    fetched_at: str | None = None  # ISO 8601 UTC with milliseconds, when it was fetched
    upvotes: int | None = None
    comments: int | None = None  # numComments
    github_repo: str | None = None
    github_stars: int | None = None
    project_page: str | None = None
    ai_summary: str | None = None
    ai_keywords: list[str] | None = None
    published_at: str | None = None  # ISO 8601 UTC with milliseconds
    submitted_on_daily_at: str | None = None  # when it was put on Daily Papers, if ever
    # [{observed_at, upvotes, github_stars}], oldest first; kept across runs by the state
    history: list[dict[str, object]] = field(default_factory=list)


@dataclass(slots=True)
class Tweet:
    id: str  # a 64-bit snowflake: kept as a string so no JSON reader loses precision
    url: str
    author_handle: str | None  # None: neither the link (/i/web/status/ID) nor the text names it
    author_name: str | None
    lang: str | None
    date_text: str | None
    text: str
    embed: Embed | None = None
    details: TweetDetails | None = None


@dataclass(slots=True)
class ArxivMeta:
    status: ArxivStatus
    error: str | None = None
    fetched_at: str | None = None  # when fetched upstream, ISO 8601 UTC with ms
    versioned_id: str | None = None  # e.g. 2106.09685v2
    version: int | None = None
    title: str | None = None
    authors: list[dict[str, object]] = field(default_factory=list)
    abstract: str | None = None  # the Atom summary
    published_at: str | None = None
    updated_at: str | None = None
    primary_category: str | None = None
    categories: list[str] = field(default_factory=list)
    comment: str | None = None
    journal_ref: str | None = None
    doi: str | None = None
    abs_url: str | None = None
    pdf_url: str | None = None


@dataclass(slots=True)
class DigestEntry:
    post: Post
    rank: int
    line: int  # where the entry starts in the source, for messages
    title: str
    authors: list[str]
    retweets: int | None
    favorites: int | None
    counts_at: str | None  # when retweets/favorites were taken, ISO 8601 UTC
    abs_url: str | None
    pdf_url: str | None
    categories: list[str]
    abstract: str
    arxiv_id: str | None  # without version; None when the entry has no usable link
    arxiv_version: int | None
    arxiv_problem: str | None  # why arxiv_id is None, when it is
    tweets: list[Tweet] = field(default_factory=list)
    arxiv: ArxivMeta | None = None
    impact: Impact | None = None
    openalex: OpenAlexWork | None = None
    hf: HfPaper | None = None
    # Earlier entries of the same digest numbered the same (`# 3.` twice): keeps entry_id unique.
    rank_repeat: int = 0

    @property
    def arxiv_query(self) -> str | None:
        """The ID as the API is asked for it (keeps the version the post linked)."""
        if self.arxiv_id is None:
            return None
        return f"{self.arxiv_id}v{self.arxiv_version}" if self.arxiv_version else self.arxiv_id
