"""Hugging Face paper pages (``GET /api/papers/{arxiv_id}``) as the Hub serves them.

Fields follow what ``huggingface_hub`` reads (``PaperInfo``): ``id``, ``title``, ``summary``,
``authors``, ``publishedAt``, ``submittedOnDailyAt``, ``upvotes``, ``numComments``,
``githubRepo``, ``githubStars``, ``projectPage``, ``ai_summary``, ``ai_keywords``, … A paper
without a page answers ``404 {"error": …}``. The fixed rate-limit window and its headers are
the server's (``StandIn(windows=…)``); this module builds bodies only.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .common import Answer, json_answer
from .models import Paper

PREFIX = "/api/papers/"
NOT_FOUND = "Paper not found"
_KEYWORDS = ("low-rank adaptation", "diffusion", "transformers", "reinforcement learning",
             "benchmark", "multimodal", "scaling laws", "retrieval")  # fmt: skip


def _ms(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


@dataclass
class HfPage:
    """One paper page; counts are mutable so two crawls a "day" apart see them move."""

    arxiv_id: str
    title: str
    summary: str
    authors: tuple[str, ...]
    published_at: datetime
    submitted_on_daily_at: datetime | None
    upvotes: int
    num_comments: int
    github_repo: str | None = None
    github_stars: int | None = None
    project_page: str | None = None
    ai_summary: str | None = None
    ai_keywords: list[str] | None = field(default=None)
    upvotes_per_day: int = 1

    def advance(self, days: int = 1) -> None:
        self.upvotes += self.upvotes_per_day * days
        if self.github_stars is not None:
            self.github_stars += 3 * days

    def fields(self) -> dict[str, Any]:
        """The JSON object the Hub answers (fields absent when the page has none)."""
        out: dict[str, Any] = {
            "id": self.arxiv_id,
            "authors": [
                {"_id": f"{n:024x}", "name": name, "hidden": False}
                for n, name in enumerate(self.authors)
            ],
            "publishedAt": _ms(self.published_at),
            "title": self.title,
            "summary": self.summary,
            "upvotes": self.upvotes,
            "discussionId": hashlib.sha1(self.arxiv_id.encode()).hexdigest()[:24],
            "numComments": self.num_comments,
        }
        if self.submitted_on_daily_at is not None:
            out["submittedOnDailyAt"] = _ms(self.submitted_on_daily_at)
            out["submittedOnDailyBy"] = {"user": "akhaliq", "fullname": "AK"}
        optional = {
            "githubRepo": self.github_repo,
            "githubStars": self.github_stars,
            "projectPage": self.project_page,
            "ai_summary": self.ai_summary,
            "ai_keywords": self.ai_keywords,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        return out

    def expected(self) -> dict[str, Any]:
        """The facts a faithful client extracts (names follow the crawler's ``hf`` block)."""
        daily = self.submitted_on_daily_at
        return {
            "status": "ok",
            "upvotes": self.upvotes,
            "comments": self.num_comments,
            "github_repo": self.github_repo,
            "github_stars": self.github_stars,
            "project_page": self.project_page,
            "ai_summary": self.ai_summary,
            "ai_keywords": self.ai_keywords,
            "published_at": _ms(self.published_at),
            "submitted_on_daily_at": _ms(daily) if daily else None,
        }


def derive_page(paper: Paper, seed: int = 0) -> HfPage:
    rng = random.Random(f"{seed}:hf:{paper.arxiv_id}")
    owner = (paper.authors[0].name.split()[-1] if paper.authors else "lab").lower()
    has_code = rng.random() < 0.6
    daily = rng.random() < 0.7
    return HfPage(
        arxiv_id=paper.arxiv_id,
        title=" ".join(paper.title.split()),
        summary=paper.summary,
        authors=tuple(a.name for a in paper.authors),
        published_at=paper.published,
        submitted_on_daily_at=paper.published + timedelta(hours=rng.randint(2, 40))
        if daily
        else None,
        upvotes=rng.randint(0, 400),
        num_comments=rng.randint(0, 12),
        github_repo=f"https://github.com/{owner}/{paper.arxiv_id.replace('.', '-')}"
        if has_code
        else None,
        github_stars=rng.randint(0, 9000) if has_code else None,
        project_page=f"https://{owner}.github.io/{paper.arxiv_id}" if rng.random() < 0.3 else None,
        ai_summary=f"{paper.summary.split('. ')[0].rstrip('.')}." if rng.random() < 0.8 else None,
        ai_keywords=rng.sample(_KEYWORDS, rng.randint(1, 4)) if rng.random() < 0.8 else None,
        upvotes_per_day=rng.randint(1, 6),
    )


def arxiv_id_of(path: str) -> str:
    return path[len(PREFIX) :].strip("/") if path.startswith(PREFIX) else ""


def answer(pages: dict[str, HfPage], path: str) -> Answer:
    page = pages.get(arxiv_id_of(path))
    if page is None:
        return json_answer(404, {"error": NOT_FOUND})
    return json_answer(200, page.fields())


def reshape(kind: str, normal: Answer) -> Answer:
    """``hf_other_paper``: the page of another paper; ``hf_upvotes_string``: a count as text."""
    if normal.status != 200 or not normal.body:
        return normal
    data = json.loads(normal.body)
    if kind == "shape:hf_other_paper":
        data["id"] = "1810.04805" if data.get("id") == "1706.03762" else "1706.03762"
    elif kind == "shape:hf_upvotes_string":
        data["upvotes"] = str(data.get("upvotes"))
    return json_answer(200, data)
