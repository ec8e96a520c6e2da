"""Limits on what one digest may cost: entries per digest, front matter size, YAML aliases.

Timings are measured outside the tests (no wall-clock bounds here); these tests pin down the
behaviour the limits promise.
"""

from __future__ import annotations

import pytest

from crawler.parsing.digest import (
    FRONT_MATTER_MAX,
    MAX_ENTRIES,
    Problem,
    parse_digest,
    parse_digest_bytes,
)
from tests.test_digest import FRONT, entry, messages

FRONT_LINES = FRONT.count("\n")  # the first heading is on line FRONT_LINES + 1


def _bare(count: int) -> str:
    """A digest of ``count`` bare headings, one per line."""
    return FRONT + "".join(f"# {i}. Title {i}\n" for i in range(1, count + 1))


def test_entries_beyond_the_cap_are_skipped_with_one_error() -> None:
    digest = parse_digest(_bare(MAX_ENTRIES + 4), "big.md")
    assert MAX_ENTRIES == 1000
    assert [e.rank for e in digest.entries] == list(range(1, 1001))
    capped = [p for p in digest.problems if "MAX_ENTRIES_PER_DIGEST" in p.message]
    assert capped == [
        Problem(
            FRONT_LINES + 1001,
            "digest has more than 1000 entries; the 4 from here on are skipped "
            "(MAX_ENTRIES_PER_DIGEST)",
            "error",
        )
    ]
    # The last kept entry ends where the first skipped heading begins.
    assert digest.entries[-1].title == "Title 1000"


def test_the_cap_is_a_keyword_of_both_entry_points() -> None:
    text = (
        FRONT + entry(1) + entry(2, "2107.00002") + entry(3, "2107.00003") + entry(4, "2107.00004")
    )
    digest = parse_digest_bytes(text.encode(), "x.md", max_entries=2)
    assert [e.rank for e in digest.entries] == [1, 2]
    assert digest.entries[1].tweets[0].id == "1410000000000000002"  # nothing of entry 3 leaks in
    assert messages(digest)[-1] == (
        "37:digest has more than 2 entries; the 2 from here on are skipped (MAX_ENTRIES_PER_DIGEST)"
    )
    exact = parse_digest(text, "x.md", max_entries=4)
    assert [e.rank for e in exact.entries] == [1, 2, 3, 4]
    assert not any("MAX_ENTRIES_PER_DIGEST" in m for m in messages(exact))


def test_line_numbers_stay_exact_in_a_long_digest() -> None:
    """Lines are counted incrementally now; every entry must still name its own line."""
    digest = parse_digest(_bare(5000), "long.md", max_entries=5000)
    assert [e.line for e in digest.entries] == [FRONT_LINES + i for i in range(1, 5001)]
    no_links = [p.line for p in digest.problems if p.message.endswith("entry has no links line")]
    assert no_links == [FRONT_LINES + i for i in range(1, 5001)]


@pytest.mark.parametrize(
    "line",
    [
        "- links: " + "[" * 20000,
        "- links: " + "[a](" * 5000,
        "- " + "[x](https://arxiv.org/list/" * 2000,
        "https://arxiv.org/abs/" * 2000,
        "# 1. title" + " " * 20000 + "end",
    ],
)
def test_pathological_lines_are_read_not_choked_on(line: str) -> None:
    """Lines that made the old regexes backtrack still parse to something sensible."""
    digest = parse_digest(FRONT + entry(1) + line + "\n", "x.md")
    assert digest.entries[0].arxiv_id == "2107.00001"


# --- front matter -----------------------------------------------------------------------------

ALIASES = """---
title: Hot Papers 2021-07-01
base: &base ["lol", "lol"]
tags: *base
---

"""

# Each level refers to the previous one ten times: 10**6 strings from a few hundred bytes.
BOMB = (
    "---\n"
    + 'a0: &a0 ["lol"]\n'
    + "".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 7))
    + "tags: *a6\n---\n\n"
)


@pytest.mark.parametrize(("front", "line"), [(ALIASES, 4), (BOMB, 3)])
def test_yaml_aliases_are_refused_and_the_entries_still_read(front: str, line: int) -> None:
    digest = parse_digest(front + entry(1) + entry(2, "2107.00002"), "folder/hot-papers-x.md")
    assert [e.rank for e in digest.entries] == [1, 2]
    assert digest.post.slug == "hot-papers-x" and digest.post.tags == []  # front matter ignored
    assert messages(digest) == [f"{line}:front matter uses YAML aliases; ignored"]


def test_anchors_alone_and_plain_front_matter_still_load() -> None:
    digest = parse_digest(FRONT.replace("tags:", "tags: &t") + entry(1), "x.md")
    assert digest.post.slug == "hot-papers-2021-07-01" and digest.problems == []


def test_oversized_front_matter_is_ignored_and_the_entries_still_read() -> None:
    filler = "".join(f"k{i}: {'v' * 60}\n" for i in range(1200))  # ~80,000 characters
    text = "---\ntitle: Big\n" + filler + "---\n\n" + entry(1) + entry(2, "2107.00002")
    assert len(text) > FRONT_MATTER_MAX == 65536
    digest = parse_digest(text, "folder/big.md")
    assert [e.rank for e in digest.entries] == [1, 2]
    assert digest.post.slug == "big" and digest.post.title is None
    (problem,) = digest.problems
    assert problem.message == "front matter is longer than 65536 characters; ignored"
    # The line where the limit is crossed: 65536 characters into the front matter.
    assert problem.line == 1 + ("\n" + "title: Big\n" + filler)[:65536].count("\n")
    small = parse_digest_bytes((FRONT + entry(1)).encode(), "folder/small.md", front_matter_max=20)
    assert small.post.slug == "small" and len(small.entries) == 1
    assert messages(small) == ["2:front matter is longer than 20 characters; ignored"]
