"""Issue 19 (items 2, 7, 8): input that was lost, cut or leaked without a word, as unit tests of
the parsers and the source expansion (the crawls are in tests/test_hardening_inputs_e2e.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crawler.outcome import (
    DIGESTS_READ,
    ENTRIES_PARSED,
    INPUT_LOST,
    INPUT_WARNINGS,
    ExitStatus,
    Outcome,
)
from crawler.parsing.digest import parse_digest
from crawler.parsing.tweets import MAX_TWEET_ID, TweetParseError, parse_blockquote
from crawler.sources import expand_sources, without_userinfo
from tests.unit.helpers import unit_crawler


def _quote(href: str, attribution: str = "&mdash; Ada Lovelace (@ada)") -> str:
    return (
        '<blockquote class="twitter-tweet"><p lang="en" dir="ltr">Hello</p>'
        f'{attribution} <a href="{href}">January 3, 2021</a></blockquote>'
    )


ID = "1345396247016976390"


@pytest.mark.parametrize(
    ("href", "url"),
    [
        (f"https://twitter.com/i/web/status/{ID}", f"https://twitter.com/i/web/status/{ID}"),
        (f"https://twitter.com/i/status/{ID}", f"https://twitter.com/i/web/status/{ID}"),
        (f"https://twitter.com/ada/statuses/{ID}", f"https://twitter.com/ada/status/{ID}"),
        (
            f"https://mobile.twitter.com/ada/status/{ID}?s=20",
            f"https://twitter.com/ada/status/{ID}",
        ),
        (f"https://x.com/i/web/status/{ID}/", f"https://x.com/i/web/status/{ID}"),
        (f"https://twitter.com/#!/ada/status/{ID}", f"https://twitter.com/ada/status/{ID}"),
    ],
)
def test_every_tweet_link_form_names_its_tweet(href: str, url: str) -> None:
    tweet = parse_blockquote(_quote(href))
    assert (tweet.id, tweet.url, tweet.author_handle) == (ID, url, "ada")


def test_a_link_without_a_handle_and_no_attribution_leaves_the_handle_unknown() -> None:
    tweet = parse_blockquote(_quote(f"https://twitter.com/i/web/status/{ID}", attribution=""))
    assert (tweet.id, tweet.author_handle, tweet.author_name) == (ID, None, None)
    assert tweet.url == f"https://twitter.com/i/web/status/{ID}"


@given(st.text(alphabet="0123456789", min_size=1, max_size=40))
def test_a_status_id_is_kept_exactly_or_refused_whole(digits: str) -> None:
    href = f"https://twitter.com/ada/status/{digits}?ref_src=twsrc%5Etfw"
    if len(digits) <= 19 and int(digits) <= MAX_TWEET_ID:
        assert parse_blockquote(_quote(href)).id == digits
    else:
        with pytest.raises(TweetParseError, match="is not a tweet ID"):
            parse_blockquote(_quote(href))


def test_an_id_past_63_bits_is_an_error_naming_its_line() -> None:
    body = (
        "---\ntitle: T\ndate: 2021-01-04\n---\n\n# 1. Paper\n\nAda\n\n"
        "- retweets: 1, favorites: 2\n\n- links: [abs](https://arxiv.org/abs/2101.00001)\n\n"
        + _quote("https://twitter.com/ada/status/1345396247016976390123")
        + "\n"
    )
    digest = parse_digest(body, "x.md")
    assert digest.entries[0].tweets == []
    lost = [(p.line, p.message) for p in digest.problems if p.severity == "error"]
    assert lost == [
        (14, "entry 1: status link ID 1345396247016976390123 is not a tweet ID (a 63-bit "
             "number); tweet not read")
    ]  # fmt: skip


def test_one_bad_front_matter_date_keeps_every_other_field() -> None:
    text = (
        "---\ntitle: Hot Papers 2021-03-01\nslug: hot-papers-2021-03-01\ntags: [a, b]\n"
        "category: arXiv\ndate: 2021-02-30\n---\n\n# 1. Paper\n"
    )
    digest = parse_digest(text, "x.md")
    post = digest.post
    assert (post.title, post.slug, post.tags, post.category, post.published_at) == (
        "Hot Papers 2021-03-01", "hot-papers-2021-03-01", ["a", "b"], "arXiv", None
    )  # fmt: skip
    assert (6, "front matter date '2021-02-30' is not a valid date; ignored") in [
        (p.line, p.message) for p in digest.problems
    ]


def _loop_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "posts"
    (folder / "2021").mkdir(parents=True)
    (folder / "one.md").write_text("one")
    (folder / "2021" / "two.md").write_text("two")
    (folder / "a").symlink_to(".")
    (folder / "b").symlink_to(".")
    (folder / "2021" / "up").symlink_to("..")
    return folder


def test_a_pattern_never_follows_a_link_back_into_a_folder_it_is_inside(tmp_path: Path) -> None:
    folder = _loop_folder(tmp_path)
    expanded = expand_sources(f"{folder}/**/*.md", limit=50)
    assert [s.url for s in expanded.sources] == [
        (folder / "2021" / "two.md").as_uri(), (folder / "one.md").as_uri()
    ]  # fmt: skip
    assert expanded.problems == []


def test_a_pattern_past_the_scan_cap_is_one_line_naming_it(tmp_path: Path) -> None:
    folder = _loop_folder(tmp_path)
    for n in range(20):
        (folder / f"x{n}.md").write_text("x")
    expanded = expand_sources(f"{folder}/**/*.md", limit=10)
    assert expanded.sources == []
    assert expanded.problems == [
        f"{folder}/**/*.md: more than 10 files and folders visited (SOURCE_SCAN_MAX); "
        "nothing read from it"
    ]


def test_a_dangling_digest_link_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "posts"
    folder.mkdir()
    (folder / "good.md").write_text("x")
    (folder / "gone.md").symlink_to(tmp_path / "nowhere.md")
    (folder / "notes.log").symlink_to(tmp_path / "nowhere.log")  # not a digest name
    for spec in (str(folder), f"{folder}/*.md"):
        expanded = expand_sources(spec)
        assert [s.url for s in expanded.sources] == [(folder / "good.md").as_uri()]
        assert expanded.problems == [
            f"{folder}/gone.md: dangling symbolic link (its target is missing)"
        ]


def test_a_url_password_never_reaches_a_name() -> None:
    url = "https://user:s%40cret@example.org:8443/x.md?a=1"
    expanded = expand_sources(f"{url},https://example.org/y.md")
    assert [s.name for s in expanded.sources] == [
        "https://example.org:8443/x.md?a=1", "https://example.org/y.md"
    ]  # fmt: skip
    assert without_userinfo("http://u@h/p") == "http://h/p"


def test_input_lost_inside_a_digest_exits_2_and_warnings_do_not() -> None:
    def status(stats: dict[str, int]) -> ExitStatus:
        crawler = unit_crawler()
        crawler.crawling = True
        outcome = Outcome.of(crawler)
        for key, value in ({DIGESTS_READ: 1, ENTRIES_PARSED: 3} | stats).items():
            crawler.stats.set_value(key, value)
        outcome.reason = "finished"
        return outcome.exit_status()

    assert status({INPUT_WARNINGS: 4}) == ExitStatus.OK
    assert status({INPUT_LOST: 1}) == ExitStatus.SOURCE_UNREADABLE
