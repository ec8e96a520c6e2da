"""Tweet blockquotes (the embed markup Twitter hands out) -> :class:`Tweet`.

The same markup comes back from oEmbed, so :func:`blockquote_text` serves both the post's copy
and the embed's copy of a tweet.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from lxml import etree, html

from crawler.items import Tweet
from crawler.parsing.text import repair_mojibake

# Every path a tweet link takes: /<handle>/status/ID, /<handle>/statuses/ID (the old API form),
# /i/web/status/ID and /i/status/ID (no handle), the old /#!/<handle>/status/ID; on twitter.com,
# x.com and their www. and mobile. hosts. The ID runs to the end of the digits: a longer one is
# refused whole, never cut to a prefix that names another tweet.
_STATUS_RE = re.compile(
    r"^https?://(?:www\.|mobile\.)?(?P<host>twitter\.com|x\.com)/(?:#!/)?"
    r"(?:i/(?:web/)?status|(?P<handle>[^/?#]+)/status(?:es)?)/(?P<id>\d+)"
)
MAX_TWEET_ID = 2**63 - 1  # a snowflake is a 63-bit integer
_HANDLE_RE = re.compile(r"\(@(?P<handle>\w+)\)\s*$")
_DASHES = ("\u2014", "&mdash;")


class TweetParseError(ValueError):
    """A blockquote that names no tweet we could ask oEmbed about."""


def parse_status_url(url: str) -> tuple[str, str | None, str] | None:
    """``(host, handle, tweet_id)`` of a tweet link on twitter.com or x.com, else None.

    The handle is None for ``/i/web/status/ID``; the ID is as written (see :func:`is_tweet_id`).
    """
    m = _STATUS_RE.match(url.strip())
    return (m["host"], m["handle"], m["id"]) if m else None


def is_tweet_id(digits: str) -> bool:
    """At most 19 digits and below 2^63: anything else names no tweet (and no SQLite or
    Parquet int64 holds it)."""
    return digits.isdigit() and len(digits) <= 19 and int(digits) <= MAX_TWEET_ID


def _text_of(element: etree._Element) -> str:
    """Visible text with ``<br>`` as a newline: how the tweet reads."""
    parts: list[str] = []

    def walk(el: etree._Element) -> None:
        if el.tag == "br":
            parts.append("\n")
        elif el.text:
            parts.append(el.text)
        for child in el:
            walk(child)
            if child.tail:
                parts.append(child.tail)

    walk(element)
    return "".join(parts).strip()


def _attribution(text: str) -> tuple[str, str] | None:
    """``(name, handle)`` from "— Name (@handle)".

    Found in two plain scans: one regex with a lazy name between a dash and the handle was
    quadratic on text with many dashes and no handle.
    """
    m = _HANDLE_RE.search(text)
    if not m:
        return None
    head = text[: m.start()]
    dashes = [(at, len(dash)) for dash in _DASHES if (at := head.find(dash)) >= 0]
    if not dashes:
        return None
    at, length = min(dashes)
    return head[at + length :].strip(), m["handle"]


def _fragment(markup: str) -> etree._Element:
    try:
        root = html.fragment_fromstring(markup, create_parent="div")
    except (etree.ParserError, ValueError) as exc:
        raise TweetParseError(f"unreadable blockquote: {exc}") from exc
    return root


def blockquote_text(markup: str) -> str:
    """Plain text of the tweet paragraph in embed markup (post or oEmbed ``html``)."""
    root = _fragment(markup)
    paragraphs = root.findall(".//p")
    return "\n".join(_text_of(p) for p in paragraphs) if paragraphs else _text_of(root)


def parse_blockquote(markup: str) -> Tweet:
    """Parse one ``<blockquote class="twitter-tweet">`` from a digest."""
    root = _fragment(markup)
    status = None
    for a in reversed(root.findall(".//a")):
        parsed = parse_status_url(a.get("href", ""))
        if parsed:
            status = (parsed, a)
            break
    if status is None:
        raise TweetParseError("tweet blockquote without a status link")
    (host, handle, tweet_id), link = status
    if not is_tweet_id(tweet_id):
        shown = tweet_id if len(tweet_id) <= 40 else f"{tweet_id[:40]}..."
        raise TweetParseError(
            f"status link ID {shown} is not a tweet ID (a 63-bit number); tweet not read"
        )
    p = root.find(".//p")
    text = repair_mojibake(_text_of(p)) if p is not None else ""
    lang = p.get("lang") if p is not None else None

    # "&mdash; Name (@handle)" is the text between the paragraph and the status link.
    quote = root.find(".//blockquote")
    container = quote if quote is not None else root
    attribution = (p.tail or "") if p is not None and p.getparent() is container else ""
    if not attribution:
        attribution = container.text or ""
    found = _attribution(attribution)
    name = repair_mojibake(found[0]).strip() if found else None
    # A link without a handle (/i/web/status/ID) keeps that form: it opens the tweet, while a
    # handle taken from the attribution text could be stale.
    path = f"{handle}/status" if handle else "i/web/status"
    return Tweet(
        id=tweet_id,
        url=f"https://{host}/{path}/{tweet_id}",
        author_handle=found[1] if found else handle,
        author_name=name or None,
        lang=lang,
        date_text=(link.text or "").strip() or None,
        text=text,
    )


TWITTER_EPOCH_MS = 1288834974657  # snowflake IDs count milliseconds from here (2010-11-04)
FIRST_SNOWFLAKE_ID = 29700859247  # IDs below this predate snowflakes and carry no time


def snowflake_created_at(tweet_id: str) -> str | None:
    """When a tweet was posted, from its ID alone: ISO 8601 UTC with milliseconds.

    ``(id >> 22) + 1288834974657`` is milliseconds since the Unix epoch. Older (sequential) IDs
    carry no time, so they give None rather than a made-up date.
    """
    if not tweet_id.isdigit() or int(tweet_id) < FIRST_SNOWFLAKE_ID:
        return None
    ms = (int(tweet_id) >> 22) + TWITTER_EPOCH_MS
    seconds, millis = divmod(ms, 1000)
    stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{millis:03d}Z"
