"""Syndication: the token react-tweet computes, and answers -> TweetDetails (or refused)."""

from __future__ import annotations

import json
import random
import shutil
import struct
import subprocess
from dataclasses import asdict
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crawler.items import DigestEntry, Post, Tweet, TweetDetails
from crawler.record import build_record, schema_errors
from crawler.services.syndication import (
    RETRY_STATUSES,
    DetailsUnusable,
    _round_up,
    details_error,
    js_radix_string,
    parse_details,
    token,
)

# -- token ----------------------------------------------------------------------------------

VECTORS = [
    ("1405891519249207298", "3eoql1zpe9q"),
    ("1345396247016976390", "39eoqb2qprb"),
    ("1399536327260086281", "3e4rtv5brqf"),
    ("1183130393224417281", "2v8ww7zsmc"),
    ("20", "6dq1a2xwd93"),
]


@pytest.mark.parametrize(("tweet_id", "expected"), VECTORS)
def test_token_matches_node_vectors(tweet_id: str, expected: str) -> None:
    assert token(tweet_id) == expected


@pytest.mark.parametrize("bad", ["", "12a", "-20", "1.5", " 20", "20\n", "١٢", "1" * 21])
def test_token_refuses_what_is_not_a_tweet_id(bad: str) -> None:
    with pytest.raises(ValueError, match="not a tweet ID"):
        token(bad)


# Number.prototype.toString(radix) results printed by node 20.
@pytest.mark.parametrize(
    ("value", "radix", "expected"),
    [
        (0.1, 36, "0.3lllllllllm"),
        (1 / 3, 2, "0.010101010101010101010101010101010101010101010101010101"),
        (255.5, 16, "ff.8"),
        (-0.5, 2, "-0.1"),
        (123.456, 36, "3f.gez4w97ry"),
        (0.9999999999999999, 36, "0.zzzzzzzzzza"),
        (35.99999999999999, 36, "z.zzzzzzzzz"),
        (2.0**60, 36, "8rc4kbdvss00"),
        # A last digit exactly half way: rounded to an even digit (5), up from an odd one (3).
        (2.0**51 + 0.5, 5, "4330121442004300411443.2"),
        (2.0**51 + 0.5, 3, "101221021221221220201002022002122.2"),
        (2.0**51 + 1.5, 7, "1245210111363416532.4"),
        (1e300, 36, "fhgyjdfcg7s" + "0" * 182),
        (5e-324, 36, "0." + "0" * 207 + "3"),
        (0.0, 36, "0"),
        (-0.0, 36, "0"),
        (float("nan"), 36, "NaN"),
        (float("inf"), 36, "Infinity"),
        (float("-inf"), 36, "-Infinity"),
    ],
)
def test_radix_string_matches_javascript(value: float, radix: int, expected: str) -> None:
    assert js_radix_string(value, radix) == expected


def test_round_up_carries_over_top_digits() -> None:
    assert _round_up([1, 35, 35], 36) == ([2], 0)
    assert _round_up([4, 7], 36) == ([4, 8], 0)
    assert _round_up([35, 35], 36) == ([], 1)  # into the integer part


@pytest.mark.parametrize("radix", [1, 10, 37])
def test_radix_string_refuses_other_radixes(radix: int) -> None:
    with pytest.raises(ValueError, match="radix"):
        js_radix_string(1.5, radix)


def _random_ids(count: int) -> list[str]:
    """IDs spread over every magnitude 1..2^63, plus the edges of each."""
    rng = random.Random(20240601)
    ids = {"1", str(2**53), str(2**53 + 1), str(2**63 - 1), "9" * 19}
    while len(ids) < count:
        bits = rng.randint(1, 63)
        ids.add(str(rng.randint(2 ** (bits - 1), 2**bits - 1)))
    return sorted(ids)


def _random_doubles(count: int) -> list[tuple[float, int]]:
    """Doubles from random bit patterns (every exponent, subnormals, negatives) and radixes."""
    rng = random.Random(7)
    radixes = [r for r in range(2, 37) if r != 10]
    values: list[tuple[float, int]] = []
    while len(values) < count:
        (value,) = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))
        if value == value:  # not NaN
            values.append((value, rng.choice(radixes)))
        values.append((rng.uniform(0, 40000), 36))  # where tokens live
        # Few significant bits at coarse precision: last digits exactly half way (ties).
        short = rng.getrandbits(rng.randint(1, 53)) / 2.0 ** rng.randint(0, 8)
        values.append((short * 2.0 ** rng.randint(0, 52), rng.choice(radixes)))
    return values


_NODE_SCRIPT = r"""
const lines = require('fs').readFileSync(0, 'utf8').trim().split('\n');
console.log(JSON.stringify(lines.map((line) => {
  const [kind, a, b] = line.split(' ');
  if (kind === 't') return ((Number(a) / 1e15) * Math.PI).toString(36).replace(/(0+|\.)/g, '');
  return Number(a).toString(Number(b));
})));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_token_and_radix_string_agree_with_node_on_random_input() -> None:
    ids = _random_ids(3000)
    doubles = _random_doubles(3000)
    lines = [f"t {i}" for i in ids] + [f"r {v!r} {r}" for v, r in doubles]
    result = subprocess.run(
        ["node", "-e", _NODE_SCRIPT], input="\n".join(lines), capture_output=True,
        text=True, check=True, timeout=60,
    )  # fmt: skip
    expected = json.loads(result.stdout)
    ours = [token(i) for i in ids] + [js_radix_string(v, r) for v, r in doubles]
    assert len(expected) == len(ours)
    differ = [(line, e, o) for line, e, o in zip(lines, expected, ours, strict=True) if e != o]
    assert differ == []


# -- answers --------------------------------------------------------------------------------


def _body(data: object) -> bytes:
    return json.dumps(data).encode()


FULL: dict[str, Any] = {
    "__typename": "Tweet",
    "id_str": "1399536327260086281",
    "lang": "en",
    "created_at": "2021-06-01T01:20:37.203Z",
    "display_text_range": [0, 140],
    "favorite_count": 1234,
    "conversation_count": 56,
    "text": "LoRA: Low-Rank Adaptation https://t.co/abc https://t.co/vid",
    "entities": {
        "hashtags": [],
        "urls": [
            {
                "url": "https://t.co/abc",
                "expanded_url": "https://arxiv.org/abs/2106.09685",
                "display_url": "arxiv.org/abs/2106.09685",
                "indices": [26, 49],
            }
        ],
        "user_mentions": [],
        "symbols": [],
    },
    "user": {
        "id_str": "783214",
        "name": "Some One",
        "screen_name": "someone",
        "profile_image_url_https": "https://pbs.twimg.com/x.jpg",
        "verified": False,
        "is_blue_verified": True,
    },
    "mediaDetails": [
        {
            "type": "photo",
            "media_url_https": "https://pbs.twimg.com/media/a.jpg",
            "expanded_url": "https://twitter.com/someone/status/1/photo/1",
            "ext_alt_text": "a chart",
        },
        {
            "type": "video",
            "media_url_https": "https://pbs.twimg.com/v.jpg",
            "video_info": {
                "variants": [
                    {"content_type": "application/x-mpegURL", "url": "https://video/pl.m3u8"},
                    {
                        "bitrate": 256000,
                        "content_type": "video/mp4",
                        "url": "https://video/256.mp4",
                    },
                    {
                        "bitrate": 2176000,
                        "content_type": "video/mp4",
                        "url": "https://video/2176.mp4",
                    },
                    {
                        "bitrate": 832000,
                        "content_type": "video/mp4",
                        "url": "https://video/832.mp4",
                    },
                ]
            },
        },
    ],
    "photos": [],
    "quoted_tweet": {"id_str": "1345396247016976390", "favorite_count": 3},
    "in_reply_to_status_id_str": "1183130393224417281",
    "in_reply_to_screen_name": "other",
    "possibly_sensitive": False,
    "isEdited": False,
}


def test_full_tweet() -> None:
    assert parse_details(_body(FULL)) == TweetDetails(
        status="ok",
        created_at="2021-06-01T01:20:37.203Z",
        like_count=1234,
        reply_count=56,
        lang="en",
        text="LoRA: Low-Rank Adaptation https://t.co/abc https://t.co/vid",
        author={"id": "783214", "handle": "someone", "name": "Some One", "blue_verified": True},
        urls=[{"url": "https://t.co/abc", "expanded_url": "https://arxiv.org/abs/2106.09685"}],
        media=[
            {
                "type": "photo",
                "url": "https://pbs.twimg.com/media/a.jpg",
                "video_url": None,
                "alt_text": "a chart",
            },
            {
                "type": "video",
                "url": "https://pbs.twimg.com/v.jpg",
                "video_url": "https://video/2176.mp4",
                "alt_text": None,
            },
        ],
        quoted_tweet_id="1345396247016976390",
        in_reply_to_id="1183130393224417281",
        possibly_sensitive=False,
        history=[],
    )


def test_every_field_is_optional() -> None:
    assert parse_details(_body({"__typename": "Tweet"})) == TweetDetails(status="ok")
    nulls = {key: None for key in FULL if key != "__typename"}
    assert parse_details(_body({"__typename": "Tweet", **nulls})) == TweetDetails(status="ok")
    user = parse_details(_body({"__typename": "Tweet", "user": {}, "entities": {}}))
    assert user.author == {"id": None, "handle": None, "name": None, "blue_verified": None}
    assert user.urls == []


def test_tweet_id_must_match_when_given() -> None:
    assert parse_details(_body(FULL), tweet_id="1399536327260086281").status == "ok"
    assert parse_details(_body({"__typename": "Tweet"}), tweet_id="5").status == "ok"
    with pytest.raises(DetailsUnusable, match="about tweet 1399536327260086281, not 20"):
        parse_details(_body(FULL), tweet_id="20")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2021-06-01T01:20:37.203Z", "2021-06-01T01:20:37.203Z"),
        ("2021-06-01T01:20:37Z", "2021-06-01T01:20:37.000Z"),
        ("2021-06-01T01:20:37.2Z", "2021-06-01T01:20:37.200Z"),
        ("2021-06-01T01:20:37.999999Z", "2021-06-01T01:20:37.999Z"),  # truncated: no carry
        ("2021-06-01T03:20:37.203+02:00", "2021-06-01T01:20:37.203Z"),
        ("2021-05-31T20:20:37.203-05:00", "2021-06-01T01:20:37.203Z"),
        ("2021-06-01 01:20:37.203+00:00", "2021-06-01T01:20:37.203Z"),
        ("0999-01-01T00:00:00Z", "0999-01-01T00:00:00.000Z"),
    ],
)
def test_created_at_is_normalised_to_utc_milliseconds(given: str, expected: str) -> None:
    assert parse_details(_body({"__typename": "Tweet", "created_at": given})).created_at == expected


@pytest.mark.parametrize(
    "given",
    [
        "yesterday", "", "2021-06-01T01:20:37", "2021-06-01", "2021-13-01T00:00:00Z",
        "Tue Jun 01 01:20:37 +0000 2021", "0001-01-01T00:00:00+05:00", 1622510437, ["2021"],
    ],
)  # fmt: skip
def test_created_at_that_is_not_a_zoned_time_is_unusable(given: object) -> None:
    with pytest.raises(DetailsUnusable, match="created_at"):
        parse_details(_body({"__typename": "Tweet", "created_at": given}))


def _with(path: str, value: object) -> dict[str, Any]:
    """FULL with one field (dotted path; a number indexes a list) replaced."""
    data: dict[str, Any] = json.loads(json.dumps(FULL))
    *parents, last = path.split(".")
    target: Any = data
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    target[int(last) if last.isdigit() else last] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "reason"),
    [
        ("favorite_count", "5", "favorite_count is not a non-negative integer"),
        ("favorite_count", -1, "favorite_count -1 is out of range (0..9223372036854775807)"),
        ("favorite_count", 2**63, "favorite_count 9223372036854775808 is out of range"),
        ("favorite_count", 10**20, "favorite_count 100000000000000000000 is out of range"),
        ("conversation_count", 2**63, "conversation_count 9223372036854775808 is out of range"),
        ("favorite_count", 1.5, "favorite_count is not a non-negative integer"),
        ("favorite_count", 5.0, "favorite_count is not a non-negative integer"),
        ("favorite_count", True, "favorite_count is not a non-negative integer"),
        ("conversation_count", "3", "conversation_count is not a non-negative integer"),
        ("lang", 5, "lang is not a string"),
        ("text", ["a"], "text is not a string"),
        ("id_str", "12a", "id_str is not a string of digits"),
        ("id_str", 1399536327260086281, "id_str is not a string of digits"),
        ("user", [], "user is not an object"),
        ("user", "someone", "user is not an object"),
        ("user.id_str", "12a", "user.id_str is not a string of digits"),
        ("user.id_str", "1" * 21, "user.id_str is not a string of digits"),
        ("user.id_str", "١٢", "user.id_str is not a string of digits"),
        ("user.screen_name", 7, "user.screen_name is not a string"),
        ("user.is_blue_verified", "yes", "user.is_blue_verified is not a boolean"),
        ("user.is_blue_verified", 1, "user.is_blue_verified is not a boolean"),
        ("entities", [], "entities is not an object"),
        ("entities.urls", {}, "entities.urls is not a list"),
        ("entities.urls", ["https://t.co/abc"], "entities.urls holds a string, not objects"),
        ("entities.urls.0.url", 3, "entities.urls[].url is not a string"),
        ("entities.urls.0.expanded_url", {}, "entities.urls[].expanded_url is not a string"),
        ("mediaDetails", {}, "mediaDetails is not a list"),
        ("mediaDetails", [1], "mediaDetails holds a number, not objects"),
        ("mediaDetails.0.type", 1, "mediaDetails[].type is not a string"),
        ("mediaDetails.0.ext_alt_text", False, "mediaDetails[].ext_alt_text is not a string"),
        ("mediaDetails.1.video_info", [], "mediaDetails[].video_info is not an object"),
        ("mediaDetails.1.video_info.variants", "x", "video_info.variants is not a list"),
        ("mediaDetails.1.video_info.variants.1.bitrate", "256000", "bitrate is not a non-negative"),
        ("quoted_tweet", "1345396247016976390", "quoted_tweet is not an object"),
        ("quoted_tweet.id_str", "x", "quoted_tweet.id_str is not a string of digits"),
        ("in_reply_to_status_id_str", 1183130393224417281, "in_reply_to_status_id_str is not"),
        ("possibly_sensitive", "false", "possibly_sensitive is not a boolean"),
    ],
)
def test_a_field_of_the_wrong_type_makes_the_answer_unusable(
    path: str, value: object, reason: str
) -> None:
    with pytest.raises(DetailsUnusable) as caught:
        parse_details(_body(_with(path, value)))
    assert reason in str(caught.value)


def test_media_and_urls_that_cannot_be_described_are_left_out() -> None:
    data = _with("mediaDetails.0.type", None)
    data["entities"]["urls"].insert(0, {"expanded_url": "https://example.org"})
    data["entities"]["urls"].append({"url": "https://t.co/x", "expanded_url": None})
    details = parse_details(_body(data))
    assert [m["type"] for m in details.media] == ["video"]
    assert details.urls == [
        {"url": "https://t.co/abc", "expanded_url": "https://arxiv.org/abs/2106.09685"},
        {"url": "https://t.co/x", "expanded_url": None},
    ]


@pytest.mark.parametrize(
    ("variants", "expected"),
    [
        ([], None),
        ([{"content_type": "application/x-mpegURL", "url": "https://v/pl.m3u8"}], None),
        ([{"content_type": "video/mp4", "url": "https://v/a.mp4"}], "https://v/a.mp4"),
        (
            [
                {"content_type": "video/mp4", "url": "https://v/nobitrate.mp4"},
                {"bitrate": 0, "content_type": "video/mp4", "url": "https://v/zero.mp4"},
            ],
            "https://v/zero.mp4",
        ),
        (
            [
                {"bitrate": 9, "content_type": "video/mp4", "url": "https://v/first.mp4"},
                {"bitrate": 9, "content_type": "video/mp4", "url": "https://v/second.mp4"},
            ],
            "https://v/first.mp4",
        ),
        (
            [
                {"bitrate": 99, "content_type": "video/webm", "url": "https://v/w.webm"},
                {"bitrate": 99, "content_type": "video/mp4"},
                {"bitrate": 1, "content_type": "video/mp4", "url": "https://v/low.mp4"},
            ],
            "https://v/low.mp4",
        ),
    ],
)
def test_video_url_is_the_best_mp4(variants: list[object], expected: str | None) -> None:
    data = {"__typename": "Tweet", "mediaDetails": [{"type": "video", "video_info": {"variants": variants}}]}  # fmt: skip
    assert parse_details(_body(data)).media[0]["video_url"] == expected


def test_lone_surrogates_become_replacement_characters() -> None:
    body = (
        b'{"__typename": "Tweet", "text": "cut \\ud83d", "lang": "\\udc00en",'
        b' "user": {"name": "A \\ud83d\\ude00 B \\ud800"},'
        b' "entities": {"urls": [{"url": "https://t.co/\\udfff", "expanded_url": "x\\ud800"}]},'
        b' "mediaDetails": [{"type": "photo", "ext_alt_text": "\\ud800\\ud800"}]}'
    )
    details = parse_details(body)
    assert details.text == "cut \ufffd"
    assert details.lang == "\ufffden"
    assert details.author is not None and details.author["name"] == "A 😀 B \ufffd"
    assert details.urls == [{"url": "https://t.co/\ufffd", "expanded_url": "x\ufffd"}]
    assert details.media[0]["alt_text"] == "\ufffd\ufffd"
    json.dumps(asdict(details), ensure_ascii=False).encode("utf-8")  # no lone surrogate left
    tombstone = parse_details(
        b'{"__typename": "TweetTombstone", "tombstone": {"text": {"text": "gone \\udc00"}}}'
    )
    assert tombstone.reason == "gone \ufffd"


def test_tombstone() -> None:
    reason = "You\u2019re unable to view this Post because this account owner limits who can view their Posts."
    data = {"__typename": "TweetTombstone", "tombstone": {"text": {"text": reason, "entities": []}}}
    assert parse_details(_body(data)) == TweetDetails(status="tombstone", reason=reason)
    assert parse_details(_body({"__typename": "TweetTombstone"})) == TweetDetails(
        status="tombstone"
    )
    with pytest.raises(DetailsUnusable, match=r"tombstone\.text is not an object"):
        parse_details(_body({"__typename": "TweetTombstone", "tombstone": {"text": reason}}))


@pytest.mark.parametrize(
    ("body", "status", "expected"),
    [
        (
            b"{}",
            200,
            TweetDetails(status="not_found", error="syndication answered {}: no such tweet"),
        ),
        (
            b" {  }\n",
            200,
            TweetDetails(status="not_found", error="syndication answered {}: no such tweet"),
        ),
        (b"", 404, TweetDetails(status="not_found", error="syndication answered HTTP 404")),
        (
            b"<html>Not Found</html>",
            404,
            TweetDetails(status="not_found", error="syndication answered HTTP 404"),
        ),
        (
            b'{"error": "Not found"}',
            404,
            TweetDetails(status="not_found", error="syndication answered HTTP 404: Not found"),
        ),
        (
            b'{"error": "Forbidden"}',
            403,
            TweetDetails(status="error", error="syndication answered HTTP 403: Forbidden"),
        ),
        (b"", 400, TweetDetails(status="error", error="syndication answered HTTP 400")),
        (b"", 410, TweetDetails(status="error", error="syndication answered HTTP 410")),
    ],
)
def test_final_answers(body: bytes, status: int, expected: TweetDetails) -> None:
    assert parse_details(body, status=status) == expected


@pytest.mark.parametrize("status", sorted(RETRY_STATUSES))
def test_retryable_statuses_raise(status: int) -> None:
    assert details_error(status) is None
    with pytest.raises(DetailsUnusable, match=f"HTTP {status}: slow down"):
        parse_details(b'{"error": "slow down"}', status=status)


def test_details_error_mapping() -> None:
    assert {408, 425, 429, 500, 502, 503, 504} == RETRY_STATUSES
    assert details_error(200) is None
    assert details_error(404) == TweetDetails(
        status="not_found", error="syndication answered HTTP 404"
    )
    assert details_error(403, "blocked") == TweetDetails(
        status="error", error="syndication answered HTTP 403: blocked"
    )
    assert details_error(301) == TweetDetails(status="error", error="syndication answered HTTP 301")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "answer is not JSON"),
        (b"<!DOCTYPE html><html><body>Rate limited</body></html>", "answer is not JSON"),
        (b'{"__typename": "Tweet"', "answer is not JSON"),
        (b"\xff\xfe\x00garbage", "answer is not JSON"),
        (b'{"__typename": "Tweet", "favorite_count": NaN}', "answer is not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "answer is not JSON"),
        (b"[]", "answer is a JSON array, not an object"),
        (b'[{"__typename": "Tweet"}]', "answer is a JSON array, not an object"),
        (b"null", "answer is a JSON null, not an object"),
        (b'"Tweet"', "answer is a JSON string, not an object"),
        (b"7", "answer is a JSON number, not an object"),
        (
            b'{"error": "Something went wrong"}',
            "unexpected answer (no __typename): Something went wrong",
        ),
        (
            b'{"__typename": "TweetUnavailable"}',
            "unexpected answer (__typename 'TweetUnavailable')",
        ),
        (b'{"__typename": 5, "id_str": "20"}', "unexpected answer (no __typename)"),
    ],
)
def test_unusable_answers(body: bytes, reason: str) -> None:
    with pytest.raises(DetailsUnusable) as caught:
        parse_details(body)
    assert str(caught.value).startswith(reason)


# -- properties -----------------------------------------------------------------------------


def _record_errors(details: TweetDetails) -> list[str]:
    """The record contract: the details block of a record holding them validates."""
    post = Post(source="s.md", slug="s", title="T", published_at=None)
    tweet = Tweet(
        id="20", url="https://twitter.com/a/status/20", author_handle="a", author_name=None,
        lang=None, date_text=None, text="t", details=details,
    )  # fmt: skip
    entry = DigestEntry(
        post=post, rank=1, line=1, title="T", authors=[], retweets=None, favorites=None,
        counts_at=None, abs_url=None, pdf_url=None, categories=[], abstract="", arxiv_id=None,
        arxiv_version=None, arxiv_problem=None, tweets=[tweet],
    )  # fmt: skip
    record = build_record(entry)
    json.dumps(record, ensure_ascii=False).encode("utf-8")  # valid Unicode throughout
    return [e for e in schema_errors(record) if e.startswith("tweets/0/details")]


JSON_SCALARS = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.text(st.characters(exclude_categories=()))
    | st.sampled_from(["", "1399536327260086281", "2021-06-01T01:20:37.203Z", "video/mp4"])
)  # fmt: skip
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
TWEET_KEYS = [
    "id_str", "created_at", "favorite_count", "conversation_count", "lang", "text", "entities",
    "user", "mediaDetails", "quoted_tweet", "in_reply_to_status_id_str", "possibly_sensitive",
]  # fmt: skip


@st.composite
def tweet_like(draw: st.DrawFn) -> dict[str, object]:
    """FULL with a few fields (nested ones too) swapped for arbitrary JSON."""
    data: dict[str, Any] = json.loads(json.dumps(FULL))
    for key in draw(st.lists(st.sampled_from(TWEET_KEYS), unique=True, max_size=3)):
        data[key] = draw(JSON_VALUES)
    user = data.get("user")
    user_keys = ["id_str", "name", "screen_name", "is_blue_verified"]
    if isinstance(user, dict):
        for key in draw(st.lists(st.sampled_from(user_keys), unique=True, max_size=2)):
            user[key] = draw(JSON_VALUES)
    media = data.get("mediaDetails")
    if isinstance(media, list) and media and isinstance(media[-1], dict) and draw(st.booleans()):
        media[-1]["video_info"] = draw(JSON_VALUES)
    return data


# Well-typed answers with arbitrary content: each must come out "ok" and valid.
ANY_TEXT = st.none() | st.text(st.characters(exclude_categories=()), max_size=20)
COUNT = st.none() | st.integers(0, 2**63 - 1)  # int64: what every table can hold
SNOWFLAKE = st.none() | st.from_regex(r"[0-9]{1,20}", fullmatch=True)
ZONE = st.integers(-23 * 60, 23 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))
TIME = st.datetimes(datetime(1000, 1, 2), datetime(9999, 12, 30), timezones=ZONE)


def _optional(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


VARIANT = _optional(
    bitrate=COUNT,
    content_type=st.sampled_from(["video/mp4", "application/x-mpegURL"]) | ANY_TEXT,
    url=ANY_TEXT,
)
MEDIA = _optional(
    type=ANY_TEXT, media_url_https=ANY_TEXT, ext_alt_text=ANY_TEXT,
    video_info=st.none() | _optional(variants=st.none() | st.lists(VARIANT, max_size=4)),
)  # fmt: skip
WELL_TYPED = st.fixed_dictionaries(
    {"__typename": st.just("Tweet")},
    optional={
        "id_str": SNOWFLAKE, "created_at": st.none() | TIME.map(datetime.isoformat),
        "favorite_count": COUNT, "conversation_count": COUNT, "lang": ANY_TEXT, "text": ANY_TEXT,
        "possibly_sensitive": st.none() | st.booleans(), "in_reply_to_status_id_str": SNOWFLAKE,
        "quoted_tweet": st.none() | _optional(id_str=SNOWFLAKE, favorite_count=COUNT),
        "user": st.none() | _optional(
            id_str=SNOWFLAKE, name=ANY_TEXT, screen_name=ANY_TEXT,
            is_blue_verified=st.none() | st.booleans(),
        ),
        "entities": st.none() | _optional(
            urls=st.none() | st.lists(_optional(url=ANY_TEXT, expanded_url=ANY_TEXT), max_size=3)
        ),
        "mediaDetails": st.none() | st.lists(MEDIA, max_size=3),
    },
)  # fmt: skip


def _check(body: bytes, status: int = 200) -> None:
    try:
        details = parse_details(body, status=status)
    except DetailsUnusable:
        return
    assert _record_errors(details) == []


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([200, 200, 404, 403, 429, 500]))
def test_arbitrary_bytes_give_details_or_unusable(body: bytes, status: int) -> None:
    _check(body, status)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES | st.dictionaries(st.sampled_from(["__typename", *TWEET_KEYS]), JSON_VALUES))
def test_arbitrary_json_gives_details_or_unusable(data: object) -> None:
    _check(json.dumps(data).encode())


@settings(max_examples=300, deadline=None)
@given(tweet_like())
def test_tweet_shaped_json_gives_valid_details_or_unusable(data: dict[str, object]) -> None:
    _check(json.dumps(data).encode())


@settings(max_examples=300, deadline=None)
@given(WELL_TYPED)
def test_well_typed_answers_are_ok_and_valid(data: dict[str, Any]) -> None:
    details = parse_details(json.dumps(data).encode())
    assert details.status == "ok"
    assert _record_errors(details) == []
    assert (details.like_count, details.reply_count, details.in_reply_to_id) == (
        data.get("favorite_count"), data.get("conversation_count"),
        data.get("in_reply_to_status_id_str"),
    )  # fmt: skip
    if data.get("created_at"):
        moment = datetime.fromisoformat(data["created_at"]).astimezone(UTC)
        assert details.created_at == moment.isoformat(timespec="milliseconds")[:-6] + "Z"


@settings(max_examples=100, deadline=None)
@given(st.text(st.characters(exclude_categories=())))
def test_any_text_comes_out_as_valid_unicode(text: str) -> None:
    details = parse_details(json.dumps({"__typename": "Tweet", "text": text}).encode())
    assert details.text is not None
    details.text.encode("utf-8")
    if not any("\ud800" <= c <= "\udfff" for c in text):
        assert details.text == text
