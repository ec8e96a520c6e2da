"""The output contract: records built from entries, and the schema that guards them."""

from __future__ import annotations

import copy

import pytest

from crawler.items import ArxivMeta, DigestEntry, Embed, Post, Tweet
from crawler.record import SCHEMA_VERSION, build_record, schema_errors


def _entry(**changes: object) -> DigestEntry:
    post = Post(source="s.md", slug="s", title="T", date="2021-01-04T10:51:45Z", tags=["arXiv"])
    tweet = Tweet(
        id="1345396247016976390", url="https://twitter.com/a/status/1345396247016976390",
        author_handle="a", author_name="A", lang="en", date_text="January 2, 2021", text="hi",
        embed=Embed(status="deleted", error="oEmbed answered HTTP 404"),
    )  # fmt: skip
    meta = ArxivMeta(
        status="ok", id="2012.15180v2", version=2, title="T", summary="S",
        authors=[{"name": "A", "affiliations": []}], published="2020-12-30T16:00:00Z",
        updated="2021-01-06T16:00:00Z", primary_category="cs.CL", categories=["cs.CL"],
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
        "post",
        "rank",
        "arxiv_id",
        "digest",
        "arxiv",
        "impact",
        "code_urls",
        "tweets",
    ]
    assert record["arxiv"]["id"] == "2012.15180v2" and record["arxiv"]["status"] == "ok"
    assert record["tweets"][0]["embed"] == {
        "status": "deleted",
        "error": "oEmbed answered HTTP 404",
    }
    failed = build_record(_entry(arxiv=ArxivMeta(status="not_found", error="arXiv has no paper X")))
    assert failed["arxiv"] == {"status": "not_found", "error": "arXiv has no paper X"}
    assert schema_errors(failed) == []


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("rank",), -1, "rank: -1 is less than the minimum of 0"),
        (("arxiv", "status"), "weird", "arxiv: "),
        (("arxiv", "published"), "2020-12-30", "arxiv: "),
        (("tweets", 0, "id"), 1345396247016976390, "tweets/0/id: "),
        (("post", "date"), "04/01/2021", "post/date: "),
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
