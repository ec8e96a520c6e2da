"""arXiv export API answers (Atom) -> the ``arxiv`` package's :class:`arxiv.Result` model.

We parse ourselves instead of calling the package's private ``_feed.parse`` because that one
recovers silently from broken XML, and a truncated or HTML answer must be told apart from an
empty one so it can be retried. The parser is hardened: no entity expansion, no network, no DTD.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

import arxiv
from lxml import etree

NS = {
    "atom": "http://www.w3.org/2005/Atom",
    "arxiv": "http://arxiv.org/schemas/atom",
    "opensearch": "http://a9.com/-/spec/opensearch/1.1/",
}
_ERRORS_PREFIX = "arxiv.org/api/errors"


class FeedError(ValueError):
    """The answer is not an arXiv feed (HTML page, cut-off XML, garbage): worth retrying."""


class ApiError(ValueError):
    """arXiv's own error feed (HTTP 400): the request itself is wrong, retrying cannot help."""


@dataclass(slots=True)
class FeedPage:
    total_results: int
    start_index: int
    items_per_page: int
    results: list[arxiv.Result] = field(default_factory=list)


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, recover=False
    )


def _text(el: etree._Element, path: str) -> str | None:
    found = el.find(path, NS)
    return found.text if found is not None and found.text is not None else None


def _datetime(value: str | None) -> datetime:
    if not value:
        raise FeedError("entry without a timestamp")
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise FeedError(f"bad timestamp {value!r}") from exc
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).astimezone(UTC)


def _int(root: etree._Element, path: str) -> int:
    value = _text(root, path)
    try:
        return int(value.strip()) if value else 0
    except ValueError as exc:
        raise FeedError(f"bad {path}: {value!r}") from exc


def _result(entry: etree._Element) -> arxiv.Result:
    entry_id = _text(entry, "atom:id")
    if not entry_id:
        raise FeedError("entry without <id>")
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
            href=link.get("href"),
            title=link.get("title"),
            rel=link.get("rel") or "",
            content_type=link.get("type"),
        )
        for link in entry.iterfind("atom:link", NS)
        if link.get("href")
    ]
    primary = entry.find("arxiv:primary_category", NS)
    return arxiv.Result(
        entry_id=entry_id.strip(),
        updated=_datetime(_text(entry, "atom:updated")),
        published=_datetime(_text(entry, "atom:published")),
        title=" ".join((_text(entry, "atom:title") or "").split()),
        authors=authors,
        summary=(_text(entry, "atom:summary") or "").strip(),
        comment=_stripped(_text(entry, "arxiv:comment")),
        journal_ref=_stripped(_text(entry, "arxiv:journal_ref")),
        doi=_stripped(_text(entry, "arxiv:doi")),
        primary_category=(primary.get("term") if primary is not None else "") or "",
        categories=[c.get("term") for c in entry.iterfind("atom:category", NS) if c.get("term")],
        links=links,
    )


def _stripped(value: str | None) -> str | None:
    return " ".join(value.split()) if value and value.strip() else None


_XML_START = re.compile(rb"^\s*(<\?xml[^>]*>\s*)?<(?:\w+:)?feed\b")


def parse_feed(body: bytes) -> FeedPage:
    """Parse one API answer. Raises :class:`ApiError` or :class:`FeedError`."""
    if not _XML_START.match(body[:512]):
        kind = "an HTML page" if b"<html" in body[:2048].lower() else "not an Atom feed"
        raise FeedError(f"answer is {kind}")
    try:
        root = etree.fromstring(body, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise FeedError(f"unparseable feed ({exc.msg})") from exc
    if root.tag != f"{{{NS['atom']}}}feed":
        raise FeedError(f"unexpected root element {root.tag!r}")
    entries = root.findall("atom:entry", NS)
    for entry in entries:
        entry_id = _text(entry, "atom:id") or ""
        if _ERRORS_PREFIX in entry_id:
            raise ApiError(" ".join((_text(entry, "atom:summary") or "unknown error").split()))
    page = FeedPage(
        total_results=_int(root, "opensearch:totalResults"),
        start_index=_int(root, "opensearch:startIndex"),
        items_per_page=_int(root, "opensearch:itemsPerPage"),
    )
    page.results = [_result(e) for e in entries]
    return page
