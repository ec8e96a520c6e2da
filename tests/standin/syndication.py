"""Twitter syndication's answers (``/tweet-result``): tweets, tombstones, ``{}`` and 404.

Without the right ``token`` the real service answers ``200 {}``, which is indistinguishable from
a missing tweet: the stand-in does the same and the server logs it, so tests can assert that a
crawler never sent a wrong token.
"""

from __future__ import annotations

import json
from typing import Any

from .catalogue import Catalogue
from .common import Answer, first, json_answer
from .details import TweetDetails
from .models import snowflake_ms, stable_fraction
from .token import syndication_token


def token_ok(params: dict[str, list[str]]) -> bool:
    tweet_id = first(params, "id", "")
    return tweet_id.isdigit() and first(params, "token", "") == syndication_token(tweet_id)


def answer(catalogue: Catalogue, params: dict[str, list[str]]) -> Answer:
    tweet_id = first(params, "id", "")
    if not tweet_id.isdigit() or len(tweet_id) > 20:
        return json_answer(400, {"error": "Bad Request"})
    if not token_ok(params):
        return json_answer(200, {})
    details = catalogue.details.get(tweet_id)
    if details is None or details.outcome == "missing":
        return json_answer(404, {"error": "Not Found"})
    if details.outcome == "empty":
        return json_answer(200, {})
    if details.outcome == "tombstone":
        return json_answer(200, tombstone(details.tombstone_text or ""))
    quoted = catalogue.details.get(details.quoted_tweet_id or "")
    return json_answer(200, tweet_object(details, quoted))


def tombstone(text: str) -> dict[str, Any]:
    return {
        "__typename": "TweetTombstone",
        "tombstone": {"text": {"text": text, "entities": [], "rtl": False}},
    }


def _user_id(handle: str) -> str:
    return str(int(stable_fraction("user", handle) * 10**15))


def _entities(d: TweetDetails) -> dict[str, Any]:
    entities: dict[str, Any] = {
        "hashtags": [{"indices": [s, e], "text": t} for t, s, e in d.hashtags],
        "urls": [
            {
                "display_url": lk.display_url,
                "expanded_url": lk.expanded_url,
                "indices": list(lk.indices),
                "url": lk.url,
            }
            for lk in d.links
        ],
        "user_mentions": [
            {"id_str": _user_id(n), "indices": [s, e], "name": n, "screen_name": n}
            for n, s, e in d.mentions
        ],
        "symbols": [],
    }
    if d.media:
        m = d.media[0]
        entities["media"] = [
            {
                "display_url": m.url.replace("https://t.co/", "pic.x.com/"),
                "expanded_url": m.expanded_url,
                "indices": list(m.indices),
                "url": m.url,
            }
        ]
    return entities


def _media(d: TweetDetails) -> dict[str, Any]:
    out: dict[str, Any] = {}
    details = []
    for m in d.media:
        item: dict[str, Any] = {
            "display_url": m.url.replace("https://t.co/", "pic.x.com/"),
            "expanded_url": m.expanded_url,
            "ext_media_availability": {"status": "Available"},
            "indices": list(m.indices),
            "media_key": m.media_key,
            "id_str": m.id_str,
            "media_url_https": m.media_url_https,
            "original_info": {"width": m.width, "height": m.height},
            "sizes": {"large": {"w": m.width, "h": m.height, "resize": "fit"}},
            "type": m.type,
            "url": m.url,
        }
        if m.alt_text:
            item["ext_alt_text"] = m.alt_text
        if m.variants:
            item["video_info"] = {
                "aspect_ratio": [16, 9],
                "variants": [
                    {"content_type": t, "url": u} | ({} if b is None else {"bitrate": b})
                    for b, t, u in m.variants
                ],
            } | ({"duration_millis": m.duration_ms} if m.duration_ms else {})
        details.append(item)
    if details:
        out["mediaDetails"] = details
        photos = [m for m in d.media if m.type == "photo"]
        if photos:
            grey = {"red": 204, "green": 214, "blue": 221}
            out["photos"] = [
                {
                    "backgroundColor": grey,
                    "expandedUrl": m.expanded_url,
                    "url": m.media_url_https,
                    "width": m.width,
                    "height": m.height,
                }
                for m in photos
            ]
        else:
            m = d.media[0]
            out["video"] = {
                "aspectRatio": [16, 9],
                "contentType": "gif" if m.type == "animated_gif" else "media_entity",
                "durationMs": m.duration_ms or 0,
                "mediaAvailability": {"status": "available"},
                "poster": m.media_url_https,
                "variants": [{"type": t, "src": u} for _, t, u in m.variants],
                "videoId": {"type": "tweet", "id": d.tweet_id},
            }
    return out


def _user(d: TweetDetails) -> dict[str, Any]:
    u = d.user
    assert u is not None
    return {
        "id_str": u.id_str,
        "name": u.name,
        "profile_image_url_https": u.profile_image_url_https,
        "screen_name": u.screen_name,
        "verified": u.verified,
        "is_blue_verified": u.is_blue_verified,
        "profile_image_shape": "Circle",
    }


def _edit_control(d: TweetDetails) -> dict[str, Any]:
    ids = [d.edited_from, d.tweet_id] if d.edited_from else [d.tweet_id]
    until = snowflake_ms(ids[0]) + 3_600_000
    return {
        "edit_tweet_ids": ids,
        "editable_until_msecs": str(until),
        "is_edit_eligible": True,
        "edits_remaining": str(5 - len(ids) + 1),
    }


def tweet_object(d: TweetDetails, quoted: TweetDetails | None = None) -> dict[str, Any]:
    """The ``Tweet`` object for ``d``; ``quoted`` is embedded when it is a visible tweet."""
    obj: dict[str, Any] = {
        "__typename": "Tweet",
        "lang": d.lang,
        "favorite_count": d.favorite_count,
        "possibly_sensitive": d.possibly_sensitive,
        "created_at": d.created_at,
        "display_text_range": [0, d.display_end],
    }
    if d.has_entities:
        obj["entities"] = _entities(d)
    obj |= {
        "id_str": d.tweet_id,
        "text": d.text,
        "user": _user(d),
        "edit_control": _edit_control(d),
    }
    obj |= _media(d)
    obj["conversation_count"] = d.conversation_count
    obj["news_action_type"] = "conversation"
    if d.in_reply_to_status_id:
        obj["in_reply_to_screen_name"] = d.in_reply_to_screen_name
        obj["in_reply_to_status_id_str"] = d.in_reply_to_status_id
        obj["in_reply_to_user_id_str"] = d.user.id_str if d.user else None
    if quoted is not None and quoted.outcome == "tweet":
        inner = tweet_object(quoted)
        for key in ("__typename", "conversation_count", "news_action_type", "quoted_tweet"):
            inner.pop(key, None)
        inner["reply_count"] = quoted.conversation_count
        inner["retweet_count"] = quoted.favorite_count // 7
        obj["quoted_tweet"] = inner
    obj["isEdited"] = d.edited_from is not None
    obj["isStaleEdit"] = False
    return obj


def reshape(kind: str, normal: Answer) -> Answer:
    """``favorite_count_string``: the count as a string; ``user_list``: ``user`` in a list;
    ``huge_counts``: counts no int64 holds (``favorite_count`` 2^63, ``conversation_count``
    10^20); ``big_counts``: ``favorite_count`` 2^62, which an int64 holds but not twice."""
    if normal.status != 200 or not normal.body:
        return normal
    obj = json.loads(normal.body)
    if obj.get("__typename") == "Tweet":
        if kind == "shape:favorite_count_string":
            obj["favorite_count"] = str(obj["favorite_count"])
        elif kind == "shape:user_list":
            obj["user"] = [obj["user"]]
        elif kind == "shape:huge_counts":
            obj["favorite_count"], obj["conversation_count"] = 2**63, 10**20
        elif kind == "shape:big_counts":
            obj["favorite_count"] = 2**62
    return json_answer(200, obj)
