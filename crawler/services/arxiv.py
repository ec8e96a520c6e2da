"""arXiv's export API: batches of IDs in, the ``arxiv`` package's ``Result`` model out.

Rules (../shared/docs/upstreams.md): one request at a time, at least three seconds apart,
retries included; ``max_results`` defaults to 10 so it is always set; one malformed ID fails the
whole request with a 400 error feed; an ID that does not exist is simply absent. During
incidents arXiv has answered 200 with HTML pages and empty or truncated feeds.

We parse the Atom feed ourselves instead of the package's private ``_feed.parse``: that one
recovers silently from broken XML, and a truncated or HTML answer must be told apart from an
empty one so it can be retried. The parser is hardened: no entity expansion, no network, no DTD.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlencode

import arxiv
from lxml import etree
from scrapy import Request
from scrapy.http import Response
from scrapy.settings import BaseSettings

from crawler.downloader.contract import PARSED, AnswerUnusable, Politeness, service_meta
from crawler.items import ArxivMeta, DigestEntry
from crawler.parsing.arxiv_ids import (
    MalformedArxivId,
    canonical,
    parse_arxiv_id,
    split_versioned,
)
from crawler.parsing.text import shorten
from crawler.services.base import BatchRefused, Service, checked_int

MAX_RESULTS_CAP = 2000  # the API never returns more entries in one answer
_MAX_GET_URL = 2000  # longer id_lists go as a POST form, as the API allows
FIRST_SUBMISSION = datetime(1991, 8, 1, tzinfo=UTC)  # nothing on arXiv is older

NS = {
    "atom": "http://www.w3.org/2005/Atom",
    "arxiv": "http://arxiv.org/schemas/atom",
    "opensearch": "http://a9.com/-/spec/opensearch/1.1/",
}
_ERRORS_PREFIX = "arxiv.org/api/errors"
# A feed may open with an XML declaration and a DOCTYPE (the parser refuses to expand it).
_XML_START = re.compile(
    rb"^\s*(<\?xml[^>]{0,200}>\s*)?(<!DOCTYPE[^\[>]{0,200}(\[.*?\])?\s*>\s*)?<(?:\w+:)?feed\b", re.S
)


class ApiError(BatchRefused):
    """arXiv's own error feed (HTTP 400): something in the request is wrong."""


@dataclass(slots=True)
class FeedPage:
    total_results: int
    start_index: int
    items_per_page: int
    results: list[arxiv.Result] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)  # why entries could not be read


# --- answers ---------------------------------------------------------------------------------
def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, recover=False
    )


def _text(el: etree._Element, path: str) -> str | None:
    found = el.find(path, NS)
    return found.text if found is not None and found.text is not None else None


def _datetime(value: str | None) -> datetime:
    if not value:
        raise ValueError("entry without a timestamp")
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        dt = (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError) as exc:  # 9999-12-31T23:00-05:00 overflows in UTC
        raise ValueError(f"bad timestamp {value[:40]!r}") from exc
    if dt < FIRST_SUBMISSION:
        raise ValueError(f"timestamp {value!r} predates arXiv")
    return dt


def _int(root: etree._Element, path: str) -> int:
    value = _text(root, path)
    try:
        number = int(value.strip()) if value else 0
        return checked_int(number, path, "count") or 0
    except ValueError as exc:
        raise AnswerUnusable(f"bad {path}: {shorten(repr(value), 60)}") from exc


def _stripped(value: str | None) -> str | None:
    return " ".join(value.split()) if value and value.strip() else None


def _result(entry: etree._Element) -> arxiv.Result:
    """One entry; ValueError when it is not what arXiv serves (then it is not trusted)."""
    entry_id = (_text(entry, "atom:id") or "").strip()
    ref = split_versioned(entry_id)  # MalformedArxivId (a ValueError) for v0, no version, ...
    if ref.version is None:
        raise ValueError(f"entry id without a version: {entry_id!r}")
    checked_int(ref.version, "version", "version")  # v99999999999999999999: no table holds it
    authors = [
        arxiv.Result.Author(
            name=" ".join((_text(a, "atom:name") or "").split()),
            affiliation=[
                " ".join(af.text.split())
                for af in a.iterfind("arxiv:affiliation", NS)
                if af.text and af.text.strip()
            ],
        )
        for a in entry.iterfind("atom:author", NS)
    ]
    links = [
        arxiv.Result.Link(
            href=link.get("href") or "",
            title=link.get("title"),
            rel=link.get("rel") or "",
            content_type=link.get("type"),
        )
        for link in entry.iterfind("atom:link", NS)
        if link.get("href")
    ]
    primary = entry.find("arxiv:primary_category", NS)
    return arxiv.Result(
        entry_id=entry_id,
        updated=_datetime(_text(entry, "atom:updated")),
        published=_datetime(_text(entry, "atom:published")),
        title=" ".join((_text(entry, "atom:title") or "").split()),
        authors=authors,
        summary=(_text(entry, "atom:summary") or "").strip(),
        comment=_stripped(_text(entry, "arxiv:comment")),
        journal_ref=_stripped(_text(entry, "arxiv:journal_ref")),
        doi=_stripped(_text(entry, "arxiv:doi")),
        primary_category=(primary.get("term") if primary is not None else "") or "",
        categories=[c.get("term") or "" for c in entry.iterfind("atom:category", NS)],
        links=links,
    )


def parse_feed(body: bytes) -> FeedPage:
    """Parse one API answer. Raises :class:`ApiError` (400 feed) or ``AnswerUnusable``;
    entries that cannot be trusted are listed in ``broken`` rather than guessed at."""
    if not _XML_START.match(body[:4096]):
        kind = "an HTML page" if b"<html" in body[:2048].lower() else "not an Atom feed"
        raise AnswerUnusable(f"answer is {kind}")
    try:
        root = etree.fromstring(body, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise AnswerUnusable(f"unparseable feed ({exc.msg})") from exc
    if root.tag != f"{{{NS['atom']}}}feed":
        raise AnswerUnusable(f"unexpected root element {root.tag!r}")
    entries = root.findall("atom:entry", NS)
    for entry in entries:
        if _ERRORS_PREFIX in (_text(entry, "atom:id") or ""):
            raise ApiError(" ".join((_text(entry, "atom:summary") or "unknown error").split()))
    page = FeedPage(
        total_results=_int(root, "opensearch:totalResults"),
        start_index=_int(root, "opensearch:startIndex"),
        items_per_page=_int(root, "opensearch:itemsPerPage"),
    )
    for entry in entries:
        try:
            page.results.append(_result(entry))
        except ValueError as exc:
            page.broken.append(str(exc))
    return page


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta_from_result(result: arxiv.Result) -> ArxivMeta:
    ref = split_versioned(result.entry_id)
    versioned = f"{ref.base}v{ref.version}"
    return ArxivMeta(
        status="ok",
        versioned_id=versioned,
        version=ref.version,
        title=result.title,
        authors=[{"name": a.name, "affiliations": list(a.affiliation)} for a in result.authors],
        abstract=result.summary,
        published_at=_iso(result.published),
        updated_at=_iso(result.updated),
        primary_category=result.primary_category or None,
        categories=list(result.categories),
        comment=result.comment,
        journal_ref=result.journal_ref,
        doi=result.doi,
        abs_url=f"https://arxiv.org/abs/{versioned}",
        pdf_url=f"https://arxiv.org/pdf/{versioned}",
    )


def unasked(ids: list[str], page: FeedPage) -> list[str]:
    """Entries for papers nobody asked for: the answer is for another request."""
    asked = {canonical(parse_arxiv_id(key).base) for key in ids}
    return [
        r.entry_id for r in page.results if canonical(split_versioned(r.entry_id).base) not in asked
    ]


def stranger_problem(ids: list[str], page: FeedPage) -> str | None:
    """Why the feed is about papers other than ``ids``, or None."""
    if strangers := unasked(ids, page):
        return f"feed lists papers that were not asked for ({strangers[0]})"
    return None


def page_problem(ids: list[str], page: FeedPage) -> str | None:
    """Why an answer should be asked for again, or None."""
    if page.broken:
        return f"malformed entry ({page.broken[0]})"
    if stranger := stranger_problem(ids, page):
        return stranger
    # An empty feed is also arXiv's right answer for unknown IDs, so it is taken at its word
    # here; the enrichment flow treats "all stored papers vanished" as an incident.
    if page.total_results > len(page.results) and len(page.results) < len(ids):
        return f"incomplete feed ({len(page.results)} of {page.total_results} entries)"
    return None


def match_results(ids: list[str], page: FeedPage) -> dict[str, ArxivMeta]:
    """Pair requested IDs with feed entries. An ID without an entry was not found, unless the
    feed had entries that could not be read (then it may have been one of them: an error)."""
    by_base: dict[str, list[arxiv.Result]] = {}
    for result in page.results:
        by_base.setdefault(canonical(split_versioned(result.entry_id).base), []).append(result)
    out: dict[str, ArxivMeta] = {}
    for query in ids:
        ref = parse_arxiv_id(query)
        candidates = by_base.get(canonical(ref.base), [])
        if ref.version is not None:
            candidates = [
                r for r in candidates if split_versioned(r.entry_id).version == ref.version
            ]
        if candidates:
            best = max(candidates, key=lambda r: split_versioned(r.entry_id).version or 0)
            out[query] = meta_from_result(best)
        elif page.broken:
            out[query] = ArxivMeta(
                status="error", error=f"arXiv answer unusable: malformed entry ({page.broken[0]})"
            )
        else:
            out[query] = ArxivMeta(status="not_found", error=f"arXiv has no paper {query}")
    return out


# --- the service -----------------------------------------------------------------------------
def build_request(api_url: str, ids: list[str], politeness: Politeness, check: Any) -> Request:
    """One API request for ``ids``; ``max_results`` is set because it defaults to 10."""
    params = {"id_list": ",".join(ids), "max_results": str(len(ids))}
    meta = service_meta(Arxiv.name, politeness, check, keys=ids)
    # A fresh connection per request as well: a kept-alive one may have been opened by another
    # service on the same host (automatic re-sends are off anyway: crawler.downloader.handlers).
    headers = {"Connection": "close"}
    url = f"{api_url}?{urlencode(params)}"
    if len(url) <= _MAX_GET_URL:
        return Request(url, headers=headers, meta=meta, dont_filter=True)
    return Request(
        api_url,
        method="POST",
        body=urlencode(params),
        headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
        meta=meta,
        dont_filter=True,
    )


class Arxiv(Service[ArxivMeta]):
    name = "arxiv"
    label = "arXiv"
    kind = "arxiv"
    record_block = "arxiv"
    value_type = ArxivMeta
    url_setting = "ARXIV_API_URL"
    refresh_names = ("arxiv",)
    ttl_days: ClassVar[dict[str, float]] = {
        "ok": 7,  # new versions and journal references appear over time
        "not_found": 1,  # perhaps announced since
    }
    judge_per_answer = True
    integers: ClassVar[dict[str, str]] = {"version": "version"}
    numbers: ClassVar[dict[str, tuple[type, float]]] = {
        "ARXIV_DELAY": (float, 0), "ARXIV_DELAY_MARGIN": (float, 0),
        "ARXIV_BATCH_SIZE": (int, 1), "ARXIV_BATCH_WAIT": (float, 0),
        "ARXIV_SLOWDOWN_MAX": (float, 0),
    }  # fmt: skip

    def __init__(self, settings: BaseSettings) -> None:
        super().__init__(settings)
        delay = settings.getfloat("ARXIV_DELAY")
        self.batch_size = min(settings.getint("ARXIV_BATCH_SIZE"), MAX_RESULTS_CAP)
        self.batch_wait = settings.getfloat("ARXIV_BATCH_WAIT")
        self.politeness = Politeness(
            concurrency=1,
            delay=delay + settings.getfloat("ARXIV_DELAY_MARGIN"),
            hold_after_answer=delay if settings.getbool("ARXIV_HOLD_AFTER_ANSWER") else 0.0,
            slow_down_on_throttle=True,
            slow_down_max=settings.getfloat("ARXIV_SLOWDOWN_MAX"),
            max_answer_bytes=settings.getint("DOWNLOAD_MAXSIZE"),  # 2000 entries: ~10 MB
        )

    def keys(self, entry: DigestEntry) -> list[str]:
        return [entry.arxiv_query] if entry.arxiv_query else []

    def refused_key(self, key: str) -> ArxivMeta | None:
        try:
            parse_arxiv_id(key)  # never send a malformed ID: it would fail the whole batch
        except MalformedArxivId as exc:
            return ArxivMeta(status="error", error=str(exc))
        return None

    def build_request(self, keys: list[str], hints: Mapping[str, str | None]) -> Request:
        return build_request(self.url, keys, self.politeness, self.check)

    def parse(self, request: Request, response: Response) -> FeedPage | None:
        try:
            page = parse_feed(response.body)
        except ApiError:
            return None  # arXiv refused the request itself: no retry, the batch is split
        if problem := page_problem(request.meta.get("keys") or [], page):
            raise AnswerUnusable(problem)
        return page

    def about_other(self, keys: list[str], parsed: FeedPage) -> str | None:
        return stranger_problem(keys, parsed)

    def values(self, keys: list[str], response: Response) -> dict[str, ArxivMeta]:
        if response.status not in (200, 400):
            return {key: self.error(f"arXiv answered HTTP {response.status}") for key in keys}
        page = response.meta.get(PARSED)
        try:
            page = page or parse_feed(response.body)  # ApiError: BatchRefused, split
        except AnswerUnusable as exc:
            return {key: self.error(f"arXiv answer unusable: {exc}") for key in keys}
        if response.status == 400:
            return {key: self.error("arXiv answered HTTP 400") for key in keys}
        if (problem := page_problem(keys, page)) and not page.broken:
            return {key: self.error(f"arXiv answer unusable: {problem}") for key in keys}
        return match_results(keys, page)

    def attach(self, entry: DigestEntry, values: Mapping[str, ArxivMeta]) -> None:
        if entry.arxiv_query is None:
            entry.arxiv = ArxivMeta(status="error", error=entry.arxiv_problem or "no arXiv ID")
        else:
            entry.arxiv = values[entry.arxiv_query]
