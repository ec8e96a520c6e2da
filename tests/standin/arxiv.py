"""The arXiv export API's answers: Atom 1.0 feeds, the 400 error feed, and wrong-shaped feeds."""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
from datetime import UTC, datetime
from urllib.parse import urlencode

from lxml import etree

from .catalogue import Catalogue
from .common import Answer, first
from .models import NEW_STYLE_ID, OLD_STYLE_ID, Author, Paper, iso_z

ATOM = "http://www.w3.org/2005/Atom"
ARXIV = "http://arxiv.org/schemas/atom"
OPENSEARCH = "http://a9.com/-/spec/opensearch/1.1/"
NSMAP = {None: ATOM, "arxiv": ARXIV, "opensearch": OPENSEARCH}
ATOM_TYPE = "application/atom+xml; charset=utf-8"
MAX_RESULTS_DEFAULT = 10
MAX_RESULTS_CAP = 2000

ID_PIECE = re.compile(rf"(?:{NEW_STYLE_ID.pattern}|{OLD_STYLE_ID.pattern})(?:v\d+)?")


def requested_ids(params: dict[str, list[str]]) -> list[str]:
    return [i.strip() for v in params.get("id_list", []) for i in v.split(",") if i.strip()]


def answer(catalogue: Catalogue, params: dict[str, list[str]], *, empty: bool = False) -> Answer:
    """The export API's answer for ``params`` (error feed with 400 on a malformed ID).

    ``empty``: a valid feed with no entries, as arXiv has sent during incidents.
    """
    ids = requested_ids(params)
    for requested in ids:
        if not ID_PIECE.fullmatch(requested) or requested in catalogue.refused:
            return error_feed(
                params,
                f"incorrect_id_format_for_{requested}",
                f"incorrect id format for {requested}",
            )
    try:
        start = int(first(params, "start", "0"))
    except ValueError:
        return error_feed(params, "start_must_be_an_integer", "start must be an integer")
    try:
        max_results = int(first(params, "max_results", str(MAX_RESULTS_DEFAULT)))
    except ValueError:
        return error_feed(
            params, "max_results_must_be_an_integer", "max_results must be an integer"
        )
    if start < 0:
        return error_feed(params, "start_must_be_non-negative", "start must be non-negative")
    if max_results < 0:
        return error_feed(
            params, "max_results_must_be_non-negative", "max_results must be non-negative"
        )
    max_results = min(max_results, MAX_RESULTS_CAP)
    found: list[tuple[Paper, int]] = []
    if not empty:  # search_query alone is not modelled: it answers an empty feed
        for requested in ids:
            paper, version = catalogue.resolve(requested)
            if paper is not None:
                found.append((paper, version))
    feed = feed_head(params, len(found), start, max_results)
    for paper, version in found[start : start + max_results]:
        feed.append(entry(paper, version))
    return Answer(200, ATOM_TYPE, serialise(feed))


def _query_echo(params: dict[str, list[str]]) -> dict[str, str]:
    return {
        "search_query": first(params, "search_query", ""),
        "id_list": ",".join(params.get("id_list", [])),
        "start": first(params, "start", "0"),
        "max_results": first(params, "max_results", str(MAX_RESULTS_DEFAULT)),
    }


def _sub(
    parent: etree._Element, tag: str, text: str | None = None, **attrib: str
) -> etree._Element:
    el = etree.SubElement(parent, tag, attrib)
    if text is not None:
        el.text = text
    return el


def feed_head(
    params: dict[str, list[str]], total: int, start: int, per_page: int
) -> etree._Element:
    echo = _query_echo(params)
    query = urlencode(echo)
    feed = etree.Element(f"{{{ATOM}}}feed", nsmap=NSMAP)
    _sub(
        feed,
        f"{{{ATOM}}}link",
        href=f"http://arxiv.org/api/query?{query}",
        rel="self",
        type="application/atom+xml",
    )
    title = "&".join(f"{k}={v}" for k, v in echo.items())
    _sub(feed, f"{{{ATOM}}}title", f"ArXiv Query: {title}", type="html")
    digest = base64.urlsafe_b64encode(hashlib.sha1(query.encode()).digest()).decode()
    _sub(feed, f"{{{ATOM}}}id", f"http://arxiv.org/api/{digest.rstrip('=')}")
    _sub(feed, f"{{{ATOM}}}updated", datetime.now(UTC).strftime("%Y-%m-%dT00:00:00-04:00"))
    _sub(feed, f"{{{OPENSEARCH}}}totalResults", str(total))
    _sub(feed, f"{{{OPENSEARCH}}}startIndex", str(start))
    _sub(feed, f"{{{OPENSEARCH}}}itemsPerPage", str(per_page))
    return feed


def entry(paper: Paper, version: int, *, vid: str | None = None) -> etree._Element:
    """One entry; ``vid`` overrides the versioned ID written in ``id`` and the links."""
    vid = vid or paper.versioned_id(version)
    el = etree.Element(f"{{{ATOM}}}entry", nsmap=NSMAP)
    _sub(el, f"{{{ATOM}}}id", f"http://arxiv.org/abs/{vid}")
    _sub(el, f"{{{ATOM}}}updated", iso_z(paper.updated(version)))
    _sub(el, f"{{{ATOM}}}published", iso_z(paper.published))
    _sub(el, f"{{{ATOM}}}title", paper.title)
    _sub(el, f"{{{ATOM}}}summary", f"  {paper.summary}\n")  # arXiv pads its abstracts
    for author in paper.authors:
        a = _sub(el, f"{{{ATOM}}}author")
        _sub(a, f"{{{ATOM}}}name", author.name)
        for aff in author.affiliations:
            _sub(a, f"{{{ARXIV}}}affiliation", aff)
    if paper.doi:
        _sub(el, f"{{{ARXIV}}}doi", paper.doi)
        _sub(el, f"{{{ATOM}}}link", title="doi", href=f"https://doi.org/{paper.doi}", rel="related")
    if paper.comment:
        _sub(el, f"{{{ARXIV}}}comment", paper.comment)
    if paper.journal_ref:
        _sub(el, f"{{{ARXIV}}}journal_ref", paper.journal_ref)
    _sub(
        el, f"{{{ATOM}}}link", href=f"http://arxiv.org/abs/{vid}", rel="alternate", type="text/html"
    )
    _sub(
        el,
        f"{{{ATOM}}}link",
        title="pdf",
        href=f"http://arxiv.org/pdf/{vid}",
        rel="related",
        type="application/pdf",
    )
    _sub(el, f"{{{ARXIV}}}primary_category", term=paper.primary_category, scheme=ARXIV)
    for cat in paper.categories:
        _sub(el, f"{{{ATOM}}}category", term=cat, scheme=ARXIV)
    return el


def error_feed(params: dict[str, list[str]], slug: str, message: str) -> Answer:
    feed = feed_head(params, 1, 0, 1)
    el = _sub(feed, f"{{{ATOM}}}entry")
    err_id = f"https://arxiv.org/api/errors#{slug}"
    _sub(el, f"{{{ATOM}}}id", err_id)
    _sub(el, f"{{{ATOM}}}title", "Error")
    _sub(el, f"{{{ATOM}}}summary", message)
    _sub(el, f"{{{ATOM}}}updated", datetime.now(UTC).strftime("%Y-%m-%dT00:00:00-04:00"))
    _sub(el, f"{{{ATOM}}}link", href=err_id, rel="alternate", type="text/html")
    _sub(_sub(el, f"{{{ATOM}}}author"), f"{{{ATOM}}}name", "arXiv api core")
    return Answer(400, ATOM_TYPE, serialise(feed))


def serialise(feed: etree._Element) -> bytes:
    etree.cleanup_namespaces(feed, top_nsmap=NSMAP)
    return etree.tostring(feed, xml_declaration=True, encoding="UTF-8", pretty_print=True)


# -- wrong-shaped feeds (faults) -------------------------------------------------------------


def unasked_paper(catalogue: Catalogue, params: dict[str, list[str]]) -> Paper:
    """A paper the request did not ask for: the first served one not asked, else an invented one."""
    asked = {re.sub(r"v\d+$", "", i) for i in requested_ids(params)}
    for arxiv_id in sorted(catalogue.papers):
        if arxiv_id not in asked:
            return catalogue.papers[arxiv_id]
    arxiv_id = next(f"0704.{n:04d}" for n in itertools.count(1) if f"0704.{n:04d}" not in asked)
    published = datetime(2007, 4, 2, tzinfo=UTC)
    authors = (Author("A. N. Author"),)
    return Paper(
        arxiv_id, 1, "Unasked", "Nobody asked.", authors, published, "math.CO", ("math.CO",)
    )


def reshape(
    kind: str, normal: Answer, catalogue: Catalogue, params: dict[str, list[str]]
) -> Answer:
    """Bend a normal 200 feed into a wrong shape; error feeds and other statuses pass unchanged.

    ``unasked_ids`` appends an entry nobody asked for (``totalResults`` counts it);
    ``unversioned_id``, ``v0`` and ``year_0999`` damage the first entry only, so a client can be
    checked to reject that entry and keep the rest.
    """
    if normal.status != 200:
        return normal
    feed = etree.fromstring(normal.body)
    entries = feed.findall(f"{{{ATOM}}}entry")
    if kind == "shape:unasked_ids":
        paper = unasked_paper(catalogue, params)
        feed.append(entry(paper, paper.latest_version))
        total = feed.find(f"{{{OPENSEARCH}}}totalResults")
        assert total is not None
        total.text = str(int(total.text or "0") + 1)
    elif entries:
        first_entry = entries[0]
        if kind in ("shape:unversioned_id", "shape:v0"):
            suffix = "v0" if kind == "shape:v0" else ""
            id_el = first_entry.find(f"{{{ATOM}}}id")
            assert id_el is not None and id_el.text
            id_el.text = re.sub(r"v\d+$", suffix, id_el.text)
            for link in first_entry.findall(f"{{{ATOM}}}link"):
                if link.get("title") != "doi":
                    link.set("href", re.sub(r"v\d+$", suffix, link.get("href", "")))
        elif kind == "shape:year_0999":
            published = first_entry.find(f"{{{ATOM}}}published")
            assert published is not None and published.text
            published.text = "0999" + published.text[4:]
    return Answer(200, normal.content_type, serialise(feed), dict(normal.headers))
