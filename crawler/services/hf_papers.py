"""Hugging Face paper pages (``GET {HF_PAPERS_URL}/{arxiv_id}``): upvotes, comments, code links.

One request per distinct paper (there is no batch endpoint). 404 means the Hub has no page for
the paper (``not_indexed``), a negative answer believed only once the service has shown it
answers correctly: a mistyped URL answers 404 for everything. Every field is optional but a
field of the wrong type, a count out of range, or an answer about another paper makes the answer
unusable (retried, never stored). The Hub paces clients with fixed 5-minute windows announced
in ``RateLimit`` headers; the retry middleware follows them for every service.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote

from scrapy import Request
from scrapy.http import Response
from scrapy.settings import BaseSettings

from crawler.downloader.contract import AnswerUnusable, Politeness, service_meta
from crawler.items import DigestEntry, HfPaper
from crawler.parsing.arxiv_ids import MalformedArxivId, canonical, parse_arxiv_id
from crawler.parsing.text import refuse_constant, replace_surrogates, shorten, utc_ms
from crawler.services.base import PaperAgeTTL, Service, age_table_problems, checked_int


class _Unusable(ValueError):
    """The answer cannot be used as it is; asked again."""


# --- answers ---------------------------------------------------------------------------------
def parse_paper(body: bytes, arxiv_id: str, fetched_at: str | None = None) -> HfPaper:
    """A 200 answer for ``arxiv_id`` -> :class:`HfPaper`; ``AnswerUnusable`` when it is not a
    paper page of the right shape about that paper."""
    try:
        data = json.loads(body, parse_constant=refuse_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, NaN
        raise AnswerUnusable(f"answer is not JSON ({shorten(str(exc))})") from exc
    if not isinstance(data, dict):
        raise AnswerUnusable("answer is not a JSON object")
    try:
        return _paper(data, arxiv_id, fetched_at)
    except _Unusable as exc:
        raise AnswerUnusable(str(exc)) from exc


def _paper(data: dict[str, Any], arxiv_id: str, fetched_at: str | None) -> HfPaper:
    answered = data.get("id")
    if not isinstance(answered, str) or canonical(answered) != canonical(arxiv_id):
        named = shorten(repr(answered), 40)
        raise _Unusable(f"answer is about {named}, not arXiv:{arxiv_id}")
    return HfPaper(
        status="ok",
        fetched_at=fetched_at,
        upvotes=_count(data, "upvotes"),
        comments=_count(data, "numComments"),
        github_repo=_url(data, "githubRepo"),
        github_stars=_count(data, "githubStars"),
        project_page=_url(data, "projectPage"),
        ai_summary=_text(data, "ai_summary"),
        ai_keywords=_keywords(data.get("ai_keywords")),
        published_at=_time(data, "publishedAt"),
        submitted_on_daily_at=_time(data, "submittedOnDailyAt"),
    )


def _text(data: dict[str, Any], key: str) -> str | None:
    """A string field; empty counts as absent."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Unusable(f"{key} is not a string")
    return replace_surrogates(value).strip() or None


def _url(data: dict[str, Any], key: str) -> str | None:
    value = _text(data, key)
    if value is not None and not value.lower().startswith(("http://", "https://")):
        raise _Unusable(f"{key} is not an http(s) URL")
    return value


def _count(data: dict[str, Any], key: str) -> int | None:
    try:
        return checked_int(data.get(key), key, "count")
    except ValueError as exc:
        raise _Unusable(str(exc)) from exc


def _keywords(value: object) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
        raise _Unusable("ai_keywords is not a list of strings")
    return [replace_surrogates(k) for k in value]


def _time(data: dict[str, Any], key: str) -> str | None:
    """ISO 8601 with a zone -> UTC with milliseconds; a time without zone is refused rather
    than guessed."""
    text = _text(data, key)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            raise ValueError("no time zone")
        return utc_ms(moment)
    except (ValueError, OverflowError) as exc:
        raise _Unusable(f"{key} is not an ISO 8601 time with zone") from exc


def error_message(body: bytes) -> str:
    """The ``error`` text of an error answer, or the body's start."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str) and data["error"].strip():
        return shorten(replace_surrogates(data["error"]))
    return shorten(body.decode("utf-8", "replace")) or "empty answer"


# --- the service -----------------------------------------------------------------------------
class HfPapers(Service[HfPaper]):
    """One GET per distinct paper, ``HF_CONCURRENCY`` at once, paced by the RateLimit headers."""

    name = "hf_papers"
    label = "Hugging Face"
    kind = "hf"
    record_block = "hf"
    value_type = HfPaper
    url_setting = "HF_PAPERS_URL"
    enabled_setting = "HF_PAPERS"
    refresh_names = ("hf",)
    # ok: past the last PAPER_TTL_BY_AGE row; a page may appear for a paper any time.
    ttl_days: ClassVar[dict[str, float]] = {"ok": 30, "not_indexed": 7}
    downgrades = frozenset({"not_indexed"})
    # A new code link or project page, or new publication times, are changes; counts, when
    # they were taken, and the AI summary and keywords (a model regenerates them) are not.
    volatile = ("upvotes", "comments", "github_stars", "ai_summary", "ai_keywords", "history")
    history_max_setting = "PAPER_HISTORY_MAX"
    integers: ClassVar[dict[str, str]] = {
        "upvotes": "count", "comments": "count", "github_stars": "count",
    }  # fmt: skip
    numbers: ClassVar[dict[str, tuple[type, float]]] = {
        "HF_CONCURRENCY": (int, 1), "PAPER_HISTORY_MAX": (int, 1),
    }  # fmt: skip

    def __init__(self, settings: BaseSettings) -> None:
        super().__init__(settings)
        self.politeness = Politeness(
            concurrency=settings.getint("HF_CONCURRENCY"),
            max_answer_bytes=1024 * 1024,  # a page is a few KB
        )
        self.token = settings.get("HF_TOKEN") or os.environ.get("HF_TOKEN") or ""
        # Fixed 5-minute windows: 500 requests anonymous, 1,000 with a free account's token.
        self.expected_window = (1000 if self.token else 500, 300.0)
        enabled = self.enabled(settings)
        self.by_age = PaperAgeTTL(settings) if enabled else None

    @classmethod
    def settings_problems(cls, settings: BaseSettings) -> list[str]:
        return super().settings_problems(settings) + age_table_problems(
            settings, "PAPER_TTL_BY_AGE"
        )

    def keys(self, entry: DigestEntry) -> list[str]:
        return [entry.arxiv_id] if entry.arxiv_id else []

    def refused_key(self, key: str) -> HfPaper | None:
        try:
            parse_arxiv_id(key)
        except MalformedArxivId as exc:
            return HfPaper(status="error", error=str(exc))
        return None

    def build_request(self, keys: list[str], hints: Mapping[str, str | None]) -> Request:
        (arxiv_id,) = keys
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return Request(
            f"{self.url.rstrip('/')}/{quote(canonical(arxiv_id), safe='/')}",
            headers=headers,
            meta=service_meta(self.name, self.politeness, self.check, keys=keys),
            dont_filter=True,
        )

    def parse(self, request: Request, response: Response) -> HfPaper:
        return parse_paper(response.body, request.meta["keys"][0])

    def about_other(self, keys: list[str], parsed: HfPaper) -> str | None:
        """Checked while parsing: the page's ``id`` must be the arXiv ID asked
        (:func:`parse_paper`), since the value itself no longer carries it."""
        return None

    def values(self, keys: list[str], response: Response) -> dict[str, HfPaper]:
        (key,) = keys
        said = f"Hugging Face answered HTTP {response.status}"
        if response.status == 404:
            return {key: HfPaper(status="not_indexed", error=f"{said}: no page for arXiv:{key}")}
        if response.status != 200:
            return {key: self.error(f"{said}: {error_message(response.body)}")}
        try:
            return {key: self.parsed(response)}
        except AnswerUnusable as exc:
            return {key: self.error(f"Hugging Face answer unusable: {exc}")}

    def attach(self, entry: DigestEntry, values: Mapping[str, HfPaper]) -> None:
        if entry.arxiv_id is None:
            entry.hf = HfPaper(status="error", error=entry.arxiv_problem or "no arXiv ID")
        else:
            entry.hf = values[entry.arxiv_id]

    def observation(self, value: HfPaper, observed_at: str) -> dict[str, Any] | None:
        if value.status != "ok":
            return None
        return {
            "observed_at": observed_at,
            "upvotes": value.upvotes,
            "github_stars": value.github_stars,
        }

    def with_history(self, value: HfPaper, history: list[dict[str, Any]]) -> HfPaper:
        return dataclasses.replace(value, history=history)

    def ttl(self, value: HfPaper, now: float, key: str = "") -> float:
        """Young papers move fast, old ones slowly (``PAPER_TTL_BY_AGE``, by the ID's month);
        past the last row, and for other statuses, the per-status TTL."""
        if value.status == "ok" and self.by_age is not None:
            by_age = self.by_age.ttl(key, now)
            if by_age is not None:
                return by_age
        return super().ttl(value, now, key)

    def ttl_steady_until(self, value: HfPaper, now: float, key: str = "") -> float:
        if self.by_age is None:
            return math.inf
        return self.by_age.steady_until(value.status, key, now)
