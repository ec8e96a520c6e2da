"""Semantic Scholar: the batch request body, and answers -> Impact per paper (or refused)."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crawler.items import DigestEntry, Impact, Post
from crawler.parsing.arxiv_ids import MalformedArxivId
from crawler.record import build_record, schema_errors
from crawler.services.semantic_scholar import (
    FIELDS,
    MAX_BATCH,
    ImpactUnusable,
    batch_body,
    batch_ids,
    parse_batch,
    parse_error_body,
)


def test_fields_are_what_the_crawler_asks_for() -> None:
    assert FIELDS == (
        "externalIds,venue,year,citationCount,influentialCitationCount,referenceCount,"
        "publicationDate,openAccessPdf,tldr"
    )
    assert MAX_BATCH == 500


def test_batch_body() -> None:
    body = batch_body(["2106.09685v2", "hep-th/9901001", "2106.09685", "math.GT/0309136v1"])
    # Asked in the canonical form, as arXiv and Semantic Scholar know old-style IDs.
    assert json.loads(body) == {
        "ids": ["ARXIV:2106.09685", "ARXIV:hep-th/9901001", "ARXIV:math/0309136"]
    }
    assert batch_ids(["2106.09685v2", "2106.09685"]) == ["2106.09685"]


@pytest.mark.parametrize(
    ("ids", "error"),
    [
        ([], ValueError),
        ([f"2106.{n:05d}" for n in range(501)], ValueError),
        (["2106.09685", "abc"], MalformedArxivId),
        (["ARXIV:2106.09685"], MalformedArxivId),
    ],
)
def test_batch_body_refuses(ids: list[str], error: type[Exception]) -> None:
    with pytest.raises(error):
        batch_body(ids)


def test_batch_of_500_is_allowed() -> None:
    assert len(json.loads(batch_body([f"2106.{n:05d}" for n in range(500)]))["ids"]) == 500


PAPER: dict[str, Any] = {
    "paperId": "a8ca46b171467ceb2d7652fbfb67fe701ad86092",
    "externalIds": {"ArXiv": "2106.09685", "DBLP": "conf/iclr/HuSWALWWC22", "CorpusId": 235458009},
    "venue": "International Conference on Learning Representations",
    "year": 2021,
    "citationCount": 9000,
    "influentialCitationCount": 1200,
    "referenceCount": 70,
    "publicationDate": "2021-06-17",
    "openAccessPdf": {"url": "https://arxiv.org/pdf/2106.09685", "status": "GREEN"},
    "tldr": {"model": "tldr@v2.0.0", "text": "LoRA freezes the weights."},
}
OK = Impact(
    status="ok",
    semantic_scholar_id="a8ca46b171467ceb2d7652fbfb67fe701ad86092",
    citation_count=9000,
    influential_citation_count=1200,
    reference_count=70,
    venue="International Conference on Learning Representations",
    publication_year=2021,
    publication_date="2021-06-17",
    tldr="LoRA freezes the weights.",
    open_access_pdf="https://arxiv.org/pdf/2106.09685",
)


def _one(element: object, arxiv_id: str = "2106.09685") -> Impact:
    (impact,) = parse_batch(json.dumps([element]).encode(), [arxiv_id]).values()
    return impact


def test_full_paper_and_unknown_paper() -> None:
    body = json.dumps([PAPER, None]).encode()
    assert parse_batch(body, ["2106.09685v1", "2107.00001"]) == {
        "2106.09685": OK,
        "2107.00001": Impact(
            status="not_found", error="Semantic Scholar does not know arXiv:2107.00001"
        ),
    }


def test_only_paper_id_is_needed() -> None:
    assert _one({"paperId": "x"}) == Impact(status="ok", semantic_scholar_id="x")
    nulls = {key: None for key in PAPER} | {"paperId": "x"}
    assert _one(nulls) == Impact(status="ok", semantic_scholar_id="x")


@pytest.mark.parametrize(
    ("changes", "field", "expected"),
    [
        ({"venue": ""}, "venue", None),
        ({"openAccessPdf": None}, "open_access_pdf", None),
        ({"openAccessPdf": {"url": "", "status": "CLOSED"}}, "open_access_pdf", None),
        ({"openAccessPdf": {"status": "GREEN"}}, "open_access_pdf", None),
        ({"tldr": None}, "tldr", None),
        ({"tldr": {"model": "tldr@v2.0.0", "text": None}}, "tldr", None),
        ({"citationCount": 0}, "citation_count", 0),
        ({"year": 1000}, "publication_year", 1000),
        ({"year": 9999}, "publication_year", 9999),
        ({"citationCount": 2**63 - 1}, "citation_count", 2**63 - 1),
        ({"externalIds": {"DOI": "10.1/x"}}, "semantic_scholar_id", OK.semantic_scholar_id),
        ({"externalIds": {"ArXiv": "2106.09685v3"}}, "semantic_scholar_id", OK.semantic_scholar_id),
        ({"title": 5, "unknown": [1]}, "semantic_scholar_id", OK.semantic_scholar_id),
    ],
)
def test_field_rules(changes: dict[str, object], field: str, expected: object) -> None:
    impact = _one(PAPER | changes)
    assert impact.status == "ok"
    assert getattr(impact, field) == expected


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"paperId": None}, "paperId is missing or not a string"),
        ({"paperId": ""}, "paperId is missing or not a string"),
        ({"paperId": 42}, "paperId is missing or not a string"),
        ({"citationCount": "9000"}, "citationCount is not an integer"),
        ({"citationCount": -1}, "citationCount -1 is out of range (0..9223372036854775807)"),
        ({"citationCount": 9000.0}, "citationCount is not an integer"),
        ({"citationCount": True}, "citationCount is not an integer"),
        ({"citationCount": 10**20}, "citationCount 100000000000000000000 is out of range"),
        ({"influentialCitationCount": [1]}, "influentialCitationCount is not an integer"),
        ({"referenceCount": -5}, "referenceCount -5 is out of range"),
        ({"referenceCount": 2**63}, "referenceCount 9223372036854775808 is out of range"),
        ({"year": -300}, "year -300 is out of range (1000..9999)"),
        ({"year": 10**12}, "year 1000000000000 is out of range (1000..9999)"),
        ({"year": 999}, "year 999 is out of range"),
        ({"year": "2021"}, "year is not an integer"),
        ({"year": 2021.0}, "year is not an integer"),
        ({"year": False}, "year is not an integer"),
        ({"venue": 3}, "venue is not a string"),
        ({"publicationDate": "2021-06"}, "publicationDate is not YYYY-MM-DD"),
        ({"publicationDate": "17/06/2021"}, "publicationDate is not YYYY-MM-DD"),
        ({"publicationDate": 20210617}, "publicationDate is not YYYY-MM-DD"),
        ({"publicationDate": "2021-02-30"}, "publicationDate is not a calendar date"),
        ({"tldr": "LoRA"}, "tldr is not an object"),
        ({"tldr": {"text": 1}}, "tldr.text is not a string"),
        ({"openAccessPdf": "https://x"}, "openAccessPdf is not an object"),
        ({"openAccessPdf": {"url": ["https://x"]}}, "openAccessPdf.url is not a string"),
        ({"externalIds": ["ArXiv"]}, "externalIds is not an object"),
        ({"externalIds": {"ArXiv": 2106.09685}}, "externalIds.ArXiv is not a string"),
        ({"externalIds": {"ArXiv": "2106.09686"}}, "about arXiv:2106.09686, not arXiv:2106.09685"),
        ({"externalIds": {"ArXiv": "junk"}}, "about arXiv:junk, not arXiv:2106.09685"),
    ],
)
def test_an_element_of_the_wrong_shape_is_an_error_for_that_paper(
    changes: dict[str, object], reason: str
) -> None:
    body = json.dumps([PAPER | changes, PAPER | {"externalIds": None}, None]).encode()
    result = parse_batch(body, ["2106.09685", "2106.09686", "2106.09687"])
    impact = result["2106.09685"]
    assert impact.status == "error" and impact.semantic_scholar_id is None
    assert str(impact.error).startswith("unusable answer element: ")
    assert reason in str(impact.error)
    assert result["2106.09686"] == OK  # the rest of the batch stays usable
    assert result["2106.09687"].status == "not_found"


@pytest.mark.parametrize("element", [[PAPER], "2106.09685", 7, True])
def test_an_element_that_is_not_an_object_is_an_error(element: object) -> None:
    assert _one(element) == Impact(status="error", error="answer element is not an object")


def test_old_style_ids() -> None:
    element = PAPER | {"externalIds": {"ArXiv": "math.GT/0309136"}}
    assert _one(element, "math.GT/0309136v2").status == "ok"
    assert _one(element, "hep-th/9901001").status == "error"


def test_lone_surrogates_become_replacement_characters() -> None:
    body = b'[{"paperId": "p\\ud800", "venue": "V \\udc00", "tldr": {"text": "t\\ud83d\\ude00\\ud83d"}}]'
    impact = parse_batch(body, ["2106.09685"])["2106.09685"]
    assert (impact.semantic_scholar_id, impact.venue, impact.tldr) == (
        "p\ufffd",
        "V \ufffd",
        "t😀\ufffd",
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "answer is not JSON"),
        (b"<html><body>502 Bad Gateway</body></html>", "answer is not JSON"),
        (b"[null", "answer is not JSON"),
        (b"[NaN]", "answer is not JSON"),
        (b"\xff\xff", "answer is not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "answer is not JSON"),
        (b'{"error": "Too many ids"}', "answer is not a JSON list (Too many ids)"),
        (b"null", "answer is not a JSON list (null)"),
        (b"[]", "answer has 0 elements for 2 IDs"),
        (b"[null, null, null]", "answer has 3 elements for 2 IDs"),
    ],
)
def test_unusable_answers(body: bytes, reason: str) -> None:
    with pytest.raises(ImpactUnusable) as caught:
        parse_batch(body, ["2106.09685", "2106.09686"])
    assert str(caught.value).startswith(reason)


def test_duplicates_asked_once() -> None:
    result = parse_batch(json.dumps([PAPER]).encode(), ["2106.09685v1", "2106.09685v2"])
    assert result == {"2106.09685": OK}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"error": "Response would exceed maximum size"}', "Response would exceed maximum size"),
        (
            b'{"message": "Too Many Requests. Please wait and try again", "code": "429"}',
            "Too Many Requests. Please wait and try again (code 429)",
        ),
        (b'{"message": "Forbidden", "code": 403}', "Forbidden (code 403)"),
        (b'{"message": "Forbidden", "code": true}', "Forbidden"),
        (b'{"error": "", "message": "m"}', "m"),
        (b"Rate exceeded.", "Rate exceeded."),
        (b"  <html>\n  <b>Bad</b>\n</html>", "<html> <b>Bad</b> </html>"),
        (b"", "empty answer"),
        (b"[]", "[]"),
        (b'{"error": "a\\ud800"}', "a\ufffd"),
        (b"\xff oops", "\ufffd oops"),
        (b"x" * 500, "x" * 199 + "…"),
    ],
)
def test_parse_error_body(body: bytes, message: str) -> None:
    assert parse_error_body(body) == message


# -- properties -----------------------------------------------------------------------------


def _record_errors(impact: Impact) -> list[str]:
    entry = DigestEntry(
        post=Post(source="s.md", slug="s", title=None, published_at=None), rank=1, line=1, title="T",
        authors=[], retweets=None, favorites=None, counts_at=None, abs_url=None, pdf_url=None,
        categories=[], abstract="", arxiv_id="2106.09685", arxiv_version=None,
        arxiv_problem=None, impact=impact,
    )  # fmt: skip
    record = build_record(entry)
    json.dumps(record, ensure_ascii=False).encode("utf-8")  # valid Unicode throughout
    return [e for e in schema_errors(record) if e.startswith("semantic_scholar")]


JSON_SCALARS = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.text(st.characters(exclude_categories=()))
    | st.sampled_from(["", "2106.09685", "2021-06-17", "2021-02-30", "https://x"])
)  # fmt: skip
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)  # fmt: skip


@st.composite
def paper_like(draw: st.DrawFn) -> object:
    """PAPER with some fields swapped for arbitrary JSON, or any JSON at all."""
    if draw(st.booleans()):
        return draw(JSON_VALUES)
    data = dict(PAPER)
    for key in draw(st.lists(st.sampled_from(sorted(PAPER)), unique=True, max_size=3)):
        data[key] = draw(JSON_VALUES)
    return data


IDS = ["2106.09685", "2106.09686", "hep-th/9901001"]


def _check(body: bytes) -> None:
    try:
        result = parse_batch(body, IDS)
    except ImpactUnusable:
        return
    assert list(result) == IDS
    for impact in result.values():
        assert _record_errors(impact) == []


ANY_TEXT = st.none() | st.text(st.characters(exclude_categories=()), max_size=20)
COUNT = st.none() | st.integers(0, 2**63 - 1)  # int64: what every table can hold


def _optional(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


WELL_TYPED = st.fixed_dictionaries(
    {"paperId": st.text(st.characters(exclude_categories=()), min_size=1, max_size=40)},
    optional={
        "externalIds": st.none() | _optional(ArXiv=st.sampled_from(["2106.09685", "2106.09685v2"]), DOI=ANY_TEXT),
        "venue": ANY_TEXT, "year": st.none() | st.integers(1000, 9999),
        "citationCount": COUNT, "influentialCitationCount": COUNT, "referenceCount": COUNT,
        "publicationDate": st.none() | st.dates().map(date.isoformat),
        "openAccessPdf": st.none() | _optional(url=ANY_TEXT, status=ANY_TEXT),
        "tldr": st.none() | _optional(model=ANY_TEXT, text=ANY_TEXT),
        "title": ANY_TEXT,
    },
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(WELL_TYPED)
def test_well_typed_elements_are_ok_and_valid(element: dict[str, Any]) -> None:
    impact = _one(element)
    assert impact.status == "ok"
    assert _record_errors(impact) == []
    assert (impact.citation_count, impact.publication_year, impact.publication_date) == (
        element.get("citationCount"), element.get("year"), element.get("publicationDate"),
    )  # fmt: skip
    assert impact.venue == (element.get("venue") or None) or "\ufffd" in str(impact.venue)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_give_impacts_or_unusable(body: bytes) -> None:
    _check(body)
    assert isinstance(parse_error_body(body), str)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES | st.lists(paper_like(), min_size=3, max_size=3))
def test_arbitrary_json_gives_valid_impacts_or_unusable(data: object) -> None:
    body = json.dumps(data).encode()
    _check(body)
    parse_error_body(body).encode("utf-8")
