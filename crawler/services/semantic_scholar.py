"""Semantic Scholar's paper batch endpoint: citation signals for up to 500 arXiv papers at once.

One answer covers many papers, so only a broken answer as a whole is refused
(:class:`ImpactUnusable`); one odd element (a count past int64, a year not of four digits, an
answer about another paper) costs just its own paper an ``error``. A 400 for a batch of several
papers (one ID the endpoint refuses) splits the batch, so only that paper gets the error.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Mapping
from datetime import date
from typing import Any, ClassVar
from urllib.parse import urlencode

from scrapy import Request
from scrapy.http import Response
from scrapy.settings import BaseSettings

from crawler.downloader.contract import AnswerUnusable, Politeness, service_meta
from crawler.items import DigestEntry, Impact
from crawler.parsing.arxiv_ids import MalformedArxivId, canonical, parse_arxiv_id
from crawler.parsing.text import refuse_constant, replace_surrogates, shorten
from crawler.services.base import (
    BatchRefused,
    PaperAgeTTL,
    Service,
    age_table_problems,
    checked_int,
)

# --- answers ---

# What the crawler asks for, in the order of the documentation.
FIELDS = (
    "externalIds,venue,year,citationCount,influentialCitationCount,referenceCount,"
    "publicationDate,openAccessPdf,tldr"
)
MAX_BATCH = 500  # the endpoint refuses larger batches with 400

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class ImpactUnusable(ValueError):
    """The answer as a whole cannot be used (not JSON, not a list, wrong length): ask again."""


class _WrongShape(ValueError):
    """One element is not shaped like a paper: an error for that paper only."""


def batch_ids(arxiv_ids: list[str]) -> list[str]:
    """The IDs a batch asks for: without version, each once, in order.

    Raises :class:`~crawler.parsing.arxiv_ids.MalformedArxivId` for an ID arXiv would not know.
    :func:`batch_body` and :func:`parse_batch` both use it, so they agree on the answer's length.
    """
    seen: dict[str, None] = {}
    for arxiv_id in arxiv_ids:
        seen.setdefault(parse_arxiv_id(arxiv_id).base, None)
    return list(seen)


def batch_body(arxiv_ids: list[str]) -> bytes:
    """The POST body ``{"ids": ["ARXIV:<id>", …]}``; raises ValueError for an empty or too large
    batch, or a malformed ID."""
    ids = batch_ids(arxiv_ids)
    if not 1 <= len(ids) <= MAX_BATCH:
        raise ValueError(f"a batch holds 1 to {MAX_BATCH} IDs, not {len(ids)}")
    return json.dumps({"ids": [f"ARXIV:{canonical(i)}" for i in ids]}).encode()


def parse_batch(body: bytes, arxiv_ids: list[str]) -> dict[str, Impact]:
    """A 200 answer -> ``{base arXiv ID: Impact}`` for the IDs :func:`batch_body` was given.

    Keys are IDs without version (as :func:`batch_ids` makes them). Raises
    :class:`ImpactUnusable` when the answer as a whole cannot be used.
    """
    asked = batch_ids(arxiv_ids)
    try:
        data = json.loads(body, parse_constant=refuse_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, NaN
        raise ImpactUnusable(f"answer is not JSON ({shorten(str(exc))})") from exc
    if not isinstance(data, list):
        raise ImpactUnusable(f"answer is not a JSON list ({parse_error_body(body)})")
    if len(data) != len(asked):
        raise ImpactUnusable(f"answer has {len(data)} elements for {len(asked)} IDs")
    return {
        arxiv_id: _impact(element, arxiv_id) for arxiv_id, element in zip(asked, data, strict=True)
    }


def parse_error_body(body: bytes) -> str:
    """A short message from an error answer (``{"error": …}``, ``{"message": …, "code": …}``
    or plain text), for logs and a record's ``error``."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        data = None
    if isinstance(data, dict):
        for key in ("error", "message"):
            value = data.get(key)
            if isinstance(value, str) and value.strip():
                code = data.get("code")
                has_code = isinstance(code, str | int) and not isinstance(code, bool)
                return shorten(f"{value} (code {code})" if has_code else value)
    return shorten(body.decode("utf-8", "replace")) or "empty answer"


def _impact(element: object, arxiv_id: str) -> Impact:
    if element is None:
        return Impact(status="not_found", error=f"Semantic Scholar does not know arXiv:{arxiv_id}")
    if not isinstance(element, dict):
        return Impact(status="error", error="answer element is not an object")
    try:
        return _paper(element, arxiv_id)
    except _WrongShape as exc:
        return Impact(status="error", error=f"unusable answer element: {exc}")


def _paper(data: dict[str, Any], arxiv_id: str) -> Impact:
    paper_id = data.get("paperId")
    if not isinstance(paper_id, str) or not paper_id:
        raise _WrongShape("paperId is missing or not a string")
    _check_same_paper(data.get("externalIds"), arxiv_id)
    return Impact(
        status="ok",
        semantic_scholar_id=replace_surrogates(paper_id),
        citation_count=_count(data, "citationCount"),
        influential_citation_count=_count(data, "influentialCitationCount"),
        reference_count=_count(data, "referenceCount"),
        venue=_text(data, "venue"),
        publication_year=_year(data.get("year")),
        publication_date=_date(data.get("publicationDate")),
        tldr=_text(_object(data, "tldr"), "text", "tldr."),
        open_access_pdf=_text(_object(data, "openAccessPdf"), "url", "openAccessPdf."),
    )


def _check_same_paper(external_ids: object, arxiv_id: str) -> None:
    """An answer whose own arXiv ID is another one is about another paper."""
    if external_ids is None:
        return
    if not isinstance(external_ids, dict):
        raise _WrongShape("externalIds is not an object")
    theirs = external_ids.get("ArXiv")
    if theirs is None:
        return
    if not isinstance(theirs, str):
        raise _WrongShape("externalIds.ArXiv is not a string")
    try:
        base = parse_arxiv_id(theirs).base
    except MalformedArxivId:
        base = theirs
    if canonical(base) != canonical(arxiv_id):
        raise _WrongShape(f"answer is about arXiv:{shorten(theirs, 40)}, not arXiv:{arxiv_id}")


def _object(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _WrongShape(f"{key} is not an object")
    return value


def _text(data: dict[str, Any], key: str, where: str = "") -> str | None:
    """A string field; empty counts as absent (S2 sends ``"url": ""`` for closed papers)."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _WrongShape(f"{where}{key} is not a string")
    return replace_surrogates(value) or None


def _count(data: dict[str, Any], key: str) -> int | None:
    return _int(data.get(key), key, "count")


def _year(value: object) -> int | None:
    return _int(value, "year", "year")


def _int(value: object, name: str, kind: str) -> int | None:
    try:
        return checked_int(value, name, kind)
    except ValueError as exc:
        raise _WrongShape(str(exc)) from None


def _date(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise _WrongShape("publicationDate is not YYYY-MM-DD")
    try:
        date.fromisoformat(value)
    except ValueError as exc:
        raise _WrongShape("publicationDate is not a calendar date") from exc
    return value


# --- the service -----------------------------------------------------------------------------
class SemanticScholar(Service[Impact]):
    """Citation signals, up to ``S2_BATCH_SIZE`` papers per POST, one request at a time."""

    name = "semantic_scholar"
    label = "Semantic Scholar"
    kind = "impact"
    value_type = Impact
    url_setting = "SEMANTIC_SCHOLAR_URL"
    enabled_setting = "SEMANTIC_SCHOLAR"
    refresh_names = ("impact", "semantic_scholar")
    record_block = "semantic_scholar"
    # ok: by the paper's age (PAPER_TTL_BY_AGE), past it 30 days.
    ttl_days: ClassVar[dict[str, float]] = {"ok": 30, "not_found": 7}
    judge_per_answer = True
    # Venue, year, TLDR, open access are changes; counts move daily and are the history.
    volatile = ("citation_count", "influential_citation_count", "reference_count", "history")
    history_max_setting = "PAPER_HISTORY_MAX"
    integers: ClassVar[dict[str, str]] = {
        "citation_count": "count", "influential_citation_count": "count",
        "reference_count": "count", "publication_year": "year",
    }  # fmt: skip
    numbers: ClassVar[dict[str, tuple[type, float]]] = {
        "S2_BATCH_SIZE": (int, 1), "S2_BATCH_WAIT": (float, 0), "S2_DELAY": (float, 0),
        "PAPER_HISTORY_MAX": (int, 1),
    }  # fmt: skip

    def __init__(self, settings: BaseSettings) -> None:
        super().__init__(settings)
        delay = settings.getfloat("S2_DELAY")
        self.batch_size = min(settings.getint("S2_BATCH_SIZE"), MAX_BATCH)
        self.batch_wait = settings.getfloat("S2_BATCH_WAIT")
        # Keyless clients share a pool that is often throttled: slow down like for arXiv.
        self.politeness = Politeness(
            concurrency=1,
            delay=delay,
            hold_after_answer=delay,
            slow_down_on_throttle=True,
            slow_down_max=60.0,
            max_answer_bytes=16 * 1024 * 1024,  # 500 papers with TLDRs: ~1 MB
        )
        self.api_key = settings.get("SEMANTIC_SCHOLAR_API_KEY") or os.environ.get("S2_API_KEY")
        self.by_age = PaperAgeTTL(settings) if self.enabled(settings) else None

    @classmethod
    def settings_problems(cls, settings: BaseSettings) -> list[str]:
        problems = super().settings_problems(settings)
        size = settings.get("S2_BATCH_SIZE")
        if not problems and settings.getint("S2_BATCH_SIZE") > MAX_BATCH:
            problems.append(f"S2_BATCH_SIZE must be at most {MAX_BATCH}, not {size}")
        return problems + age_table_problems(settings, "PAPER_TTL_BY_AGE")

    def keys(self, entry: DigestEntry) -> list[str]:
        return [entry.arxiv_id] if entry.arxiv_id else []

    def refused_key(self, key: str) -> Impact | None:
        try:
            parse_arxiv_id(key)
        except MalformedArxivId as exc:
            return Impact(status="error", error=str(exc))
        return None

    def build_request(self, keys: list[str], hints: Mapping[str, str | None]) -> Request:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["x-api-key"] = self.api_key
        return Request(
            f"{self.url}?{urlencode({'fields': FIELDS})}",
            method="POST",
            body=batch_body(keys),
            headers=headers,
            meta=service_meta(self.name, self.politeness, self.check, keys=keys),
            dont_filter=True,
        )

    def parse(self, request: Request, response: Response) -> dict[str, Impact]:
        try:
            return parse_batch(response.body, request.meta["keys"])
        except ImpactUnusable as exc:
            raise AnswerUnusable(str(exc)) from exc

    def about_other(self, keys: list[str], parsed: dict[str, Impact]) -> str | None:
        """Checked while parsing: the answer is a list in request order (its length must match),
        and an element whose ``externalIds.ArXiv`` names another paper is an error for that
        paper alone (:func:`parse_batch`), as one odd element must not cost the batch."""
        return None

    def values(self, keys: list[str], response: Response) -> dict[str, Impact]:
        if response.status == 400:
            # One ID the endpoint refuses fails the whole batch: the runner splits it (like
            # arXiv's 400); refused alone, it is that paper's error.
            raise BatchRefused(parse_error_body(response.body))
        if response.status != 200:
            said = f"Semantic Scholar answered HTTP {response.status}"
            return {k: self.error(f"{said}: {parse_error_body(response.body)}") for k in keys}
        try:
            return self.parsed(response)  # type: ignore[no-any-return]
        except AnswerUnusable as exc:
            return {key: self.error(f"Semantic Scholar answer unusable: {exc}") for key in keys}

    def attach(self, entry: DigestEntry, values: Mapping[str, Impact]) -> None:
        if entry.arxiv_id is None:
            entry.impact = Impact(status="error", error=entry.arxiv_problem or "no arXiv ID")
        else:
            entry.impact = values[entry.arxiv_id]

    def observation(self, value: Impact, observed_at: str) -> dict[str, Any] | None:
        if value.status != "ok":
            return None
        return {
            "observed_at": observed_at,
            "citation_count": value.citation_count,
            "influential_citation_count": value.influential_citation_count,
        }

    def with_history(self, value: Impact, history: list[dict[str, Any]]) -> Impact:
        return dataclasses.replace(value, history=history)

    def ttl(self, value: Impact, now: float, key: str = "") -> float:
        """Young papers gather citations fast, old ones slowly (``PAPER_TTL_BY_AGE``)."""
        if value.status == "ok" and self.by_age is not None:
            by_age = self.by_age.ttl(key, now)
            if by_age is not None:
                return by_age
        return super().ttl(value, now, key)

    def ttl_steady_until(self, value: Impact, now: float, key: str = "") -> float:
        if self.by_age is None:
            return math.inf
        return self.by_age.steady_until(value.status, key, now)
