"""OpenAlex: the list filter, answers -> values matched by DOI, the published version, ranges,
secrets kept out of messages, and TTLs by the paper's age."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crawler.downloader.contract import AnswerUnusable, short_url
from crawler.enrich.runner import failure_text
from crawler.items import Impact, OpenAlexWork
from crawler.logredact import redact, redact_url_secrets
from crawler.services.base import DAY, INT64_MAX
from crawler.services.openalex import (
    FIELDS,
    LOOKUP_FIELDS,
    OpenAlex,
    arxiv_doi,
    doi_key,
    list_query,
    parse_list,
    parse_single,
    parse_work,
)
from crawler.services.semantic_scholar import SemanticScholar
from tests.helpers import project_settings

ARXIV = {"id": "https://openalex.org/S4306400194", "display_name": "arXiv (Cornell University)",
         "type": "repository"}  # fmt: skip


def work(arxiv_id: str, **over: Any) -> dict[str, Any]:
    """A work as OpenAlex answers it for an arXiv preprint (the select= fields)."""
    return {
        "id": f"https://openalex.org/W{abs(hash(arxiv_id)) % 10**9}",
        "doi": f"https://doi.org/10.48550/arxiv.{arxiv_id}",
        "publication_year": 2021,
        "cited_by_count": 12,
        "counts_by_year": [
            {"year": 2022, "cited_by_count": 7},
            {"year": 2021, "cited_by_count": 5},
        ],
        "primary_location": {"source": ARXIV, "landing_page_url": None},
        "open_access": {"is_oa": True, "oa_status": "green"},
        "primary_topic": {"display_name": "Topic A", "id": "https://openalex.org/T1"},
    } | over


def answer(*works: dict[str, Any], count: int | None = None) -> bytes:
    meta = {"count": len(works) if count is None else count, "page": 1, "per_page": 50}
    return json.dumps({"meta": meta, "results": list(works)}).encode()


def test_list_query_names_each_paper_once_by_its_arxiv_doi_without_version() -> None:
    query = list_query(["2106.09685v2", "2106.09685", "math.GT/0309136", "hep-th/9901001"])
    assert query == {
        "filter": "doi:10.48550/arXiv.2106.09685|10.48550/arXiv.math/0309136"
        "|10.48550/arXiv.hep-th/9901001",
        "per-page": "50",
        "select": FIELDS,
    }
    assert "," not in FIELDS.replace(",", "") and "." not in FIELDS  # top-level fields only
    with pytest.raises(ValueError):
        list_query([f"2106.{n:05d}" for n in range(51)])
    with pytest.raises(ValueError):
        list_query([])


def test_doi_key_is_bare_and_case_insensitive() -> None:
    assert doi_key("https://doi.org/10.48550/arXiv.2106.09685") == "10.48550/arxiv.2106.09685"
    assert doi_key(" HTTPS://DOI.ORG/10.48550/ARXIV.2106.09685 ") == "10.48550/arxiv.2106.09685"
    assert doi_key(arxiv_doi("2106.09685v3")) == "10.48550/arxiv.2106.09685"


@settings(max_examples=60)
@given(st.permutations(["2106.09685", "2105.14103", "2012.15180", "hep-th/9901001"]),
       st.lists(st.booleans(), min_size=4, max_size=4))  # fmt: skip
def test_results_in_any_order_and_case_are_matched_by_doi(
    order: list[str], upper: list[bool]
) -> None:
    asked = ["2106.09685", "2105.14103", "2012.15180", "hep-th/9901001", "2106.00001"]
    results = []
    for arxiv_id, up in zip(order, upper, strict=True):
        w = work(arxiv_id, cited_by_count=len(arxiv_id))
        w["doi"] = w["doi"].upper() if up else w["doi"]
        results.append(w)
    values = parse_list(answer(*results), asked)
    # The one paper the list left out is absent: the runner looks it up alone.
    assert set(values) == set(order)
    for arxiv_id in order:
        assert values[arxiv_id].status == "ok"
        assert values[arxiv_id].cited_by_count == len(arxiv_id)


def test_a_list_answer_is_refused_as_a_whole_when_it_cannot_be_trusted() -> None:
    with pytest.raises(AnswerUnusable, match="not asked"):
        parse_list(answer(work("2106.09685"), work("2101.00001")), ["2106.09685"])
    with pytest.raises(AnswerUnusable, match="without a DOI"):
        parse_list(answer(work("2106.09685", doi=None)), ["2106.09685"])
    with pytest.raises(AnswerUnusable, match="incomplete"):
        parse_list(answer(work("2106.09685"), count=3), ["2106.09685", "2106.00001"])
    for body in (b"<html>", b'{"results": {}}', b"[]", b'{"meta": {}, "results": [NaN]}'):
        with pytest.raises(AnswerUnusable):
            parse_list(body, ["2106.09685"])


def test_two_works_for_one_doi_keep_the_one_cited_most() -> None:
    values = parse_list(
        answer(work("2106.09685", id="https://openalex.org/W1", cited_by_count=3),
               work("2106.09685", id="https://openalex.org/W2", cited_by_count=30)),
        ["2106.09685"],
    )  # fmt: skip
    assert values["2106.09685"].work_id == "W2"


def test_the_preprint_itself_has_no_published_version() -> None:
    value = parse_work(work("2106.09685"), "2106.09685")
    assert value == OpenAlexWork(
        status="ok",
        work_id=value.work_id,
        cited_by_count=12,
        counts_by_year=[{"year": 2022, "cited_by_count": 7}, {"year": 2021, "cited_by_count": 5}],
        published_version=None,
        is_oa=True,
        primary_topic="Topic A",
    )


ON_ARXIV = {"landing_page_url": "http://arxiv.org/abs/2106.09685v2", "pdf_url": None,
            "source": ARXIV}  # fmt: skip
NATURE = {"id": "https://openalex.org/S137773608", "display_name": "Nature", "type": "journal"}


def test_a_merged_preprint_answers_its_journal_version() -> None:
    journal = {"id": "https://openalex.org/S137773608", "display_name": "Nature", "type": "journal"}
    body = json.dumps(
        work("2106.09685", doi="https://doi.org/10.1038/S41586-021-03819-2", publication_year=2022,
             primary_location={"source": journal}, locations=[{"source": journal}, ON_ARXIV])
    ).encode()  # fmt: skip
    value = parse_single(body, "2106.09685")
    assert value.status == "ok"
    assert value.published_version == {
        "doi": "10.1038/s41586-021-03819-2", "venue": "Nature", "year": 2022, "type": "journal",
    }  # fmt: skip


@pytest.mark.parametrize(
    "over",
    [
        {"doi": "https://doi.org/10.1038/s41586-021-03819-2"},  # a journal work, nothing on arXiv
        {"doi": None},
        {
            "doi": "https://doi.org/10.1038/x",
            "locations": [{"landing_page_url": "https://arxiv.org/abs/2101.00001"}],
        },
        {
            "doi": "https://doi.org/10.1038/x",
            "locations": [{"pdf_url": "https://example.org/abs/2106.09685"}],
        },
        {
            "doi": "https://doi.org/10.1038/x",
            "locations": {"landing_page_url": "https://arxiv.org/abs/2106.09685"},
        },
        {"doi": "https://doi.org/10.1038/x", "locations": [None, {"landing_page_url": 7}]},
    ],
)
def test_a_single_lookup_answering_a_work_not_shown_to_be_the_paper_is_refused(
    over: dict[str, Any],
) -> None:
    body = json.dumps(work("2106.09685", primary_location={"source": NATURE}) | over).encode()
    with pytest.raises(AnswerUnusable, match=r"not shown to be 2106\.09685"):
        parse_single(body, "2106.09685")


@pytest.mark.parametrize(
    "location",
    [
        {"landing_page_url": "https://arxiv.org/abs/2106.09685"},
        {"landing_page_url": "http://arxiv.org/abs/2106.09685v3", "pdf_url": None},
        {"landing_page_url": None, "pdf_url": "https://arxiv.org/pdf/2106.09685v1.pdf"},
    ],
)
def test_a_merged_work_listing_the_papers_arxiv_page_is_accepted(location: dict[str, Any]) -> None:
    journal = work("2106.09685", doi="https://doi.org/10.1038/x", locations=[{}, location],
                   primary_location={"source": NATURE})  # fmt: skip
    value = parse_single(json.dumps(journal).encode(), "2106.09685v2")
    assert (value.status, value.published_version and value.published_version["doi"]) == (
        "ok", "10.1038/x",
    )  # fmt: skip


def test_a_single_lookup_answering_another_preprint_is_refused() -> None:
    with pytest.raises(AnswerUnusable, match=r"not shown to be 2106\.09685"):
        parse_single(json.dumps(work("2101.00001")).encode(), "2106.09685")
    with pytest.raises(AnswerUnusable):
        parse_single(b"[]", "2106.09685")
    assert parse_single(json.dumps(work("2106.09685")).encode(), "2106.09685v2").status == "ok"


def test_the_arxiv_doi_at_another_venue_is_a_published_version_without_doi() -> None:
    conference = {"display_name": "NeurIPS", "type": "conference"}
    value = parse_work(work("2106.09685", primary_location={"source": conference}), "2106.09685")
    assert value.published_version == {
        "doi": None, "venue": "NeurIPS", "year": 2021, "type": "conference",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("cited_by_count", -1),
        ("cited_by_count", INT64_MAX + 1),
        ("cited_by_count", True),
        ("cited_by_count", 1.5),
        ("counts_by_year", [{"year": 999, "cited_by_count": 1}]),
        ("counts_by_year", [{"year": 2021, "cited_by_count": -3}]),
        ("counts_by_year", [{"cited_by_count": 3}]),
        ("counts_by_year", {"2021": 3}),
        ("publication_year", 10000),
        ("open_access", {"is_oa": "yes"}),
        ("primary_topic", "Topic A"),
        ("id", "https://openalex.org/A123"),
    ],
)
def test_one_odd_work_costs_only_its_paper(field: str, bad: object) -> None:
    journal = {"display_name": "J", "type": "journal"}
    odd = work("2106.09685", **{field: bad}, primary_location={"source": journal})
    values = parse_list(answer(odd, work("2105.14103")), ["2106.09685", "2105.14103"])
    assert values["2106.09685"].status == "error"
    assert values["2106.09685"].error and values["2106.09685"].error.startswith(
        "unusable OpenAlex work: "
    )
    assert values["2105.14103"].status == "ok"


def test_counts_at_the_edges_of_their_ranges_are_kept() -> None:
    edge = work("2106.09685", cited_by_count=INT64_MAX,
                counts_by_year=[{"year": 1000, "cited_by_count": 0}, {"year": 9999, "cited_by_count": INT64_MAX}])  # fmt: skip
    value = parse_work(edge, "2106.09685")
    assert (value.status, value.cited_by_count) == ("ok", INT64_MAX)
    assert [p["year"] for p in value.counts_by_year] == [1000, 9999]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip
FIELD_NAMES = st.sampled_from(
    ["id", "doi", "publication_year", "cited_by_count", "counts_by_year", "primary_location",
     "open_access", "primary_topic"]
)  # fmt: skip


@settings(max_examples=200)
@given(st.dictionaries(FIELD_NAMES, JSON, max_size=8))
def test_any_shape_of_work_is_ok_or_one_error_never_a_crash(fields: dict[str, Any]) -> None:
    value = parse_work(work("2106.09685") | fields, "2106.09685")
    assert value.status in ("ok", "error")
    if value.status == "ok":
        assert value.cited_by_count is None or 0 <= value.cited_by_count <= INT64_MAX
        assert all(1000 <= p["year"] <= 9999 for p in value.counts_by_year)
    else:
        assert value.work_id is None and value.error


# --- the service ------------------------------------------------------------------------------
def _service(**settings: Any) -> OpenAlex:
    return OpenAlex(project_settings(**settings))


def test_requests_carry_the_key_which_no_message_shows() -> None:
    service = _service(OPENALEX_API_KEY="s3cr3t", OPENALEX_URL="https://api.openalex.org")
    listed = service.build_request(["2106.09685", "2105.14103"], {})
    single = service.lookup_request("2106.09685")
    assert listed.url.startswith(
        "https://api.openalex.org/works?filter=doi:10.48550/arXiv.2106.09685%7C10.48550/arXiv."
    )
    assert listed.url.endswith("&api_key=s3cr3t")
    assert single.url == (
        f"https://api.openalex.org/works/doi:10.48550/arXiv.2106.09685?select={LOOKUP_FIELDS}"
        "&api_key=s3cr3t"
    )
    assert single.meta["lookup"] is True and listed.meta["lookup"] is False
    for url in (listed.url, single.url):
        assert "s3cr3t" not in short_url(url) and "api_key=***" in short_url(url, 1000)
        assert "s3cr3t" not in failure_text(TimeoutError(f"Getting {url} took longer than 60 s"))
        assert "s3cr3t" not in redact(f"<GET {url}>")
    assert redact_url_secrets("http://x/?a=1&api_key=k&b=2") == "http://x/?a=1&api_key=***&b=2"
    assert redact_url_secrets("http://x/?apikey=k") == "http://x/?apikey=***"


def test_no_key_means_no_key_parameter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENALEX_API_KEY", raising=False)
    assert "api_key" not in _service().build_request(["2106.09685"], {}).url
    monkeypatch.setenv("OPENALEX_API_KEY", "from-env")
    assert _service().build_request(["2106.09685"], {}).url.endswith("&api_key=from-env")


def test_batch_size_is_capped_by_what_openalex_allows() -> None:
    assert _service().batch_size == 50
    assert _service(OPENALEX_BATCH_SIZE=10).batch_size == 10
    assert OpenAlex.settings_problems(project_settings(OPENALEX_BATCH_SIZE=51)) == [
        "OPENALEX_BATCH_SIZE must be at most 50, not 51"
    ]
    politeness = _service().politeness
    assert (politeness.concurrency, politeness.delay) == (1, 0.1)
    assert politeness.quota_codes == {429} and politeness.throttle_codes == {403}


NOW = datetime(2026, 12, 6, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("arxiv_id", "days"),
    [
        ("2612.00001", 1),  # this month: daily
        ("2611.00001", 1),  # 35 days from the 1st of its month: still daily
        ("2610.00001", 7),
        ("2606.00001", 7),  # first year: weekly
        ("2406.00001", 14),  # first three years: every two weeks
        ("2106.09685", 30),  # older: STATE_TTL_DAYS openalex/ok, monthly
        ("hep-th/9901001", 30),
    ],
)
def test_citation_values_go_stale_by_the_papers_age(arxiv_id: str, days: float) -> None:
    ok_oa, ok_s2 = OpenAlexWork(status="ok"), Impact(status="ok")
    assert _service().ttl(ok_oa, NOW, arxiv_id) == days * DAY
    assert SemanticScholar(project_settings()).ttl(ok_s2, NOW, arxiv_id) == days * DAY
    # Unknown papers are asked again after a week, whatever their age.
    assert _service().ttl(OpenAlexWork(status="not_found"), NOW, arxiv_id) == 7 * DAY
    assert _service().ttl(OpenAlexWork(status="error"), NOW, arxiv_id) == 0


def test_observations_are_counts_only() -> None:
    value = OpenAlexWork(status="ok", cited_by_count=5, published_version={"doi": "10.1/x"})
    assert _service().observation(value, "2026-12-06T00:00:00.000Z") == {
        "observed_at": "2026-12-06T00:00:00.000Z", "cited_by_count": 5,
    }  # fmt: skip
    assert _service().observation(OpenAlexWork(status="not_found"), "t") is None
    # A new published version is a change; counts and their history are not.
    assert "published_version" in _service().comparable(value)
    assert not {"cited_by_count", "counts_by_year", "history"} & set(_service().comparable(value))
    s2 = SemanticScholar(project_settings())
    point = s2.observation(Impact(status="ok", citation_count=9, influential_citation_count=2), "t")
    assert point == {"observed_at": "t", "citation_count": 9, "influential_citation_count": 2}


@pytest.mark.parametrize(
    ("stored", "message"),
    [
        (
            {"counts_by_year": [{"year": 10**12, "cited_by_count": 1}]},
            "counts_by_year\\[\\].year 1000000000000",
        ),
        (
            {"counts_by_year": [{"year": 2021, "cited_by_count": 2**63}]},
            "counts_by_year\\[\\].cited_by_count 9223372036854775808",
        ),
        (
            {"counts_by_year": [{"year": 2021, "cited_by_count": True}]},
            "cited_by_count is not an integer",
        ),
        (
            {"published_version": {"doi": None, "venue": "J", "year": 99999, "type": None}},
            "published_version.year 99999",
        ),
    ],
)
def test_a_stored_value_with_a_nested_integer_out_of_range_cannot_be_decoded(
    stored: dict[str, Any], message: str
) -> None:
    """Read back, a stored work is checked as an answer is: else it is fetched again."""
    service = _service()
    good = {"status": "ok", "counts_by_year": [{"year": 9999, "cited_by_count": INT64_MAX}],
            "published_version": {"doi": None, "venue": "J", "year": 1000, "type": None}}  # fmt: skip
    assert service.decode(good).counts_by_year == good["counts_by_year"]
    with pytest.raises(ValueError, match=message):
        service.decode({"status": "ok"} | stored)
