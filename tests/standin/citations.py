"""Semantic Scholar's view of a paper: seeded citation data, mutable so counts can grow."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any

from .models import Paper

_VENUES = ("", "arXiv.org", "Neural Information Processing Systems", "ICLR", "ACL", "Nature")
_TLDR_MODEL = "tldr@v2.0.0"


@dataclass
class Citation:
    """One paper as the batch endpoint knows it; :meth:`fields` is the full JSON object."""

    arxiv_id: str
    paper_id: str  # 40 hex digits
    corpus_id: int
    title: str
    abstract: str | None
    authors: tuple[str, ...]
    venue: str
    year: int | None
    publication_date: str | None
    citation_count: int
    influential_citation_count: int
    reference_count: int
    doi: str | None = None
    open_access_pdf: tuple[str, str] | None = None  # (url, status)
    tldr: str | None = None
    citations_per_day: int = 1

    def advance(self, days: int = 1) -> None:
        """Let ``days`` pass: citations grow, a tenth of them influential."""
        self.citation_count += self.citations_per_day * days
        self.influential_citation_count = max(
            self.influential_citation_count, self.citation_count // 10
        )

    def fields(self) -> dict[str, Any]:
        """Every field the stand-in can serve, by its API name (``paperId`` first)."""
        external: dict[str, Any] = {"ArXiv": self.arxiv_id}
        if self.doi:
            external["DOI"] = self.doi
        external["CorpusId"] = self.corpus_id
        pdf = self.open_access_pdf
        return {
            "paperId": self.paper_id,
            "externalIds": external,
            "corpusId": self.corpus_id,
            "url": f"https://www.semanticscholar.org/paper/{self.paper_id}",
            "title": self.title,
            "abstract": self.abstract,
            "authors": [
                {"authorId": str(self.corpus_id % 10**6 * 100 + n), "name": name}
                for n, name in enumerate(self.authors)
            ],
            "venue": self.venue,
            "year": self.year,
            "citationCount": self.citation_count,
            "influentialCitationCount": self.influential_citation_count,
            "referenceCount": self.reference_count,
            "isOpenAccess": pdf is not None,
            "openAccessPdf": {"url": pdf[0], "status": pdf[1]} if pdf else None,
            "publicationDate": self.publication_date,
            "tldr": {"model": _TLDR_MODEL, "text": self.tldr} if self.tldr else None,
        }

    def expected(self) -> dict[str, Any]:
        """The facts a faithful client extracts (names follow the crawler's Impact)."""
        return {
            "status": "ok",
            "semantic_scholar_id": self.paper_id,
            "citation_count": self.citation_count,
            "influential_citation_count": self.influential_citation_count,
            "reference_count": self.reference_count,
            "venue": self.venue,
            "publication_year": self.year,
            "publication_date": self.publication_date,
            "tldr": self.tldr,
            "open_access_pdf": self.open_access_pdf[0] if self.open_access_pdf else None,
        }


def derive_citation(paper: Paper, seed: int = 0) -> Citation:
    rng = random.Random(f"{seed}:s2:{paper.arxiv_id}")
    cites = int(rng.paretovariate(1.2) * 3) - 3
    first_sentence = paper.summary.split(". ")[0].rstrip(".")
    return Citation(
        arxiv_id=paper.arxiv_id,
        paper_id=hashlib.sha1(f"{seed}:{paper.arxiv_id}".encode()).hexdigest(),
        corpus_id=rng.randrange(10**8, 3 * 10**8),
        title=" ".join(paper.title.split()),
        abstract=paper.summary if rng.random() < 0.8 else None,
        authors=tuple(a.name for a in paper.authors),
        venue=rng.choice(_VENUES),
        year=paper.published.year,
        publication_date=paper.published.strftime("%Y-%m-%d") if rng.random() < 0.9 else None,
        citation_count=min(cites, 50_000),
        influential_citation_count=min(cites, 50_000) // rng.randint(8, 20),
        reference_count=rng.randint(0, 120),
        doi=paper.doi,
        open_access_pdf=(
            (f"https://arxiv.org/pdf/{paper.arxiv_id}", "GREEN") if rng.random() < 0.7 else None
        ),
        tldr=f"{first_sentence}." if rng.random() < 0.6 else None,
        citations_per_day=rng.randint(1, 5),
    )
