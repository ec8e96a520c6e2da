"""Hugging Face paper pages parsed alone, and the paper-age TTL helpers (issue 22)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crawler.downloader.contract import AnswerUnusable
from crawler.items import HfPaper
from crawler.services.base import DAY, paper_age_days, ttl_for_age
from crawler.services.hf_papers import HfPapers, parse_paper
from tests.helpers import project_settings

PAGE: dict[str, Any] = {
    "id": "2106.09685",
    "title": "LoRA: Low-Rank Adaptation of Large Language Models",
    "authors": [{"_id": "1", "name": "Edward J. Hu", "hidden": False}],
    "publishedAt": "2021-06-17T17:37:18.000Z",
    "submittedOnDailyAt": "2023-05-02T08:01:02.345+02:00",
    "upvotes": 41,
    "numComments": 3,
    "githubRepo": "https://github.com/microsoft/LoRA",
    "githubStars": 10234,
    "projectPage": "",
    "ai_summary": "Low-rank adapters match fine-tuning.",
    "ai_keywords": ["LoRA", "adapters"],
    "discussionId": "abc",
}


def _body(**changes: Any) -> bytes:
    page = {k: v for k, v in (PAGE | changes).items() if v is not ...}
    return json.dumps(page).encode()


def test_a_page_maps_to_the_hf_block() -> None:
    assert parse_paper(_body(), "2106.09685") == HfPaper(
        status="ok",
        upvotes=41,
        comments=3,
        github_repo="https://github.com/microsoft/LoRA",
        github_stars=10234,
        project_page=None,  # empty is absent
        ai_summary="Low-rank adapters match fine-tuning.",
        ai_keywords=["LoRA", "adapters"],
        published_at="2021-06-17T17:37:18.000Z",
        submitted_on_daily_at="2023-05-02T06:01:02.345Z",  # to UTC
    )


def test_every_field_but_the_id_is_optional() -> None:
    assert parse_paper(b'{"id": "2106.09685"}', "2106.09685") == HfPaper(status="ok")


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"id": "1706.03762"}, "answer is about '1706.03762', not arXiv:2106.09685"),
        ({"id": ...}, "answer is about None, not arXiv:2106.09685"),
        ({"upvotes": "41"}, "upvotes is not an integer"),
        ({"upvotes": True}, "upvotes is not an integer"),
        ({"githubStars": -1}, "githubStars -1 is out of range (0..9223372036854775807)"),
        (
            {"numComments": 2**63},
            "numComments 9223372036854775808 is out of range (0..9223372036854775807)",
        ),
        ({"githubRepo": "github.com/x/y"}, "githubRepo is not an http(s) URL"),
        ({"ai_keywords": "LoRA"}, "ai_keywords is not a list of strings"),
        ({"ai_keywords": ["LoRA", 3]}, "ai_keywords is not a list of strings"),
        ({"publishedAt": "2021-06-17T17:37:18"}, "publishedAt is not an ISO 8601 time with zone"),
        ({"ai_summary": {"text": "x"}}, "ai_summary is not a string"),
    ],
)
def test_a_field_of_the_wrong_shape_or_another_paper_makes_the_answer_unusable(
    changes: dict[str, Any], why: str
) -> None:
    with pytest.raises(AnswerUnusable) as caught:
        parse_paper(_body(**changes), "2106.09685")
    assert str(caught.value) == why


@pytest.mark.parametrize("body", [b"<html>", b"[]", b'"x"', b"", b'{"id": NaN}'])
def test_what_is_not_a_json_object_is_unusable(body: bytes) -> None:
    with pytest.raises(AnswerUnusable):
        parse_paper(body, "2106.09685")


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
_FIELDS = st.sampled_from(
    ["upvotes", "numComments", "githubRepo", "githubStars", "projectPage", "ai_summary",
     "ai_keywords", "publishedAt", "submittedOnDailyAt"]
)  # fmt: skip


@given(st.dictionaries(_FIELDS, _JSON, max_size=5))
def test_any_shape_is_a_checked_value_or_unusable_never_a_crash(fields: dict[str, Any]) -> None:
    try:
        paper = parse_paper(_body(**fields), "2106.09685")
    except AnswerUnusable:
        return
    for count in (paper.upvotes, paper.comments, paper.github_stars):
        assert count is None or (type(count) is int and 0 <= count <= 2**63 - 1)
    for url in (paper.github_repo, paper.project_page):
        assert url is None or url.lower().startswith(("http://", "https://"))
    assert paper.ai_keywords is None or all(isinstance(k, str) for k in paper.ai_keywords)
    for moment in (paper.published_at, paper.submitted_on_daily_at):
        assert moment is None or (moment.endswith("Z") and len(moment) == 24)


@given(st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1))
def test_counts_up_to_int64_are_kept_exactly(upvotes: int, stars: int) -> None:
    paper = parse_paper(_body(upvotes=upvotes, githubStars=stars), "2106.09685")
    assert (paper.upvotes, paper.github_stars) == (upvotes, stars)


# -- the paper's age and its TTL -----------------------------------------------------------------
NOW = datetime(2026, 12, 6, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("arxiv_id", "days"),
    [
        ("2612.01234", 5.0),  # issued this month
        ("2611.01234", 35.0),
        ("2106.09685", (NOW - datetime(2021, 6, 1, tzinfo=UTC).timestamp()) / DAY),
        ("hep-th/9901001", (NOW - datetime(1999, 1, 1, tzinfo=UTC).timestamp()) / DAY),
        ("math.GT/0309136", (NOW - datetime(2003, 9, 1, tzinfo=UTC).timestamp()) / DAY),
        ("not an id", None),
    ],
)
def test_paper_age_comes_from_the_ids_month(arxiv_id: str, days: float | None) -> None:
    assert paper_age_days(arxiv_id, NOW) == (pytest.approx(days) if days is not None else None)


def test_ttl_for_age_picks_the_first_row_covering_the_age() -> None:
    rows = [(31.0, 1.0), (366.0, 7.0)]
    assert ttl_for_age(rows, 5) == 1 * DAY
    assert ttl_for_age(rows, 31) == 1 * DAY
    assert ttl_for_age(rows, 200) == 7 * DAY
    assert ttl_for_age(rows, 400) is None


def test_hf_values_go_stale_daily_weekly_then_monthly_by_paper_age() -> None:
    service = HfPapers(project_settings())
    ok = HfPaper(status="ok")
    assert service.ttl(ok, NOW, "2612.01234") == 1 * DAY  # first month
    assert service.ttl(ok, NOW, "2606.01234") == 7 * DAY  # first year
    assert service.ttl(ok, NOW, "2106.09685") == 30 * DAY  # older: hf/ok
    assert service.ttl(HfPaper(status="not_indexed"), NOW, "2612.01234") == 7 * DAY
    assert service.ttl(HfPaper(status="error"), NOW, "2612.01234") == 0
    custom = HfPapers(project_settings(PAPER_TTL_BY_AGE="[[10, 2]]", STATE_TTL_DAYS={"hf/ok": 90}))
    assert custom.ttl(ok, NOW, "2612.01234") == 2 * DAY
    assert custom.ttl(ok, NOW, "2606.01234") == 90 * DAY


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("[[30, -1]]", "PAPER_TTL_BY_AGE needs finite numbers of days >= 0"),
        ("[[30]]", "PAPER_TTL_BY_AGE must be a list of [age days, TTL days] pairs"),
        ("nope", "PAPER_TTL_BY_AGE must be a list of [age days, TTL days] pairs"),
    ],
)
def test_a_bad_paper_ttl_table_is_one_line(value: str, problem: str) -> None:
    assert HfPapers.settings_problems(project_settings(PAPER_TTL_BY_AGE=value)) == [problem]


def test_the_request_asks_the_unversioned_id_with_the_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_TOKEN", "from-env")
    service = HfPapers(project_settings(HF_PAPERS_URL="https://hf.test/api/papers/"))
    request = service.build_request(["2106.09685"], {})
    assert request.url == "https://hf.test/api/papers/2106.09685"
    assert request.headers[b"Authorization"] == b"Bearer from-env"
    assert request.meta["download_slot"] == "hf_papers"
    explicit = HfPapers(project_settings(HF_TOKEN="from-setting"))
    assert explicit.build_request(["2106.09685"], {}).headers[b"Authorization"] == (
        b"Bearer from-setting"
    )
    monkeypatch.delenv("HF_TOKEN")
    assert b"Authorization" not in HfPapers(project_settings()).build_request(["1"], {}).headers
