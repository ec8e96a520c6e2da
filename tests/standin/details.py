"""Tweet details as the syndication endpoint knows them, derived per tweet from a seed.

The text comes from the digest's copy of the tweet (links become their t.co form, as the endpoint
sends them); counts, media, author flags and what each link points at are seeded on the tweet ID,
so the same seed serves the same details. :class:`TweetDetails` is mutable so a test can move a
count "on a later day" (or call :meth:`TweetDetails.advance`) and crawl again.
"""

from __future__ import annotations

import functools
import html
import math
import random
import re
import string
from dataclasses import dataclass, field
from typing import Any, Literal

from .links import Link, choose_link, t_co
from .models import Tweet, iso_ms, snowflake_ms

# tweet: a Tweet object; tombstone: a TweetTombstone; empty: ``200 {}``; missing: ``404``.
Outcome = Literal["tweet", "tombstone", "empty", "missing"]
MediaType = Literal["photo", "video", "animated_gif"]

PROTECTED = (
    "You’re unable to view this Post because this account owner limits who can view their "
    "Posts. Learn more"
)
AGE_RESTRICTED = (
    "Age-restricted adult content. This content might not be appropriate for people under 18 "
    "years old. To view this media, you’ll need to log in to X. Learn more"
)
VIOLATED = "This Post violated the X Rules. Learn more"
# Before snowflakes (Nov 2010) IDs were sequential: tweet 20 is from 2006-03-21.
_FIRST_SNOWFLAKE = 29_700_859_247
_TWEET_20_MS = 1142974214000

_ANCHOR = re.compile(r'<a\s[^>]*?href="([^"]*)"[^>]*>(.*?)</a>', re.S)
_BR = re.compile(r"<br\s*/?>", re.I)
_TAG = re.compile(r"<[^>]+>")
_HASHTAG = re.compile(r"(?<![\w&#])#(\w+)")
_MENTION = re.compile(r"(?<![\w@])@(\w{1,15})")


@dataclass(frozen=True)
class Media:
    """One ``mediaDetails`` item; ``variants`` are ``(bitrate or None, content_type, url)``."""

    type: MediaType
    url: str
    indices: tuple[int, int]
    id_str: str
    media_url_https: str
    expanded_url: str
    width: int
    height: int
    alt_text: str | None = None
    variants: tuple[tuple[int | None, str, str], ...] = ()
    duration_ms: int | None = None

    @property
    def media_key(self) -> str:
        return {"photo": "3_", "video": "7_", "animated_gif": "16_"}[self.type] + self.id_str

    @property
    def video_url(self) -> str | None:
        """The MP4 variant with the highest bitrate (the m3u8 playlist has none)."""
        mp4 = [(b, u) for b, t, u in self.variants if t == "video/mp4" and b is not None]
        return max(mp4)[1] if mp4 else None


@dataclass(frozen=True)
class User:
    id_str: str
    name: str
    screen_name: str
    profile_image_url_https: str
    verified: bool
    is_blue_verified: bool


@dataclass
class TweetDetails:
    """What the syndication endpoint serves for one tweet, and what a client should conclude."""

    tweet_id: str
    outcome: Outcome = "tweet"
    paper_id: str | None = None  # the arXiv ID of the digest entry that quoted the tweet
    tombstone_text: str | None = None
    text: str = ""
    lang: str = "en"
    favorite_count: int = 0
    conversation_count: int = 0
    likes_per_day: int = 1
    replies_per_day: int = 0
    display_end: int = 0
    links: list[Link] = field(default_factory=list)
    media: list[Media] = field(default_factory=list)
    hashtags: list[tuple[str, int, int]] = field(default_factory=list)
    mentions: list[tuple[str, int, int]] = field(default_factory=list)
    has_entities: bool = True  # False: the answer has no ``entities`` at all
    user: User | None = None
    quoted_tweet_id: str | None = None
    in_reply_to_status_id: str | None = None
    in_reply_to_screen_name: str | None = None
    possibly_sensitive: bool = False
    edited_from: str | None = None  # the first version's ID when the tweet was edited

    @property
    def status(self) -> Literal["ok", "tombstone", "not_found"]:
        if self.outcome == "tweet":
            return "ok"
        return "tombstone" if self.outcome == "tombstone" else "not_found"

    @property
    def created_at(self) -> str:
        n = int(self.tweet_id)
        if n < _FIRST_SNOWFLAKE:
            start = snowflake_ms(_FIRST_SNOWFLAKE)
            return iso_ms(_TWEET_20_MS + (start - _TWEET_20_MS) * n // _FIRST_SNOWFLAKE)
        return iso_ms(snowflake_ms(n))

    @property
    def visible_links(self) -> list[Link]:
        """The links a client can see: none when ``entities`` is missing."""
        return list(self.links) if self.has_entities and self.outcome == "tweet" else []

    @property
    def linked_arxiv_ids(self) -> list[str]:
        """Unversioned arXiv IDs the served links point to, first seen first."""
        return list(dict.fromkeys(lk.arxiv_id for lk in self.visible_links if lk.arxiv_id))

    @property
    def code_urls(self) -> list[str]:
        """Canonical repositories the served links point to (see :class:`Link`)."""
        return list(dict.fromkeys(lk.code_url for lk in self.visible_links if lk.code_url))

    @property
    def links_paper(self) -> bool | None:
        if self.outcome != "tweet":
            return None
        return self.paper_id is not None and self.paper_id in self.linked_arxiv_ids

    def advance(self, days: int = 1) -> None:
        """Let ``days`` pass: likes and replies grow at the tweet's own pace."""
        if self.outcome == "tweet":
            self.favorite_count += self.likes_per_day * days
            self.conversation_count += self.replies_per_day * days

    def expected(self) -> dict[str, Any]:
        """The facts a faithful client extracts (names follow the crawler's TweetDetails)."""
        if self.outcome != "tweet":
            return {"status": self.status, "reason": self.tombstone_text}
        assert self.user is not None
        return {
            "status": "ok",
            "created_at": self.created_at,
            "like_count": self.favorite_count,
            "reply_count": self.conversation_count,
            "lang": self.lang,
            "text": self.text,
            "author": {
                "id": self.user.id_str,
                "handle": self.user.screen_name,
                "name": self.user.name,
                "blue_verified": self.user.is_blue_verified,
            },
            "urls": [{"url": lk.url, "expanded_url": lk.expanded_url} for lk in self.visible_links],
            "media": [
                {"type": m.type, "url": m.media_url_https, "video_url": m.video_url}
                | ({"alt_text": m.alt_text} if m.alt_text else {})
                for m in self.media
            ],
            "quoted_tweet_id": self.quoted_tweet_id,
            "in_reply_to_id": self.in_reply_to_status_id,
            "possibly_sensitive": self.possibly_sensitive,
        }


def _plain(fragment: str) -> str:
    return html.unescape(_TAG.sub("", _BR.sub("\n", fragment)))


def _slots(text_html: str, rng: random.Random) -> tuple[str, list[tuple[str, int, int, bool]]]:
    """The tweet's text as the endpoint sends it, and its link slots ``(t.co, start, end, media)``."""
    out, slots, pos = "", [], 0
    for m in _ANCHOR.finditer(text_html):
        out += _plain(text_html[pos : m.start()])
        pos = m.end()
        href, inner = html.unescape(m.group(1)), _plain(m.group(2)).strip()
        is_media = inner.startswith(("pic.twitter.com/", "pic.x.com/"))
        if is_media or href.startswith(("https://t.co/", "http://t.co/")):
            url = href.replace("http://", "https://", 1) if "t.co/" in href else t_co(rng)
            slots.append((url, len(out), len(out) + len(url), is_media))
            out += url
        else:
            out += _plain(m.group(2))
    return out + _plain(text_html[pos:]), slots


def _media(rng: random.Random, tweet: Tweet, url: str, span: tuple[int, int]) -> list[Media]:
    kinds: list[MediaType] = ["photo", "video", "animated_gif"]
    kind = rng.choices(kinds, weights=[60, 25, 15])[0]
    base = max(1, int(tweet.tweet_id) - rng.randint(1, 2**22 * 1000))
    status = f"https://twitter.com/{tweet.handle}/status/{tweet.tweet_id}"
    items = []
    for n in range(rng.choice((1, 1, 1, 2, 4)) if kind == "photo" else 1):
        mid = str(base + n)
        key = "".join(rng.choices(string.ascii_letters + string.digits + "_-", k=15))
        w, h = rng.choice(((1200, 675), (1024, 1024), (680, 900), (1920, 1080)))
        if kind == "photo":
            alt = f"Figure {n + 1} of the paper" if rng.random() < 0.4 else None
            photo = f"https://pbs.twimg.com/media/{key}.jpg"
            items.append(Media(kind, url, span, mid, photo, f"{status}/photo/{n + 1}", w, h, alt))
            continue
        if kind == "video":
            base_url = f"https://video.twimg.com/ext_tw_video/{mid}/pu"
            variants: list[tuple[int | None, str, str]] = [
                (None, "application/x-mpegURL", f"{base_url}/pl/{key}.m3u8?tag=12"),
                (256000, "video/mp4", f"{base_url}/vid/480x270/{key}.mp4?tag=12"),
                (832000, "video/mp4", f"{base_url}/vid/640x360/{key}.mp4?tag=12"),
                (2176000, "video/mp4", f"{base_url}/vid/1280x720/{key}.mp4?tag=12"),
            ]
            rng.shuffle(variants)  # the real order varies: a client must compare bitrates
            thumb = f"https://pbs.twimg.com/ext_tw_video_thumb/{mid}/pu/img/{key}.jpg"
            length = rng.randint(3000, 140000)
            page = f"{status}/video/1"
            items.append(
                Media(kind, url, span, mid, thumb, page, w, h, None, tuple(variants), length)
            )
        else:
            gif = ((0, "video/mp4", f"https://video.twimg.com/tweet_video/{key}.mp4"),)
            thumb = f"https://pbs.twimg.com/tweet_video_thumb/{key}.jpg"
            items.append(Media(kind, url, span, mid, thumb, f"{status}/photo/1", w, h, None, gif))
    return items


@functools.lru_cache(maxsize=4096)  # authors tweet often; seeding a Random is not free
def _user(seed: int, key_handle: str, name: str, handle: str) -> User:
    rng = random.Random(f"{seed}:user:{key_handle}")
    image = "".join(rng.choices(string.ascii_letters + string.digits, k=8))
    return User(
        id_str=str(rng.randrange(10**7, 10**18)),
        name=name,
        screen_name=handle,
        profile_image_url_https=(
            f"https://pbs.twimg.com/profile_images/{rng.randrange(10**17, 10**18)}/{image}_normal.jpg"
        ),
        verified=rng.random() < 0.05,
        is_blue_verified=rng.random() < 0.3,
    )


def derive_details(
    tweet: Tweet,
    *,
    seed: int = 0,
    paper: tuple[str, int] | None = None,
    others: list[tuple[str, int]] | None = None,
    title: str | None = None,
    user_key: str | None = None,
) -> TweetDetails:
    """Seeded details for ``tweet``; ``paper``/``others`` are ``(arXiv ID, versions)``."""
    rng = random.Random(f"{seed}:details:{tweet.tweet_id}")
    text, slots = _slots(tweet.text_html, rng)
    links: list[Link] = []
    media: list[Media] = []
    for url, start, end, is_media in slots:
        if is_media:
            media = media or _media(rng, tweet, url, (start, end))
        else:
            links.append(choose_link(rng, url, (start, end), paper, others or [], title))
    taken = [(s, e) for _, s, e, _ in slots]

    def outside(m: re.Match[str]) -> bool:
        return not any(s <= m.start() < e for s, e in taken)

    tail = min((m.indices[0] for m in media), default=len(text))
    favorites = min(int(math.exp(rng.gauss(4.5, 1.5))), 250_000)
    tid = int(tweet.tweet_id)
    reply = rng.random() < 0.15
    return TweetDetails(
        tweet_id=tweet.tweet_id,
        paper_id=paper[0] if paper else None,
        text=text,
        lang=tweet.lang,
        favorite_count=favorites,
        conversation_count=favorites // rng.randint(8, 60),
        likes_per_day=max(1, favorites // 40),
        replies_per_day=rng.randint(0, 2),
        display_end=len(text[:tail].rstrip()),
        links=links,
        media=media,
        hashtags=[(m[1], m.start(), m.end()) for m in _HASHTAG.finditer(text) if outside(m)],
        mentions=[(m[1], m.start(), m.end()) for m in _MENTION.finditer(text) if outside(m)],
        has_entities=rng.random() >= 0.08,
        user=_user(seed, user_key or tweet.handle, tweet.name, tweet.handle),
        in_reply_to_status_id=str(max(1, tid - rng.randint(2**22, 2**32))) if reply else None,
        in_reply_to_screen_name=tweet.handle if reply else None,
        possibly_sensitive=rng.random() < 0.03,
        edited_from=str(max(1, tid - rng.randint(2**22, 2**34))) if rng.random() < 0.05 else None,
    )
