"""The links tweets carry, each with a known meaning, in the forms people really paste.

A link points at the entry's own paper (arXiv abs/pdf/html pages, versioned or not, mirrors such as
Hugging Face Papers and alphaXiv, http and www variants), at another paper, at code, or at
something that is not arXiv at all (including arXiv pages that name no paper and ``github.io``
project pages, which are not code). The generator states the answer beside each URL, so a test
never has to trust a second parser to know what was served.
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass
from typing import Literal

from .models import NEW_STYLE_ID

LinkKind = Literal["paper", "other_paper", "code", "other"]

_ORGS = (
    "facebookresearch",
    "google-research",
    "openai",
    "huggingface",
    "microsoft",
    "EleutherAI",
    "allenai",
    "NVlabs",
    "stanfordnlp",
    "anh-ng8",
)
_REPOS = ("lora", "word-order", "ff-memories", "zero-shot-mt", "efficientqa", "valve-rl")
_BLOGS = ("ai.googleblog.com", "openai.com/blog", "bair.berkeley.edu/blog", "lilianweng.github.io")


@dataclass(frozen=True)
class Link:
    """One ``entities.urls`` item and what it means.

    ``arxiv_id`` is the unversioned ID the link points at (``paper`` and ``other_paper``);
    ``code_url`` is the repository as ``https://<host>/<owner>/<repo>`` (Hugging Face keeps its
    ``spaces/``/``datasets/`` prefix): scheme https, no ``www.``, no ``.git``, no trailing slash,
    query, fragment or sub-path.
    """

    url: str
    expanded_url: str
    display_url: str
    indices: tuple[int, int]
    kind: LinkKind
    form: str
    arxiv_id: str | None = None
    code_url: str | None = None


def t_co(rng: random.Random) -> str:
    return "https://t.co/" + "".join(rng.choices(string.ascii_letters + string.digits, k=10))


def display_url(expanded: str) -> str:
    """Twitter's shortened label: no scheme, no ``www.``, long ones cut with an ellipsis."""
    shown = re.sub(r"^https?://(?:www\.)?", "", expanded)
    return shown if len(shown) <= 26 else shown[:25] + "…"


def paper_forms(arxiv_id: str, version: int) -> list[tuple[str, str]]:
    """Every URL form that names ``arxiv_id``, as ``(form, url)``."""
    i, v = arxiv_id, version
    forms = [
        ("abs", f"https://arxiv.org/abs/{i}"),
        ("abs_versioned", f"https://arxiv.org/abs/{i}v{v}"),
        ("pdf", f"https://arxiv.org/pdf/{i}"),
        ("pdf_versioned_ext", f"https://arxiv.org/pdf/{i}v{v}.pdf"),
        ("pdf_ext", f"https://arxiv.org/pdf/{i}.pdf"),
        ("export_abs", f"https://export.arxiv.org/abs/{i}"),
        ("www_abs", f"https://www.arxiv.org/abs/{i}"),
        ("http_abs", f"http://arxiv.org/abs/{i}"),
        ("abs_query", f"https://arxiv.org/abs/{i}?context=cs.LG"),
    ]
    if NEW_STYLE_ID.fullmatch(arxiv_id):  # the HTML view and the mirrors only know new IDs
        forms += [
            ("html_versioned", f"https://arxiv.org/html/{i}v{v}"),
            ("huggingface_papers", f"https://huggingface.co/papers/{i}"),
            ("alphaxiv", f"https://www.alphaxiv.org/abs/{i}"),
            ("alphaxiv_versioned", f"https://alphaxiv.org/abs/{i}v{v}"),
        ]
    return forms


def code_forms(owner: str, repo: str) -> list[tuple[str, str, str]]:
    """Repository URL forms as ``(form, url, canonical)``."""
    gh = f"https://github.com/{owner}/{repo}"
    hf = "https://huggingface.co"
    return [
        ("github", gh, gh),
        ("github_git", gh + ".git", gh),
        ("github_slash", gh + "/", gh),
        ("github_utm", gh + "?utm_source=twitter&utm_medium=social", gh),
        ("github_tree", gh + "/tree/main", gh),
        ("github_www", f"https://www.github.com/{owner}/{repo}", gh),
        ("gitlab", f"https://gitlab.com/{owner}/{repo}", f"https://gitlab.com/{owner}/{repo}"),
        (
            "bitbucket",
            f"https://bitbucket.org/{owner}/{repo}",
            f"https://bitbucket.org/{owner}/{repo}",
        ),
        ("hf_space", f"{hf}/spaces/{owner}/{repo}", f"{hf}/spaces/{owner}/{repo}"),
        ("hf_dataset", f"{hf}/datasets/{owner}/{repo}/", f"{hf}/datasets/{owner}/{repo}"),
        ("hf_model", f"{hf}/{owner}/{repo}", f"{hf}/{owner}/{repo}"),
    ]


def other_forms(rng: random.Random, slug: str) -> list[tuple[str, str]]:
    """Links that name no arXiv paper and no code, some of them deceptively close."""
    token = "".join(rng.choices(string.ascii_letters + string.digits, k=10))
    owner = rng.choice(_ORGS).lower()
    return [
        ("openreview", f"https://openreview.net/forum?id={token}"),
        ("youtube", f"https://www.youtube.com/watch?v={token[:11]}"),
        ("blog", f"https://{rng.choice(_BLOGS)}/2021/06/{slug}.html"),
        ("project_page", f"https://{owner}.github.io/{slug}/"),
        ("arxiv_listing", "https://arxiv.org/list/cs.LG/recent"),
        ("arxiv_author", f"https://arxiv.org/a/{slug.replace('-', '_')}_1"),
        ("paperswithcode", f"https://paperswithcode.com/paper/{slug}"),
        ("doi", f"https://doi.org/10.1145/{rng.randint(1000000, 9999999)}"),
    ]


def slug_of(title: str | None, rng: random.Random) -> str:
    words = re.findall(r"[A-Za-z0-9]+", title or "")[:3]
    return "-".join(w.lower() for w in words) if words else rng.choice(_REPOS)


def choose_link(
    rng: random.Random,
    url: str,
    indices: tuple[int, int],
    own: tuple[str, int] | None,
    others: list[tuple[str, int]],
    title: str | None,
) -> Link:
    """Pick what the t.co ``url`` expands to; ``own``/``others`` are ``(arXiv ID, versions)``.

    ``others`` may include ``own`` (it is skipped): filtering a large list per link would make a
    big catalogue quadratic.
    """
    kinds: list[LinkKind] = ["paper", "other_paper", "code", "other"]
    weights = [50, 12, 18, 20] if own else [0, 25, 25, 50]
    if not [o for o in others[:2] if not own or o[0] != own[0]]:
        weights[1] = 0  # no other paper to point at
    kind = rng.choices(kinds, weights=weights)[0]
    if kind in ("paper", "other_paper"):
        target = own if kind == "paper" and own else rng.choice(others)
        while kind == "other_paper" and own and target[0] == own[0]:
            target = rng.choice(others)
        arxiv_id, versions = target
        form, expanded = rng.choice(paper_forms(arxiv_id, rng.randint(1, max(1, versions))))
        return Link(url, expanded, display_url(expanded), indices, kind, form, arxiv_id=arxiv_id)
    slug = slug_of(title, rng)
    if kind == "code":
        owner = rng.choice(_ORGS)
        form, expanded, canonical = rng.choice(code_forms(owner, slug))
        return Link(url, expanded, display_url(expanded), indices, kind, form, code_url=canonical)
    form, expanded = rng.choice(other_forms(rng, slug))
    return Link(url, expanded, display_url(expanded), indices, "other", form)
