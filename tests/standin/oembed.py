"""Twitter oEmbed's answers: the embed JSON, 404/403 errors, and wrong-shaped embeds."""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

from .catalogue import Catalogue
from .common import Answer, first, json_answer

_TWEET_HOSTS = {
    f"{sub}{dom}" for sub in ("", "www.", "mobile.") for dom in ("twitter.com", "x.com")
}
_TWEET_PATH = re.compile(r"/(?:[^/]+|i/web)/status(?:es)?/(\d+)/?")
NOT_FOUND = {"errors": [{"code": 34, "message": "Sorry, that page does not exist"}]}
FORBIDDEN = {
    "errors": [{"code": 179, "message": "Sorry, you are not authorized to see this status."}]
}


def tweet_id_from_url(url: str) -> str | None:
    """The status ID from a twitter.com / x.com tweet URL, or None if it is not one."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or (parts.hostname or "") not in _TWEET_HOSTS:
        return None
    m = _TWEET_PATH.fullmatch(parts.path)
    return m.group(1) if m else None


def answer(catalogue: Catalogue, params: dict[str, list[str]]) -> Answer:
    url = first(params, "url", "")
    if not url:
        return _json(400, {"errors": [{"code": 44, "message": "url is required"}]})
    tweet_id = tweet_id_from_url(url)
    tweet = catalogue.tweets.get(tweet_id) if tweet_id else None
    if tweet is None or tweet.status == "deleted":
        return _json(404, NOT_FOUND)
    if tweet.status == "protected":
        return _json(403, FORBIDDEN)
    omit = first(params, "omit_script", "").lower() in ("1", "true", "t", "yes")
    return _json(200, tweet.oembed(omit_script=omit))


def _json(status: int, obj: object) -> Answer:
    return json_answer(status, obj, escape_slashes=True)


def one_tweet_for_all(catalogue: Catalogue, params: dict[str, list[str]]) -> Answer:
    """What a cache that ignores the query string serves: the embed of the catalogue's first
    tweet that has one, whatever was asked."""
    first_id = min(t for t, tweet in catalogue.tweets.items() if tweet.status == "ok")
    return answer(catalogue, {**params, "url": [catalogue.tweets[first_id].url]})


def reshape(kind: str, normal: Answer) -> Answer:
    """``author_name_number``: ``author_name`` is a number; ``html_missing``: no ``html``."""
    if normal.status != 200 or not normal.body:
        return normal
    obj = json.loads(normal.body)
    if kind == "shape:author_name_number":
        obj["author_name"] = 1234567
    elif kind == "shape:html_missing":
        obj.pop("html", None)
    return _json(200, obj)
