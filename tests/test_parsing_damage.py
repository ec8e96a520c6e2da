"""Damaged digests keep what they can: NUL bytes, absurd arXiv versions, headings written
slightly wrong, and posts without entries."""

from __future__ import annotations

import random
import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crawler.parsing.arxiv_ids import MalformedArxivId, parse_arxiv_id
from crawler.parsing.digest import Digest, DigestError, Problem, parse_digest, parse_digest_bytes
from tests.test_digest import FRONT, entry, messages

IDS = ("2107.00001", "2107.00002", "2107.00003", "2107.00004")


def _post(count: int = 4) -> str:
    return FRONT + "".join(entry(i + 1, IDS[i]) for i in range(count))


def _summary(digest: Digest) -> list[tuple[int, str | None, int | None, list[str]]]:
    return [(e.rank, e.arxiv_id, e.retweets, [t.id for t in e.tweets]) for e in digest.entries]


GOOD = _summary(parse_digest(_post(), "good.md"))


# --- NUL bytes --------------------------------------------------------------------------------


def test_one_nul_byte_costs_nothing_but_a_message() -> None:
    text = _post()
    at = text.index("Paper 1")  # early: in the first entry's title line (line 9)
    data = (text[:at] + "\x00" + text[at:]).encode()
    digest = parse_digest_bytes(data, "nul.md")
    assert _summary(digest) == GOOD
    assert digest.entries[0].title == "Paper 1"
    assert messages(digest) == ["9:NUL bytes removed"]


def test_nul_bytes_on_several_lines_name_the_first() -> None:
    text = _post().replace("Paper 2", "Pa\x00per 2").replace("Paper 3", "Paper\x00\x00 3")
    digest = parse_digest_bytes(text.encode(), "nul.md")
    assert _summary(digest) == GOOD
    assert messages(digest) == ["23:NUL bytes removed (and on 1 more lines)"]


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.data())
def test_a_nul_anywhere_leaves_the_entries_as_they_were(data: st.DataObject) -> None:
    text = _post()
    at = data.draw(st.integers(0, len(text)))
    damaged = text[:at] + "\x00" * data.draw(st.integers(1, 3)) + text[at:]
    digest = parse_digest_bytes(damaged.encode(), "nul.md")
    assert _summary(digest) == GOOD
    assert digest.problems[0] == Problem(1 + text.count("\n", 0, at), "NUL bytes removed")


def _png() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    rnd = random.Random(7)
    rows = b"".join(b"\x00" + rnd.randbytes(48) for _ in range(16))
    header = struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "data",
    [
        _png(),
        random.Random(3).randbytes(5000),
        b"\x00" * 5000,
        b"\x00" * 3000 + _post().encode(),
        _post().encode().replace(b"\n", b"\x00\n"),  # UTF-16-like: a NUL on every line
    ],
    ids=["png", "random", "nul-file", "nul-then-text", "nul-every-line"],
)
def test_binary_input_is_still_refused(data: bytes) -> None:
    with pytest.raises(DigestError, match="binary"):
        parse_digest_bytes(data, "x.bin")


# --- absurd arXiv versions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "version", ["99999999999999999999999999", "9" * 5000, "12345"], ids=["26", "5000", "5"]
)
def test_an_absurd_version_costs_only_its_entry(version: str) -> None:
    text = FRONT + entry(1) + entry(2, f"2106.09685v{version}") + entry(3, "2107.00003")
    digest = parse_digest(text, "v.md")
    assert [(e.arxiv_id, e.arxiv_version) for e in digest.entries] == [
        ("2107.00001", None),
        (None, None),
        ("2107.00003", None),
    ]
    broken = digest.entries[1]
    assert broken.arxiv_problem is not None
    assert broken.arxiv_problem.startswith("malformed arXiv ID '2106.09685v")
    assert len(broken.arxiv_problem) < 80  # a short message, not thousands of digits
    assert [p for p in digest.problems if p.severity == "error"] == [
        Problem(23, f"entry 2: {broken.arxiv_problem}", "error")
    ]
    assert [len(e.tweets) for e in digest.entries] == [1, 1, 1]


def test_versions_of_up_to_four_digits_are_kept() -> None:
    assert parse_arxiv_id("2106.09685v9999").version == 9999
    assert parse_arxiv_id("hep-th/9901001v12").version == 12
    with pytest.raises(MalformedArxivId, match="malformed"):
        parse_arxiv_id("2106.09685v10000")


# --- headings written slightly wrong -------------------------------------------------------------


@pytest.mark.parametrize(
    "heading",
    [" # 3.", "   # 3.", "\t# 3.", "## 3.", "#### 3.", "# 3)", "#3.", "#  3.", "\ufeff# 3.",
     "\u200b# 3.", "\x00# 3.", " \u200b## 3)"],
)  # fmt: skip
def test_harmless_heading_variants_are_headings(heading: str) -> None:
    text = _post().replace("# 3. Paper 3", f"{heading} Paper 3")
    digest = parse_digest_bytes(text.encode(), "h.md")
    assert _summary(digest) == GOOD
    assert digest.entries[2].title == "Paper 3" and digest.entries[2].line == 37
    assert not any("heading missing" in m for m in messages(digest))


_PREFIX = st.text(alphabet=" \t\ufeff\u200b\u200c\u200d\u2060", max_size=4)
_GAP = st.text(alphabet=" \t\u200b", max_size=3)


@settings(max_examples=200, deadline=None)
@given(_PREFIX, st.integers(1, 6), _GAP, st.sampled_from(".)"), st.sampled_from([" ", "  ", "\t"]))
def test_any_harmless_heading_variant_keeps_entries_apart(
    prefix: str, hashes: int, gap: str, mark: str, space: str
) -> None:
    heading = f"{prefix}{'#' * hashes}{gap}3{mark}{space}Paper 3"
    digest = parse_digest(_post().replace("# 3. Paper 3", heading), "h.md")
    assert _summary(digest) == GOOD


@pytest.mark.parametrize(
    "broken", ["3. Paper 3", "**3.** Paper 3", "#3 Paper 3", "# three. Paper 3", "Paper 3"]
)
def test_an_unseen_heading_never_merges_entries_silently(broken: str) -> None:
    text = _post().replace("# 3. Paper 3", broken)
    digest = parse_digest(text, "m.md")
    assert [e.rank for e in digest.entries] == [1, 2, 4]
    merged = digest.entries[1]
    # Entry 2 keeps its own paper and counts; the rest is reported where it starts.
    assert (merged.arxiv_id, merged.retweets) == ("2107.00002", 12)
    second_links = 1 + text.index("- links", text.index("- links", text.index("# 2.")) + 1)
    line = text.count("\n", 0, second_links) + 1
    assert f"{line}:entry 2: second links line here; is a '# N.' heading missing above it?" in (
        messages(digest)
    )


def test_a_second_paper_in_the_links_is_reported() -> None:
    text = _post(2).replace(
        "[pdf](https://arxiv.org/pdf/2107.00002)", "[pdf](https://arxiv.org/pdf/2107.00009)"
    )
    digest = parse_digest(text, "m.md")
    assert digest.entries[1].arxiv_id == "2107.00002"
    assert messages(digest) == [
        "29:entry 2: second arXiv paper 2107.00009 here (after 2107.00002); "
        "is a '# N.' heading missing above it?"
    ]


def test_tweets_linking_other_papers_are_not_a_merge() -> None:
    text = _post(2).replace("Look<br>here", "see https://arxiv.org/abs/2001.00001")
    assert parse_digest(text, "m.md").problems == []


_BREAKS = st.sampled_from(["{n}. ", "**{n}.** ", "#{n} ", "# {n}: ", "-- {n}. ", "", "#{n}-"])


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 4), _BREAKS)
def test_whatever_hides_a_heading_the_merge_is_reported(rank: int, template: str) -> None:
    text = _post().replace(f"# {rank}. ", template.format(n=rank))
    digest = parse_digest(text, "m.md")
    ranks = [e.rank for e in digest.entries]
    assert ranks == [r for r in (1, 2, 3, 4) if r != rank]
    assert any(
        m.endswith(
            f"entry {rank - 1}: second links line here; is a '# N.' heading missing above it?"
        )
        for m in messages(digest)
    )
    assert [e.arxiv_id for e in digest.entries] == [IDS[r - 1] for r in ranks]


# --- posts without entries ----------------------------------------------------------------------


def test_front_matter_without_entries_is_an_empty_digest() -> None:
    digest = parse_digest_bytes((FRONT + "Nothing was popular today.\n").encode(), "empty.md")
    assert digest.entries == []
    assert digest.post.slug == "hot-papers-2021-07-01"
    assert digest.problems == [Problem(None, "no entries ('# N. Title' headings) found")]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"Just some notes, no front matter, no entries.\n", "no entries"),
        (b"---\ntitle: [unclosed\n---\n\nno entries\n", "no entries"),
        (b"---\n- a list\n---\n\nno entries\n", "no entries"),
        (b"", "empty"),
        (b"\x00" * 100, "binary"),
    ],
)
def test_text_that_is_no_digest_is_still_refused(data: bytes, match: str) -> None:
    with pytest.raises(DigestError, match=match):
        parse_digest_bytes(data, "x.md")
