"""Digest parsing: the five samples in full, damaged posts, and arbitrary text."""

from __future__ import annotations

import codecs
import contextlib
import json
from collections.abc import Iterator

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import crawler.parsing.digest as digest_module
from crawler.items import ArxivMeta
from crawler.parsing.digest import (
    Digest,
    DigestError,
    iso_utc,
    parse_digest,
    parse_digest_bytes,
)
from crawler.record import build_record, schema_errors
from crawler.record.build import post_block
from crawler.sources import sample_dir

SAMPLES = sorted(sample_dir().glob("*.txt"))


def _sample(prefix: str) -> Digest:
    path = next(p for p in SAMPLES if p.name.startswith(prefix))
    return parse_digest_bytes(path.read_bytes(), path.name)


def _entry(digest: Digest, rank: int):
    return next(e for e in digest.entries if e.rank == rank)


@pytest.mark.parametrize(
    ("prefix", "slug", "date", "entries", "tweets"),
    [
        ("000", "hot-papers-2021-01-01", "2021-01-04T10:51:45Z", 30, 34),
        ("001", "hot-papers-2021-06-18", "2021-06-19T07:55:41Z", 16, 19),
        ("002", "hot-papers-2021-03-12", "2021-03-13T14:47:01Z", 16, 23),
        ("003", "hot-papers-2021-06-09", "2021-06-10T18:07:48Z", 24, 28),
        ("004", "hot-papers-2021-06-01", "2021-06-02T09:38:11Z", 17, 21),
    ],
)
def test_every_sample_parses_completely(
    prefix: str, slug: str, date: str, entries: int, tweets: int
) -> None:
    digest = _sample(prefix)
    assert digest.problems == []
    assert digest.post.slug == slug
    assert digest.post.published_at == date
    assert digest.post.tags == ["arXiv", "Twitter", "Machine Learning", "Computer Science"]
    assert digest.post.category == "arXiv"
    assert [e.rank for e in digest.entries] == list(range(1, entries + 1))
    assert sum(len(e.tweets) for e in digest.entries) == tweets
    for e in digest.entries:
        assert e.arxiv_id and e.abs_url == f"https://arxiv.org/abs/{e.arxiv_id}"
        assert e.pdf_url == f"https://arxiv.org/pdf/{e.arxiv_id}"
        assert e.authors and e.categories and e.abstract and e.title
        assert e.retweets is not None and e.favorites is not None
        assert e.counts_at is not None and e.counts_at.startswith(date[:10])
        assert "  " not in e.title
        assert all(t.id.isdigit() and t.url.endswith(t.id) for t in e.tweets)


def test_first_entry_values() -> None:
    e = _entry(_sample("000"), 1)
    assert e.title == (
        "Out of Order: How important is the sequential order of words in a sentence in "
        "Natural Language Understanding tasks?"
    )
    assert e.authors == ["Thang M. Pham", "Trung Bui", "Long Mai", "Anh Nguyen"]
    assert (e.retweets, e.favorites, e.counts_at) == (10730, 19, "2021-01-04T10:51:45Z")
    assert e.arxiv_id == "2012.15180" and e.arxiv_version is None
    assert e.categories == ["cs.CL", "cs.AI", "cs.LG"]
    assert e.abstract.startswith("Do state-of-the-art natural language understanding models")
    assert e.abstract.endswith("understand the meaning of a sentence.")
    (tweet,) = e.tweets
    assert tweet.id == "1345396247016976390"
    assert tweet.url == "https://twitter.com/anh_ng8/status/1345396247016976390"
    assert (tweet.author_handle, tweet.author_name) == ("anh_ng8", "Anh Nguyen")
    assert (tweet.lang, tweet.date_text) == ("en", "January 2, 2021")
    assert tweet.text.startswith(
        "Do SotA natural language understanding models care about word order?\n\nNope 🙃, 75%"
    )
    assert '"marijuana cause cancer" == "cancer cause marijuana"' in tweet.text


def test_mojibake_in_samples_is_repaired() -> None:
    assert "Francisco Guzmán" in _entry(_sample("000"), 5).authors
    assert _entry(_sample("001"), 5).authors == ["Agnieszka Słowik", "Léon Bottou"]
    assert (
        _entry(_sample("001"), 5)
        .tweets[0]
        .text.startswith("I am thrilled to finally see it out! 🥳")
    )
    assert "Piotr Dollár" in _entry(_sample("002"), 8).authors
    assert (
        _entry(_sample("002"), 1).tweets[0].text.startswith("単語の分かち書きをなしに文字レベルで")
    )
    assert _entry(_sample("004"), 13).authors[2:4] != []
    assert any("Vaškevičiūte" in a for a in _entry(_sample("004"), 13).authors)


def test_clean_sample_is_untouched_and_irreversible_damage_kept() -> None:
    clean = _sample("003")
    assert any(a == "Bruno Lévy" for e in clean.entries for a in e.authors)
    assert any(t.text.startswith("Here’s a great read") for e in clean.entries for t in e.tweets)
    assert _entry(_sample("000"), 22).title == "kÅan: A Corrected CBOW Implementation"


def test_iso_utc() -> None:
    assert iso_utc("2021-01-04T10:51:45.Z") == "2021-01-04T10:51:45Z"
    assert iso_utc("2021-01-04 12:00:00+02:00") == "2021-01-04T10:00:00Z"
    assert iso_utc("2021-01-04") == "2021-01-04T00:00:00Z"
    assert iso_utc("yesterday") is None


# --- damaged posts ---------------------------------------------------------------------------

FRONT = """---
title: Hot Papers 2021-07-01
date: 2021-07-02T08:00:00.Z
slug: "hot-papers-2021-07-01"
tags:
  - "arXiv"
---

"""

ENTRY = """# {rank}. {title}

Ada Lovelace, Alan Turing

- retweets: 12, favorites: 3 (07/02/2021 08:00:00)

- links: [abs](https://arxiv.org/abs/{id}) | [pdf](https://arxiv.org/pdf/{id})
- [cs.LG](https://arxiv.org/list/cs.LG/recent)

An abstract  with a  double space.

<blockquote class="twitter-tweet"><p lang="en" dir="ltr">Look<br>here</p>&mdash; Ada (@ada) <a href="https://{host}/ada/status/{tweet}?ref_src=twsrc%5Etfw">July 1, 2021</a></blockquote>
<script async src="https://platform.twitter.com/widgets.js" charset="utf-8"></script>

"""


def entry(rank: int, arxiv_id: str = "2107.00001", host: str = "twitter.com", **kw: str) -> str:
    return ENTRY.format(
        rank=rank, title=kw.get("title", f"Paper {rank}"), id=arxiv_id, host=host,
        tweet=kw.get("tweet", f"14100000000000000{rank:02d}"),
    )  # fmt: skip


def messages(digest: Digest) -> list[str]:
    return [f"{p.line}:{p.message}" for p in digest.problems]


def test_old_style_versioned_and_x_com() -> None:
    text = FRONT + entry(1, "hep-th/9901001") + entry(2, "2106.09685v2", host="x.com")
    d = parse_digest(text, "t.md")
    assert d.problems == []
    assert (d.entries[0].arxiv_id, d.entries[0].arxiv_version) == ("hep-th/9901001", None)
    assert (d.entries[1].arxiv_id, d.entries[1].arxiv_version) == ("2106.09685", 2)
    assert d.entries[1].arxiv_query == "2106.09685v2"
    assert d.entries[1].tweets[0].url == "https://x.com/ada/status/1410000000000000002"
    assert d.entries[0].abstract == "An abstract with a double space."
    assert d.entries[0].tweets[0].text == "Look\nhere"


def test_malformed_id_and_missing_links_keep_the_entry() -> None:
    no_links = entry(2).replace(
        "- links: [abs](https://arxiv.org/abs/2107.00001) | [pdf](https://arxiv.org/pdf/2107.00001)\n",
        "",
    )
    d = parse_digest(FRONT + entry(1, "abc") + no_links, "t.md")
    assert [e.arxiv_id for e in d.entries] == [None, None]
    assert d.entries[0].arxiv_problem == "malformed arXiv ID 'abc'"
    assert d.entries[1].arxiv_problem == "entry has no links line"
    assert messages(d)[:2] == [
        "9:entry 1: malformed arXiv ID 'abc'",
        "23:entry 2: entry has no links line",
    ]


def test_blockquote_without_status_link_and_duplicate_paper() -> None:
    broken = entry(2).replace("/ada/status/1410000000000000002", "/ada")
    d = parse_digest(FRONT + entry(1) + broken, "t.md")
    assert len(d.entries) == 2 and d.entries[1].tweets == []
    assert any("without a status link" in m for m in messages(d))
    assert any(m.startswith("23:entry 2: same paper as entry 1") for m in messages(d))


def test_cut_off_post_keeps_entries_before_the_damage() -> None:
    full = FRONT + entry(1) + entry(2) + entry(3)
    cut = (
        full[: full.index("<blockquote", full.index("# 3."))]
        + '<blockquote class="twitter-tweet"><p>Tru'
    )
    d = parse_digest(cut, "t.md")
    assert [e.rank for e in d.entries] == [1, 2, 3]
    assert [len(e.tweets) for e in d.entries] == [1, 1, 0]
    assert any("cut off" in m for m in messages(d))
    cut_mid_entry = full[: full.index("- retweets", full.index("# 3."))]
    d = parse_digest(cut_mid_entry, "t.md")
    assert [e.rank for e in d.entries] == [1, 2, 3]
    assert d.entries[2].arxiv_id is None
    assert any("cut off" in m for m in messages(d))


def test_front_matter_problems_are_reported_not_fatal() -> None:
    d = parse_digest(entry(1), "folder/hot-papers-x.md")
    assert d.post.slug == "hot-papers-x" and len(d.entries) == 1
    assert messages(d)[0] == "1:no YAML front matter; post fields taken from the file name"
    bad_yaml = "---\ntitle: [unclosed\ndate: x\n---\n\n" + entry(1)
    d = parse_digest(bad_yaml, "bad.md")
    assert len(d.entries) == 1
    assert "invalid YAML front matter" in messages(d)[0]


def test_encodings() -> None:
    text = FRONT + entry(1, title="Léon’s paper")
    utf16 = parse_digest_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"), "u16.md")
    assert utf16.entries[0].title == "Léon’s paper" and utf16.post.encoding == "utf-16"
    legacy = parse_digest_bytes(text.encode("cp1252"), "legacy.md")
    assert legacy.entries[0].title == "Léon’s paper"
    assert messages(legacy)[0] == "None:not UTF-8; decoded as cp1252"


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "empty"),
        (bytes(range(256)) * 64, "binary"),
        # With front matter this is an empty digest now (tests/test_parsing_damage.py).
        (b"title: x\n\nno entries here\n", "no entries"),
    ],
)
def test_unreadable_inputs_raise_our_error(data: bytes, match: str) -> None:
    with pytest.raises(DigestError, match=match):
        parse_digest_bytes(data, "x.md")


_TOKENS = [
    *"# -.,:()[]|<>/\"'\n\t0123456789abcdefxyz",
    "---\n", "# 1. ", "<blockquote class=\"twitter-tweet\">", "](https://arxiv.org/abs/",
    "- links: [abs](", "- retweets: 1, favorites: 2", "é", "Ã©", "\x00", "</blockquote>",
    "date: ", "title: ", "slug: ", "tags:\n  - ", "2021-13-45", "0001-01-01T00:00:00+01:00",
    "9" * 30, "[", "{", "&", "*a", "!!python/object ",
]  # fmt: skip
_MARKDOWNISH = st.lists(st.sampled_from(_TOKENS), max_size=120).map("".join)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_MARKDOWNISH, st.text(max_size=300)))
def test_parser_returns_or_raises_only_its_own_error(text: str) -> None:
    try:
        digest = parse_digest(text, "fuzz.md")
    except DigestError:
        return
    # No entries only with front matter, and then the post says so.
    assert (
        digest.entries or digest.problems[-1].message == "no entries ('# N. Title' headings) found"
    )
    for e in digest.entries:
        assert (e.arxiv_id is None) == (e.arxiv_problem is not None)
        e.arxiv = ArxivMeta(status="error", error="x")
        assert schema_errors(build_record(e)) == []  # whatever the post says, a valid record


@settings(max_examples=200)
@given(st.binary(max_size=300))
def test_byte_parser_returns_or_raises_only_its_own_error(data: bytes) -> None:
    with contextlib.suppress(DigestError):
        parse_digest_bytes(data, "fuzz.bin")


def test_bad_front_matter_values_are_problems_not_crashes() -> None:
    for front, problem in [
        ("date: 2021-13-45", "front matter date '2021-13-45' is not a valid date; ignored"),
        ("date: 0001-01-01T00:00:00+01:00", "is not a valid date; ignored"),
        ("title: !!python/object:os.system x", "invalid YAML front matter"),
    ]:
        d = parse_digest(f"---\n{front}\n---\n\n" + entry(1), "x.md")
        assert len(d.entries) == 1 and d.post.published_at is None
        assert any(problem in p.message for p in d.problems), d.problems


REPEATED_RANK = """---
title: Hot Papers 2021-01-01
slug: hot-papers-2021-01-01
date: 2021-01-02T10:00:00.Z
---
# 1. First
Ann Author
- retweets: 1, favorites: 2 (01/01/2021 10:00:00)
- links: [abs](https://arxiv.org/abs/2101.00001) | [pdf](https://arxiv.org/pdf/2101.00001)
abstract a

# 1. Second, numbered like the first
Bob Author
- retweets: 3, favorites: 4 (01/01/2021 10:00:00)
- links: [abs](https://arxiv.org/abs/2101.00002) | [pdf](https://arxiv.org/pdf/2101.00002)
abstract b

# 1. Third, numbered alike again
Cy Author
- retweets: 5, favorites: 6 (01/01/2021 10:00:00)
- links: [abs](https://arxiv.org/abs/2101.00003) | [pdf](https://arxiv.org/pdf/2101.00003)
abstract c
"""


def test_a_repeated_rank_keeps_both_entries_with_keys_of_their_own() -> None:
    import hashlib

    digest = parse_digest(REPEATED_RANK, "dup.md")
    ids = [build_record(e)["entry_id"] for e in digest.entries]

    def key(rank: str) -> str:
        return hashlib.sha256(f"dup.md\nhot-papers-2021-01-01\n{rank}".encode()).hexdigest()[:16]

    assert ids == [key("1"), key("1#1"), key("1#2")]  # the first keeps the plain key
    assert [(p.line, p.message, p.severity) for p in digest.problems] == [
        (12, "entry 1: rank already used at line 6; both kept", "warning"),
        (18, "entry 1: rank already used at line 6; both kept", "warning"),
    ]


SURROGATE_FRONT = r"""---
title: "\ud83d\ude00 LoRA \ud83d"
slug: "hot-papers-2021-06-18"
date: 2021-06-19T07:55:41Z
tags:
  - "arXiv"
  - "Tw\udc80"
category: "\ude00"
---

"""


# The two loaders PyYAML may read the front matter with: its C one where libyaml is installed
# (the usual case), its pure-Python one where it is not. Either is what the crawler would use.
LOADERS = [
    pytest.param(digest_module._PySafeLoader, id="pure-python"),
    pytest.param(
        getattr(digest_module, "_CSafeLoader", None),
        id="libyaml",
        marks=pytest.mark.skipif(not yaml.__with_libyaml__, reason="libyaml is not installed"),
    ),
]


@pytest.mark.parametrize("loader", LOADERS)
def test_front_matter_escapes_of_surrogates_never_reach_the_post(
    monkeypatch: pytest.MonkeyPatch, loader: type
) -> None:
    """PyYAML without libyaml reads ``"\\ud83d\\ude00"`` as two lone surrogates; the record
    pipeline replaced them in records, but the posts list (and the dataset step's job) carried
    them as read, and writing it as UTF-8 failed. Now the post holds text: the pair is its
    character, a lone one U+FFFD, with a warning at its key's line. libyaml refused such
    escapes, and the same digest lost its title, date and tags there: it is read again with
    the pure-Python loader, so both installs give this same post."""
    monkeypatch.setattr(digest_module, "_SAFE_LOADER", loader)
    d = parse_digest(SURROGATE_FRONT + entry(1), "x.md")
    post = d.post
    json.dumps(post_block(post), ensure_ascii=False).encode("utf-8")  # the posts list's line
    assert (post.title, post.slug, post.published_at, post.tags, post.category) == (
        "\U0001f600 LoRA \ufffd", "hot-papers-2021-06-18", "2021-06-19T07:55:41Z",
        ["arXiv", "Tw\ufffd"], "\ufffd",
    )  # fmt: skip
    assert messages(d) == [
        "2:front matter title: 1 lone surrogate (not text) became U+FFFD",
        "5:front matter tags: 1 lone surrogate (not text) became U+FFFD",
        "8:front matter category: 1 lone surrogate (not text) became U+FFFD",
    ]
    record = build_record(d.entries[0])
    assert schema_errors(record) == [] and record["post"] == post_block(post)


@contextlib.contextmanager
def _reading_with(loader: type) -> Iterator[None]:
    """The crawler's front matter loader set to ``loader`` (hypothesis runs many examples per
    test, so not through the function-scoped ``monkeypatch``)."""
    usual = digest_module._SAFE_LOADER
    digest_module._SAFE_LOADER = loader
    try:
        yield
    finally:
        digest_module._SAFE_LOADER = usual


_CODE_POINTS = st.one_of(st.integers(0xD800, 0xDFFF), st.integers(0x20, 0x10FFFF))


@pytest.mark.skipif(not yaml.__with_libyaml__, reason="libyaml is not installed")
@settings(max_examples=200)
@given(st.lists(_CODE_POINTS, max_size=8))
def test_both_loaders_read_any_escapes_into_the_same_post(codes: list[int]) -> None:
    """Whatever a quoted title spells with ``\\u``/``\\U`` escapes (pairs, lone surrogates,
    anything else), the install with libyaml and the one without give the same post and the
    same messages, and the front matter around it is kept."""
    escapes = "".join(f"\\U{c:08x}" if c > 0xFFFF else f"\\u{c:04x}" for c in codes)
    text = f'---\ntitle: "x{escapes}"\ndate: 2021-06-19\ntags: ["arXiv"]\n---\n\n' + entry(1)
    read = []
    for loader in (digest_module._CSafeLoader, digest_module._PySafeLoader):
        with _reading_with(loader):
            d = parse_digest(text, "x.md")
        read.append((post_block(d.post), messages(d)))
    assert read[0] == read[1]
    block, _ = read[0]
    assert (block["published_at"], block["tags"]) == ("2021-06-19T00:00:00Z", ["arXiv"])
    assert block["title"].startswith("x") and block["title"].encode("utf-8")


@pytest.mark.skipif(not yaml.__with_libyaml__, reason="libyaml is not installed")
def test_an_escape_past_the_last_code_point_keeps_its_line() -> None:
    """libyaml refuses ``\\U00110000`` with the words it uses for surrogates, so the
    pure-Python loader reads it again, which refuses it without a position: the message lost
    its line. libyaml's own error, with its line, is the one reported."""
    text = '---\ntitle: ok\ntags: [a]\nslug: "x\\U00110000"\ndate: 2021-06-01\n---\n\n' + entry(1)
    d = parse_digest(text, "x.md")
    assert [(p.line, p.message) for p in d.problems][:1] == [
        (4, "invalid YAML front matter (found invalid Unicode character escape code)")
    ]
