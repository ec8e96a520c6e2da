"""End to end: `scrapy crawl digests` over the five samples against the stand-in."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from crawler.parsing.digest import parse_digest_bytes
from crawler.parsing.tweets import blockquote_text
from crawler.record import schema_errors
from tests.conftest import SAMPLES, Crawl, run_crawl
from tests.helpers import served
from tests.standin import Catalogue, StandIn

pytestmark = pytest.mark.e2e  # real crawls in a subprocess


@pytest.fixture(scope="module")
def crawl(
    tmp_path_factory: pytest.TempPathFactory, catalogue: Catalogue
) -> Iterator[tuple[Crawl, StandIn]]:
    """One crawl with the production politeness settings (ARXIV_DELAY 3 s, batches of 100)."""
    with StandIn(catalogue) as server:
        result = run_crawl(tmp_path_factory.mktemp("e2e") / "out.jsonl", server)
        yield result, server


def test_every_entry_once_and_valid(crawl: tuple[Crawl, StandIn]) -> None:
    result, _ = crawl
    assert result.returncode == 0, result.log[-3000:]
    assert len(result.records) == 103
    keys = Counter((r["post"]["source"], r["rank"]) for r in result.records)
    expected: Counter[tuple[str, int]] = Counter()
    for path in SAMPLES:
        digest = parse_digest_bytes(path.read_bytes(), path.name)
        for e in digest.entries:
            expected[(path.name, e.rank)] += 1  # post.source: below the samples folder
    assert keys == expected
    assert all(schema_errors(r) == [] for r in result.records)
    assert "Traceback" not in result.log


def test_arxiv_fields_equal_what_was_served(
    crawl: tuple[Crawl, StandIn], catalogue: Catalogue
) -> None:
    result, _ = crawl
    statuses: Counter[str] = Counter()
    for r in result.records:
        arxiv = r["arxiv"]
        statuses[arxiv["status"]] += 1
        paper = catalogue.papers.get(r["arxiv_id"])
        if paper is None:
            assert r["arxiv_id"] in catalogue.absent
            assert arxiv["error"] == f"arXiv has no paper {r['arxiv_id']}"
            assert set(served(arxiv).values()) == {"not_found", None}  # dense: all null
        else:
            assert served(arxiv, status=False) == paper.expected()
            assert arxiv["error"] is None and arxiv["fetched_at"] is not None
            assert arxiv["status"] == "ok"
    assert statuses == {"ok": 103 - len(catalogue.absent), "not_found": len(catalogue.absent)}
    assert len(catalogue.absent) > 0


def test_embeds_equal_what_was_served(crawl: tuple[Crawl, StandIn], catalogue: Catalogue) -> None:
    result, _ = crawl
    seen: Counter[str] = Counter()
    for r in result.records:
        for t in r["tweets"]:
            served_tweet = catalogue.tweets[t["id"]]
            embed = t["embed"]
            seen[embed["status"]] += 1
            if served_tweet.status == "ok":
                answer = served_tweet.oembed(omit_script=True)
                assert served(embed) == {
                    "status": "ok",
                    "text": blockquote_text(answer["html"]),
                    "html": answer["html"],
                    "author_name": answer["author_name"],
                    "author_url": answer["author_url"],
                    "url": answer["url"],
                }
                if r["post"]["source"].endswith("003_175887caae0d4ac0.txt"):
                    assert embed["text"] == t["text"]  # clean sample: post and embed agree
            else:
                status = {"deleted": 404, "protected": 403}[served_tweet.status]
                assert embed["error"] == f"oEmbed answered HTTP {status}"
                assert set(served(embed).values()) == {served_tweet.status, None}
    assert seen["ok"] > 100 and seen["deleted"] > 0 and seen["protected"] > 0
    renamed = [t for r in result.records for t in r["tweets"] if t["id"] in catalogue.renamed]
    assert renamed and all(
        t["embed"]["url"] != t["url"] for t in renamed if t["embed"]["status"] == "ok"
    )


def test_requests_are_minimal_and_polite(crawl: tuple[Crawl, StandIn]) -> None:
    _, server = crawl
    arxiv = server.requests_for("arxiv")
    oembed = server.requests_for("oembed")
    assert len(arxiv) == 2
    asked = [i for rec in arxiv for i in rec.params["id_list"][0].split(",")]
    assert len(asked) == len(set(asked)) == 103
    assert all(
        int(rec.params["max_results"][0]) == len(rec.params["id_list"][0].split(",")) <= 100
        for rec in arxiv
    )
    assert server.min_start_gap("arxiv") >= 3.0
    assert server.max_concurrency("arxiv") == 1
    assert len(oembed) == 125
    assert len({rec.params["url"][0].rsplit("/", 1)[1] for rec in oembed}) == 125
    assert all(
        rec.params["omit_script"] == ["1"] and rec.params["dnt"] == ["true"] for rec in oembed
    )
    assert server.max_concurrency("oembed") <= 4


def test_default_feed_and_atomic_write(tmp_path: Path, standin: StandIn) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text(
        '{"schema_version": 2, "post": {}, "rank": 1, "previous": "snapshot"}\n'
    )  # an older run's
    result = run_crawl(
        out, standin, settings={"ARXIV_DELAY": 0.2}, default_feed=True, analysis=True
    )
    assert len(result.records) == 103
    # Beside it only the run report, the list of posts read, the dataset (a link to its
    # folder), the HTML report, the state and the locks; no temporary file is left.
    names = sorted(p.name for p in tmp_path.iterdir())
    (folder,) = [n for n in names if n.startswith(".out.dataset-")]
    assert (tmp_path / "out.dataset").resolve() == (tmp_path / folder).resolve()
    assert [n for n in names if n != folder] == [
        ".out.dataset.lock",
        ".out.jsonl.lock",
        ".out.report.html.lock",
        ".state.sqlite3.lock",
        "out.dataset",
        "out.jsonl",
        "out.posts.jsonl",
        "out.report.html",
        "out.run.json",
        "state.sqlite3",
    ]
