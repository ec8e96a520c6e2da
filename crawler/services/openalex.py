"""OpenAlex: citations over time and the published version of arXiv papers, 50 per request.

A list filter on arXiv DOIs (``/works?filter=doi:A|B|…``) answers up to 50 works, in no order:
each is matched to its paper by DOI, and an answer naming a DOI nobody asked for is refused as
a whole (retried). A preprint that OpenAlex merged into its journal or conference version is
missing from that filter; the runner asks for it alone (``/works/doi:10.48550/arXiv.<id>``, free
of the daily budget), and the merged work answers, or a 301 to it (followed on the same host).
``429`` means the day's budget is spent: no more OpenAlex requests this run (the downloader
honours ``Politeness.quota_codes``); ``403`` is the per-second limit, retried with backoff.
One odd work costs only its own paper an ``error``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

from scrapy import Request
from scrapy.http import Response
from scrapy.settings import BaseSettings

from crawler.downloader.contract import (
    KEEP_ON_REDIRECT,
    AnswerUnusable,
    Politeness,
    service_meta,
)
from crawler.items import DigestEntry, OpenAlexWork
from crawler.parsing.arxiv_ids import MalformedArxivId, canonical, parse_arxiv_id
from crawler.parsing.text import refuse_constant, replace_surrogates, shorten
from crawler.services.base import PaperAgeTTL, Service, age_table_problems, checked_int

# Top-level fields only (OpenAlex's select= takes no nested paths), those the value uses.
FIELDS = (
    "id,doi,publication_year,cited_by_count,counts_by_year,primary_location,open_access,"
    "primary_topic"
)
# A single lookup may answer a merged work under the publisher's DOI: its locations (one per
# copy, the arXiv one among them) are the evidence that it is the paper asked.
LOOKUP_FIELDS = f"{FIELDS},locations"
MAX_BATCH = 50  # OpenAlex's largest page, and the most DOIs one filter may OR together
ARXIV_SOURCE = "https://openalex.org/S4306400194"  # the source "arXiv (Cornell University)"
DOI_PREFIX = "https://doi.org/"
BUDGET_SPENT = "OpenAlex daily budget spent; no more OpenAlex requests this run"

_WORK_ID = re.compile(r"(?:https://openalex\.org/)?(W[0-9]{1,19})")
_ARXIV_URL = re.compile(
    r"https?://(?:www\.|export\.)?arxiv\.org/(?:abs|pdf)/(.+?)(?:v[0-9]+)?(?:\.pdf)?/?", re.I
)


class _WrongShape(ValueError):
    """One work is not shaped like a work: an error for that paper only."""


def arxiv_doi(arxiv_id: str) -> str:
    """The DOI arXiv registered for a paper (no version): ``10.48550/arXiv.2106.09685``."""
    return f"10.48550/arXiv.{canonical(parse_arxiv_id(arxiv_id).base)}"


def doi_key(doi: str) -> str:
    """A DOI as OpenAlex may write it (``https://doi.org/10.48550/arxiv.…``), for matching:
    bare and lower case (DOIs are case-insensitive)."""
    doi = doi.strip()
    if doi.lower().startswith(DOI_PREFIX):
        doi = doi[len(DOI_PREFIX) :]
    return doi.lower()


def list_query(arxiv_ids: list[str]) -> dict[str, str]:
    """The list filter for up to 50 papers (each once); ValueError for more or none."""
    dois = list(dict.fromkeys(arxiv_doi(i) for i in arxiv_ids))
    if not 1 <= len(dois) <= MAX_BATCH:
        raise ValueError(f"a batch holds 1 to {MAX_BATCH} DOIs, not {len(dois)}")
    return {"filter": "doi:" + "|".join(dois), "per-page": str(MAX_BATCH), "select": FIELDS}


# --- answers ---------------------------------------------------------------------------------
def _json(body: bytes) -> Any:
    try:
        return json.loads(body, parse_constant=refuse_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, NaN
        raise AnswerUnusable(f"answer is not JSON ({shorten(str(exc))})") from exc


def parse_list(body: bytes, arxiv_ids: list[str]) -> dict[str, OpenAlexWork]:
    """A list answer -> ``{arXiv ID: value}`` for the papers it names; papers it leaves out
    are absent (each is then looked up alone). Raises ``AnswerUnusable`` for an answer that
    cannot be used as a whole: not ``{"meta", "results": [...]}``, cut short, or naming a DOI
    that was not asked."""
    data = _json(body)
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise AnswerUnusable("answer is not an object with a results list")
    results: list[Any] = data["results"]
    count = data.get("meta", {}).get("count") if isinstance(data.get("meta"), dict) else None
    if isinstance(count, int) and count > len(results) and len(results) < MAX_BATCH:
        raise AnswerUnusable(f"incomplete answer ({len(results)} of {count} works)")
    asked = {doi_key(arxiv_doi(i)): i for i in arxiv_ids}
    found: dict[str, list[dict[str, Any]]] = {}
    for work in results:
        doi = work.get("doi") if isinstance(work, dict) else None
        if not isinstance(doi, str):
            raise AnswerUnusable("a result without a DOI")
        if doi_key(doi) not in asked:
            raise AnswerUnusable(f"answer names a DOI that was not asked ({shorten(doi, 80)})")
        found.setdefault(asked[doi_key(doi)], []).append(work)
    # OpenAlex may hold two works for one DOI: the one cited most is the one people cite.
    return {key: parse_work(max(works, key=_cited), key) for key, works in found.items()}


def _cited(work: dict[str, Any]) -> int:
    count = work.get("cited_by_count")
    return count if isinstance(count, int) and not isinstance(count, bool) else -1


def parse_single(body: bytes, arxiv_id: str) -> OpenAlexWork:
    """The answer of a single lookup: the work itself (the merged version's, with the
    publisher's DOI, for a merged preprint). A work that does not show it is the paper asked
    (its DOI is the arXiv DOI, or a location is the arXiv page) is refused (retried)."""
    data = _json(body)
    if not isinstance(data, dict):
        raise AnswerUnusable("answer is not a JSON object")
    doi = data.get("doi")
    theirs = doi_key(doi) if isinstance(doi, str) else ""
    if theirs != doi_key(arxiv_doi(arxiv_id)) and not _located_on_arxiv(data, arxiv_id):
        named = shorten(theirs, 80) if theirs else "no DOI"
        raise AnswerUnusable(f"answer is not shown to be {arxiv_id} ({named}, no arXiv location)")
    return parse_work(data, arxiv_id)


def _located_on_arxiv(data: dict[str, Any], arxiv_id: str) -> bool:
    """Whether one of the work's locations is the arXiv page or PDF of ``arxiv_id`` (any
    version)."""
    locations = data.get("locations")
    if not isinstance(locations, list):
        return False
    wanted = doi_key(arxiv_doi(arxiv_id))
    for location in locations:
        if not isinstance(location, dict):
            continue
        for url in (location.get("landing_page_url"), location.get("pdf_url")):
            m = _ARXIV_URL.fullmatch(url.strip()) if isinstance(url, str) else None
            if m is not None and _same_paper(m[1], wanted):
                return True
    return False


def _same_paper(named: str, wanted: str) -> bool:
    try:
        return doi_key(arxiv_doi(named)) == wanted
    except MalformedArxivId:
        return False


def parse_work(data: dict[str, Any], arxiv_id: str) -> OpenAlexWork:
    try:
        return _work(data, arxiv_id)
    except _WrongShape as exc:
        return OpenAlexWork(status="error", error=f"unusable OpenAlex work: {exc}")


def _work(data: dict[str, Any], arxiv_id: str) -> OpenAlexWork:
    work_id = data.get("id")
    m = _WORK_ID.fullmatch(work_id) if isinstance(work_id, str) else None
    if m is None:
        raise _WrongShape("id is not an OpenAlex work ID")
    cited = _count(data.get("cited_by_count"), "cited_by_count")
    open_access = _object(data, "open_access")
    is_oa = open_access.get("is_oa")
    if is_oa is not None and not isinstance(is_oa, bool):
        raise _WrongShape("open_access.is_oa is not a boolean")
    return OpenAlexWork(
        status="ok",
        work_id=m[1],
        cited_by_count=cited,
        counts_by_year=_counts_by_year(data.get("counts_by_year")),
        published_version=_published_version(data, arxiv_id),
        is_oa=is_oa,
        primary_topic=_text(_object(data, "primary_topic"), "display_name", "primary_topic."),
    )


def _counts_by_year(value: object) -> list[dict[str, int]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _WrongShape("counts_by_year is not a list")
    out = []
    for point in value:
        if not isinstance(point, dict):
            raise _WrongShape("counts_by_year holds something that is not an object")
        year = _year(point.get("year"), "counts_by_year[].year")
        if year is None:
            raise _WrongShape("counts_by_year[].year is missing")
        count = _count(point.get("cited_by_count"), "counts_by_year[].cited_by_count")
        out.append({"year": year, "cited_by_count": 0 if count is None else count})
    return out


def _published_version(data: dict[str, Any], arxiv_id: str) -> dict[str, object] | None:
    """The journal or conference version, or None when the work is the arXiv preprint itself
    (its DOI is the arXiv DOI and its primary location is arXiv)."""
    doi = _text(data, "doi")
    source = _object(_object(data, "primary_location"), "source", "primary_location.")
    theirs = doi is not None and doi_key(doi) != doi_key(arxiv_doi(arxiv_id))
    on_arxiv = (
        source.get("id") == ARXIV_SOURCE or "arxiv" in str(source.get("display_name") or "").lower()
    )
    if not theirs and (on_arxiv or not source):
        return None
    return {
        "doi": doi_key(doi) if theirs and doi is not None else None,
        "venue": None if on_arxiv else _text(source, "display_name", "source."),
        "year": _year(data.get("publication_year"), "publication_year"),
        "type": None if on_arxiv else _text(source, "type", "source."),
    }


def _object(data: dict[str, Any], key: str, where: str = "") -> dict[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _WrongShape(f"{where}{key} is not an object")
    return value


def _text(data: dict[str, Any], key: str, where: str = "") -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _WrongShape(f"{where}{key} is not a string")
    return replace_surrogates(value).strip() or None


def _count(value: object, what: str) -> int | None:
    return _checked(value, what, "count")


def _year(value: object, what: str) -> int | None:
    return _checked(value, what, "year")


def _checked(value: object, what: str, kind: str) -> int | None:
    """``checked_int``, its refusal costing only this work (an error for its paper)."""
    try:
        return checked_int(value, what, kind)
    except ValueError as exc:
        raise _WrongShape(str(exc)) from exc


def nested_integers(value: OpenAlexWork) -> None:
    """The integers inside a stored value, range-checked as when parsed (ValueError)."""
    for point in value.counts_by_year or []:
        checked_int(point.get("year"), "counts_by_year[].year", "year")
        checked_int(point.get("cited_by_count"), "counts_by_year[].cited_by_count", "count")
    if isinstance(value.published_version, dict):
        checked_int(value.published_version.get("year"), "published_version.year", "year")


def error_text(response: Response) -> str:
    """A short reason from an error answer (``{"error": …, "message": …}`` or text)."""
    try:
        data = json.loads(response.body)
    except (ValueError, RecursionError):
        data = None
    if isinstance(data, dict):
        parts = [data[k] for k in ("error", "message") if isinstance(data.get(k), str)]
        if parts:
            return shorten(": ".join(parts))
    return shorten(response.body.decode("utf-8", "replace")) or "empty answer"


# --- the service -----------------------------------------------------------------------------
class OpenAlex(Service[OpenAlexWork]):
    """Citations over time, up to ``OPENALEX_BATCH_SIZE`` papers per list request, plus one
    free single lookup per paper the list left out."""

    name = "openalex"
    label = "OpenAlex"
    kind = "openalex"
    record_block = "openalex"
    value_type = OpenAlexWork
    url_setting = "OPENALEX_URL"
    enabled_setting = "OPENALEX"
    refresh_names = ("openalex",)
    # ok: by the paper's age (PAPER_TTL_BY_AGE), past it 30 days; unknown papers a week.
    ttl_days: ClassVar[dict[str, float]] = {"ok": 30, "not_found": 7}
    judge_per_answer = True
    # A new published version is a change; counts move daily and are the history.
    volatile = ("cited_by_count", "counts_by_year", "history")
    history_max_setting = "PAPER_HISTORY_MAX"
    integers: ClassVar[dict[str, str]] = {"cited_by_count": "count"}
    numbers: ClassVar[dict[str, tuple[type, float]]] = {
        "OPENALEX_BATCH_SIZE": (int, 1), "OPENALEX_BATCH_WAIT": (float, 0),
        "OPENALEX_DELAY": (float, 0), "PAPER_HISTORY_MAX": (int, 1),
    }  # fmt: skip

    def __init__(self, settings: BaseSettings) -> None:
        super().__init__(settings)
        self.batch_size = min(settings.getint("OPENALEX_BATCH_SIZE"), MAX_BATCH)
        self.batch_wait = settings.getfloat("OPENALEX_BATCH_WAIT")
        self.politeness = Politeness(
            concurrency=1,
            delay=settings.getfloat("OPENALEX_DELAY"),
            slow_down_on_throttle=True,
            slow_down_max=60.0,
            max_answer_bytes=8 * 1024 * 1024,  # 50 selected works: ~100 KB
            throttle_codes=frozenset({403}),  # the per-second limit
            quota_codes=frozenset({429}),  # the daily budget
            quota_message=BUDGET_SPENT,
        )
        self.api_key = settings.get("OPENALEX_API_KEY") or os.environ.get("OPENALEX_API_KEY")
        self.by_age = PaperAgeTTL(settings) if self.enabled(settings) else None

    @classmethod
    def settings_problems(cls, settings: BaseSettings) -> list[str]:
        problems = super().settings_problems(settings)
        if not problems and settings.getint("OPENALEX_BATCH_SIZE") > MAX_BATCH:
            size = settings.get("OPENALEX_BATCH_SIZE")
            problems.append(f"OPENALEX_BATCH_SIZE must be at most {MAX_BATCH}, not {size}")
        return problems + age_table_problems(settings, "PAPER_TTL_BY_AGE")

    def keys(self, entry: DigestEntry) -> list[str]:
        return [entry.arxiv_id] if entry.arxiv_id else []

    def refused_key(self, key: str) -> OpenAlexWork | None:
        try:
            parse_arxiv_id(key)
        except MalformedArxivId as exc:
            return OpenAlexWork(status="error", error=str(exc))
        return None

    def _request(self, url: str, params: dict[str, str], keys: list[str], lookup: bool) -> Request:
        if self.api_key:
            params = {**params, "api_key": self.api_key}
        meta = service_meta(self.name, self.politeness, self.check, keys=keys, lookup=lookup)
        meta[KEEP_ON_REDIRECT] = ("api_key", "select")
        return Request(f"{url}?{urlencode(params, safe=':/|,')}", meta=meta, dont_filter=True)

    def build_request(self, keys: list[str], hints: Mapping[str, str | None]) -> Request:
        return self._request(f"{self.url}/works", list_query(keys), keys, lookup=False)

    def lookup_request(self, key: str) -> Request:
        path = quote(f"doi:{arxiv_doi(key)}", safe=":/")
        params = {"select": LOOKUP_FIELDS}
        return self._request(f"{self.url}/works/{path}", params, [key], lookup=True)

    def parse(self, request: Request, response: Response) -> dict[str, OpenAlexWork]:
        keys: list[str] = request.meta["keys"]
        if request.meta.get("lookup"):
            return {keys[0]: parse_single(response.body, keys[0])}
        return parse_list(response.body, keys)

    def about_other(self, keys: list[str], parsed: dict[str, OpenAlexWork]) -> str | None:
        """Works are matched to papers by DOI while parsing (one naming a DOI not asked, or a
        single lookup answering another preprint, is refused there); values for keys not
        asked would be a bug of that matching."""
        strangers = sorted(set(parsed) - set(keys))
        return f"answer has values for papers not asked ({strangers[0]})" if strangers else None

    def values(self, keys: list[str], response: Response) -> dict[str, OpenAlexWork]:
        lookup = bool(response.meta.get("lookup"))
        if lookup and response.status == 404:
            (key,) = keys
            return {key: OpenAlexWork(status="not_found", error=f"OpenAlex has no work for {key}")}
        if response.status != 200:
            said = f"OpenAlex answered HTTP {response.status}"
            if response.status == 429:
                said += " (daily budget spent)"
            return {k: self.error(f"{said}: {error_text(response)}") for k in keys}
        try:
            return dict(self.parsed(response))
        except AnswerUnusable as exc:
            return {key: self.error(f"OpenAlex answer unusable: {exc}") for key in keys}

    def attach(self, entry: DigestEntry, values: Mapping[str, OpenAlexWork]) -> None:
        if entry.arxiv_id is None:
            problem = entry.arxiv_problem or "no arXiv ID"
            entry.openalex = OpenAlexWork(status="error", error=problem)
        else:
            entry.openalex = values[entry.arxiv_id]

    def decode(self, data: dict[str, Any]) -> OpenAlexWork:
        """Also the nested integers (``counts_by_year[].*``, ``published_version.year``)."""
        value = super().decode(data)
        nested_integers(value)
        return value

    def observation(self, value: OpenAlexWork, observed_at: str) -> dict[str, Any] | None:
        if value.status != "ok":
            return None
        return {"observed_at": observed_at, "cited_by_count": value.cited_by_count}

    def with_history(self, value: OpenAlexWork, history: list[dict[str, Any]]) -> OpenAlexWork:
        return dataclasses.replace(value, history=history)

    def ttl(self, value: OpenAlexWork, now: float, key: str = "") -> float:
        """Young papers gather citations fast, old ones slowly (``PAPER_TTL_BY_AGE``)."""
        if value.status == "ok" and self.by_age is not None:
            by_age = self.by_age.ttl(key, now)
            if by_age is not None:
                return by_age
        return super().ttl(value, now, key)

    def ttl_steady_until(self, value: OpenAlexWork, now: float, key: str = "") -> float:
        if self.by_age is None:
            return math.inf
        return self.by_age.steady_until(value.status, key, now)
