"""Links in free text and tweets: code repositories, and arXiv papers a link points to.

Plain functions, no crawl: the record layer derives ``code_urls`` and ``linked_arxiv_ids`` with
them.
"""

from __future__ import annotations

from collections.abc import Iterable


def code_urls(texts: Iterable[str | None]) -> list[str]:
    """Links to code (GitHub, GitLab, Bitbucket, Hugging Face) in ``texts``, normalised,
    de-duplicated, first seen first."""
    return []  # placeholder until the extraction lands with its tests


def linked_arxiv_ids(urls: Iterable[str | None]) -> list[str]:
    """arXiv IDs (no version) that ``urls`` point to, de-duplicated, in order."""
    return []  # placeholder until the extraction lands with its tests
