"""The things the stand-in serves, as plain values: papers, authors and tweets (oEmbed view).

Kept apart from how they are derived (``digests``) so answer builders depend on data only.
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

NEW_STYLE_ID = re.compile(r"\d{4}\.\d{4,5}")
OLD_STYLE_ID = re.compile(r"[a-z-]+(?:\.[A-Z]{2})?/\d{7}")
VERSIONED_ID = re.compile(r"(?P<id>\d{4}\.\d{4,5}|[a-z-]+(?:\.[A-Z]{2})?/\d{7})(?:v(?P<v>\d+))?")

TweetStatus = Literal["ok", "deleted", "protected"]

_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def iso_z(dt: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, as arXiv writes its times."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def clean_xml(text: str) -> str:
    """Drop what XML 1.0 cannot carry, so digest mojibake never breaks a feed."""
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
            "versioned_id": vid,
            "version": v,
            "title": " ".join(self.title.split()),
            "authors": [
                {"name": a.name, "affiliations": list(a.affiliations)} for a in self.authors
            ],
            "abstract": self.summary,
            "published_at": iso_z(self.published),
            "updated_at": iso_z(self.updated(v)),
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


TWITTER_EPOCH_MS = 1288834974657


def snowflake_ms(tweet_id: str | int) -> int:
    """Milliseconds since the Unix epoch encoded in a snowflake tweet ID."""
    return (int(tweet_id) >> 22) + TWITTER_EPOCH_MS


def iso_ms(ms: int) -> str:
    """``2021-06-01T01:20:37.203Z``: the syndication endpoint's time format."""
    dt = datetime.fromtimestamp(ms // 1000, UTC)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"
