"""The output contract: records built from entries, and the schema that guards them."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crawler.items import (
    ArxivMeta,
    DigestEntry,
    Embed,
    HfPaper,
    Impact,
    Post,
    Tweet,
    TweetDetails,
)
from crawler.record import SCHEMA_VERSION, build_record, schema, schema_errors
from crawler.record.availability import availability
from crawler.record.build import HF_FIELDS, SEMANTIC_SCHOLAR_FIELDS, digest_date
from crawler.record.validate import repair

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _entry(**changes: object) -> DigestEntry:
    post = Post(
        source="s.md", slug="s", title="T", published_at="2021-01-04T10:51:45Z", tags=["arXiv"]
    )
    tweet = Tweet(
        id="1345396247016976390", url="https://twitter.com/a/status/1345396247016976390",
        author_handle="a", author_name="A", lang="en", date_text="January 2, 2021", text="hi",
        embed=Embed(status="deleted", error="oEmbed answered HTTP 404"),
    )  # fmt: skip
    meta = ArxivMeta(
        status="ok", fetched_at="2021-01-05T08:00:00.123Z", versioned_id="2012.15180v2",
        version=2, title="T", abstract="S", authors=[{"name": "A", "affiliations": []}],
        published_at="2020-12-30T16:00:00Z", updated_at="2021-01-06T16:00:00Z", primary_category="cs.CL", categories=["cs.CL"],
        abs_url="https://arxiv.org/abs/2012.15180v2", pdf_url="https://arxiv.org/pdf/2012.15180v2",
    )  # fmt: skip
    fields = dict(
        post=post, rank=1, line=18, title="T", authors=["A"], retweets=1, favorites=2,
        counts_at="2021-01-04T10:51:45Z", abs_url="https://arxiv.org/abs/2012.15180",
        pdf_url="https://arxiv.org/pdf/2012.15180", categories=["cs.CL"], abstract="A",
        arxiv_id="2012.15180", arxiv_version=None, arxiv_problem=None, tweets=[tweet], arxiv=meta,
    )  # fmt: skip
    fields.update(changes)
    return DigestEntry(**fields)  # type: ignore[arg-type]


def test_record_shape_and_validity() -> None:
    record = build_record(_entry())
    assert schema_errors(record) == []
    assert record["schema_version"] == SCHEMA_VERSION
    assert list(record) == [
        "schema_version",
        "entry_id",
        "post",
        "rank",
        "arxiv_id",
        "digest",
        "arxiv",
        "semantic_scholar",
        "hf",
        "openalex",
        "code_urls",
        "tweets",
    ]
    assert record["arxiv"]["versioned_id"] == "2012.15180v2" and record["arxiv"]["status"] == "ok"
    assert record["arxiv"]["fetched_at"] == "2021-01-05T08:00:00.123Z"
    assert record["tweets"][0]["embed"] == {
        "status": "deleted",
        "error": "oEmbed answered HTTP 404",
        **dict.fromkeys(("fetched_at", "text", "html", "author_name", "author_url", "url")),
    }
    failed = build_record(_entry(arxiv=ArxivMeta(status="not_found", error="arXiv has no paper X")))
    assert failed["arxiv"]["status"] == "not_found"
    assert failed["arxiv"]["error"] == "arXiv has no paper X"
    assert set(failed["arxiv"]) == set(record["arxiv"])  # dense: every field, null
    assert {v for k, v in failed["arxiv"].items() if k not in ("status", "error")} == {None}
    assert schema_errors(failed) == []


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("rank",), -1, "rank: -1 is less than the minimum of 0"),
        (("arxiv", "status"), "weird", "arxiv/"),
        (("arxiv", "published_at"), "2020-12-30", "arxiv"),
        (("tweets", 0, "id"), 1345396247016976390, "tweets/0/id: "),
        (("post", "published_at"), "04/01/2021", "post/published_at: "),
        (("digest", "retweets"), "10", "digest/retweets: "),
        (("arxiv_id",), "2012.15180v2", "arxiv_id: "),
    ],
)
def test_schema_rejects_broken_records(path: tuple, value: object, message: str) -> None:
    record = copy.deepcopy(build_record(_entry()))
    target = record
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    errors = schema_errors(record)
    assert errors and errors[0].startswith(message)


def test_schema_rejects_unknown_and_missing_fields() -> None:
    record = build_record(_entry())
    assert schema_errors({**record, "extra": 1})
    assert schema_errors({k: v for k, v in record.items() if k != "tweets"})


# -- schema 3: documented, dense, keyed ------------------------------------------------------


def _properties(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every property the schema defines (through definitions, branches and items)."""
    if not isinstance(node, dict):
        return
    for name, sub in node.get("properties", {}).items():
        yield f"{path}.{name}".lstrip("."), sub
        yield from _properties(sub, f"{path}.{name}")
    for key in ("items", "then", "else", "if"):
        yield from _properties(node.get(key), f"{path}[]" if key == "items" else path)
    for key in ("oneOf", "anyOf", "allOf"):
        for branch in node.get(key, ()):
            yield from _properties(branch, path)


def _is_constraint(path: str, node: dict[str, Any]) -> bool:
    """A property named again in an if/then branch only to constrain it (documented above)."""
    return "description" not in node and set(node) <= {"type", "const", "enum", "$ref"}


def test_every_field_of_the_schema_is_described() -> None:
    fields = [(p, n) for p, n in _properties(schema()) if not _is_constraint(p, n)]
    assert len(fields) > 100
    undocumented = [p for p, n in fields if not str(n.get("description", "")).strip()]
    assert undocumented == []
    # the branch constraints name only fields the block documents
    documented = {p for p, _ in fields}
    assert {p for p, n in _properties(schema()) if _is_constraint(p, n)} <= documented


def _schema_paths(node: dict[str, Any], defs: dict[str, Any], path: str = "") -> set[str]:
    """Every key path a record must hold, following the required properties."""
    if "$ref" in node:
        return _schema_paths(defs[node["$ref"].rsplit("/", 1)[1]], defs, path)
    found: set[str] = set()
    for name in node.get("required", ()):
        child = f"{path}.{name}".lstrip(".")
        found |= {child} | _schema_paths(node["properties"][name], defs, child)
    return found


def _record_paths(value: Any, path: str = "") -> set[str]:
    if not isinstance(value, dict):
        return set()
    return {f"{path}.{k}".lstrip(".") for k in value} | {
        p for k, v in value.items() for p in _record_paths(v, f"{path}.{k}")
    }


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"arxiv": ArxivMeta(status="error", error="arXiv answered HTTP 503"), "impact": None},
        {"impact": Impact(status="disabled"), "arxiv": ArxivMeta(status="not_found", error="x")},
    ],
)
def test_records_are_dense_whatever_the_statuses(changes: dict[str, object]) -> None:
    record = build_record(_entry(**changes))
    assert schema_errors(record) == []
    expected = _schema_paths(schema(), schema()["definitions"])
    assert {"tweets", "arxiv.fetched_at", "semantic_scholar.publication_year"} <= expected
    assert {p for p in _record_paths(record) if not p.startswith("tweets.")} == expected
    items = schema()["properties"]["tweets"]["items"]
    for tweet in record["tweets"]:
        assert _record_paths(tweet) == _schema_paths(items, schema()["definitions"])


def test_entry_id_post_id_and_digest_date() -> None:
    post = Post(
        source="/home/someone/posts/hot-papers-2020-06-29.md", slug="hot-papers-2020-06-29",
        title="Hot Papers 2020-06-29", published_at="2020-06-30T09:15:00Z",
        record_source="hot-papers-2020-06-29.md",
    )  # fmt: skip
    record = build_record(_entry(post=post, rank=7))
    key = "hot-papers-2020-06-29.md\nhot-papers-2020-06-29"
    assert record["post"]["id"] == hashlib.sha256(key.encode()).hexdigest()[:16]
    assert record["entry_id"] == hashlib.sha256(f"{key}\n7".encode()).hexdigest()[:16]
    assert record["post"]["source"] == "hot-papers-2020-06-29.md"  # never the machine's path
    assert record["post"]["digest_date"] == "2020-06-29"  # the day covered, not published
    assert schema_errors(record) == []
    other = build_record(_entry(post=post, rank=8))
    assert other["entry_id"] != record["entry_id"] and other["post"]["id"] == record["post"]["id"]


@pytest.mark.parametrize(
    ("slug", "title", "expected"),
    [
        ("hot-papers-2021-06-18", "Anything", "2021-06-18"),
        ("weekly", "Hot Papers 2021-06-18 (weekly)", "2021-06-18"),
        ("2021-06-18-hot-papers", "No date here", None),  # a slug *ending* in the day
        ("weekly", None, None),
        ("hot-papers-2021-13-40", "Hot Papers 2021-06-18", "2021-06-18"),  # not a day
        ("hot-papers-0999-01-01", None, None),
    ],
)
def test_digest_date(slug: str, title: str | None, expected: str | None) -> None:
    assert digest_date(slug, title) == expected


@given(st.text(max_size=30), st.none() | st.text(max_size=30))
def test_digest_date_is_a_valid_day_or_null(slug: str, title: str | None) -> None:
    day = digest_date(slug, title)
    if day is not None:
        assert _DATE.fullmatch(day) and 1000 <= int(day[:4]) <= 9999
        assert slug.endswith(day) or (title is not None and day in title)


PROTECTED_TEXT = (
    "You’re unable to view this Post because this account owner limits who can view their "
    "Posts. Learn more"
)
AGE_TEXT = "Age-restricted adult content. This content might not be appropriate for people under 18"
RULES_TEXT = "This Post violated the X Rules. Learn more"
OK_EMBED = Embed(status="ok", text="t", html="<blockquote>t</blockquote>")
OK_DETAILS = TweetDetails(status="ok")


def _tomb(text: str) -> TweetDetails:
    return TweetDetails(status="tombstone", reason=text)


@pytest.mark.parametrize(
    ("embed", "details", "expected"),
    [
        (OK_EMBED, OK_DETAILS, ("available", None)),
        (OK_EMBED, _tomb(PROTECTED_TEXT), ("protected", PROTECTED_TEXT)),
        (OK_EMBED, _tomb(RULES_TEXT), ("removed", RULES_TEXT)),
        (OK_EMBED, _tomb("This account is suspended."), ("removed", "This account is suspended.")),
        (OK_EMBED, _tomb("This Post is withheld in Germany."), ("withheld", "This Post is withheld in Germany.")),
        (OK_EMBED, _tomb(AGE_TEXT), ("available", AGE_TEXT)),
        (Embed(status="error", error="oEmbed answered HTTP 500"), _tomb(AGE_TEXT), ("available", AGE_TEXT)),
        (Embed(status="protected", error="oEmbed answered HTTP 403"), _tomb(PROTECTED_TEXT), ("protected", PROTECTED_TEXT)),
        (Embed(status="protected", error="oEmbed answered HTTP 403"), TweetDetails(status="disabled"), ("protected", "oEmbed answered HTTP 403")),
        (Embed(status="deleted", error="oEmbed answered HTTP 404"), TweetDetails(status="not_found", error="syndication answered HTTP 404"), ("deleted", "oEmbed answered HTTP 404")),
        (Embed(status="error", error="oEmbed answered HTTP 500"), TweetDetails(status="not_found", error="syndication answered {}: no such tweet"), ("deleted", "syndication answered {}: no such tweet")),
        (Embed(status="deleted", error="oEmbed answered HTTP 404"), OK_DETAILS, ("available", None)),
        (Embed(status="error", error="oEmbed answered HTTP 500"), TweetDetails(status="disabled"), ("unknown", "oEmbed answered HTTP 500")),
        (None, None, ("unknown", None)),
        (Embed(status="error", error="e1"), _tomb("Something new"), ("unknown", "Something new")),
        (OK_EMBED, _tomb("Something new"), ("available", "Something new")),
    ],
)  # fmt: skip
def test_availability_is_one_answer_from_embed_and_details(
    embed: Embed | None, details: TweetDetails | None, expected: tuple[str, str | None]
) -> None:
    assert availability(embed, details) == expected
    tweet = Tweet(
        id="1345396247016976390", url="https://twitter.com/a/status/1345396247016976390",
        author_handle="a", author_name="A", lang="en", date_text=None, text="hi",
        embed=embed, details=details,
    )  # fmt: skip
    record = build_record(_entry(tweets=[tweet]))
    assert schema_errors(record) == []
    assert (
        record["tweets"][0]["availability"],
        record["tweets"][0]["availability_reason"],
    ) == expected


def test_an_off_schema_block_becomes_a_dense_error_block() -> None:
    record = build_record(_entry(impact=Impact(status="ok", semantic_scholar_id="x",
                                               publication_year=99)))  # fmt: skip
    repaired, remaining = repair(record)
    assert remaining == [] and repaired and repaired[0].startswith("semantic_scholar: ")
    block = record["semantic_scholar"]
    assert block["status"] == "error" and block["error"].startswith(
        "answer broke the output schema"
    )
    assert list(block) == ["status", *SEMANTIC_SCHOLAR_FIELDS]
    assert {k: v for k, v in block.items() if k not in ("status", "error")} == dict.fromkeys(
        SEMANTIC_SCHOLAR_FIELDS[1:]
    )


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("digest", "retweets"), 2**63),
        (("semantic_scholar", "citation_count"), -1),
        (("semantic_scholar", "publication_year"), 10000),
        (("digest", "linked_version"), 0),
        (("arxiv", "version"), 0),
        (("entry_id",), "not-a-key"),
        (("tweets", 0, "availability"), "gone"),
        (("arxiv", "title"), "an ok block's fields are there, but the error says otherwise"),
    ],
)
def test_schema_3_bounds(path: tuple, value: object) -> None:
    record = copy.deepcopy(
        build_record(_entry(impact=Impact(status="ok", semantic_scholar_id="x")))
    )
    if path == ("arxiv", "title"):
        record["arxiv"]["error"] = "an error beside an ok status"
    else:
        target = record
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    assert schema_errors(record)


def test_the_hf_block_is_dense_and_code_urls_say_where_each_link_came_from() -> None:
    hf = HfPaper(
        status="ok", fetched_at="2021-01-06T00:00:00.000Z", upvotes=7, comments=1,
        github_repo="https://github.com/Ada/Repo/tree/main", github_stars=3,
        history=[{"observed_at": "2021-01-06T00:00:00.000Z", "upvotes": 7, "github_stars": 3}],
    )  # fmt: skip
    good = _entry().arxiv
    assert good is not None
    meta = dataclasses.replace(
        good, abstract="Code: https://github.com/ada/repo and https://gitlab.com/x/y"
    )
    record = build_record(_entry(arxiv=meta, abstract="see github.com/x/z", hf=hf))
    assert schema_errors(record) == []
    assert list(record["hf"]) == ["status", *HF_FIELDS]
    assert record["hf"]["upvotes"] == 7 and record["hf"]["history"] == hf.history
    assert record["code_urls"] == [
        {"url": "https://github.com/ada/repo", "sources": ["arxiv_abstract", "hf"]},
        {"url": "https://gitlab.com/x/y", "sources": ["arxiv_abstract"]},
        {"url": "https://github.com/x/z", "sources": ["digest_abstract"]},
    ]
    missing = HfPaper(status="not_indexed", error="Hugging Face answered HTTP 404: no page",
                      fetched_at="2021-01-06T00:00:00.000Z", upvotes=7)  # fmt: skip
    block = build_record(_entry(hf=missing))["hf"]
    assert block == {"status": "not_indexed", **dict.fromkeys(HF_FIELDS),
                     "error": "Hugging Face answered HTTP 404: no page",
                     "fetched_at": "2021-01-06T00:00:00.000Z"}  # fmt: skip
    off = build_record(_entry(hf=HfPaper(status="disabled")))
    assert off["hf"] == {"status": "disabled", **dict.fromkeys(HF_FIELDS)}
    assert schema_errors(off) == []
    broken = copy.deepcopy(record)
    broken["hf"]["upvotes"] = -1
    assert repair(broken)[0] == ["hf: -1 is less than the minimum of 0"]
    assert broken["hf"]["status"] == "error"
