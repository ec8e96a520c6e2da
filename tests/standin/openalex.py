"""OpenAlex's works API as the crawler meets it: list filters on DOIs, single lookups, merges.

``GET /works?filter=doi:A|B|…&per-page=50&select=…`` answers ``{"meta", "results"}`` with the
works found, shuffled (OpenAlex answers in no particular order), DOIs written
``https://doi.org/10.48550/arxiv.<id>``, cut to the ``select=`` fields. A preprint merged into its
journal version is missing from that filter; ``GET /works/doi:10.48550/arXiv.<id>`` answers the
merged work (the publisher's DOI; its ``locations`` list the arXiv page too), or a ``301`` to it (``/works/W…``, without the query, as a
canonical redirect does). Unknown: ``404``. More than 50 DOIs, an unknown field in ``select``,
or a nested one: ``400``. Budgets and the per-second limit are the server's (``server.py``).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from .common import Answer, first, json_answer
from .models import Paper, stable_fraction

MAX_DOIS = 50
ARXIV_SOURCE = {
    "id": "https://openalex.org/S4306400194",
    "display_name": "arXiv (Cornell University)",
    "issn_l": None,
    "is_oa": True,
    "type": "repository",
}
FIELDS = frozenset(
    {
        "id", "doi", "title", "display_name", "publication_year", "publication_date", "ids",
        "type", "cited_by_count", "counts_by_year", "primary_location", "open_access",
        "primary_topic", "authorships", "updated_date", "locations",
    }
)  # fmt: skip
_VENUES = (
    ("Nature Machine Intelligence", "journal", "10.1038/s42256"),
    ("Transactions on Machine Learning Research", "journal", "10.48550/tmlr"),
    ("International Conference on Learning Representations", "conference", "10.1145/iclr"),
    ("Proceedings of the AAAI Conference on Artificial Intelligence", "conference", "10.1609/aaai"),
)
_TOPICS = (
    "Natural Language Processing Techniques",
    "Advanced Neural Network Applications",
    "Reinforcement Learning in Robotics",
    "Generative Adversarial Networks and Image Synthesis",
)


def arxiv_doi(arxiv_id: str) -> str:
    return f"10.48550/arxiv.{arxiv_id}".lower()


@dataclass
class Work:
    """One arXiv paper as OpenAlex knows it; mutable so citations can grow between crawls.

    ``merged``: the journal/conference version OpenAlex merged the preprint into
    ``{doi, venue, year, type}`` (then the list filter on the arXiv DOI misses it);
    ``redirect``: its single lookup answers 301 to the canonical work instead of the work.
    """

    arxiv_id: str
    work_id: str  # W…
    title: str
    year: int
    cited_by_count: int
    counts_by_year: list[dict[str, int]]
    is_oa: bool
    topic: str | None
    merged: dict[str, Any] | None = None
    redirect: bool = False
    citations_per_day: int = 1
    extra: dict[str, Any] = field(default_factory=dict)  # fields a test adds (odd shapes)

    def advance(self, days: int = 1) -> None:
        """Let ``days`` pass: citations grow, counted in the latest year."""
        grown = self.citations_per_day * days
        self.cited_by_count += grown
        if self.counts_by_year:
            self.counts_by_year[0]["cited_by_count"] += grown

    def full(self) -> dict[str, Any]:
        """Every field the stand-in can serve, by OpenAlex's names."""
        merged = self.merged
        doi = (
            f"https://doi.org/{merged['doi']}"
            if merged
            else f"https://doi.org/{arxiv_doi(self.arxiv_id)}"
        )
        source = (
            {"id": f"https://openalex.org/S{int(stable_fraction(merged['venue']) * 10**9)}",
             "display_name": merged["venue"], "issn_l": None, "is_oa": self.is_oa,
             "type": merged["type"]}
            if merged else ARXIV_SOURCE
        )  # fmt: skip
        primary = {"is_oa": self.is_oa, "landing_page_url": doi, "pdf_url": None, "source": source}
        on_arxiv = {"is_oa": True, "landing_page_url": f"https://arxiv.org/abs/{self.arxiv_id}",
                    "pdf_url": f"https://arxiv.org/pdf/{self.arxiv_id}", "source": ARXIV_SOURCE}  # fmt: skip
        return {
            "id": f"https://openalex.org/{self.work_id}",
            "doi": doi,
            "title": self.title,
            "display_name": self.title,
            "publication_year": merged["year"] if merged else self.year,
            "publication_date": f"{merged['year'] if merged else self.year}-01-01",
            "ids": {"openalex": f"https://openalex.org/{self.work_id}", "doi": doi},
            "type": "article" if merged else "preprint",
            "cited_by_count": self.cited_by_count,
            "counts_by_year": [dict(p) for p in self.counts_by_year],
            "primary_location": primary,
            # Every copy OpenAlex knows: a merged work lists the arXiv preprint among them.
            "locations": [primary, on_arxiv] if merged else [on_arxiv],
            "open_access": {"is_oa": self.is_oa, "oa_status": "green" if self.is_oa else "closed",
                            "oa_url": None},
            "primary_topic": (
                {"id": "https://openalex.org/T10028", "display_name": self.topic, "score": 0.99}
                if self.topic else None
            ),
            "authorships": [],
            "updated_date": "2026-01-01T00:00:00.000000",
        } | self.extra  # fmt: skip

    def expected(self) -> dict[str, Any]:
        """The ``openalex`` block a faithful client extracts (without its times and history)."""
        return {
            "status": "ok",
            "error": None,
            "work_id": self.work_id,
            "cited_by_count": self.cited_by_count,
            "counts_by_year": [dict(p) for p in self.counts_by_year],
            "published_version": dict(self.merged) if self.merged else None,
            "is_oa": self.is_oa,
            "primary_topic": self.topic,
        }


def derive_work(paper: Paper, seed: int, n: int) -> Work:
    rng = random.Random(f"{seed}:openalex:{paper.arxiv_id}")
    year = paper.published.year
    counts = [
        {"year": y, "cited_by_count": rng.randint(0, 300)}
        for y in range(min(year + 5, 2026), year - 1, -1)
        if rng.random() < 0.8  # years without citations are left out
    ]
    merged = None
    if stable_fraction(seed, "oa-merged", paper.arxiv_id) < 0.15:
        venue, kind, prefix = _VENUES[rng.randrange(len(_VENUES))]
        suffix = paper.arxiv_id.replace("/", "-").replace(".", "")
        merged = {"doi": f"{prefix}.{suffix}".lower(), "venue": venue, "year": year + 1,
                  "type": kind}  # fmt: skip
    return Work(
        arxiv_id=paper.arxiv_id,
        work_id=f"W{3_000_000_000 + n * 7919 + rng.randrange(7919)}",
        title=" ".join(paper.title.split()),
        year=year,
        cited_by_count=sum(p["cited_by_count"] for p in counts),
        counts_by_year=counts,
        is_oa=rng.random() < 0.8,
        topic=_TOPICS[rng.randrange(len(_TOPICS))] if rng.random() < 0.9 else None,
        merged=merged,
        redirect=merged is not None and stable_fraction(seed, "oa-301", paper.arxiv_id) < 0.4,
        citations_per_day=rng.randint(1, 4),
    )


def _selected(work: dict[str, Any], select: list[str] | None) -> dict[str, Any]:
    return work if select is None else {k: work[k] for k in select if k in work}


def _select(params: dict[str, list[str]]) -> list[str] | Answer:
    raw = first(params, "select", "")
    if not raw:
        return list(FIELDS)
    fields = [f.strip() for f in raw.split(",") if f.strip()]
    if bad := [f for f in fields if f not in FIELDS]:
        return _error(
            400, "Invalid query parameters error.", f"{bad[0]} is not a valid select field"
        )
    return fields


def _error(status: int, error: str, message: str) -> Answer:
    return json_answer(status, {"error": error, "message": message})


class Works(dict[str, Work]):
    """The catalogue's works by arXiv ID, with an index by arXiv DOI and by work ID that any
    change of the dict drops. A scan of every work per request made the stand-in, not the
    crawler, the bound of a 10,000-post run (at 177k works, 56 % of its CPU). A work's IDs
    are fixed once it is in; its other fields (merged, redirect, counts) are read live."""

    _index: dict[tuple[str, str], str] | None = None

    def index(self) -> dict[tuple[str, str], str]:
        if self._index is None:
            self._index = _index_of(self)
        return self._index

    def _changed(self) -> None:
        self._index = None

    def __setitem__(self, key: str, value: Work) -> None:
        self._changed()
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self._changed()
        super().__delitem__(key)

    def setdefault(self, key: str, default: Work) -> Work:
        self._changed()
        return super().setdefault(key, default)

    def pop(self, key: str, *default: Any) -> Any:
        self._changed()
        return super().pop(key, *default)

    def popitem(self) -> tuple[str, Work]:
        self._changed()
        return super().popitem()

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._changed()
        super().update(*args, **kwargs)

    def clear(self) -> None:
        self._changed()
        super().clear()


def _index_of(works: dict[str, Work]) -> dict[tuple[str, str], str]:
    """Each work's key by ("doi", its arXiv DOI) and ("id", its work ID); the first wins, as
    the scan it replaced found the first."""
    index: dict[tuple[str, str], str] = {}
    for key, w in works.items():
        index.setdefault(("doi", arxiv_doi(w.arxiv_id)), key)
        index.setdefault(("id", w.work_id), key)
    return index


def _find(works: dict[str, Work], kind: str, value: str) -> Work | None:
    """The work whose arXiv DOI (``kind`` "doi") or work ID ("id") is ``value``."""
    key = _index(works).get((kind, value))
    return works[key] if key is not None else None


def _index(works: dict[str, Work]) -> dict[tuple[str, str], str]:
    """The catalogue's kept index; a plain dict (a test's own) is indexed for the one call."""
    return works.index() if isinstance(works, Works) else _index_of(works)


def requested_dois(params: dict[str, list[str]]) -> list[str]:
    flt = first(params, "filter", "")
    if not flt.lower().startswith("doi:"):
        return []
    return [d.strip().lower().removeprefix("https://doi.org/") for d in flt[4:].split("|") if d]


def list_answer(works: dict[str, Work], params: dict[str, list[str]]) -> Answer:
    select = _select(params)
    if isinstance(select, Answer):
        return select
    dois = requested_dois(params)
    if not dois:
        return _error(400, "Invalid query parameters error.", "filter must be doi:…")
    if len(dois) > MAX_DOIS:
        return _error(400, "Invalid query parameters error.", "Maximum of 50 OR values in a filter")
    index = _index(works)  # once per request, whatever the dict
    hits = (works[index[("doi", d)]] for d in dict.fromkeys(dois) if ("doi", d) in index)
    found = [w.full() for w in hits if w.merged is None]
    random.Random(json.dumps(sorted(dois))).shuffle(found)
    meta = {"count": len(found), "db_response_time_ms": 12, "page": 1,
            "per_page": int(first(params, "per-page", "25") or 25), "groups_count": None}  # fmt: skip
    return json_answer(200, {"meta": meta, "results": [_selected(w, select) for w in found]})


def single_answer(works: dict[str, Work], ident: str, params: dict[str, list[str]]) -> Answer:
    """``/works/doi:…`` or ``/works/W…``."""
    select = _select(params)
    if isinstance(select, Answer):
        return select
    ident = unquote(ident)
    work: Work | None = None
    if ident.lower().startswith("doi:"):
        doi = ident[4:].lower().removeprefix("https://doi.org/")
        work = _find(works, "doi", doi)
        if work is not None and work.redirect:
            return Answer(301, "text/plain", b"", {"Location": f"/openalex/works/{work.work_id}"})
    else:
        work = _find(works, "id", ident)
    if work is None:
        return _error(404, "Not Found", f"The requested resource {ident} could not be found.")
    return json_answer(200, _selected(work.full(), select))


def answer(works: dict[str, Work], path: str, params: dict[str, list[str]]) -> Answer:
    rest = path.removeprefix("/openalex").rstrip("/")
    if rest == "/works":
        return list_answer(works, params)
    if rest.startswith("/works/"):
        return single_answer(works, rest[len("/works/") :], params)
    return _error(404, "Not Found", "no such route")


def is_list(path: str) -> bool:
    return path.removeprefix("/openalex").rstrip("/") == "/works"


def reshape(kind: str, normal: Answer) -> Answer:
    """``shape:unasked_doi``: a list answer names a DOI that was not asked (another paper's);
    ``shape:results_object``: ``results`` is an object instead of a list."""
    if normal.status != 200 or not normal.body:
        return normal
    data = json.loads(normal.body)
    if not isinstance(data, dict) or "results" not in data:
        return normal
    if kind == "shape:unasked_doi" and data["results"]:
        data["results"][0]["doi"] = "https://doi.org/10.48550/arxiv.0704.0001"
    elif kind == "shape:results_object":
        data["results"] = {"works": data["results"]}
    return json_answer(200, data)
