"""Twitter's syndication endpoint: tweet details (counts, author, links, media) for a tweet ID.

The endpoint is unofficial and "can change without notice", so every field is optional but a
field of the wrong type makes the whole answer unusable: a payload of a new shape must end as
an explicit error (which the state never stores over a good value), not as a wrong value.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlencode

from scrapy import Request
from scrapy.http import Response
from scrapy.settings import BaseSettings

from crawler.downloader.contract import AnswerUnusable, Politeness, service_meta
from crawler.items import DigestEntry, TweetDetails
from crawler.parsing.text import refuse_constant, replace_surrogates, shorten, utc_ms
from crawler.services.base import (
    DAY,
    Service,
    age_row_ends,
    age_table,
    age_table_problems,
    checked_int,
    ttl_for_age,
)

# --- answers ---

_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_TWEET_ID = re.compile(r"[0-9]{1,20}")  # a snowflake as the record schema accepts it
_TWO_TO_53 = float(2**53)  # from here on a double has no fraction and spaced integers

# Statuses worth asking again (throttling, overload, gateways); any other non-200 is final.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class DetailsUnusable(ValueError):
    """An answer that cannot be used but may come out right if asked again.

    Once retries are exhausted it becomes ``TweetDetails(status="error", error=str(exc))``.
    """


# -- token ----------------------------------------------------------------------------------


def token(tweet_id: str) -> str:
    """The ``token`` query parameter, as react-tweet derives it from the ID.

    ``((Number(id) / 1e15) * Math.PI).toString(36)`` without zeros and the point: the endpoint
    has answered ``200 {}`` (as for a missing tweet) to a wrong token, so this must match
    JavaScript digit for digit.
    """
    if not _TWEET_ID.fullmatch(tweet_id):
        raise ValueError(f"not a tweet ID: {tweet_id!r}")
    value = float(tweet_id) / 1e15 * math.pi  # float() rounds to nearest, as Number() does
    return js_radix_string(value, 36).replace("0", "").replace(".", "")


def js_radix_string(value: float, radix: int = 36) -> str:
    """``Number.prototype.toString(radix)`` as V8 prints it (shortest round-trip fraction).

    Fraction digits stop once the digits printed so far already identify the double (the
    remainder is within half the gap to its neighbours); the last digit is rounded, carrying
    into earlier digits or the integer part. All arithmetic is IEEE double, as in V8. Radix 10
    is refused: JavaScript prints decimals by another algorithm (with exponents).
    """
    if not 2 <= radix <= 36 or radix == 10:
        raise ValueError(f"radix must be 2..36 but not 10, not {radix}")
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    sign, value = ("-", -value) if value < 0 else ("", value)
    integer = math.floor(value)
    fraction = value - integer
    # Half the distance to the next double: digits below it cannot tell neighbours apart.
    delta = max(0.5 * (math.nextafter(value, math.inf) - value), math.ulp(0.0))
    digits: list[int] = []
    if fraction >= delta:
        digits, carry = _fraction_digits(fraction, delta, radix)
        integer += carry
    text = _integer_digits(float(integer), radix)
    if digits:
        text += "." + "".join(_DIGITS[d] for d in digits)
    return sign + text


def _fraction_digits(fraction: float, delta: float, radix: int) -> tuple[list[int], int]:
    """Digits of ``fraction`` (0 < fraction < 1) up to precision ``delta``; and the carry (0/1)."""
    digits: list[int] = []
    while True:
        fraction *= radix
        delta *= radix
        digit = int(fraction)
        digits.append(digit)
        fraction -= digit
        # Past half a digit (ties to an even digit) and within reach of the next one: round up.
        rounds_up = fraction > 0.5 or (fraction == 0.5 and digit % 2 == 1)
        if rounds_up and fraction + delta > 1:
            return _round_up(digits, radix)
        if fraction < delta:
            return digits, 0


def _round_up(digits: list[int], radix: int) -> tuple[list[int], int]:
    """Add one unit in the last place; digits that overflow are dropped (they would be zeros)."""
    while digits:
        last = digits.pop()
        if last + 1 < radix:
            digits.append(last + 1)
            return digits, 0
    return digits, 1


def _integer_digits(integer: float, radix: int) -> str:
    """Digits of a non-negative integral double; past 2^53 the low digits are printed as zeros."""
    zeros = 0
    while integer / radix >= _TWO_TO_53:
        integer /= radix
        zeros += 1
    out: list[str] = []
    while True:
        remainder = math.fmod(integer, radix)
        out.append(_DIGITS[int(remainder)])
        integer = (integer - remainder) / radix
        if integer <= 0:
            break
    return "".join(reversed(out)) + "0" * zeros


# -- statuses -------------------------------------------------------------------------------


def details_error(status: int, message: str | None = None) -> TweetDetails | None:
    """What a non-200 answer means for good, or None when asking again may help (or for 200).

    Only 404 says the tweet is gone (``not_found``, stored over an earlier value); every other
    final status is an ``error``, which keeps the last good value, because an undocumented code
    (a 403 for a refused IP range, say) says nothing about the tweet.
    """
    if status == 200 or status in RETRY_STATUSES:
        return None
    said = f"syndication answered HTTP {status}" + (f": {message}" if message else "")
    if status == 404:
        return TweetDetails(status="not_found", error=said)
    return TweetDetails(status="error", error=said)


def parse_details(body: bytes, *, status: int = 200, tweet_id: str | None = None) -> TweetDetails:
    """One syndication answer -> :class:`TweetDetails`; raises :class:`DetailsUnusable`.

    ``status`` is the HTTP status: non-200 answers map through :func:`details_error` (a
    retryable one raises). With ``tweet_id``, an answer about another tweet is unusable.
    """
    if status != 200:
        message = _error_message(body)
        final = details_error(status, message)
        if final is None:
            raise DetailsUnusable(f"syndication answered HTTP {status}" + _colon(message))
        return final
    data = _load(body)
    if not isinstance(data, dict):
        raise DetailsUnusable(f"answer is a JSON {_kind(data)}, not an object")
    if not data:
        return TweetDetails(status="not_found", error="syndication answered {}: no such tweet")
    typename = data.get("__typename")
    if typename == "Tweet":
        return _tweet(_Fields(data, ""), tweet_id)
    if typename == "TweetTombstone":
        return _tombstone(_Fields(data, ""))
    described = (
        f"__typename {replace_surrogates(typename)!r}"
        if isinstance(typename, str)
        else "no __typename"
    )
    raise DetailsUnusable(f"unexpected answer ({described})" + _colon(_error_message(body)))


def _load(body: bytes) -> Any:
    try:
        return json.loads(body, parse_constant=refuse_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, NaN
        raise DetailsUnusable(f"answer is not JSON ({shorten(str(exc))})") from exc


def _error_message(body: bytes) -> str | None:
    """The ``error`` text an error answer may carry, for the record's ``error``."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    value = data.get("error") if isinstance(data, dict) else None
    return shorten(value) if isinstance(value, str) and value.strip() else None


def _colon(message: str | None) -> str:
    return f": {message}" if message else ""


def _kind(value: object) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )


# -- fields ---------------------------------------------------------------------------------


class _Fields:
    """Typed, optional access to one JSON object: null or missing is None, a wrong type raises."""

    def __init__(self, data: dict[str, Any], where: str) -> None:
        self.data = data
        self.where = where

    def _get(self, key: str, kinds: type | tuple[type, ...], what: str) -> Any:
        value = self.data.get(key)
        if value is None:
            return None
        # JSON true is a Python int too: only a boolean field takes it.
        if not isinstance(value, kinds) or (isinstance(value, bool) and kinds is not bool):
            raise DetailsUnusable(f"{self.where}{key} is not {what}")
        return value

    def string(self, key: str) -> str | None:
        value = self._get(key, str, "a string")
        return None if value is None else replace_surrogates(value)

    def flag(self, key: str) -> bool | None:
        value: bool | None = self._get(key, bool, "a boolean")
        return value

    def count(self, key: str) -> int | None:
        value: int | None = self._get(key, int, "a non-negative integer")
        try:
            return checked_int(value, f"{self.where}{key}", "count")
        except ValueError as exc:
            raise DetailsUnusable(str(exc)) from None

    def snowflake(self, key: str) -> str | None:
        value: str | None = self._get(key, str, "a string of digits")
        if value is not None and not _TWEET_ID.fullmatch(value):
            raise DetailsUnusable(f"{self.where}{key} is not a string of digits")
        return value

    def obj(self, key: str) -> _Fields | None:
        value = self._get(key, dict, "an object")
        return None if value is None else _Fields(value, f"{self.where}{key}.")

    def objects(self, key: str) -> list[_Fields]:
        """A list of objects; null or missing is an empty list."""
        value = self._get(key, list, "a list") or []
        for item in value:
            if not isinstance(item, dict):
                raise DetailsUnusable(f"{self.where}{key} holds a {_kind(item)}, not objects")
        return [_Fields(item, f"{self.where}{key}[].") for item in value]


def _tombstone(data: _Fields) -> TweetDetails:
    tombstone = data.obj("tombstone")
    text = tombstone.obj("text") if tombstone else None
    return TweetDetails(status="tombstone", reason=text.string("text") if text else None)


def _tweet(data: _Fields, tweet_id: str | None) -> TweetDetails:
    answered = data.snowflake("id_str")
    if tweet_id is not None and answered is not None and answered != tweet_id:
        raise DetailsUnusable(f"answer is about tweet {answered}, not {tweet_id}")
    created = data.string("created_at")
    quoted = data.obj("quoted_tweet")
    entities = data.obj("entities")
    return TweetDetails(
        status="ok",
        created_at=None if created is None else _utc_ms(created),
        like_count=data.count("favorite_count"),
        reply_count=data.count("conversation_count"),
        lang=data.string("lang"),
        text=data.string("text"),
        author=_author(data.obj("user")),
        urls=_urls(entities.objects("urls") if entities else []),
        media=[m for m in map(_media, data.objects("mediaDetails")) if m is not None],
        quoted_tweet_id=quoted.snowflake("id_str") if quoted else None,
        in_reply_to_id=data.snowflake("in_reply_to_status_id_str"),
        possibly_sensitive=data.flag("possibly_sensitive"),
    )


def _utc_ms(text: str) -> str:
    """ISO 8601 with an offset -> ``YYYY-MM-DDTHH:MM:SS.mmmZ``; a time without zone is refused
    rather than guessed."""
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            raise ValueError("no time zone")
        moment = moment.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise DetailsUnusable("created_at is not an ISO 8601 time with zone") from exc
    return utc_ms(moment)


def _author(user: _Fields | None) -> dict[str, object] | None:
    if user is None:
        return None
    return {
        "id": user.snowflake("id_str"),
        "handle": user.string("screen_name"),
        "name": user.string("name"),
        "blue_verified": user.flag("is_blue_verified"),
    }


def _urls(items: list[_Fields]) -> list[dict[str, str | None]]:
    """``[{url, expanded_url}]``; an entry without its t.co ``url`` has nothing to pair and is
    left out."""
    urls: list[dict[str, str | None]] = []
    for item in items:
        url, expanded = item.string("url"), item.string("expanded_url")
        if url is not None:
            urls.append({"url": url, "expanded_url": expanded})
    return urls


def _media(item: _Fields) -> dict[str, object] | None:
    """One ``mediaDetails`` entry; without a ``type`` it cannot be described and is left out.

    Every field is read first, so a wrong type refuses the answer even then.
    """
    kind = item.string("type")
    url = item.string("media_url_https")
    video_info = item.obj("video_info")
    video_url = _best_mp4(video_info.objects("variants")) if video_info else None
    alt_text = item.string("ext_alt_text")
    if kind is None:
        return None
    return {"type": kind, "url": url, "video_url": video_url, "alt_text": alt_text}


def _best_mp4(variants: list[_Fields]) -> str | None:
    """The mp4 with the highest bitrate (first of equals; one without a bitrate ranks last)."""
    best: tuple[int, str] | None = None
    for variant in variants:
        content_type, url = variant.string("content_type"), variant.string("url")
        bitrate = variant.count("bitrate")
        rank = -1 if bitrate is None else bitrate
        if content_type == "video/mp4" and url is not None and (best is None or rank > best[0]):
            best = (rank, url)
    return None if best is None else best[1]


# --- the service -----------------------------------------------------------------------------
class Syndication(Service[TweetDetails]):
    """Tweet details: one GET per distinct tweet, token computed as react-tweet does.

    A refusal of the wrong token (``200 {}``) looks like a missing tweet; a stored good value is
    therefore only downgraded to ``not_found`` once the service has shown it answers correctly
    (crawler/enrich/runner.py), so a token regression cannot wipe the stored details.
    """

    name = "syndication"
    label = "Tweet details"
    kind = "details"
    record_block = "details"
    value_type = TweetDetails
    url_setting = "SYNDICATION_URL"
    enabled_setting = "TWEET_DETAILS"
    refresh_names = ("tweets", "details")
    ttl_days: ClassVar[dict[str, float]] = {"ok": 90, "not_found": 30, "tombstone": 30}
    downgrades = frozenset({"not_found"})
    # Status changes and text edits are changes; counts are not (they are the history).
    volatile = ("like_count", "reply_count", "history")
    integers: ClassVar[dict[str, str]] = {"like_count": "count", "reply_count": "count"}
    numbers: ClassVar[dict[str, tuple[type, float]]] = {
        "SYNDICATION_CONCURRENCY": (int, 1), "SYNDICATION_CONCURRENCY_MAX": (int, 0),
        "SYNDICATION_DELAY": (float, 0),
    }  # fmt: skip

    def __init__(self, settings: BaseSettings) -> None:
        super().__init__(settings)
        self.politeness = Politeness(
            concurrency=settings.getint("SYNDICATION_CONCURRENCY"),
            concurrency_max=settings.getint("SYNDICATION_CONCURRENCY_MAX"),
            delay=settings.getfloat("SYNDICATION_DELAY"),
            max_answer_bytes=1024 * 1024,  # answers are a few KB, with media a few tens
        )
        self.ttl_by_age = (
            age_table(settings, "DETAILS_TTL_BY_AGE") if self.enabled(settings) else []
        )

    @classmethod
    def settings_problems(cls, settings: BaseSettings) -> list[str]:
        return super().settings_problems(settings) + age_table_problems(
            settings, "DETAILS_TTL_BY_AGE"
        )

    def keys(self, entry: DigestEntry) -> list[str]:
        return [tweet.id for tweet in entry.tweets]

    def build_request(self, keys: list[str], hints: Mapping[str, str | None]) -> Request:
        (tweet_id,) = keys
        query = urlencode({"id": tweet_id, "lang": "en", "token": token(tweet_id)})
        meta = service_meta(self.name, self.politeness, self.check, keys=keys)
        return Request(f"{self.url}?{query}", meta=meta, dont_filter=True)

    def parse(self, request: Request, response: Response) -> TweetDetails:
        try:
            return parse_details(response.body, tweet_id=request.meta["keys"][0])
        except DetailsUnusable as exc:
            raise AnswerUnusable(str(exc)) from exc

    def about_other(self, keys: list[str], parsed: TweetDetails) -> str | None:
        """The answer's ``id_str`` is compared with the asked ID while it is parsed
        (:func:`parse_details` refuses another tweet): the value does not keep it."""
        return None

    def values(self, keys: list[str], response: Response) -> dict[str, TweetDetails]:
        (key,) = keys
        try:
            if response.status == 200:
                return {key: self.parsed(response)}
            return {key: parse_details(response.body, status=response.status, tweet_id=key)}
        except (AnswerUnusable, DetailsUnusable) as exc:
            return {key: self.error(f"tweet details unusable: {exc}")}

    def attach(self, entry: DigestEntry, values: Mapping[str, TweetDetails]) -> None:
        for tweet in entry.tweets:
            tweet.details = values[tweet.id]

    def observation(self, value: TweetDetails, observed_at: str) -> dict[str, Any] | None:
        if value.status != "ok":
            return None
        return {
            "observed_at": observed_at,
            "like_count": value.like_count,
            "reply_count": value.reply_count,
        }

    def with_history(self, value: TweetDetails, history: list[dict[str, Any]]) -> TweetDetails:
        """A point stored before counts were range-checked (2^63 likes) is left out: no table
        can hold it, and it would fail every dataset built from then on."""
        return dataclasses.replace(value, history=[p for p in history if _in_range(p)])

    def ttl(self, value: TweetDetails, now: float, key: str = "") -> float:
        """Young tweets go stale fast, old ones slowly (``DETAILS_TTL_BY_AGE``)."""
        created = _timestamp(value.created_at) if value.status == "ok" else None
        if created is not None:
            by_age = ttl_for_age(self.ttl_by_age, (now - created) / DAY)
            if by_age is not None:
                return by_age
        return super().ttl(value, now, key)

    def ttl_steady_until(self, value: TweetDetails, now: float, key: str = "") -> float:
        created = _timestamp(value.created_at) if value.status == "ok" else None
        if created is None:
            return math.inf
        return age_row_ends(self.ttl_by_age, (now - created) / DAY, created)


def _in_range(point: dict[str, Any]) -> bool:
    try:
        for name in ("like_count", "reply_count"):
            checked_int(point.get(name), name, "count")
    except ValueError:
        return False
    return True


def _timestamp(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
