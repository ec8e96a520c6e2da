"""Links in free text and tweets: code repositories, and arXiv papers a link points to.

Plain functions, no crawl: the record layer derives ``code_urls`` and ``linked_arxiv_ids`` with
them. Links are found by pattern, not by a URL parser, because abstracts write them in prose
(``code at github.com/a/b.``) and tweets hand over expanded URLs with tracking queries.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from crawler.parsing.arxiv_ids import MalformedArxivId, parse_arxiv_id

# -- code -----------------------------------------------------------------------------------

# A scheme, or else no ASCII word character, dot, slash or @ just before the host (so no
# "mygithub.com", no "api.github.com", no path of another site, but CJK prose that runs into
# the link without a space still counts). The path is taken segment by segment in the
# characters repository names may hold, so prose punctuation such as ")" or "," ends it.
_CODE_RE = re.compile(
    r"(?:(?i:https?://)|(?<![A-Za-z0-9_.@/-]))(?i:www\.)?"
    r"(?P<host>(?i:github\.com|gitlab\.com|bitbucket\.org|huggingface\.co|hf\.co))"
    r"(?P<path>(?:/[A-Za-z0-9_.-]+)+)"
)
_OWNER = re.compile(r"[A-Za-z0-9_-]+")
_ALNUM = re.compile(r"[A-Za-z0-9]")

# First path segments that are site pages, not owners.
_GITHUB_PAGES = frozenset({
    "about", "apps", "blog", "collections", "codespaces", "contact", "copilot",
    "customer-stories", "dashboard", "enterprise", "events", "explore", "features", "issues",
    "join", "login", "marketplace", "new", "notifications", "orgs", "organizations", "pricing",
    "pulls", "readme", "resources", "search", "security", "settings", "signup", "site",
    "solutions", "sponsors", "team", "topics", "trending", "users"
})  # fmt: skip
_GITLAB_PAGES = frozenset({
    "admin", "api", "dashboard", "explore", "groups", "help", "projects", "search", "users"
})  # fmt: skip
# GitLab routes after a project path; the modern ones follow a "-" segment.
_GITLAB_ROUTES = frozenset({
    "-", "blob", "tree", "raw", "commits", "commit", "issues", "merge_requests", "wikis",
    "releases", "tags", "branches", "pipelines", "jobs", "compare", "blame", "archive"
})  # fmt: skip
_BITBUCKET_PAGES = frozenset({
    "account", "blog", "dashboard", "product", "repo", "site", "snippets", "support"
})  # fmt: skip
_HF_PAGES = frozenset({
    "api", "billing", "blog", "chat", "collections", "course", "docs", "enterprise",
    "inference-api", "inference-endpoints", "join", "learn", "login", "logout", "models", "new",
    "new-dataset", "new-space", "notifications", "organizations", "papers", "posts", "pricing",
    "privacy", "search", "settings", "support", "tasks", "terms-of-service", "transformers",
    "welcome"
})  # fmt: skip
_HF_KINDS = frozenset({"spaces", "datasets"})


def code_urls(texts: Iterable[str | None]) -> list[str]:
    """Links to code (GitHub, GitLab, Bitbucket, Hugging Face) in ``texts``, normalised,
    de-duplicated, first seen first.

    Each link is reduced to its repository (``https://github.com/<owner>/<repo>``): a reader
    wants the project, and a file or branch link would count one repository many times. So
    queries (tracking ``utm_*``, ``ref``, …) and fragments go too. Duplicates are found
    ignoring case, as the hosts do; the first spelling seen is kept.
    """
    found: dict[str, str] = {}
    for text in texts:
        if not text:
            continue
        for match in _CODE_RE.finditer(text):
            url = _code_url(match["host"], match["path"])
            if url is not None:
                found.setdefault(url.lower(), url)
    return list(found.values())


def _code_url(host: str, path: str) -> str | None:
    host = host.lower()
    if host == "hf.co":  # Hugging Face's short domain
        host = "huggingface.co"
    # Dots and slashes at the end are prose ("see gitlab.com/a/b/."), never part of a name.
    segments = path.rstrip("./").split("/")[1:]
    if not segments:
        return None
    kept = _REPOSITORY[host](segments)
    return None if kept is None else f"https://{host}/{'/'.join(kept)}"


def _repo_name(segment: str) -> str | None:
    """A repository name without prose's trailing dots and ``.git`` suffixes (no host allows a
    name ending in ``.git``, so every one is a clone URL's)."""
    name = segment.rstrip(".")
    while name.lower().endswith(".git"):
        name = name[:-4].rstrip(".")
    return name if _ALNUM.search(name) else None  # "-" or "..." is punctuation, not a name


def _owner_repo(segments: list[str], pages: frozenset[str]) -> list[str] | None:
    """``owner/repo`` (GitHub, Bitbucket): deeper segments (tree, blob, src, …) dropped."""
    if len(segments) < 2 or segments[0].lower() in pages or not _OWNER.fullmatch(segments[0]):
        return None
    repo = _repo_name(segments[1])
    return None if repo is None else [segments[0], repo]


def _github(segments: list[str]) -> list[str] | None:
    return _owner_repo(segments, _GITHUB_PAGES)


def _bitbucket(segments: list[str]) -> list[str] | None:
    return _owner_repo(segments, _BITBUCKET_PAGES)


def _gitlab(segments: list[str]) -> list[str] | None:
    """``group[/subgroup…]/project``: up to the ``-`` segment or a route after it."""
    if segments[0].lower() in _GITLAB_PAGES:
        return None
    # Cleaned first, so "a/b/tree.git" reads as the route it becomes once normalised.
    names = [_repo_name(s) or s for s in segments]
    end = next((i for i, n in enumerate(names) if i >= 2 and n in _GITLAB_ROUTES), len(names))
    if "-" in segments[:end] or end < 2:
        return None
    project = _repo_name(segments[end - 1])
    return None if project is None else [*segments[: end - 1], project]


def _huggingface(segments: list[str]) -> list[str] | None:
    """Models ``org/name``, ``spaces/org/name``, ``datasets/org/name``; not ``papers/…``."""
    kind = segments[0].lower()
    prefix = [kind] if kind in _HF_KINDS else []
    if not prefix and kind in _HF_PAGES:
        return None
    rest = segments[len(prefix) :]
    if len(rest) < 2:
        return None
    name = _repo_name(rest[1])
    return None if name is None else [*prefix, rest[0], name]


_REPOSITORY: dict[str, Callable[[list[str]], list[str] | None]] = {
    "github.com": _github,
    "gitlab.com": _gitlab,
    "bitbucket.org": _bitbucket,
    "huggingface.co": _huggingface,
}

# -- papers ---------------------------------------------------------------------------------

# Where a link names a paper, up to its ID: arXiv's abs/pdf/html pages on any of its hosts,
# ar5iv (arXiv's HTML rendering), arXiv's DOIs, Hugging Face paper pages and alphaXiv.
_PAPER_PREFIX = (
    r"(?<![A-Za-z0-9_.-])(?i:"
    r"(?:www\.|export\.|browse\.)?arxiv\.org/(?:abs|pdf|html)/"
    r"|ar5iv(?:\.labs\.arxiv)?\.org/(?:abs|html)/"
    r"|(?:dx\.)?doi\.org/10\.48550/arxiv\."
    r"|(?:huggingface|hf)\.co/papers/"
    r"|(?:www\.)?alphaxiv\.org/(?:abs|overview)/"
    r")"
)
# New or old style; a version ("v2") may follow, but no further digit. parse_arxiv_id decides
# what is valid.
_PAPER_ID = r"(?P<id>[0-9]{4}\.[0-9]{4,5}|[a-z]+(?:-[a-z]+)*(?:\.[A-Z]{2})?/[0-9]{7})"
_PAPER_RE = re.compile(_PAPER_PREFIX + _PAPER_ID + r"(?![0-9])")


def linked_arxiv_ids(urls: Iterable[str | None]) -> list[str]:
    """arXiv IDs (no version) that ``urls`` point to, de-duplicated, in order."""
    found: dict[str, None] = {}
    for url in urls:
        if not url:
            continue
        for match in _PAPER_RE.finditer(url):
            try:
                found.setdefault(parse_arxiv_id(match["id"]).base, None)
            except MalformedArxivId:  # e.g. month 13: the pattern is looser than arXiv
                continue
    return list(found)
