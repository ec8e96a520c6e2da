"""Where digests come from: files, folders, globs, URLs; and the endpoints are never off-site."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scrapy import Request, Spider
from scrapy.downloadermiddlewares.offsite import OffsiteMiddleware
from scrapy.settings import Settings
from scrapy.utils.test import get_crawler

from crawler.export.feedstorage import AtomicFileFeedStorage
from crawler.export.runfiles import local_feeds
from crawler.parsing.digest import parse_digest_bytes
from crawler.reuse import read_source
from crawler.services.registry import SERVICES
from crawler.settings import EXTENSIONS as PROJECT_EXTENSIONS
from crawler.sources import basic_auth, expand_sources, without_userinfo
from tests.conftest import SAMPLES, run_crawl
from tests.standin import StandIn


def test_expand_files_folders_globs_and_urls(tmp_path: Path) -> None:
    for name in ("a.md", "b.markdown", "c.txt", "d.json", "e.MD"):
        (tmp_path / name).write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "f.md").write_text("x")
    spec = (
        f"{tmp_path}, {tmp_path}/sub/*.md ,https://example.org/p.md,{tmp_path}/a.md,{tmp_path}/nope"
    )
    expanded = expand_sources(spec)
    names = [s.name.rsplit("/", 1)[-1] for s in expanded.sources]
    assert names == ["a.md", "b.markdown", "c.txt", "e.MD", "f.md", "p.md"]  # no duplicates
    assert expanded.sources[-1].url == "https://example.org/p.md"
    assert expanded.sources[0].url == (tmp_path / "a.md").resolve().as_uri()
    assert expanded.problems == [f"{tmp_path}/nope: no such file or folder"]
    assert expand_sources(f"{tmp_path}/*.xyz").problems == [
        f"{tmp_path}/*.xyz: pattern matches no file"
    ]


def test_default_is_the_bundled_samples() -> None:
    expanded = expand_sources(None)
    assert [Path(s.name).name for s in expanded.sources] == [p.name for p in SAMPLES]
    assert [s.record_name for s in expanded.sources] == [p.name for p in SAMPLES]


def test_records_name_sources_relative_to_the_source_argument(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """post.source never holds a path of the crawling machine: it is what the argument names."""
    (tmp_path / "posts" / "2021" / "06").mkdir(parents=True)
    (tmp_path / "other").mkdir()
    for name in ("posts/a.md", "posts/2021/b.md", "posts/2021/06/c.md", "other/b.md"):
        (tmp_path / name).write_text("x")
    monkeypatch.chdir(tmp_path)
    cases = {
        f"{tmp_path}/posts": ["a.md"],  # a folder: the path below it
        "posts/2021/b.md": ["b.md"],  # a file given directly: its name
        f"{tmp_path}/posts/2021/b.md": ["b.md"],
        f"{tmp_path}/posts/**/*.md": ["2021/06/c.md", "2021/b.md", "a.md"],  # below the fixed part
        "posts/20*/*.md": ["2021/b.md"],
        "https://user:secret@example.org:8443/d/p.md?x=1": ["https://example.org:8443/d/p.md?x=1"],
        "https://example.org/p.md": ["https://example.org/p.md"],
        # Several pieces: relative to the folder holding them all, so no two files share a name.
        f"{tmp_path}/posts/2021,{tmp_path}/other": ["other/b.md", "posts/2021/b.md"],
        "posts/2021/b.md,other/b.md": ["other/b.md", "posts/2021/b.md"],
        f"posts/*.md,{tmp_path}/other/b.md,https://example.org/p.md": [
            "other/b.md",
            "posts/a.md",
            "https://example.org/p.md",
        ],
    }
    for spec, expected in cases.items():
        got = sorted(s.record_name for s in expand_sources(spec).sources)
        assert got == sorted(expected), spec
        assert all(str(tmp_path) not in name for name in got)
    (url,) = expand_sources("https://user:secret@example.org/p.md").sources
    assert url.url == "https://user:secret@example.org/p.md"  # still fetched as given
    assert url.name == url.record_name == "https://example.org/p.md"  # never shown with it


@pytest.mark.parametrize(
    ("service", "url_setting", "keys"),
    [(cls, cls.url_setting, ["1405891519249207298"]) for cls in SERVICES],
)
def test_configured_endpoints_are_never_offsite(service, url_setting, keys) -> None:
    settings = Settings()
    settings.setmodule("crawler.settings")
    settings.set(url_setting, "https://mirror.example.net/endpoint")
    if service.kind in ("arxiv", "impact", "hf", "openalex"):  # keyed by arXiv ID
        keys = ["2106.09685"]
    request_ = service(settings).build_request(keys, {})
    crawler = get_crawler(Spider)
    spider = Spider("s", allowed_domains=["example.org"])
    crawler.spider = spider
    middleware = OffsiteMiddleware.from_crawler(crawler)
    middleware.spider_opened(spider)
    assert middleware.process_request(request_) is None  # not IgnoreRequest


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log on the test's stderr."""


@pytest.fixture
def digest_server(tmp_path: Path) -> Iterator[str]:
    for sample in SAMPLES[:2]:
        shutil.copy(sample, tmp_path / sample.name)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.e2e
def test_digest_requests_wait_outside_the_scheduler_while_the_crawl_backs_out(
    tmp_path: Path, standin: StandIn
) -> None:
    """A backfill's every digest request used to sit in Scrapy's scheduler from the start
    (~15 MB at 10,000 posts): start() now hands them over only when the engine has room."""
    folder = tmp_path / "digests"
    folder.mkdir()
    for n in range(30):
        sample = SAMPLES[n % len(SAMPLES)]
        shutil.copy(sample, folder / f"{n:03d}_{sample.name}")
    probe = tmp_path / "probe.json"
    crawl = run_crawl(
        tmp_path / "out.jsonl", standin, "-a", f"source={folder}",
        settings={
            "ARXIV_DELAY": 0.05, "S2_DELAY": 0.05, "SCRAPER_SLOT_MAX_ACTIVE_SIZE": 1,
            "EXTENSIONS": json.dumps(PROJECT_EXTENSIONS | {"tests.probes.SchedulerProbe": 0}),
            "PROBE_FILE": probe,
        },
    )  # fmt: skip
    assert crawl.returncode == 0, crawl.log[-2000:]
    expected = sum(
        len(parse_digest_bytes(p.read_bytes(), p.name).entries) for p in folder.iterdir()
    )
    assert len(crawl.records) == expected
    assert json.loads(probe.read_text())["most_scheduled"] <= 2  # it was 30


def test_digests_read_over_http(tmp_path: Path, standin: StandIn, digest_server: str) -> None:
    urls = [f"{digest_server}/{p.name}" for p in SAMPLES[:2]] + [f"{digest_server}/gone.md"]
    crawl = run_crawl(
        tmp_path / "out.jsonl", standin, "-a", "source=" + ",".join(urls),
        settings={"ARXIV_DELAY": 0.1},
    )  # fmt: skip
    assert len(crawl.records) == 30 + 16
    assert {r["post"]["source"] for r in crawl.records} == set(urls[:2])
    assert f"{digest_server}/gone.md: cannot read:" in crawl.log
    assert crawl.returncode == 2


@pytest.mark.e2e
def test_bad_settings_are_refused_in_one_line_each(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text('{"previous": true}\n')
    crawl = run_crawl(
        out, None,
        settings={"ARXIV_DELAY": "x", "OEMBED_CONCURRENCY": 0, "STATE_TTL_DAYS": '{"arxiv/ok": "soon"}'},
    )  # fmt: skip
    assert crawl.returncode == 1
    assert crawl.log.splitlines() == [
        "error: STATE_TTL_DAYS needs finite numbers of days >= 0; wrong: arxiv/ok",
        "error: ARXIV_DELAY must be a number, not 'x'",
        "error: OEMBED_CONCURRENCY must be at least 1, not 0",
    ]
    assert out.read_text() == '{"previous": true}\n'


# -- sources with odd bytes and characters ---------------------------------------------------
# The characters that broke a URL source: undecodable argument bytes (surrogate escapes), control
# characters, what URL syntax gives a meaning to, and text beyond Latin-1.
_URL_CHARS = st.one_of(
    st.sampled_from([*":/@[]%?#. \t\n\x00\x7f\x85", "\udcff", "\udc80", "€", "é"]),
    st.characters(codec="ascii", exclude_characters=","),  # a comma separates sources
)


@hypothesis.settings(max_examples=300)
@given(st.text(_URL_CHARS, max_size=30), st.text(_URL_CHARS, max_size=20))
def test_a_url_source_is_fetchable_or_one_line_of_text(authority: str, path: str) -> None:
    """Scrapy raised while building the request of ``http://host/a\\xff.md`` (and of a port or
    IPv6 address that does not parse, or a user name Latin-1 cannot hold), which ended the
    crawl's start with a traceback: every source after it was never read. Now a URL either
    builds its request (as the spider builds it) or is one line of valid text saying why."""
    url = f"http://{authority}/{path}"
    expanded = expand_sources(f"{url},{SAMPLES[0]}")
    assert expanded.sources[-1].url == SAMPLES[0].resolve().as_uri()  # the rest still comes
    for line in expanded.problems:
        assert "\n" not in line and line.encode("utf-8").decode("utf-8") == line
        assert ": not a valid URL: " in line
    for source in expanded.sources[:-1]:
        Request(without_userinfo(source.url), headers=basic_auth(source.url))
        assert source.name.encode("utf-8") and source.record_name == source.name


def test_a_digest_whose_name_is_not_utf8_is_read_for_the_unchanged_check(tmp_path: Path) -> None:
    """url2pathname turned ``%FF`` into U+FFFD, another file: a digest named with a byte that
    is not UTF-8 was never "unchanged", and every rerun crawled."""
    digest = tmp_path / os.fsdecode(b"a\xff.md")
    digest.write_bytes(b"# digest")
    (source,) = expand_sources(str(digest)).sources
    assert source.url.endswith("/a%FF.md") and source.name.endswith("/a\\xff.md")
    assert read_source(source) == hashlib.sha256(b"# digest").hexdigest()


def test_a_file_uri_feed_names_the_file_scrapy_writes() -> None:
    """``-O file:///out/a%20b.jsonl``: Scrapy writes ``a b.jsonl``, but the run report, posts
    list, locks and ownership checks went to ``a%20b``, and no dataset was built."""
    feeds = {
        "file:///out/a%20b.jsonl": {"format": "jsonlines"},
        "file:relative.csv": {"format": "csv"},
        "plain/c.jsonl": {},
        "s3://bucket/d.jsonl": {},
        "FILE:///out/UP.jsonl": {},
        "C:/drive.jsonl": {},
        "ab:x.jsonl": {},
    }
    assert local_feeds(feeds) == [
        (Path("/out/a b.jsonl"), "jsonlines"), (Path("relative.csv"), "csv"),
        (Path("plain/c.jsonl"), ""), (Path("/out/UP.jsonl"), ""), (Path("C:/drive.jsonl"), ""),
    ]  # fmt: skip


def test_an_upper_case_file_uri_feed_is_the_file_it_names() -> None:
    """urlparse lowers a scheme, so ``FILE:///o/x.jsonl`` chose our file storage, which (as
    Scrapy's) knew ``file:`` only in lower case and wrote ``./FILE:/o/x.jsonl``; and no run
    file, lock or ownership check took it for a local feed."""
    for uri in ("FILE:///o/a%20b.jsonl", "File:///o/a%20b.jsonl", "file:///o/a%20b.jsonl"):
        assert AtomicFileFeedStorage(uri).path == "/o/a b.jsonl"
    assert AtomicFileFeedStorage("o/FILE:x.jsonl").path == "o/FILE:x.jsonl"
    assert AtomicFileFeedStorage("file://").path == ""  # as Scrapy's: no path, not "file://"


def test_a_source_url_is_checked_as_requested_and_shows_no_secret() -> None:
    """Checked as given and without ``user:password@`` (a bracket there parsed, and the request
    built without it raised in the spider's start: a traceback, the other sources lost); the
    line masks an ``api_key=`` as the log does."""
    assert expand_sources("http://]@[::/x.md").problems == [
        "http://[::/x.md: not a valid URL: Invalid IPv6 URL"
    ]
    assert expand_sources("http://127.0.0.1:x/d.md?api_key=SECRET").problems == [
        "http://127.0.0.1:x/d.md?api_key=***: not a valid URL: "
        "Port could not be cast to integer value as 'x'"
    ]
