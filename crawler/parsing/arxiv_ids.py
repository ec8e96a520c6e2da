"""arXiv identifiers: recognise, split off the version, and refuse what arXiv would reject.

One malformed ID fails a whole batch request with HTTP 400, so validation here is what keeps a
single bad link from costing 99 other papers their metadata.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# New style: YYMM.NNNN (2007-04 .. 2014-12) or YYMM.NNNNN (2015-01 on). Old style:
# archive[.SUBJECT]/YYMMNNN, e.g. hep-th/9901001, math.GT/0309136.
_NEW = r"(?P<new>\d{2}(?:0[1-9]|1[0-2])\.\d{4,5})"
_OLD = r"(?P<old>[a-z]+(?:-[a-z]+)*(?:\.[A-Z]{2})?/\d{2}(?:0[1-9]|1[0-2])\d{3})"
# arXiv versions are small; more than four digits is damage (downstream stores them as int64).
_ID_RE = re.compile(rf"(?:{_NEW}|{_OLD})(?:v(?P<version>[1-9]\d{{0,3}}))?")

# What follows /abs/ or /pdf/ in a link, up to the end of the URL.
_LINK_RE = re.compile(r"https?://(?:www\.|export\.)?arxiv\.org/(?:abs|pdf)/(?P<rest>[^\s?#)]+)")


@dataclass(frozen=True, slots=True)
class ArxivId:
    base: str
    version: int | None = None


class MalformedArxivId(ValueError):
    """The text is not an arXiv identifier arXiv would accept."""


def _shown(text: str, limit: int = 40) -> str:
    """``text`` quoted for a message, cut short: a link may hold thousands of characters."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "…"


def parse_arxiv_id(text: str) -> ArxivId:
    text = text.strip()
    if text.endswith(".pdf"):
        text = text[:-4]
    m = _ID_RE.fullmatch(text)
    if not m:
        raise MalformedArxivId(f"malformed arXiv ID {_shown(text)}")
    version = m.group("version")
    return ArxivId(m.group("new") or m.group("old"), int(version) if version else None)


def arxiv_id_from_url(url: str) -> ArxivId:
    """Take the ID from an abs or pdf link; raises :class:`MalformedArxivId`."""
    m = _LINK_RE.match(url.strip())
    if not m:
        raise MalformedArxivId(f"not an arXiv abs/pdf link: {_shown(url)}")
    return parse_arxiv_id(m.group("rest"))


def split_versioned(entry_id: str) -> ArxivId:
    """Split an API entry id (``http://arxiv.org/abs/2106.09685v2``) into base and version."""
    tail = entry_id.split("arxiv.org/abs/")[-1]
    return parse_arxiv_id(tail)


_SUBJECT_CLASS = re.compile(r"\.[A-Z]{2}/")


def canonical(base: str) -> str:
    """``math.GT/0309136`` and ``math/0309136`` name one paper; arXiv (and Semantic Scholar)
    know it by the latter, so comparisons go through this."""
    return _SUBJECT_CLASS.sub("/", base)
