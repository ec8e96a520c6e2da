"""Twitter oEmbed answers -> :class:`Embed`."""

from __future__ import annotations

import json

from crawler.items import Embed
from crawler.parsing.tweets import TweetParseError, blockquote_text


class EmbedError(ValueError):
    """A 200 answer that is not the JSON oEmbed returns: worth retrying."""


def parse_oembed(body: bytes) -> Embed:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EmbedError(f"invalid JSON from oEmbed ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("html"), str):
        raise EmbedError("oEmbed answer has no 'html'")
    try:
        text = blockquote_text(data["html"])
    except TweetParseError as exc:
        raise EmbedError(str(exc)) from exc
    return Embed(
        status="ok",
        text=text,
        html=data["html"],
        author_name=data.get("author_name"),
        author_url=data.get("author_url"),
        url=data.get("url"),
    )
