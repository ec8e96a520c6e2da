"""Papers and tweets read out of digest files, with every invented detail seeded.

Each entry yields a :class:`Paper` (its abs link, heading, author line, categories, abstract) and
the tweets quoted under it, so a tweet knows which paper its post was about.
"""

from __future__ import annotations

import html
import random
import re
from collections.abc import Iterable
from datetime import UTC, datetime

from .models import NEW_STYLE_ID, OLD_STYLE_ID, Author, Paper, Tweet, clean_xml

_INSTITUTIONS = (
    "Stanford University",
    "Google Research",
    "Université de Montréal",
    "AT&T Labs <Research>",
    "Tsinghua University",
    "Max Planck Institute for Intelligent Systems",
    "University of Tokyo",
    "ETH Zürich",
)
_COMMENTS = (
    "12 pages, 5 figures",
    "Accepted at ICML 2021 & code at https://github.com/example/repo",
    "v2: fixed typo in Eq. (3) where $a<b$",
    "Camera-ready version",
)
_JOURNALS = (
    "Phys. Rev. D 103, 084042 (2021)",
    "NeurIPS 2020",
    "J. Mach. Learn. Res. 22 (2021) 1-35",
)

_HEADING = re.compile(r"^# \d+\.[ \t]+(.*?)[ \t]*$", re.M)
_ABS_LINK = re.compile(r"https?://(?:export\.)?arxiv\.org/abs/([^\s)\]\"'>]+)")
_CATEGORY = re.compile(r"\[([A-Za-z.-]+)\]\(https?://arxiv\.org/list/[^)]*\)")
_BLOCKQUOTE = re.compile(r'<blockquote class="twitter-tweet"[^>]*>(.*?)</blockquote>', re.S)
_PARAGRAPH = re.compile(r"<p([^>]*)>(.*?)</p>", re.S)
_LANG = re.compile(r'lang="([^"]*)"')
_SIGNATURE = re.compile(
    r"&mdash;\s*(?P<name>.*?)\s*\(@[A-Za-z0-9_]+\)\s*"
    r'<a href="https?://(?:www\.|mobile\.)?(?:twitter|x)\.com/(?P<handle>[^/"]+)/status/'
    r'(?P<id>\d+)[^"]*"[^>]*>(?P<date>.*?)</a>',
    re.S,
)


def read_digest(text: str, seed: int) -> tuple[list[Paper], list[tuple[Tweet, str | None]]]:
    """``(papers, [(tweet, the arXiv ID of the entry quoting it)])`` in file order."""
    heads = list(_HEADING.finditer(text))
    papers: list[Paper] = []
    tweets: list[tuple[Tweet, str | None]] = [
        (t, None) for t in _tweets(text[: heads[0].start() if heads else len(text)])
    ]
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        body = text[m.end() : end]
        arxiv_id = entry_arxiv_id(body)
        if arxiv_id is not None:
            papers.append(_paper(arxiv_id, m.group(1), body, seed))
        tweets.extend((t, arxiv_id) for t in _tweets(body))
    return papers, tweets


def entry_arxiv_id(body: str) -> str | None:
    """The unversioned ID of the entry's abs link, or None when it has no usable one."""
    m = _ABS_LINK.search(body)
    if not m:
        return None
    arxiv_id = re.sub(r"v\d+$", "", m.group(1).rstrip("/."))
    if NEW_STYLE_ID.fullmatch(arxiv_id) or OLD_STYLE_ID.fullmatch(arxiv_id):
        return arxiv_id
    return None


def _published_from_id(arxiv_id: str, rng: random.Random) -> datetime:
    digits = arxiv_id.split("/")[-1]
    yy, mm = int(digits[:2]), int(digits[2:4])
    year = 1900 + yy if yy >= 91 else 2000 + yy
    mm = min(max(mm, 1), 12)
    return datetime(
        year,
        mm,
        rng.randint(1, 28),
        rng.randint(0, 23),
        rng.randint(0, 59),
        rng.randint(0, 59),
        tzinfo=UTC,
    )


def _wrap_title(title: str, rng: random.Random) -> str:
    """arXiv wraps long titles with a newline and two spaces; the digests show this as '  '."""
    if "  " in title:
        return title.replace("  ", "\n  ", 1)
    words = title.split(" ")
    if len(words) > 4 and rng.random() < 0.15:
        cut = len(words) // 2
        return " ".join(words[:cut]) + "\n  " + " ".join(words[cut:])
    return title


def _paper(arxiv_id: str, heading: str, body: str, seed: int) -> Paper:
    rng = random.Random(f"{seed}:{arxiv_id}")
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", body) if p.strip()]
    author_line = next(
        (p for p in paragraphs if not p.startswith(("-", "[", "<")) and "\n" not in p), ""
    )
    names = [n.strip() for n in author_line.split(",") if n.strip()] or ["A. N. Author"]
    authors = []
    for name in names:
        k = rng.choices((0, 1, 2), weights=(6, 3, 1))[0]
        authors.append(Author(clean_xml(name), tuple(rng.sample(_INSTITUTIONS, k))))

    categories = tuple(dict.fromkeys(_CATEGORY.findall(body))) or ("cs.LG",)
    summary = ""
    after_links = False
    for p in paragraphs:
        if "arxiv.org/list/" in p or "arxiv.org/abs/" in p:
            after_links = True
            continue
        if after_links:
            if p.startswith(("<blockquote", "<script")):
                break
            summary += " " + p
    summary = clean_xml(" ".join(summary.split())) or f"Synthetic abstract for {arxiv_id}."
    title = clean_xml(heading.strip())
    title = _wrap_title(title or f"Synthetic paper {arxiv_id}", rng)

    return Paper(
        arxiv_id=arxiv_id,
        latest_version=rng.randint(1, 3),
        title=title,
        summary=summary,
        authors=tuple(authors),
        published=_published_from_id(arxiv_id, rng),
        primary_category=categories[0],
        categories=categories,
        comment=rng.choice(_COMMENTS) if rng.random() < 0.4 else None,
        journal_ref=rng.choice(_JOURNALS) if rng.random() < 0.15 else None,
        doi=f"10.{rng.randint(1000, 9999)}/example.{arxiv_id}" if rng.random() < 0.15 else None,
    )


def _tweets(text: str) -> Iterable[Tweet]:
    for bq in _BLOCKQUOTE.finditer(text):
        inner = bq.group(1)
        p = _PARAGRAPH.search(inner)
        sig = _SIGNATURE.search(inner, p.end() if p else 0)
        if not p or not sig:
            continue
        lang = _LANG.search(p.group(1))
        yield Tweet(
            tweet_id=sig["id"],
            handle=sig["handle"],
            name=clean_xml(html.unescape(sig["name"])),
            lang=lang.group(1) if lang else "en",
            text_html=clean_xml(p.group(2)),
            date_text=clean_xml(sig["date"].strip()),
        )
