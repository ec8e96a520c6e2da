"""What the stand-in serves: papers and tweets, and what a faithful client should make of them.

The catalogue is derived from the sample digests so that an offline crawl finds (almost) every
paper and tweet it asks for, while a deterministic share is missing, deleted or protected so the
unhappy paths are exercised too. Nothing here imports the crawler: the stand-in must not share
code (or bugs) with what it tests.
"""

from __future__ import annotations

import hashlib
import html
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

NEW_STYLE_ID = re.compile(r"\d{4}\.\d{4,5}")
OLD_STYLE_ID = re.compile(r"[a-z-]+(?:\.[A-Z]{2})?/\d{7}")
VERSIONED_ID = re.compile(r"(?P<id>\d{4}\.\d{4,5}|[a-z-]+(?:\.[A-Z]{2})?/\d{7})(?:v(?P<v>\d+))?")

TweetStatus = Literal["ok", "deleted", "protected"]

# Characters XML 1.0 cannot carry; mojibake in the digests could otherwise break the feed.
_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

_INSTITUTIONS = (
    "Stanford University",
    "Google Research",
    "Université de Montréal",
    "AT&T Labs <Research>",
    "Tsinghua University",
    "Max Planck Institute for Intelligent Systems",
    "University of Tokyo",
    "ETH Zürich",
)
_COMMENTS = (
    "12 pages, 5 figures",
    "Accepted at ICML 2021 & code at https://github.com/example/repo",
    "v2: fixed typo in Eq. (3) where $a<b$",
    "Camera-ready version",
)
_JOURNALS = (
    "Phys. Rev. D 103, 084042 (2021)",
    "NeurIPS 2020",
    "J. Mach. Learn. Res. 22 (2021) 1-35",
)


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _clean(text: str) -> str:
    return _XML_ILLEGAL.sub("", text)


def stable_fraction(*parts: object) -> float:
    """A value in [0, 1) from sha256, so choices are stable across runs (unlike ``hash()``)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class Author:
    name: str
    affiliations: tuple[str, ...] = ()


@dataclass(frozen=True)
class Paper:
    arxiv_id: str
    latest_version: int
    title: str
    summary: str
    authors: tuple[Author, ...]
    published: datetime
    primary_category: str
    categories: tuple[str, ...]
    comment: str | None = None
    journal_ref: str | None = None
    doi: str | None = None

    def updated(self, version: int) -> datetime:
        """Each later version is a week after the previous one: simple and predictable."""
        return self.published + timedelta(days=7 * (version - 1))

    def versioned_id(self, version: int | None = None) -> str:
        return f"{self.arxiv_id}v{version or self.latest_version}"

    def expected(self, version: int | None = None) -> dict[str, Any]:
        """The record a faithful client should extract for ``version`` (default: latest).

        The feed links are ``http://arxiv.org/...`` as arXiv sends them; clients are expected to
        normalise them to https, hence the https ``abs_url``/``pdf_url`` here. The title is
        whitespace-normalised; the summary is given without the leading/trailing whitespace
        arXiv puts inside ``<summary>``.
        """
        v = self.latest_version if version is None else version
        if not 1 <= v <= self.latest_version:
            raise ValueError(f"{self.arxiv_id} has no version {v}")
        vid = self.versioned_id(v)
        return {
            "id": vid,
            "version": v,
            "title": " ".join(self.title.split()),
            "authors": [
                {"name": a.name, "affiliations": list(a.affiliations)} for a in self.authors
            ],
            "summary": self.summary,
            "published": _iso(self.published),
            "updated": _iso(self.updated(v)),
            "primary_category": self.primary_category,
            "categories": list(self.categories),
            "comment": self.comment,
            "journal_ref": self.journal_ref,
            "doi": self.doi,
            "abs_url": f"https://arxiv.org/abs/{vid}",
            "pdf_url": f"https://arxiv.org/pdf/{vid}",
        }


@dataclass(frozen=True)
class Tweet:
    tweet_id: str
    handle: str
    name: str
    lang: str
    text_html: str
    date_text: str
    status: TweetStatus = "ok"

    @property
    def url(self) -> str:
        return f"https://twitter.com/{self.handle}/status/{self.tweet_id}"

    def oembed(self, omit_script: bool = False) -> dict[str, Any]:
        """The JSON publish.twitter.com answers, with the author's *current* handle."""
        markup = (
            f'<blockquote class="twitter-tweet"><p lang="{html.escape(self.lang)}" dir="ltr">'
            f"{self.text_html}</p>&mdash; {html.escape(self.name, quote=False)} (@{self.handle}) "
            f'<a href="{self.url}?ref_src=twsrc%5Etfw">{self.date_text}</a></blockquote>\n'
        )
        if not omit_script:
            markup += (
                '<script async src="https://platform.twitter.com/widgets.js" '
                'charset="utf-8"></script>\n'
            )
        return {
            "url": self.url,
            "author_name": self.name,
            "author_url": f"https://twitter.com/{self.handle}",
            "html": markup,
            "width": 550,
            "height": None,
            "type": "rich",
            "cache_age": "3153600000",
            "provider_name": "Twitter",
            "provider_url": "https://twitter.com",
            "version": "1.0",
        }


_HEADING = re.compile(r"^# \d+\.[ \t]+(.*?)[ \t]*$", re.M)
_ABS_LINK = re.compile(r"https?://(?:export\.)?arxiv\.org/abs/([^\s)\]\"'>]+)")
_CATEGORY = re.compile(r"\[([A-Za-z.-]+)\]\(https?://arxiv\.org/list/[^)]*\)")
_BLOCKQUOTE = re.compile(r'<blockquote class="twitter-tweet"[^>]*>(.*?)</blockquote>', re.S)
_PARAGRAPH = re.compile(r"<p([^>]*)>(.*?)</p>", re.S)
_LANG = re.compile(r'lang="([^"]*)"')
_SIGNATURE = re.compile(
    r"&mdash;\s*(?P<name>.*?)\s*\(@[A-Za-z0-9_]+\)\s*"
    r'<a href="https?://(?:www\.|mobile\.)?(?:twitter|x)\.com/(?P<handle>[^/"]+)/status/'
    r'(?P<id>\d+)[^"]*"[^>]*>(?P<date>.*?)</a>',
    re.S,
)


@dataclass
class Catalogue:
    """Papers by unversioned ID and tweets by ID; ``absent`` lists IDs deliberately not served."""

    papers: dict[str, Paper] = field(default_factory=dict)
    tweets: dict[str, Tweet] = field(default_factory=dict)
    absent: set[str] = field(default_factory=set)
    # tweet_id -> handle used in the digest, for tweets whose author has since been renamed
    renamed: dict[str, str] = field(default_factory=dict)
    # Well-formed IDs the API nevertheless refuses with its 400 error feed (arXiv's own ID rules
    # are stricter than the pattern clients check), to exercise batch splitting.
    refused: set[str] = field(default_factory=set)

    def add_paper(self, paper: Paper) -> Paper:
        self.papers[paper.arxiv_id] = paper
        self.absent.discard(paper.arxiv_id)
        return paper

    def add_tweet(self, tweet: Tweet) -> Tweet:
        self.tweets[tweet.tweet_id] = tweet
        return tweet

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

    @classmethod
    def from_digests(
        cls,
        paths: Iterable[str | Path],
        *,
        seed: int = 0,
        absent_share: float = 0.05,
        deleted_share: float = 0.05,
        protected_share: float = 0.03,
    ) -> Catalogue:
        """Build a catalogue from digest files; every random choice is keyed on ``seed`` + ID."""
        cat = cls()
        for path in paths:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
            for title, body in _entries(text):
                paper = _paper_from_entry(title, body, seed)
                if paper is not None and paper.arxiv_id not in cat.papers:
                    cat.papers[paper.arxiv_id] = paper
            for tweet in _tweets_from_text(text):
                cat.tweets.setdefault(tweet.tweet_id, tweet)

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
        return cat


def _entries(text: str) -> Iterable[tuple[str, str]]:
    heads = list(_HEADING.finditer(text))
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        yield m.group(1), text[m.end() : end]


def _published_from_id(arxiv_id: str, rng: random.Random) -> datetime:
    digits = arxiv_id.split("/")[-1]
    yy, mm = int(digits[:2]), int(digits[2:4])
    year = 1900 + yy if yy >= 91 else 2000 + yy
    mm = min(max(mm, 1), 12)
    return datetime(
        year,
        mm,
        rng.randint(1, 28),
        rng.randint(0, 23),
        rng.randint(0, 59),
        rng.randint(0, 59),
        tzinfo=UTC,
    )


def _wrap_title(title: str, rng: random.Random) -> str:
    """arXiv wraps long titles with a newline and two spaces; the digests show this as '  '."""
    if "  " in title:
        return title.replace("  ", "\n  ", 1)
    words = title.split(" ")
    if len(words) > 4 and rng.random() < 0.15:
        cut = len(words) // 2
        return " ".join(words[:cut]) + "\n  " + " ".join(words[cut:])
    return title


def _paper_from_entry(heading: str, body: str, seed: int) -> Paper | None:
    m = _ABS_LINK.search(body)
    if not m:
        return None
    arxiv_id = re.sub(r"v\d+$", "", m.group(1).rstrip("/."))
    if not (NEW_STYLE_ID.fullmatch(arxiv_id) or OLD_STYLE_ID.fullmatch(arxiv_id)):
        return None
    rng = random.Random(f"{seed}:{arxiv_id}")

    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", body) if p.strip()]
    author_line = next(
        (p for p in paragraphs if not p.startswith(("-", "[", "<")) and "\n" not in p), ""
    )
    names = [n.strip() for n in author_line.split(",") if n.strip()] or ["A. N. Author"]
    authors = []
    for name in names:
        k = rng.choices((0, 1, 2), weights=(6, 3, 1))[0]
        authors.append(Author(_clean(name), tuple(rng.sample(_INSTITUTIONS, k))))

    categories = tuple(dict.fromkeys(_CATEGORY.findall(body))) or ("cs.LG",)
    summary = ""
    after_links = False
    for p in paragraphs:
        if "arxiv.org/list/" in p or "arxiv.org/abs/" in p:
            after_links = True
            continue
        if after_links:
            if p.startswith(("<blockquote", "<script")):
                break
            summary += " " + p
    summary = _clean(" ".join(summary.split())) or f"Synthetic abstract for {arxiv_id}."
    title = _clean(heading.strip())
    title = _wrap_title(title or f"Synthetic paper {arxiv_id}", rng)

    return Paper(
        arxiv_id=arxiv_id,
        latest_version=rng.randint(1, 3),
        title=title,
        summary=summary,
        authors=tuple(authors),
        published=_published_from_id(arxiv_id, rng),
        primary_category=categories[0],
        categories=categories,
        comment=rng.choice(_COMMENTS) if rng.random() < 0.4 else None,
        journal_ref=rng.choice(_JOURNALS) if rng.random() < 0.15 else None,
        doi=f"10.{rng.randint(1000, 9999)}/example.{arxiv_id}" if rng.random() < 0.15 else None,
    )


def _tweets_from_text(text: str) -> Iterable[Tweet]:
    for bq in _BLOCKQUOTE.finditer(text):
        inner = bq.group(1)
        p = _PARAGRAPH.search(inner)
        sig = _SIGNATURE.search(inner, p.end() if p else 0)
        if not p or not sig:
            continue
        lang = _LANG.search(p.group(1))
        yield Tweet(
            tweet_id=sig["id"],
            handle=sig["handle"],
            name=_clean(html.unescape(sig["name"])),
            lang=lang.group(1) if lang else "en",
            text_html=_clean(p.group(2)),
            date_text=_clean(sig["date"].strip()),
        )
