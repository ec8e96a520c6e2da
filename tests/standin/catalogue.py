"""What the stand-in serves: papers, tweets, tweet details and citation data, all from digests.

The catalogue is derived from the sample digests so that an offline crawl finds (almost) every
paper and tweet it asks for, while a deterministic share is missing, deleted, protected, hidden
behind a tombstone or unknown to Semantic Scholar so the unhappy paths are exercised too. Every
choice is keyed on the seed and the ID, so the same seed gives the same catalogue. Nothing here
imports the crawler: the stand-in must not share code (or bugs) with what it tests.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from .citations import Citation, derive_citation
from .details import AGE_RESTRICTED, PROTECTED, VIOLATED, TweetDetails, derive_details
from .digests import read_digest
from .hf_papers import HfPage, derive_page
from .models import (
    NEW_STYLE_ID,
    OLD_STYLE_ID,
    VERSIONED_ID,
    Author,
    Paper,
    Tweet,
    TweetStatus,
    stable_fraction,
)
from .openalex import Work, Works, derive_work

__all__ = [
    "NEW_STYLE_ID",
    "OLD_STYLE_ID",
    "VERSIONED_ID",
    "Author",
    "Catalogue",
    "Paper",
    "Tweet",
    "TweetStatus",
    "stable_fraction",
]


@dataclass
class Catalogue:
    """Papers by unversioned ID and tweets by ID; ``absent`` lists IDs deliberately not served.

    ``details`` (syndication, by tweet ID) and ``citations`` (Semantic Scholar, by unversioned
    arXiv ID; a paper without one is unknown there) are mutable: change a count, or call
    :meth:`advance_day`, between two crawls.
    """

    papers: dict[str, Paper] = field(default_factory=dict)
    tweets: dict[str, Tweet] = field(default_factory=dict)
    absent: set[str] = field(default_factory=set)
    # tweet_id -> handle used in the digest, for tweets whose author has since been renamed
    renamed: dict[str, str] = field(default_factory=dict)
    # Well-formed IDs the API nevertheless refuses with its 400 error feed (arXiv's own ID rules
    # are stricter than the pattern clients check), to exercise batch splitting.
    refused: set[str] = field(default_factory=set)
    details: dict[str, TweetDetails] = field(default_factory=dict)
    citations: dict[str, Citation] = field(default_factory=dict)
    # OpenAlex, by unversioned arXiv ID; a paper without one is unknown there (404)
    openalex: dict[str, Work] = field(default_factory=Works)
    # Hugging Face paper pages by unversioned arXiv ID; a paper without one answers 404.
    hf_pages: dict[str, HfPage] = field(default_factory=dict)
    seed: int = 0
    day: int = 0

    def add_paper(self, paper: Paper) -> Paper:
        """Serve ``paper`` on arXiv, and on Semantic Scholar unless it already has citation data."""
        self.papers[paper.arxiv_id] = paper
        self.absent.discard(paper.arxiv_id)
        self.citations.setdefault(paper.arxiv_id, derive_citation(paper, self.seed))
        self.openalex.setdefault(paper.arxiv_id, derive_work(paper, self.seed, len(self.openalex)))
        self.hf_pages.setdefault(paper.arxiv_id, derive_page(paper, self.seed))
        return paper

    def add_tweet(self, tweet: Tweet, *, paper_id: str | None = None) -> Tweet:
        """Serve ``tweet``; its details are derived (links may point at ``paper_id``)."""
        self.tweets[tweet.tweet_id] = tweet
        if tweet.tweet_id not in self.details:
            others = [(i, p.latest_version) for i, p in sorted(self.papers.items())]
            self.details[tweet.tweet_id] = self._derive(tweet, paper_id, others)
        return tweet

    def copy(self) -> Catalogue:
        """An independent copy, so a test can change what is served without touching others."""
        return copy.deepcopy(self)

    def advance_day(self, days: int = 1) -> None:
        """Let ``days`` pass: tweet likes and replies, paper citations, upvotes and stars grow."""
        self.day += days
        for details in self.details.values():
            details.advance(days)
        for citation in self.citations.values():
            citation.advance(days)
        for work in self.openalex.values():
            work.advance(days)
        for page in self.hf_pages.values():
            page.advance(days)

    def linked_arxiv_ids(self, tweet_id: str) -> list[str]:
        """Unversioned arXiv IDs the links served for ``tweet_id`` point to, first seen first."""
        details = self.details.get(tweet_id)
        return details.linked_arxiv_ids if details else []

    def code_urls(self, tweet_id: str) -> list[str]:
        """Canonical code repositories the links served for ``tweet_id`` point to."""
        details = self.details.get(tweet_id)
        return details.code_urls if details else []

    def lookup(self, requested: str) -> Paper | None:
        """Resolve ``ID`` or ``IDvN`` the way arXiv does; None when it would be left out."""
        paper, _ = self.resolve(requested)
        return paper

    def resolve(self, requested: str) -> tuple[Paper | None, int]:
        m = VERSIONED_ID.fullmatch(requested)
        if not m:
            return None, 0
        paper = self.papers.get(m["id"])
        if paper is None:
            return None, 0
        version = int(m["v"]) if m["v"] else paper.latest_version
        if not 1 <= version <= paper.latest_version:
            return None, 0
        return paper, version

    def _derive(
        self, tweet: Tweet, paper_id: str | None, others: list[tuple[str, int]]
    ) -> TweetDetails:
        paper = self.papers.get(paper_id) if paper_id else None
        details = derive_details(
            tweet,
            seed=self.seed,
            paper=(paper_id, paper.latest_version if paper else 1) if paper_id else None,
            others=others,
            title=paper.title if paper else None,
            user_key=self.renamed.get(tweet.tweet_id, tweet.handle),
        )
        if tweet.status == "protected":
            details.outcome, details.tombstone_text = "tombstone", PROTECTED
        elif tweet.status == "deleted":  # the endpoint says so either way
            gone = stable_fraction(self.seed, "gone", tweet.tweet_id) < 0.5
            details.outcome = "empty" if gone else "missing"
        return details

    @classmethod
    def from_digests(
        cls,
        paths: Iterable[str | Path],
        *,
        seed: int = 0,
        absent_share: float = 0.05,
        deleted_share: float = 0.05,
        protected_share: float = 0.03,
        tombstone_share: float = 0.02,
        quote_share: float = 0.1,
        unknown_to_s2_share: float = 0.1,
        unknown_to_openalex_share: float = 0.05,
        no_hf_page_share: float = 0.25,
    ) -> Catalogue:
        """Build a catalogue from digest files; every random choice is keyed on ``seed`` + ID.

        ``tombstone_share`` of the tweets oEmbed still serves are age-restricted or withheld
        for the syndication endpoint; ``unknown_to_s2_share`` of the served papers have no
        Semantic Scholar record (``null``), and ``no_hf_page_share`` no Hugging Face page (404).
        """
        cat = cls(seed=seed)
        entry_of: dict[str, str | None] = {}
        for path in paths:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
            papers, tweets = read_digest(text, seed)
            for paper in papers:
                cat.papers.setdefault(paper.arxiv_id, paper)
            for tweet, arxiv_id in tweets:
                cat.tweets.setdefault(tweet.tweet_id, tweet)
                entry_of.setdefault(tweet.tweet_id, arxiv_id)
        # Links may name any paper the digests mention, served or not.
        others = [(i, p.latest_version) for i, p in sorted(cat.papers.items())]

        ids = sorted(cat.papers, key=lambda i: stable_fraction(seed, "absent", i))
        for arxiv_id in ids[: round(absent_share * len(ids))]:
            cat.absent.add(arxiv_id)
            del cat.papers[arxiv_id]

        tids = sorted(cat.tweets, key=lambda t: stable_fraction(seed, "tweet", t))
        n_del = round(deleted_share * len(tids))
        n_prot = round(protected_share * len(tids))
        for i, tid in enumerate(tids):
            tweet = cat.tweets[tid]
            if i < n_del:
                cat.tweets[tid] = replace(tweet, status="deleted")
            elif i < n_del + n_prot:
                cat.tweets[tid] = replace(tweet, status="protected")
            elif i < n_del + n_prot + 2:  # a couple of authors changed their handle since
                cat.renamed[tid] = tweet.handle
                cat.tweets[tid] = replace(tweet, handle=f"{tweet.handle[:11]}_new")

        for tid, tweet in cat.tweets.items():
            cat.details[tid] = cat._derive(tweet, entry_of.get(tid), others)
        cat._hide_and_quote(tombstone_share, quote_share)

        pids = sorted(cat.papers, key=lambda i: stable_fraction(seed, "s2", i))
        unknown = set(pids[: round(unknown_to_s2_share * len(pids))])
        for arxiv_id in sorted(cat.papers):
            if arxiv_id not in unknown:
                cat.citations[arxiv_id] = derive_citation(cat.papers[arxiv_id], seed)
        oids = sorted(cat.papers, key=lambda i: stable_fraction(seed, "openalex", i))
        unknown = set(oids[: round(unknown_to_openalex_share * len(oids))])
        for n, arxiv_id in enumerate(sorted(cat.papers)):
            if arxiv_id not in unknown:
                cat.openalex[arxiv_id] = derive_work(cat.papers[arxiv_id], seed, n)
        pids = sorted(cat.papers, key=lambda i: stable_fraction(seed, "hf", i))
        unpaged = set(pids[: round(no_hf_page_share * len(pids))])
        for arxiv_id in sorted(set(cat.papers) - unpaged):
            cat.hf_pages[arxiv_id] = derive_page(cat.papers[arxiv_id], seed)
        return cat

    def _hide_and_quote(self, tombstone_share: float, quote_share: float) -> None:
        seed = self.seed
        visible = sorted(t for t, d in self.details.items() if d.outcome == "tweet")
        hidden = sorted(visible, key=lambda t: stable_fraction(seed, "tombstone", t))
        for n, tid in enumerate(hidden[: round(tombstone_share * len(visible))]):
            self.details[tid].outcome = "tombstone"
            self.details[tid].tombstone_text = AGE_RESTRICTED if n % 2 == 0 else VIOLATED
        visible = [t for t in visible if self.details[t].outcome == "tweet"]
        for n, tid in enumerate(visible):
            if len(visible) > 1 and stable_fraction(seed, "quote", tid) < quote_share:
                other = random.Random(f"{seed}:quote:{tid}").randrange(len(visible) - 1)
                self.details[tid].quoted_tweet_id = visible[other + (other >= n)]
