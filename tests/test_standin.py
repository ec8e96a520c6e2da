"""The stand-in must behave like the real services, or tests against it prove nothing.

Everything goes over real HTTP on 127.0.0.1 with urllib/http.client; nothing sleeps: tests that
need requests in flight pin them with ``StandIn.hold`` and wait on ``StandIn.wait_for``.
"""

from __future__ import annotations

import http.client
import itertools
import json
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from tests.standin import (
    SHAPE_KINDS,
    Author,
    Catalogue,
    Fault,
    Media,
    Paper,
    StandIn,
    Tweet,
    js_radix_string,
    request_key,
    syndication_token,
    tweet_id_from_url,
)
from tests.standin.__main__ import build, crawl_command, parser
from tests.standin.faults import DEFAULT_MIXED_KINDS
from tests.standin.models import TweetStatus

NS = {
    "a": "http://www.w3.org/2005/Atom",
    "arxiv": "http://arxiv.org/schemas/atom",
    "os": "http://a9.com/-/spec/opensearch/1.1/",
}
SAMPLES = sorted((Path(__file__).resolve().parents[1] / "crawler" / "samples").glob("*.txt"))
IDS = [f"2101.{i:05d}" for i in range(1, 17)]  # 16 served papers
T0 = datetime(2021, 1, 5, 12, 0, 0, tzinfo=UTC)


def _paper(arxiv_id: str, n: int) -> Paper:
    return Paper(
        arxiv_id=arxiv_id,
        latest_version=3 if n == 0 else 1 + n % 2,
        title=f"Paper {n}: $a<b$ & <i>wrapped</i>\n  over two lines",
        summary=f"Abstract {n} with $x^2 & y_1$ <and> markup.",
        authors=(Author("Ana Ñúñez", ("AT&T Labs", "MIT")), Author("Bo Li")),
        published=T0 + timedelta(hours=n),
        primary_category="cs.CL",
        categories=("cs.CL", "cs.LG"),
        comment="5 pages & 2 figures" if n % 2 else None,
        journal_ref="JMLR 22 (2021)" if n % 3 == 0 else None,
        doi=f"10.1000/x.{n}" if n % 4 == 0 else None,
    )


def _tweet(tid: str, status: TweetStatus = "ok", handle: str = "alice") -> Tweet:
    return Tweet(
        tid,
        handle,
        "Alice & Co",
        "en",
        'Hello <a href="https://t.co/x">x</a>',
        "June 1, 2021",
        status,
    )


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    cat = Catalogue()
    for n, arxiv_id in enumerate(IDS):
        cat.add_paper(_paper(arxiv_id, n))
    cat.add_paper(_paper("hep-th/9901001", 99))
    cat.add_tweet(_tweet("1400000000000000001"))
    cat.add_tweet(_tweet("1400000000000000002", "deleted"))
    cat.add_tweet(_tweet("1400000000000000003", "protected"))
    cat.add_tweet(_tweet("1400000000000000004", handle="alice_new"))  # renamed since
    for i in range(40):
        cat.add_tweet(_tweet(str(1500000000000000000 + i)))
    return cat


@pytest.fixture(scope="module")
def server(catalogue: Catalogue) -> Iterator[StandIn]:
    with StandIn(catalogue) as s:
        yield s


@pytest.fixture
def standin(server: StandIn) -> StandIn:
    server.faults.clear()
    server.reset_log()
    server.latency.update(arxiv=0.0, oembed=0.0, syndication=0.0, semantic_scholar=0.0)
    server.max_in_flight.clear()
    server.min_interval.clear()  # the 1 s Semantic Scholar spacing has its own tests
    server.refusal_retry_after = None
    server.release()
    return server


class Reply:
    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def feed(self) -> etree._Element:
        return etree.fromstring(self.body)

    def json(self) -> Any:
        return json.loads(self.body)


def fetch(url: str, params: dict[str, str] | None = None, *, post: bool = False) -> Reply:
    data = None
    if params is not None:
        encoded = urllib.parse.urlencode(params)
        if post:
            data = encoded.encode()
        else:
            url = f"{url}?{encoded}"
    try:
        with urllib.request.urlopen(url, data=data, timeout=5) as r:
            return Reply(r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        return Reply(e.code, e.headers, e.read())


def child(el: etree._Element, path: str) -> etree._Element:
    """The first element at ``path`` under ``el``, which must be there."""
    found = el.find(path, NS)
    assert found is not None, path
    return found


def text_of(el: etree._Element, path: str) -> str:
    """The text at ``path`` under ``el``, whose element must be there."""
    found = el.findtext(path, namespaces=NS)
    assert found is not None, path
    return found


def entry_ids(feed: etree._Element) -> list[str]:
    return [text_of(e, "a:id") for e in feed.findall("a:entry", NS)]


def total(feed: etree._Element) -> int:
    return int(text_of(feed, "os:totalResults"))


def as_record(entry: etree._Element) -> dict[str, Any]:
    """A minimal faithful client: what the crawler is meant to extract from one entry."""

    def text(path: str) -> str | None:
        return entry.findtext(path, namespaces=NS)

    vid = text_of(entry, "a:id").rsplit("/abs/", 1)[1]
    links = {
        (ln.get("title") or ln.get("rel")): ln.get("href") for ln in entry.findall("a:link", NS)
    }
    abs_url, pdf_url = links["alternate"], links["pdf"]
    assert abs_url is not None and pdf_url is not None
    return {
        "versioned_id": vid,
        "version": int(vid.rsplit("v", 1)[1]),
        "title": " ".join(text_of(entry, "a:title").split()),
        "authors": [
            {
                "name": a.findtext("a:name", namespaces=NS),
                "affiliations": [x.text for x in a.findall("arxiv:affiliation", NS)],
            }
            for a in entry.findall("a:author", NS)
        ],
        "abstract": text_of(entry, "a:summary").strip(),
        "published_at": text("a:published"),
        "updated_at": text("a:updated"),
        "primary_category": child(entry, "arxiv:primary_category").get("term"),
        "categories": [c.get("term") for c in entry.findall("a:category", NS)],
        "comment": text("arxiv:comment"),
        "journal_ref": text("arxiv:journal_ref"),
        "doi": text("arxiv:doi"),
        "abs_url": abs_url.replace("http://", "https://"),
        "pdf_url": pdf_url.replace("http://", "https://"),
    }


# -- arXiv -----------------------------------------------------------------------------------


def test_max_results_defaults_to_ten_and_order_follows_id_list(standin: StandIn) -> None:
    ids = IDS[::-1][:15]
    r = fetch(standin.arxiv_url, {"id_list": ",".join(ids)})
    feed = r.feed()
    assert r.status == 200
    assert r.headers["Content-Type"] == "application/atom+xml; charset=utf-8"
    assert total(feed) == 15
    assert feed.findtext("os:itemsPerPage", namespaces=NS) == "10"
    assert [i.rsplit("/", 1)[1].split("v")[0] for i in entry_ids(feed)] == ids[:10]

    page2 = fetch(standin.arxiv_url, {"id_list": ",".join(ids), "start": "10", "max_results": "10"})
    assert [i.rsplit("/", 1)[1].split("v")[0] for i in entry_ids(page2.feed())] == ids[10:]
    assert page2.feed().findtext("os:startIndex", namespaces=NS) == "10"


def test_entry_matches_expected_record(standin: StandIn, catalogue: Catalogue) -> None:
    ids = [*IDS[:6], "hep-th/9901001"]
    feed = fetch(standin.arxiv_url, {"id_list": ",".join(ids)}).feed()
    records = [as_record(e) for e in feed.findall("a:entry", NS)]
    assert records == [catalogue.papers[i].expected() for i in ids]
    assert records[0]["title"] == "Paper 0: $a<b$ & <i>wrapped</i> over two lines"
    assert records[0]["authors"][0] == {"name": "Ana Ñúñez", "affiliations": ["AT&T Labs", "MIT"]}
    first = child(feed, "a:entry")
    assert first.findtext("a:id", namespaces=NS) == "http://arxiv.org/abs/2101.00001v3"
    doi_link = child(first, "a:link[@title='doi']")
    assert doi_link.get("href") == "https://doi.org/10.1000/x.0"


def test_absent_and_versioned_ids(standin: StandIn, catalogue: Catalogue) -> None:
    paper = catalogue.papers[IDS[0]]  # latest_version 3
    ask = [f"{IDS[0]}v2", "2101.99999", IDS[1], f"{IDS[0]}v4", IDS[0], f"{IDS[0]}v0"]
    feed = fetch(standin.arxiv_url, {"id_list": ",".join(ask)}).feed()
    assert total(feed) == 3
    assert entry_ids(feed) == [
        f"http://arxiv.org/abs/{IDS[0]}v2",
        f"http://arxiv.org/abs/{IDS[1]}v{catalogue.papers[IDS[1]].latest_version}",
        f"http://arxiv.org/abs/{IDS[0]}v3",
    ]
    v2 = as_record(feed.findall("a:entry", NS)[0])
    assert v2 == paper.expected(2)
    assert v2["updated_at"] == "2021-01-12T12:00:00Z"
    assert v2["published_at"] == "2021-01-05T12:00:00Z"


@pytest.mark.parametrize("bad", ["abc", "2101.1", "hep-th/99010", "HEP-TH/9901001", "2101.00001v"])
def test_malformed_id_fails_whole_request(standin: StandIn, bad: str) -> None:
    r = fetch(standin.arxiv_url, {"id_list": f"{IDS[0]},{bad}"})
    assert r.status == 400
    assert r.headers["Content-Type"].startswith("application/atom+xml")
    feed = r.feed()
    assert total(feed) == 1
    (entry,) = feed.findall("a:entry", NS)
    assert entry.findtext("a:title", namespaces=NS) == "Error"
    assert entry.findtext("a:id", namespaces=NS) == (
        f"https://arxiv.org/api/errors#incorrect_id_format_for_{bad}"
    )
    assert entry.findtext("a:summary", namespaces=NS) == f"incorrect id format for {bad}"


def test_old_style_ids_are_valid(standin: StandIn) -> None:
    r = fetch(standin.arxiv_url, {"id_list": "math.GT/0309136,hep-th/9901001v1,cond-mat/0001001"})
    assert r.status == 200
    assert entry_ids(r.feed()) == ["http://arxiv.org/abs/hep-th/9901001v1"]


def test_post_form_equals_get(standin: StandIn) -> None:
    params = {"id_list": ",".join(IDS), "max_results": "2000"}
    got, posted = fetch(standin.arxiv_url, params), fetch(standin.arxiv_url, params, post=True)
    assert posted.status == 200
    assert entry_ids(posted.feed()) == entry_ids(got.feed()) and len(entry_ids(got.feed())) == 16
    assert [r.method for r in standin.requests_for("arxiv")] == ["GET", "POST"]
    assert standin.log[1].params["id_list"] == [",".join(IDS)]


def test_search_query_answers_empty_feed(standin: StandIn) -> None:
    feed = fetch(standin.arxiv_url, {"search_query": "all:electron"}).feed()
    assert total(feed) == 0 and entry_ids(feed) == []


# -- oEmbed ----------------------------------------------------------------------------------


def test_oembed_ok(standin: StandIn, catalogue: Catalogue) -> None:
    tweet = catalogue.tweets["1400000000000000001"]
    url = f"https://twitter.com/whoever/status/{tweet.tweet_id}?ref_src=twsrc%5Etfw"
    r = fetch(standin.oembed_url, {"url": url, "omit_script": "1", "dnt": "true"})
    assert r.status == 200 and r.headers["Content-Type"].startswith("application/json")
    assert b"https:\\/\\/twitter.com" in r.body  # slashes escaped like Twitter does
    data = r.json()
    assert data == tweet.oembed(omit_script=True)
    assert data["url"] == "https://twitter.com/alice/status/1400000000000000001"
    assert data["width"] == 550 and data["height"] is None and data["cache_age"] == "3153600000"
    assert data["html"].startswith('<blockquote class="twitter-tweet"><p lang="en" dir="ltr">')
    assert "&mdash; Alice &amp; Co (@alice)" in data["html"] and "widgets.js" not in data["html"]

    with_script = fetch(standin.oembed_url, {"url": url}).json()
    assert with_script["html"].endswith(
        '<script async src="https://platform.twitter.com/widgets.js" charset="utf-8"></script>\n'
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://x.com/alice/status/1400000000000000004",
        "https://mobile.twitter.com/old_handle/status/1400000000000000004/",
        "http://www.x.com/i/web/status/1400000000000000004?s=20",
    ],
)
def test_oembed_url_forms_and_current_handle(standin: StandIn, url: str) -> None:
    data = fetch(standin.oembed_url, {"url": url}).json()
    assert data["url"] == "https://twitter.com/alice_new/status/1400000000000000004"
    assert data["author_url"] == "https://twitter.com/alice_new"


@pytest.mark.parametrize(
    ("tweet_url", "status"),
    [
        ("https://twitter.com/a/status/1400000000000000002", 404),  # deleted
        ("https://twitter.com/a/status/1400000000000000003", 403),  # protected
        ("https://twitter.com/a/status/1999999999999999999", 404),  # unknown
        ("https://example.com/a/status/1400000000000000001", 404),  # not a tweet URL
        ("https://twitter.com/a/1400000000000000001", 404),
    ],
)
def test_oembed_errors(standin: StandIn, tweet_url: str, status: int) -> None:
    r = fetch(standin.oembed_url, {"url": tweet_url})
    assert r.status == status
    assert "errors" in r.json()


def test_tweet_id_from_url() -> None:
    assert tweet_id_from_url("https://twitter.com/a/status/123?x=1") == "123"
    assert tweet_id_from_url("https://twitter.com/a/status/abc") is None
    assert tweet_id_from_url("ftp://twitter.com/a/status/1") is None


# -- faults ----------------------------------------------------------------------------------


def test_status_faults_with_retry_after(standin: StandIn) -> None:
    standin.faults.add(Fault("status:503", "arxiv", times=2, retry_after=7))
    standin.faults.add(Fault("status:429", "oembed", retry_after="date:120"))
    statuses = [fetch(standin.arxiv_url, {"id_list": IDS[0]}) for _ in range(3)]
    assert [r.status for r in statuses] == [503, 503, 200]
    assert statuses[0].headers["Retry-After"] == "7"
    assert statuses[2].headers["Retry-After"] is None

    r = fetch(standin.oembed_url, {"url": "https://twitter.com/a/status/1400000000000000001"})
    assert r.status == 429
    when = parsedate_to_datetime(r.headers["Retry-After"])
    assert 100 < (when - datetime.now(UTC)).total_seconds() <= 121
    assert [(x.status, x.fault) for x in standin.log] == [
        (503, "status:503"),
        (503, "status:503"),
        (200, None),
        (429, "status:429"),
    ]


def test_fault_match_and_service_filter(standin: StandIn) -> None:
    standin.faults.add(Fault("status:500", "*", times=5, match=IDS[3]))
    assert fetch(standin.arxiv_url, {"id_list": IDS[2]}).status == 200
    assert fetch(standin.arxiv_url, {"id_list": f"{IDS[2]},{IDS[3]}"}).status == 500
    standin.faults.clear()
    standin.faults.add(Fault("status:502", "oembed", match="1400000000000000001"))
    assert fetch(standin.arxiv_url, {"id_list": IDS[2]}).status == 200
    assert (
        fetch(standin.oembed_url, {"url": "https://x.com/a/status/1500000000000000000"}).status
        == 200
    )
    assert (
        fetch(standin.oembed_url, {"url": "https://x.com/a/status/1400000000000000001"}).status
        == 502
    )


def test_drop_and_reset(standin: StandIn) -> None:
    standin.faults.add(Fault("drop", "arxiv"))
    with pytest.raises(http.client.RemoteDisconnected):
        fetch(standin.arxiv_url, {"id_list": IDS[0]})
    standin.faults.add(Fault("reset", "arxiv"))
    with pytest.raises(ConnectionResetError) as info:
        fetch(standin.arxiv_url, {"id_list": IDS[0]})
    assert not isinstance(info.value, http.client.RemoteDisconnected)  # a real RST, not EOF
    assert fetch(standin.arxiv_url, {"id_list": IDS[0]}).status == 200
    assert [(r.status, r.fault) for r in standin.log] == [
        (None, "drop"),
        (None, "reset"),
        (200, None),
    ]


def test_cut_gives_incomplete_read(standin: StandIn) -> None:
    standin.faults.add(Fault("cut", "arxiv"))
    with pytest.raises(http.client.IncompleteRead) as info:
        fetch(standin.arxiv_url, {"id_list": ",".join(IDS)})
    expected = info.value.expected
    assert expected is not None and expected > 0 and len(info.value.partial) > 0


def test_body_faults(standin: StandIn) -> None:
    ids = {"id_list": ",".join(IDS[:3])}
    tweet = {"url": "https://twitter.com/a/status/1400000000000000001"}
    normal = fetch(standin.arxiv_url, ids).body

    standin.faults.add(Fault("html", "arxiv"))
    r = fetch(standin.arxiv_url, ids)
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
    assert b"arXiv is down for maintenance" in r.body

    standin.faults.add(Fault("truncated", "arxiv"))
    r = fetch(standin.arxiv_url, ids)
    assert r.status == 200 and int(r.headers["Content-Length"]) == len(r.body)
    assert r.body == normal[: len(normal) // 2]
    with pytest.raises(etree.XMLSyntaxError):
        etree.fromstring(r.body)

    standin.faults.add(Fault("empty", "arxiv"))
    feed = fetch(standin.arxiv_url, ids).feed()
    assert total(feed) == 0 and entry_ids(feed) == []

    standin.faults.add(Fault("bad_json", "oembed"))
    r = fetch(standin.oembed_url, tweet)
    assert r.status == 200 and r.body == b'{"html": '
    with pytest.raises(json.JSONDecodeError):
        r.json()

    standin.faults.add(Fault("truncated", "oembed"))
    standin.faults.add(Fault("empty", "oembed"))
    assert fetch(standin.oembed_url, tweet).body.startswith(b'{"url":')
    assert fetch(standin.oembed_url, tweet).body == b""
    assert fetch(standin.oembed_url, tweet).json()["url"].endswith("1400000000000000001")


def test_slow_and_latency(standin: StandIn) -> None:
    standin.faults.add(Fault("slow", "oembed", delay=0.3))
    standin.latency["oembed"] = 0.1
    t = time.monotonic()
    assert (
        fetch(standin.oembed_url, {"url": "https://x.com/a/status/1400000000000000001"}).status
        == 200
    )
    assert time.monotonic() - t >= 0.4
    (rec,) = standin.log
    assert rec.fault == "slow" and rec.end - rec.start >= 0.4


def test_fault_validation() -> None:
    with pytest.raises(ValueError):
        Fault("explode")
    with pytest.raises(ValueError):
        Fault("status:abc")
    with pytest.raises(ValueError):
        Fault("drop", service="github")


def _run_until_success(standin: StandIn, keys: list[str]) -> dict[str, int]:
    """Retry every key until it succeeds; return how many attempts failed for each."""
    failures = {}
    for key in keys:
        failures[key] = 0
        while failures[key] < 10:
            try:
                if key.startswith("15"):
                    r = fetch(standin.oembed_url, {"url": f"https://x.com/a/status/{key}"})
                    ok = r.status == 200 and r.json()["url"].endswith(key)
                else:
                    r = fetch(standin.arxiv_url, {"id_list": key})
                    ok = r.status == 200 and len(entry_ids(r.feed())) == 1
            except (OSError, http.client.HTTPException, ValueError, etree.XMLSyntaxError):
                ok = False
            if ok:
                break
            failures[key] += 1
    return failures


def test_mixed_mode_is_deterministic(standin: StandIn, catalogue: Catalogue) -> None:
    keys = IDS + [t for t in catalogue.tweets if t.startswith("15")]
    standin.faults.mixed(share=1 / 3, repeat=2, seed=7)
    first = _run_until_success(standin, keys)
    first_log = [(r.key, r.fault) for r in standin.log]
    standin.reset_log()
    standin.faults.mixed(share=1 / 3, repeat=2, seed=7)
    second = _run_until_success(standin, keys)
    assert first == second
    assert first_log == [(r.key, r.fault) for r in standin.log]
    assert set(first.values()) == {0, 2}  # a faulty key fails exactly `repeat` times
    faulty = {k for k, n in first.items() if n}
    assert 0.15 < len(faulty) / len(keys) < 0.5
    assert {r.fault for r in standin.log} - {None} <= set(DEFAULT_MIXED_KINDS)
    standin.faults.mixed(share=1 / 3, repeat=2, seed=8)
    assert {k for k, n in _run_until_success(standin, keys).items() if n} != faulty


def _three_arxiv_requests_in_flight(standin: StandIn) -> list[threading.Thread]:
    """One thread per ID of ``IDS[:3]``, started; returns once the stand-in holds all three."""
    threads = [
        threading.Thread(target=fetch, args=(standin.arxiv_url, {"id_list": i})) for i in IDS[:3]
    ]
    for t in threads:
        t.start()
    assert standin.wait_for(lambda: standin.in_flight("arxiv") == 3)
    return threads


def test_a_held_key_goes_alone_while_the_rest_of_its_service_stays_held(standin: StandIn) -> None:
    held = standin.hold("arxiv")
    first = standin.hold("arxiv", key=f"arxiv:{IDS[1]}")  # the answer a test wants out first
    threads = _three_arxiv_requests_in_flight(standin)
    first.set()
    assert standin.wait_for(lambda: [r.ids for r in standin.requests_for("arxiv")] == [(IDS[1],)])
    assert standin.in_flight("arxiv") == 2  # the others still held
    held.set()
    for t in threads:
        t.join()
    assert sorted(r.ids for r in standin.requests_for("arxiv")) == [(i,) for i in IDS[:3]]


def test_log_concurrency_and_gaps(standin: StandIn) -> None:
    gate = standin.hold("arxiv")  # pin all three in flight instead of hoping latency overlaps
    threads = _three_arxiv_requests_in_flight(standin)
    gate.set()
    for t in threads:
        t.join()
    arxiv = standin.requests_for("arxiv")
    assert standin.max_concurrency("arxiv") == 3 == standin.peak_admitted("arxiv")
    assert sorted(r.concurrent for r in arxiv) == [1, 2, 3]
    assert max(r.start for r in arxiv) < min(r.end for r in arxiv)  # all overlapped
    assert standin.min_start_gap("arxiv") == min(
        b.start - a.start for a, b in itertools.pairwise(arxiv)
    )
    assert standin.max_concurrency("oembed") == 0
    assert standin.min_start_gap("oembed") == float("inf")

    standin.reset_log()
    standin.release()
    for i in IDS[:3]:
        fetch(standin.arxiv_url, {"id_list": i})
    arxiv = standin.requests_for("arxiv")
    assert standin.max_concurrency("arxiv") == 1
    assert all(b.start >= a.end for a, b in itertools.pairwise(arxiv))  # one after the other
    assert standin.min_start_gap("arxiv") == min(
        b.start - a.start for a, b in itertools.pairwise(arxiv)
    )
    rec = arxiv[0]
    assert (rec.service, rec.method, rec.path, rec.status) == ("arxiv", "GET", "/api/query", 200)
    assert rec.params == {"id_list": [IDS[0]]} and rec.end >= rec.start
    assert rec.ids == (IDS[0],) and rec.key == f"arxiv:{IDS[0]}" and rec.ok


# -- catalogue from the sample digests --------------------------------------------------------


@pytest.mark.skipif(not SAMPLES, reason="no sample digests")
def test_catalogue_from_digests_is_deterministic_and_served() -> None:
    cat = Catalogue.from_digests(SAMPLES, seed=0)
    again = Catalogue.from_digests(SAMPLES, seed=0)
    other = Catalogue.from_digests(SAMPLES, seed=1)
    assert cat == again and cat != other
    n_ids = len(cat.papers) + len(cat.absent)
    assert n_ids > 50 and len(cat.absent) == round(0.05 * n_ids)
    assert not cat.absent & set(cat.papers)
    statuses = [t.status for t in cat.tweets.values()]
    assert statuses.count("deleted") == round(0.05 * len(statuses))
    assert statuses.count("protected") == round(0.03 * len(statuses))
    assert len(cat.renamed) == 2
    assert all(1 <= p.latest_version <= 3 for p in cat.papers.values())
    assert any("\n  " in p.title for p in cat.papers.values())
    assert any(a.affiliations for p in cat.papers.values() for a in p.authors)
    paper = cat.papers["2012.15180"]
    assert paper.expected()["title"] == (
        "Out of Order: How important is the sequential order of words in a sentence in Natural "
        "Language Understanding tasks?"
    )
    assert paper.published.strftime("%y%m") == "2012"
    assert paper.authors[0].name == "Thang M. Pham" and paper.categories[0] == "cs.CL"

    with StandIn(cat) as s:
        ids = sorted(cat.papers) + sorted(cat.absent)
        feed = fetch(s.arxiv_url, {"id_list": ",".join(ids), "max_results": "2000"}, post=True)
        records = [as_record(e) for e in feed.feed().findall("a:entry", NS)]
        assert records == [cat.papers[i].expected() for i in sorted(cat.papers)]
        tid, old_handle = next(iter(cat.renamed.items()))
        r = fetch(s.oembed_url, {"url": f"https://twitter.com/{old_handle}/status/{tid}"})
        assert r.json() == cat.tweets[tid].oembed(omit_script=False)
        assert r.json()["author_url"] != f"https://twitter.com/{old_handle}"


# == tweet details (syndication) ================================================================

TOKEN_VECTORS = [  # from upstreams.md, computed with node
    ("1405891519249207298", "3eoql1zpe9q"),
    ("1345396247016976390", "39eoqb2qprb"),
    ("1399536327260086281", "3e4rtv5brqf"),
    ("1183130393224417281", "2v8ww7zsmc"),
    ("20", "6dq1a2xwd93"),
]
# An independent reader of the arXiv link forms, to cross-check what the catalogue claims.
ARXIV_LINK = re.compile(
    r"^https?://(?:www\.|export\.)?(?:arxiv\.org/(?:abs|pdf|html)|huggingface\.co/papers"
    r"|alphaxiv\.org/abs)/(?P<id>\d{4}\.\d{4,5}|[a-z-]+(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?"
    r"(?:\.pdf)?/?(?:\?.*)?$"
)
CODE_HOSTS = {"github.com", "gitlab.com", "bitbucket.org", "huggingface.co"}


def snowflake_iso(tweet_id: str) -> str:
    ms = (int(tweet_id) >> 22) + 1288834974657
    return f"{datetime.fromtimestamp(ms // 1000, UTC):%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def code_repo(url: str) -> str | None:
    """The repository a URL names, read independently of the stand-in, or None."""
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "").removeprefix("www.")
    segs = [s for s in parts.path.split("/") if s]
    if host not in CODE_HOSTS or len(segs) < 2 or segs[0] == "papers":
        return None
    n = 3 if host == "huggingface.co" and segs[0] in ("spaces", "datasets") else 2
    return f"https://{host}/" + "/".join([*segs[: n - 1], segs[n - 1].removesuffix(".git")])


def tweet_result(standin: StandIn, tweet_id: str, token: str | None = "auto") -> Reply:
    params = {"id": tweet_id, "lang": "en"}
    if token is not None:
        params["token"] = syndication_token(tweet_id) if token == "auto" else token
    return fetch(standin.syndication_url, params)


def s2_batch(
    standin: StandIn,
    ids: Any,
    fields: str | None = "title,citationCount",
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    url = standin.semantic_scholar_url
    if fields is not None:
        url += "?" + urllib.parse.urlencode({"fields": fields})
    body = raw if raw is not None else json.dumps({"ids": ids}).encode()
    request = urllib.request.Request(url, data=body, headers=headers or {}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return Reply(r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        return Reply(e.code, e.headers, e.read())


@pytest.fixture(scope="module")
def samples() -> Catalogue:
    if not SAMPLES:
        pytest.skip("no sample digests")
    return Catalogue.from_digests(SAMPLES, seed=0)


@pytest.fixture(scope="module")
def sample_server(samples: Catalogue) -> Iterator[StandIn]:
    with StandIn(samples, min_interval={"semantic_scholar": 0.0}) as s:
        yield s


@pytest.mark.parametrize(("tweet_id", "token"), TOKEN_VECTORS)
def test_token_vectors(tweet_id: str, token: str) -> None:
    assert syndication_token(tweet_id) == token
    assert syndication_token(int(tweet_id)) == token


def test_js_radix_string_prints_like_javascript() -> None:
    # Expected values printed by node's Number.prototype.toString.
    assert js_radix_string(0.5) == "0.i"
    assert js_radix_string(1 / 3) == "0.c"
    assert js_radix_string(0.1) == "0.3lllllllllm"  # last digit rounded, not truncated
    assert js_radix_string(35.99999999999999) == "z.zzzzzzzzz"
    assert js_radix_string(123456789.123) == "21i3v9.4feor"
    assert js_radix_string(-2.75) == "-2.r"
    assert js_radix_string(1e21) == "5v1j4f4ds7c000"  # digits past the precision print as 0
    assert js_radix_string(2.0**53 + 2) == "2gosa7pa2gy"
    assert js_radix_string(5e-324) == "0." + "0" * 207 + "3"
    assert js_radix_string(0.1, 2).startswith("0.0001100110011")
    with pytest.raises(ValueError):
        js_radix_string(float("nan"))


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_token_matches_node_for_random_ids(tmp_path: Path) -> None:
    rng = random.Random(20210601)
    ids = [str(rng.randrange(1, 2**64)) for _ in range(3000)]
    ids += [str(rng.randrange(1, 10 ** rng.randint(1, 19))) for _ in range(1000)]
    ids += [t for t, _ in TOKEN_VECTORS] + ["1", str(2**53), str(2**53 + 1), str(2**64 - 1)]
    (tmp_path / "ids.txt").write_text("\n".join(ids))
    script = (
        "const ids = require('fs').readFileSync(process.argv[1], 'utf8').split('\\n');"
        "console.log(ids.map(id => ((Number(id) / 1e15) * Math.PI).toString(36)"
        ".replace(/(0+|\\.)/g, '')).join('\\n'));"
    )
    node = subprocess.run(
        ["node", "-e", script, str(tmp_path / "ids.txt")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    expected = node.stdout.split("\n")[: len(ids)]
    assert [syndication_token(i) for i in ids] == expected


def test_syndication_tweet_format(sample_server: StandIn, samples: Catalogue) -> None:
    tid = "1345396247016976390"  # has a link and a media attachment in the digest
    details = samples.details[tid]
    user = details.user
    assert user is not None
    r = tweet_result(sample_server, tid)
    assert r.status == 200 and r.headers["Content-Type"].startswith("application/json")
    data = r.json()
    assert data["__typename"] == "Tweet" and data["id_str"] == tid
    assert data["created_at"] == snowflake_iso(tid) == "2021-01-02T15:47:16.199Z"
    assert data["lang"] == "en" and data["favorite_count"] == details.favorite_count
    assert data["conversation_count"] == details.conversation_count
    assert data["text"].startswith("Do SotA natural language understanding models care")
    assert data["user"] == {
        "id_str": user.id_str,
        "name": "Anh Nguyen",
        "screen_name": "anh_ng8",
        "profile_image_url_https": user.profile_image_url_https,
        "verified": user.verified,
        "is_blue_verified": user.is_blue_verified,
        "profile_image_shape": "Circle",
    }
    urls = data["entities"]["urls"]
    assert [u["url"] for u in urls] == ["https://t.co/Kr3i3SBNXb"]
    for u in urls:
        start, end = u["indices"]
        assert data["text"][start:end] == u["url"]
        assert u["expanded_url"].startswith("http") and "t.co" not in u["expanded_url"]
    (media,) = data["entities"]["media"]
    assert data["text"][media["indices"][0] : media["indices"][1]] == "https://t.co/IY6naG0onV"
    assert data["display_text_range"] == [0, len(data["text"][: media["indices"][0]].rstrip())]
    assert {"hashtags", "user_mentions", "symbols"} <= set(data["entities"])
    assert data["mediaDetails"][0]["type"] in ("photo", "video", "animated_gif")
    assert data["edit_control"]["edit_tweet_ids"][-1] == tid and data["isEdited"] is False
    assert isinstance(data["possibly_sensitive"], bool)
    assert "retweet_count" not in data  # only quoted tweets carry one


def test_every_sample_tweet_is_served_as_the_catalogue_says(
    sample_server: StandIn, samples: Catalogue
) -> None:
    outcomes: Counter[str] = Counter()
    missing_entities = 0
    for tid, details in samples.details.items():
        r = tweet_result(sample_server, tid)
        outcomes[details.outcome] += 1
        if details.outcome == "missing":
            assert r.status == 404
            continue
        assert r.status == 200
        data = r.json()
        if details.outcome == "empty":
            assert data == {}
        elif details.outcome == "tombstone":
            assert data["__typename"] == "TweetTombstone"
            assert data["tombstone"]["text"]["text"] == details.tombstone_text
        else:
            assert data["__typename"] == "Tweet" and data["created_at"] == snowflake_iso(tid)
            served = [u["expanded_url"] for u in data.get("entities", {}).get("urls", [])]
            missing_entities += "entities" not in data
            ids = [m["id"] for u in served if (m := ARXIV_LINK.match(u))]
            assert list(dict.fromkeys(ids)) == samples.linked_arxiv_ids(tid)
            repos = [c for u in served if (c := code_repo(u))]
            assert list(dict.fromkeys(repos)) == samples.code_urls(tid)
            assert details.links_paper == (details.paper_id in ids)
    assert outcomes["tweet"] > 100 and outcomes["tombstone"] == 6
    assert outcomes["missing"] + outcomes["empty"] == 6 and outcomes["empty"] > 0
    assert missing_entities > 0  # "entities" is sometimes absent altogether
    statuses = {t.status for t in samples.tweets.values()}
    assert statuses == {"ok", "deleted", "protected"}
    for tid, tweet in samples.tweets.items():  # oEmbed and syndication agree on the gone ones
        if tweet.status == "protected":
            assert samples.details[tid].tombstone_text == (
                "You’re unable to view this Post because this account owner limits who can "
                "view their Posts. Learn more"
            )
        elif tweet.status == "deleted":
            assert samples.details[tid].status == "not_found"
    assert all(r.token_ok for r in sample_server.requests_for("syndication"))


def test_links_cover_the_real_forms(samples: Catalogue) -> None:
    links = [lk for d in samples.details.values() for lk in d.links]
    forms = {kind: {lk.form for lk in links if lk.kind == kind} for kind in ("paper", "code")}
    assert {
        "abs",
        "abs_versioned",
        "pdf",
        "pdf_versioned_ext",
        "html_versioned",
        "export_abs",
        "huggingface_papers",
        "alphaxiv",
        "www_abs",
        "http_abs",
    } <= forms["paper"]
    assert {"github", "github_git", "github_slash", "github_utm", "gitlab"} <= forms["code"]
    assert {"hf_space", "hf_dataset", "hf_model"} <= forms["code"]
    for lk in links:
        m = ARXIV_LINK.match(lk.expanded_url)
        assert (m["id"] if m else None) == lk.arxiv_id, lk
        assert code_repo(lk.expanded_url) == lk.code_url, lk
        assert lk.display_url in (lk.expanded_url.split("//", 1)[1].removeprefix("www."),) or (
            lk.display_url.endswith("…")
        )
    kinds = Counter(lk.kind for lk in links)
    assert min(kinds.values()) > 5 and set(kinds) == {"paper", "other_paper", "code", "other"}
    own = [(d, lk) for d in samples.details.values() for lk in d.links if lk.kind == "paper"]
    assert all(lk.arxiv_id == d.paper_id for d, lk in own)
    others = [lk for lk in links if lk.kind == "other"]
    assert any("github.io" in lk.expanded_url for lk in others)  # a project page is not code
    assert any("arxiv.org/list/" in lk.expanded_url for lk in others)  # arXiv, but no paper


def test_media_details(sample_server: StandIn, samples: Catalogue) -> None:
    by_type: dict[str, list[tuple[dict[str, Any], Media]]] = {}
    for tid, details in samples.details.items():
        if details.outcome == "tweet" and details.media:
            data = tweet_result(sample_server, tid).json()
            for item, m in zip(data["mediaDetails"], details.media, strict=True):
                by_type.setdefault(item["type"], []).append((item, m))
    assert set(by_type) == {"photo", "video", "animated_gif"}
    photos = [item for item, _ in by_type["photo"]]
    assert any("ext_alt_text" in p for p in photos) and any("ext_alt_text" not in p for p in photos)
    assert all(p["media_url_https"].startswith("https://pbs.twimg.com/media/") for p in photos)
    for item, m in by_type["video"]:
        variants = item["video_info"]["variants"]
        playlist = [v for v in variants if v["content_type"] == "application/x-mpegURL"]
        assert len(playlist) == 1 and "bitrate" not in playlist[0]
        assert playlist[0]["url"].split("?")[0].endswith(".m3u8")
        mp4 = [v for v in variants if v["content_type"] == "video/mp4"]
        assert max(mp4, key=lambda v: v["bitrate"])["url"] == m.video_url
    for item, m in by_type["animated_gif"]:
        (variant,) = item["video_info"]["variants"]
        assert variant == {"bitrate": 0, "content_type": "video/mp4", "url": m.video_url}


def test_quotes_and_replies(sample_server: StandIn, samples: Catalogue) -> None:
    quoting = [d for d in samples.details.values() if d.quoted_tweet_id and d.outcome == "tweet"]
    assert quoting
    for d in quoting:
        assert d.quoted_tweet_id is not None  # chosen for having one
        quoted = tweet_result(sample_server, d.tweet_id).json()["quoted_tweet"]
        inner = samples.details[d.quoted_tweet_id]
        assert quoted["id_str"] == d.quoted_tweet_id and quoted["text"] == inner.text
        assert quoted["favorite_count"] == inner.favorite_count
        assert quoted["reply_count"] == inner.conversation_count
        assert isinstance(quoted["retweet_count"], int)
    reply = next(d for d in samples.details.values() if d.in_reply_to_status_id)
    data = tweet_result(sample_server, reply.tweet_id).json()
    if reply.outcome == "tweet":
        assert data["in_reply_to_status_id_str"] == reply.in_reply_to_status_id
        assert int(data["in_reply_to_status_id_str"]) < int(reply.tweet_id)


@pytest.mark.parametrize("token", [None, "", "3eoql1zpe9", "wrong"])
def test_syndication_bad_or_missing_token_gets_empty_object(
    standin: StandIn, token: str | None
) -> None:
    tid = "1400000000000000001"
    bad = tweet_result(standin, tid, token=token)
    good = tweet_result(standin, tid)
    assert (bad.status, bad.json()) == (200, {})
    assert good.status == 200 and good.json()["id_str"] == tid
    assert [(r.token_ok, r.ok) for r in standin.requests_for("syndication")] == [
        (False, False),
        (True, True),
    ]
    assert not any(r.token_ok is not None for r in standin.requests_for("oembed"))


def test_syndication_unknown_and_malformed_ids(standin: StandIn) -> None:
    assert tweet_result(standin, "1999999999999999999").status == 404
    assert tweet_result(standin, "1400000000000000002").status in (200, 404)  # deleted
    bad = fetch(standin.syndication_url, {"id": "abc", "token": "x"})
    assert bad.status == 400 and "error" in bad.json()


def test_hand_built_tweets_get_details(catalogue: Catalogue) -> None:
    details = catalogue.details["1400000000000000001"]
    assert details.outcome == "tweet" and details.text == "Hello https://t.co/x"
    assert [lk.url for lk in details.links] == ["https://t.co/x"]
    assert catalogue.details["1400000000000000002"].status == "not_found"
    assert catalogue.details["1400000000000000003"].outcome == "tombstone"
    cat = Catalogue()
    cat.add_paper(_paper("2101.00001", 0))
    cat.add_tweet(_tweet("1400000000000000009"), paper_id="2101.00001")
    assert cat.details["1400000000000000009"].paper_id == "2101.00001"
    assert "2101.00001" in cat.citations


def test_counts_move_on_a_later_day(samples: Catalogue) -> None:
    cat = samples.copy()
    tid = next(t for t, d in cat.details.items() if d.outcome == "tweet")
    arxiv_id = next(iter(cat.citations))
    with StandIn(cat, min_interval={"semantic_scholar": 0.0}) as s:
        before = tweet_result(s, tid).json()
        cites = s2_batch(s, [f"ARXIV:{arxiv_id}"]).json()[0]["citationCount"]
        cat.advance_day()
        after = tweet_result(s, tid).json()
        assert cat.day == 1
        assert after["favorite_count"] == before["favorite_count"] + cat.details[tid].likes_per_day
        assert after["favorite_count"] > before["favorite_count"]
        assert after["conversation_count"] >= before["conversation_count"]
        later = s2_batch(s, [f"ARXIV:{arxiv_id}"]).json()[0]["citationCount"]
        assert later == cites + cat.citations[arxiv_id].citations_per_day > cites
        cat.details[tid].favorite_count = 7  # or set a count directly
        assert tweet_result(s, tid).json()["favorite_count"] == 7
    assert samples.details[tid].favorite_count == before["favorite_count"]  # copy was independent


# == Semantic Scholar =============================================================================


def test_s2_batch_in_request_order_with_nulls(sample_server: StandIn, samples: Catalogue) -> None:
    known = sorted(samples.citations)[:3]
    unknown_to_s2 = sorted(set(samples.papers) - set(samples.citations))[0]
    ids = [
        f"ARXIV:{known[2]}",
        "ARXIV:2199.99999",
        f"ARXIV:{known[0]}",
        f"ARXIV:{unknown_to_s2}",
        f"arXiv:{known[1]}",
        f"ARXIV:{next(iter(samples.absent))}",
    ]
    fields = "externalIds,title,venue,year,citationCount,influentialCitationCount"
    fields += ",referenceCount,publicationDate,openAccessPdf,tldr"
    r = s2_batch(sample_server, ids, fields)
    assert r.status == 200 and r.headers["Content-Type"].startswith("application/json")
    data = r.json()
    assert [None if d is None else d["externalIds"]["ArXiv"] for d in data] == [
        known[2],
        None,
        known[0],
        None,
        known[1],
        None,
    ]
    for d in filter(None, data):
        full = samples.citations[d["externalIds"]["ArXiv"]].fields()
        assert list(d) == ["paperId", *fields.split(",")]
        assert d == {k: full[k] for k in d}
        assert re.fullmatch(r"[0-9a-f]{40}", d["paperId"])
        assert d["publicationDate"] is None or re.fullmatch(
            r"\d{4}-\d\d-\d\d", d["publicationDate"]
        )
        assert d["openAccessPdf"] is None or set(d["openAccessPdf"]) == {"url", "status"}
        assert d["tldr"] is None or set(d["tldr"]) == {"model", "text"}
        assert isinstance(d["citationCount"], int) and isinstance(d["externalIds"]["CorpusId"], int)
    rec = sample_server.requests_for("semantic_scholar")[-1]
    assert rec.ids == tuple(ids) and rec.method == "POST"


def test_s2_only_the_fields_asked_for(sample_server: StandIn, samples: Catalogue) -> None:
    arxiv_id = sorted(samples.citations)[0]
    citation = samples.citations[arxiv_id]
    (only_id,) = s2_batch(sample_server, [f"ARXIV:{arxiv_id}"], "paperId").json()
    assert only_id == {"paperId": citation.paper_id}
    (default,) = s2_batch(sample_server, [f"ARXIV:{arxiv_id}"], None).json()
    assert default == {"paperId": citation.paper_id, "title": citation.title}
    (by_doi_or_corpus,) = s2_batch(
        sample_server, [f"CorpusId:{citation.corpus_id}"], "citationCount"
    ).json()
    assert by_doi_or_corpus == {
        "paperId": citation.paper_id,
        "citationCount": citation.citation_count,
    }
    assert s2_batch(sample_server, [f"ARXIV:{arxiv_id}v1"]).json() == [None]  # no versions
    kinds = Counter((c.open_access_pdf is None, c.tldr is None) for c in samples.citations.values())
    assert len(kinds) == 4  # null and non-null openAccessPdf and tldr both occur


@pytest.mark.parametrize(
    ("body", "fields", "message"),
    [
        (json.dumps({"ids": [f"ARXIV:2101.{i:05d}" for i in range(501)]}).encode(), "title", "500"),
        (b"not json", "title", "JSON"),
        (b'["ARXIV:2101.00001"]', "title", "ids"),
        (b'{"ids": "ARXIV:2101.00001"}', "title", "ids"),
        (b'{"ids": [1, 2]}', "title", "strings"),
        (b'{"ids": ["ARXIV:2101.00001"]}', "title,nonsense", "nonsense"),
    ],
)
def test_s2_bad_requests_get_400(standin: StandIn, body: bytes, fields: str, message: str) -> None:
    r = s2_batch(standin, None, fields, raw=body)
    assert r.status == 400
    assert set(r.json()) == {"error"} and message in r.json()["error"]


def test_s2_accepts_exactly_500_ids(standin: StandIn) -> None:
    ids = [f"ARXIV:{i}" for i in IDS] + [f"ARXIV:2102.{i:05d}" for i in range(500 - len(IDS))]
    data = s2_batch(standin, ids).json()
    cites = [standin.catalogue.citations[i] for i in IDS]
    assert len(data) == 500 and data[: len(IDS)] == [
        {"paperId": c.paper_id, "title": c.title, "citationCount": c.citation_count} for c in cites
    ]
    assert data[len(IDS) :] == [None] * (500 - len(IDS))
    assert s2_batch(standin, []).json() == []
    get = fetch(standin.semantic_scholar_url, {"fields": "title"})
    assert get.status == 405


def test_s2_requests_closer_than_the_interval_get_429(standin: StandIn) -> None:
    # the API key's one per second; OpenAlex 20 per second (its limit: 100 with a key)
    assert StandIn().min_interval == {"semantic_scholar": 1.0, "openalex": 0.05}
    standin.min_interval["semantic_scholar"] = 3600.0  # so "too soon" never depends on timing
    first, second, third = (s2_batch(standin, [f"ARXIV:{IDS[0]}"]) for _ in range(3))
    tweet = tweet_result(standin, "1400000000000000001")  # other services are not paced
    assert [first.status, second.status, third.status, tweet.status] == [200, 429, 429, 200]
    assert second.json() == {
        "message": "Too Many Requests. Please wait and try again or apply for a key for higher "
        "rate limits. https://www.semanticscholar.org/product/api#api-key-form",
        "code": "429",
    }
    log = standin.requests_for("semantic_scholar")
    assert [(r.status, r.refused, r.fault) for r in log] == [
        (200, None, None),
        (429, "rate_limit", None),
        (429, "rate_limit", None),
    ]
    assert all(b.start - a.start < 3600.0 for a, b in itertools.pairwise(log))
    assert standin.throttled_share("semantic_scholar") == pytest.approx(2 / 3)
    standin.min_interval["semantic_scholar"] = 0.0
    assert s2_batch(standin, [f"ARXIV:{IDS[0]}"]).status == 200


def test_s2_api_key_is_logged_but_never_printed(standin: StandIn) -> None:
    s2_batch(standin, [f"ARXIV:{IDS[0]}"], headers={"x-api-key": "s3cr3t-key"})
    s2_batch(standin, [f"ARXIV:{IDS[0]}"])
    with_key, without = standin.requests_for("semantic_scholar")
    assert (with_key.api_key, without.api_key) == ("s3cr3t-key", None)
    assert "s3cr3t" not in repr(with_key) and "s3cr3t" not in repr(standin.log)


# == in-flight caps ===============================================================================


def test_requests_over_the_in_flight_cap_get_429_at_once(standin: StandIn) -> None:
    standin.max_in_flight["oembed"] = 2
    standin.refusal_retry_after = 5
    gate = standin.hold("oembed")
    url = {"url": "https://twitter.com/a/status/1400000000000000001"}
    replies: list[Reply] = []

    def ask() -> None:
        replies.append(fetch(standin.oembed_url, url))

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for t in threads:
        t.start()
    assert standin.wait_for(lambda: standin.in_flight("oembed") == 2)
    over = fetch(standin.oembed_url, url)  # answered while the other two are still held
    flowing = tweet_result(standin, "1400000000000000001")  # the cap is per service
    assert (over.status, over.headers["Retry-After"]) == (429, "5")
    assert "errors" in over.json() and flowing.status == 200
    gate.set()
    for t in threads:
        t.join()
    assert sorted(r.status for r in replies) == [200, 200]
    log = standin.requests_for("oembed")
    assert [(r.status, r.refused, r.admitted) for r in log if r.refused] == [
        (429, "max_in_flight", 0)
    ]
    assert standin.peak_admitted("oembed") == 2 and standin.max_concurrency("oembed") == 3
    assert standin.throttled_share("oembed") == pytest.approx(1 / 3)
    assert all(r.throttled == (r.refused is not None) for r in log)


def test_in_flight_cap_for_every_service(standin: StandIn) -> None:
    for service in ("arxiv", "syndication", "semantic_scholar"):
        standin.max_in_flight[service] = 1
        gate = standin.hold(service)
        held = threading.Thread(target=call, args=(standin, service))
        held.start()

        def one_in_flight(s: str = service) -> bool:
            return standin.in_flight(s) == 1

        assert standin.wait_for(one_in_flight)
        assert call(standin, service).status == 429
        gate.set()
        held.join()
        assert [r.status for r in standin.requests_for(service)] == [200, 429]  # by start


# == faults on every service ======================================================================


def call(standin: StandIn, service: str) -> Reply:
    """One ordinary, successful request to ``service``."""
    if service == "arxiv":
        return fetch(standin.arxiv_url, {"id_list": ",".join(IDS[:3])})
    if service == "oembed":
        return fetch(standin.oembed_url, {"url": "https://x.com/a/status/1400000000000000001"})
    if service == "syndication":
        return tweet_result(standin, "1400000000000000001")
    if service == "openalex":
        dois = "|".join(f"10.48550/arXiv.{i}" for i in IDS[:3])
        return fetch(standin.openalex_url + "/works", {"filter": f"doi:{dois}"})
    if service == "hf_papers":
        return fetch(f"{standin.hf_papers_url}/{min(standin.catalogue.hf_pages)}")
    return s2_batch(standin, [f"ARXIV:{i}" for i in IDS[:3]] + ["ARXIV:2199.00001"])


SERVICE_NAMES = ["arxiv", "oembed", "syndication", "semantic_scholar", "hf_papers", "openalex"]


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_connection_faults_on_every_service(standin: StandIn, service: str) -> None:
    standin.faults.add(Fault("drop", service))
    with pytest.raises(http.client.RemoteDisconnected):
        call(standin, service)
    standin.faults.add(Fault("reset", service))
    with pytest.raises(ConnectionResetError) as info:
        call(standin, service)
    assert not isinstance(info.value, http.client.RemoteDisconnected)
    standin.faults.add(Fault("cut", service))
    with pytest.raises(http.client.IncompleteRead):
        call(standin, service)
    assert call(standin, service).status == 200
    assert [(r.status, r.fault) for r in standin.requests_for(service)] == [
        (None, "drop"),
        (None, "reset"),
        (200, "cut"),
        (200, None),
    ]


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_body_faults_on_every_service(standin: StandIn, service: str) -> None:
    normal = call(standin, service).body
    standin.faults.add(Fault("html", service))
    page = call(standin, service)
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    assert page.body.lstrip().lower().startswith((b"<!doctype html", b"<html"))
    standin.faults.add(Fault("truncated", service))
    half = call(standin, service)
    assert half.status == 200 and half.body == normal[: len(normal) // 2]
    standin.faults.add(Fault("bad_json", service))
    standin.faults.add(Fault("empty", service))
    broken, empty = call(standin, service), call(standin, service)
    if service == "arxiv":
        assert total(empty.feed()) == 0 and entry_ids(empty.feed()) == []
    else:
        assert empty.body == b""
        with pytest.raises(json.JSONDecodeError):
            broken.json()
        with pytest.raises(json.JSONDecodeError):
            half.json()


@pytest.mark.parametrize(
    ("service", "code", "body_check"),
    [
        ("arxiv", 429, lambda r: r.body == b"Rate exceeded."),
        ("arxiv", 503, lambda r: r.body == b"HTTP 503\n"),
        ("oembed", 503, lambda r: r.json()["errors"][0]["code"] == 503),
        ("syndication", 429, lambda r: r.json() == {"error": "HTTP 429"}),
        ("syndication", 500, lambda r: r.json() == {"error": "HTTP 500"}),
        (
            "semantic_scholar",
            429,
            lambda r: r.json()["code"] == "429" and "Too Many" in r.json()["message"],
        ),
        ("semantic_scholar", 504, lambda r: r.json()["code"] == "504"),
    ],
)
def test_status_faults_speak_each_service(
    standin: StandIn, service: str, code: int, body_check: Any
) -> None:
    standin.faults.add(Fault(f"status:{code}", service, retry_after=3))
    standin.faults.add(Fault(f"status:{code}", service))
    with_header, without = call(standin, service), call(standin, service)
    assert (with_header.status, with_header.headers["Retry-After"]) == (code, "3")
    assert (without.status, without.headers["Retry-After"]) == (code, None)
    assert body_check(with_header)
    assert call(standin, service).status == 200


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_slow_answers_and_latency_per_service(standin: StandIn, service: str) -> None:
    standin.latency[service] = 0.1
    standin.faults.add(Fault("slow", service, delay=0.2))
    assert call(standin, service).status == 200
    (rec,) = standin.requests_for(service)
    assert rec.fault == "slow" and rec.end - rec.start >= 0.3
    other = next(s for s in SERVICE_NAMES if s != service)
    assert standin.latency[other] == 0.0


def test_shape_faults_oembed(standin: StandIn) -> None:
    standin.faults.script("oembed", ["shape:author_name_number", "shape:html_missing"])
    number, no_html = call(standin, "oembed").json(), call(standin, "oembed").json()
    assert isinstance(number["author_name"], int) and number["html"].startswith("<blockquote")
    assert "html" not in no_html and no_html["author_name"] == "Alice & Co"


def test_shape_faults_syndication(standin: StandIn) -> None:
    standin.faults.script("syndication", ["shape:favorite_count_string", "shape:user_list"])
    count, users = call(standin, "syndication").json(), call(standin, "syndication").json()
    details = standin.catalogue.details["1400000000000000001"]
    assert count["favorite_count"] == str(details.favorite_count)
    assert isinstance(users["user"], list) and users["user"][0]["screen_name"] == "alice"
    assert call(standin, "syndication").json()["favorite_count"] == details.favorite_count


def test_shape_faults_semantic_scholar(standin: StandIn) -> None:
    standin.faults.script("semantic_scholar", ["shape:wrong_length", "shape:object"])
    short, wrapped, normal = (call(standin, "semantic_scholar").json() for _ in range(3))
    assert len(normal) == 4 and normal[3] is None
    assert short == normal[:3]
    assert wrapped == {"data": normal}


def test_shape_faults_arxiv(standin: StandIn) -> None:
    kinds = ["shape:unasked_ids", "shape:unversioned_id", "shape:v0", "shape:year_0999"]
    standin.faults.script("arxiv", kinds)
    unasked, unversioned, v0, old = (call(standin, "arxiv").feed() for _ in kinds)
    normal = call(standin, "arxiv").feed()
    asked = entry_ids(normal)
    assert entry_ids(unasked)[:3] == asked and len(entry_ids(unasked)) == 4
    assert entry_ids(unasked)[3].rsplit("/", 1)[1].split("v")[0] not in IDS[:3]
    assert total(unasked) == 4
    assert entry_ids(unversioned) == [asked[0].rsplit("v", 1)[0], *asked[1:]]
    assert entry_ids(v0) == [asked[0].rsplit("v", 1)[0] + "v0", *asked[1:]]
    first_links = child(v0, "a:entry").findall("a:link", NS)
    hrefs = {ln.get("href") for ln in first_links if ln.get("title") != "doi"}
    assert hrefs == {"http://arxiv.org/abs/2101.00001v0", "http://arxiv.org/pdf/2101.00001v0"}
    published = [text_of(e, "a:published") for e in old.findall("a:entry", NS)]
    assert published[0].startswith("0999-") and not published[1].startswith("0999")
    assert [as_record(e) for e in old.findall("a:entry", NS)][1:] == [
        as_record(e) for e in normal.findall("a:entry", NS)
    ][1:]


def test_shape_faults_belong_to_one_service() -> None:
    assert Fault("shape:v0").service == "arxiv"
    assert Fault("shape:user_list", "syndication").service == "syndication"
    with pytest.raises(ValueError):
        Fault("shape:v0", "oembed")
    with pytest.raises(ValueError):
        Fault("drop", "twitter")
    assert set(SHAPE_KINDS.values()) == set(SERVICE_NAMES)
    with pytest.raises(ValueError):
        StandIn().faults.script("arxiv", ["shape:user_list"])


def test_script_arxiv_503_then_reset_then_fine_while_oembed_flows(standin: StandIn) -> None:
    script = standin.faults.script(
        "arxiv", [Fault("status:503", retry_after=2), "reset", "ok"], match=IDS[0]
    )
    outcomes: list[object] = []
    for _ in range(4):
        try:
            outcomes.append(fetch(standin.arxiv_url, {"id_list": IDS[0]}).status)
        except ConnectionResetError:
            outcomes.append("reset")
        assert call(standin, "oembed").status == 200  # same port, unaffected
    assert outcomes == [503, "reset", 200, 200] and script.done
    assert [r.fault for r in standin.requests_for("arxiv")] == ["status:503", "reset", None, None]
    assert all(r.ok for r in standin.requests_for("oembed"))


def test_script_by_request_key(standin: StandIn) -> None:
    key, ids = request_key("syndication", {"id": ["1500000000000000001"]})
    assert (key, ids) == ("syndication:1500000000000000001", ("1500000000000000001",))
    standin.faults.script("syndication", ["status:429", "status:503"], key=key)
    assert tweet_result(standin, "1500000000000000002").status == 200  # another key
    assert [tweet_result(standin, "1500000000000000001").status for _ in range(3)] == [
        429,
        503,
        200,
    ]
    batch = s2_batch(standin, ["ARXIV:2101.00002", "ARXIV:2101.00001"])
    assert standin.requests_for("semantic_scholar")[0].key == (
        "semantic_scholar:ARXIV:2101.00001,ARXIV:2101.00002"
    )
    assert batch.status == 200


def test_mixed_mode_covers_every_service_and_keeps_shapes_at_home(standin: StandIn) -> None:
    standin.faults.mixed(share=1.0, repeat=2, kinds=["shape:v0", "shape:user_list", "status:503"])
    for service in SERVICE_NAMES:
        for _ in range(3):
            call(standin, service)
    faults = {s: [r.fault for r in standin.requests_for(s)] for s in SERVICE_NAMES}
    assert all(f[2] is None and f[0] and f[1] for f in faults.values())  # fail twice, then fine
    assert set(faults["arxiv"][:2]) <= {"shape:v0", "status:503"}
    assert set(faults["syndication"][:2]) <= {"shape:user_list", "status:503"}
    assert faults["oembed"][:2] == faults["semantic_scholar"][:2] == ["status:503"] * 2
    assert faults["hf_papers"][:2] == ["status:503"] * 2


# == the command line =============================================================================


def test_command_line_prints_every_services_setting() -> None:
    flags = ["--port", "0", "--syndication-latency", "0.05", "--syndication-max-in-flight", "8"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.standin", *flags, "--semantic-scholar-interval", "0"],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not lines or lines[-1] != "Ctrl-C to stop.":
            line = proc.stdout.readline()
            assert line, "the stand-in exited early"
            lines.append(line.rstrip("\n"))
        command = next(x.strip() for x in lines if x.strip().startswith("scrapy crawl digests"))
        settings = dict(re.findall(r"-s (\w+)=(\S+)", command))
        assert set(settings) == {
            "ARXIV_API_URL",
            "OEMBED_URL",
            "SYNDICATION_URL",
            "SEMANTIC_SCHOLAR_URL",
            "HF_PAPERS_URL",
            "OPENALEX_URL",
        }
        assert settings["OPENALEX_URL"].endswith("/openalex")
        assert settings["HF_PAPERS_URL"].endswith("/api/papers")
        assert fetch(settings["HF_PAPERS_URL"] + "/2012.15180").json()["id"] == "2012.15180"
        assert settings["SYNDICATION_URL"].endswith("/tweet-result")
        assert settings["SEMANTIC_SCHOLAR_URL"].endswith("/graph/v1/paper/batch")
        tid = "1345396247016976390"
        r = fetch(settings["SYNDICATION_URL"], {"id": tid, "token": syndication_token(tid)})
        assert r.json()["id_str"] == tid
        req = urllib.request.Request(
            settings["SEMANTIC_SCHOLAR_URL"], data=b'{"ids": ["ARXIV:2012.15180"]}'
        )
        with urllib.request.urlopen(req, timeout=5) as answer:
            assert json.loads(answer.read())[0]["title"].startswith("Out of Order")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0


def test_command_line_flags_configure_the_stand_in() -> None:
    argv = "--port 0 --syndication-latency 0.25 --semantic-scholar-latency 0.5"
    argv += " --oembed-max-in-flight 8 --syndication-max-in-flight 4"
    argv += " --semantic-scholar-interval 2.5 --fault-share 0.3 --fault-repeat 2"
    argv += " --hf-window-requests 20 --hf-window-seconds 2"
    args = parser().parse_args(argv.split())
    standin, paths = build(args)
    assert paths == SAMPLES and len(standin.catalogue.details) == len(standin.catalogue.tweets)
    assert standin.latency == {
        "arxiv": 0.0,
        "oembed": 0.0,
        "syndication": 0.25,
        "semantic_scholar": 0.5,
        "hf_papers": 0.0,
        "openalex": 0.0,
    }
    assert standin.windows == {"hf_papers": (20, 2.0)}
    assert standin.max_in_flight == {"oembed": 8, "syndication": 4}
    assert standin.min_interval == {"semantic_scholar": 2.5, "openalex": 0.05}
    mixed = standin.faults.mixed_mode
    assert mixed is not None and (mixed.share, mixed.repeat) == (0.3, 2)
    assert set(mixed.services) == set(SERVICE_NAMES)
    default, _ = build(parser().parse_args([]))
    assert default.max_in_flight == {}
    assert default.min_interval == {"semantic_scholar": 1.0, "openalex": 0.05}
    assert default.windows == {"hf_papers": (500, 300.0)}  # the Hub's anonymous window
    assert default.faults.mixed_mode is None


def test_settings_property_and_crawl_command() -> None:
    s = StandIn(port=1234)
    assert s.syndication_url == "http://127.0.0.1:1234/tweet-result"
    assert s.semantic_scholar_url == "http://127.0.0.1:1234/graph/v1/paper/batch"
    assert crawl_command(s) == (
        "scrapy crawl digests -s ARXIV_API_URL=http://127.0.0.1:1234/api/query "
        "-s OEMBED_URL=http://127.0.0.1:1234/oembed "
        "-s SYNDICATION_URL=http://127.0.0.1:1234/tweet-result "
        "-s SEMANTIC_SCHOLAR_URL=http://127.0.0.1:1234/graph/v1/paper/batch "
        "-s HF_PAPERS_URL=http://127.0.0.1:1234/api/papers "
        "-s OPENALEX_URL=http://127.0.0.1:1234/openalex"
    )


def test_sample_catalogue_is_deterministic_with_details_and_citations(samples: Catalogue) -> None:
    again = Catalogue.from_digests(SAMPLES, seed=0)
    other = Catalogue.from_digests(SAMPLES, seed=1)
    assert again == samples and again.details == samples.details
    assert other.details != samples.details and other.citations != samples.citations
    assert set(samples.details) == set(samples.tweets)
    assert set(samples.citations) < set(samples.papers)
    assert len(samples.papers) - len(samples.citations) == round(0.1 * len(samples.papers))
    tid = "1345396247016976390"
    assert samples.details[tid].paper_id == "2012.15180"  # the entry that quoted it


# == Hugging Face paper pages ====================================================================


def test_hf_page_speaks_the_hubs_format_and_404s_without_a_page(samples: Catalogue) -> None:
    with StandIn(samples) as server:
        aid = min(samples.hf_pages)
        page = fetch(f"{server.hf_papers_url}/{aid}")
        missing = sorted(set(samples.papers) - set(samples.hf_pages))[0]
        gone = fetch(f"{server.hf_papers_url}/{missing}")
    data = page.json()
    assert page.status == 200 and data["id"] == aid
    assert {"id", "title", "summary", "authors", "publishedAt", "upvotes", "numComments"} <= set(
        data
    )
    assert data == samples.hf_pages[aid].fields()
    assert data["publishedAt"].endswith("Z") and isinstance(data["upvotes"], int)
    assert (gone.status, gone.json()) == (404, {"error": "Paper not found"})
    # A quarter of the papers have no page; the rest have one each.
    assert len(samples.papers) - len(samples.hf_pages) == round(0.25 * len(samples.papers))


def test_hf_window_headers_count_down_and_429_past_the_quota(catalogue: Catalogue) -> None:
    with StandIn(catalogue, windows={"hf_papers": (3, 300.0)}) as server:
        url = f"{server.hf_papers_url}/{min(catalogue.hf_pages)}"
        replies = [fetch(url) for _ in range(4)]
        log = server.requests_for("hf_papers")
    assert [r.status for r in replies] == [200, 200, 200, 429]
    left = [int(re.search(r"r=(\d+)", r.headers["RateLimit"])[1]) for r in replies]  # type: ignore[index]
    assert left == [2, 1, 0, 0]
    resets = [int(re.search(r"t=(\d+)", r.headers["RateLimit"])[1]) for r in replies]  # type: ignore[index]
    assert all(0 < t <= 300 for t in resets)
    assert {r.headers["RateLimit-Policy"] for r in replies} == {'"fixed window";"api";q=3;w=300'}
    assert replies[3].json() == {"error": "You have exceeded our rate limit for api requests."}
    assert [r.refused for r in log] == [None, None, None, "rate_limit"] and log[3].throttled


def test_hf_windows_can_start_with_the_first_request_and_change_quota(
    catalogue: Catalogue,
) -> None:
    """Window 0 begins with the service's first request (its ``t`` is the whole window) and
    holds the first quota listed; the next window holds the ``windows`` quota."""
    with StandIn(
        catalogue, windows={"hf_papers": (5, 300.0)}, window_quotas={"hf_papers": [2]},
        windows_from_first_request=True,
    ) as server:  # fmt: skip
        url = f"{server.hf_papers_url}/{min(catalogue.hf_pages)}"
        replies = [fetch(url) for _ in range(3)]
        log = server.requests_for("hf_papers")
    assert [r.status for r in replies] == [200, 200, 429]
    assert [r.headers["RateLimit"] for r in replies[:2]] == ['"api";r=1;t=300', '"api";r=0;t=300']
    assert replies[0].headers["RateLimit-Policy"] == '"fixed window";"api";q=2;w=300'
    assert [server.window_number("hf_papers", r.start) for r in log] == [0, 0, 0]
    assert server.requests_per_window("hf_papers") == {0: 3}
    assert server.window_quota("hf_papers", 1) == 5


def test_hf_shape_faults_and_the_authorization_header(standin: StandIn) -> None:
    aid = min(standin.catalogue.hf_pages)
    url = f"{standin.hf_papers_url}/{aid}"
    standin.faults.script("hf_papers", ["shape:hf_other_paper", "shape:hf_upvotes_string"])
    other, text = fetch(url).json(), fetch(url).json()
    assert other["id"] != aid and isinstance(text["upvotes"], str)
    request = urllib.request.Request(url, headers={"Authorization": "Bearer hf_x"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert json.loads(answer.read())["id"] == aid
    assert [r.authorization for r in standin.requests_for("hf_papers")] == [
        None,
        None,
        "Bearer hf_x",
    ]
    assert [r.key for r in standin.requests_for("hf_papers")] == [f"hf_papers:{aid}"] * 3


def test_openalex_lookups_follow_every_change_of_the_works() -> None:
    """The works are indexed by DOI and work ID (a scan per request bound a 10,000-post run);
    a work replaced, dropped or added is answered as it is now, as the scan answered."""
    import copy

    from tests.standin.openalex import Work, Works, list_answer, single_answer

    def work(arxiv_id: str, work_id: str) -> Work:
        return Work(arxiv_id=arxiv_id, work_id=work_id, title="t", year=2020,
                    cited_by_count=1, counts_by_year=[], is_oa=True, topic=None)  # fmt: skip

    def status(works: dict[str, Work], ident: str) -> int:
        return single_answer(works, ident, {}).status

    works = Works({"2401.00001": work("2401.00001", "W1")})
    works["2401.00002"] = work("2401.00002", "W2")
    assert [status(works, i) for i in ("W1", "W2", "doi:10.48550/arXiv.2401.00002")] == [200] * 3
    works["2401.00002"] = work("2401.00002", "W9")
    assert (status(works, "W9"), status(works, "W2")) == (200, 404)
    del works["2401.00001"]
    works.setdefault("2401.00003", work("2401.00003", "W3"))
    assert (status(works, "doi:10.48550/arXiv.2401.00003"), status(works, "W1")) == (200, 404)
    works["2401.00003"].merged = {"doi": "10.1/x", "venue": "v", "year": 2021, "type": "journal"}
    listed = list_answer(
        works, {"filter": ["doi:10.48550/arxiv.2401.00003|10.48550/arxiv.2401.00002"]}
    )
    assert [r["id"] for r in json.loads(listed.body)["results"]] == ["https://openalex.org/W9"]
    copied = copy.deepcopy(works)
    copied.pop("2401.00002")
    assert (status(copied, "W9"), status(works, "W9")) == (404, 200)
    assert status(dict(works), "W9") == 200  # a plain dict is scanned, as before
