"""One answer to "can this tweet still be seen?", reconciled from the embed and the details.

oEmbed and syndication speak two vocabularies (``deleted``/``protected`` vs ``not_found``/
``tombstone`` with free text); an analyst wants one. The rules, first that applies, are written
in the schema's description of ``tweets[].availability`` and in README ("Output"):

1. a details tombstone whose text says protected / removed (rules, suspended) / withheld;
2. the embed says protected (oEmbed 403);
3. the embed or the details are ok, or the tombstone is an age restriction -> ``available``;
4. the embed says deleted (404) or the details say not found -> ``deleted``;
5. anything else (errors, ``disabled``, a tombstone text nobody foresaw) -> ``unknown``.
"""

from __future__ import annotations

import re

from crawler.items import Embed, TweetDetails

# Tombstone texts as X serves them (docs/upstreams.md; tests/standin/details.py).
_TOMBSTONES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"limits who can view|protected", re.I), "protected"),
    (re.compile(r"violated the (x|twitter) rules|suspended|removed", re.I), "removed"),
    (re.compile(r"withheld", re.I), "withheld"),
    (re.compile(r"age-restricted|adult content", re.I), "available"),
)


def _tombstone(details: TweetDetails | None) -> tuple[str | None, str | None]:
    """(availability the tombstone's text names or None, the text)."""
    if details is None or details.status != "tombstone":
        return None, None
    text = details.reason or ""
    for pattern, availability in _TOMBSTONES:
        if pattern.search(text):
            return availability, text
    return None, text


def availability(embed: Embed | None, details: TweetDetails | None) -> tuple[str, str | None]:
    """(``availability``, ``availability_reason``) for one tweet."""
    said, text = _tombstone(details)
    embed_status = embed.status if embed is not None else "error"
    details_status = details.status if details is not None else "error"
    embed_error = embed.error if embed is not None and embed_status != "ok" else None
    if said in ("protected", "removed", "withheld"):
        return said, text
    if embed_status == "protected":
        return "protected", embed_error
    if embed_status == "ok" or details_status == "ok" or said == "available":
        return "available", text
    if embed_status == "deleted" or details_status == "not_found":
        details_error = details.error if details is not None else None
        return "deleted", embed_error if embed_status == "deleted" else details_error
    fallback = details.error if details is not None and details.error else None
    return "unknown", text or embed_error or fallback
