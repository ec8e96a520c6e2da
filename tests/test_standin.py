"""The stand-in must behave like the real services, or tests against it prove nothing."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from tests.standin import Author, Catalogue, Fault, Paper, StandIn, Tweet, tweet_id_from_url
from tests.standin.faults import DEFAULT_MIXED_KINDS

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


def _tweet(tid: str, status: str = "ok", handle: str = "alice") -> Tweet:
    return Tweet(
        tid,
        handle,
        "Alice & Co",
        "en",
        'Hello <a href="https://t.co/x">x</a>',
        "June 1, 2021",
        status,
    )  # type: ignore[arg-type]


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
    server.latency.update(arxiv=0.0, oembed=0.0)
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


def entry_ids(feed: etree._Element) -> list[str]:
    return [e.findtext("a:id", namespaces=NS) for e in feed.findall("a:entry", NS)]


def total(feed: etree._Element) -> int:
    return int(feed.findtext("os:totalResults", namespaces=NS))


def as_record(entry: etree._Element) -> dict[str, Any]:
    """A minimal faithful client: what the crawler is meant to extract from one entry."""

    def text(path: str) -> str | None:
        return entry.findtext(path, namespaces=NS)

    vid = text("a:id").rsplit("/abs/", 1)[1]
    links = {
        (ln.get("title") or ln.get("rel")): ln.get("href") for ln in entry.findall("a:link", NS)
    }
    return {
        "id": vid,
        "version": int(vid.rsplit("v", 1)[1]),
        "title": " ".join(text("a:title").split()),
        "authors": [
            {
                "name": a.findtext("a:name", namespaces=NS),
                "affiliations": [x.text for x in a.findall("arxiv:affiliation", NS)],
            }
            for a in entry.findall("a:author", NS)
        ],
        "summary": text("a:summary").strip(),
        "published": text("a:published"),
        "updated": text("a:updated"),
        "primary_category": entry.find("arxiv:primary_category", NS).get("term"),
        "categories": [c.get("term") for c in entry.findall("a:category", NS)],
        "comment": text("arxiv:comment"),
        "journal_ref": text("arxiv:journal_ref"),
        "doi": text("arxiv:doi"),
        "abs_url": links["alternate"].replace("http://", "https://"),
        "pdf_url": links["pdf"].replace("http://", "https://"),
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
    first = feed.find("a:entry", NS)
    assert first.findtext("a:id", namespaces=NS) == "http://arxiv.org/abs/2101.00001v3"
    doi_link = first.find("a:link[@title='doi']", NS)
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
    assert v2["updated"] == "2021-01-12T12:00:00Z" and v2["published"] == "2021-01-05T12:00:00Z"


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
    assert info.value.expected > 0 and len(info.value.partial) > 0


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


def test_log_concurrency_and_gaps(standin: StandIn) -> None:
    standin.latency["arxiv"] = 0.3
    threads = [
        threading.Thread(target=fetch, args=(standin.arxiv_url, {"id_list": i})) for i in IDS[:3]
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert standin.max_concurrency("arxiv") == 3
    assert sorted(r.concurrent for r in standin.requests_for("arxiv")) == [1, 2, 3]
    assert standin.min_start_gap("arxiv") < 0.3
    assert standin.max_concurrency("oembed") == 0
    assert standin.min_start_gap("oembed") == float("inf")

    standin.reset_log()
    standin.latency["arxiv"] = 0.0
    for i in IDS[:3]:
        fetch(standin.arxiv_url, {"id_list": i})
        time.sleep(0.15)
    assert standin.max_concurrency("arxiv") == 1
    assert 0.15 <= standin.min_start_gap("arxiv") < 1.0
    rec = standin.requests_for("arxiv")[0]
    assert (rec.service, rec.method, rec.path, rec.status) == ("arxiv", "GET", "/api/query", 200)
    assert rec.params == {"id_list": [IDS[0]]} and rec.end >= rec.start


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
