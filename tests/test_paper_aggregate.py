"""The papers table's aggregate columns (dates, ranks, digests, favorites, code links) are folded
in the staging file as records stream by; here they are checked against the plain in-memory
fold they replaced, on random listings (None dates and counts, code links in any case)."""

from __future__ import annotations

import json
from typing import Any

import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from crawler.export.contract import sort_key
from crawler.export.dataset import build_tables
from tests.records_v2 import entry, post, record, write_snapshot

PAPERS = ("2106.00001", "2106.00002", "2106.00003")
POSTS = (
    post("hot-papers-2021-06-18", "2021-06-18T09:00:00Z"),
    post("hot-papers-2021-06-19", "2021-06-19T09:00:00Z"),
    post("hot-papers-2021-06-20", None),  # undated: first in snapshot order
)
URLS = ("https://github.com/a/one", "https://github.com/A/One", "https://gitlab.com/b/two")
SOURCES = ("arxiv_abstract", "digest_abstract", "tweet", "hf")

_link = st.tuples(st.sampled_from(URLS), st.lists(st.sampled_from(SOURCES), min_size=1,
                                                  max_size=3, unique=True))  # fmt: skip
_listing = st.tuples(
    st.sampled_from(range(len(PAPERS))),
    st.sampled_from(range(len(POSTS))),
    st.integers(1, 4),  # rank
    st.none() | st.integers(0, 500),  # favorites
    st.none() | st.integers(0, 500),  # retweets
    st.lists(_link, max_size=3, unique_by=lambda link: link[0].lower()),
)


def _record(paper: int, at: int, rank: int, favorites: Any, retweets: Any, links: Any) -> Any:
    listed = entry(POSTS[at], rank, PAPERS[paper], favorites=favorites, retweets=retweets)
    result = record(listed)
    result["code_urls"] = [{"url": url, "sources": sources} for url, sources in links]
    return result


def _expected(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The fold as it was done in memory, record by record in snapshot order."""
    papers: dict[str, dict[str, Any]] = {}
    for r in records:
        when, rank, digest = r["post"]["published_at"], r["rank"], r["digest"]
        p = papers.setdefault(r["arxiv_id"], {"when": [], "digests": set(), "ranks": [],
                                              "fav": [], "rt": [], "code": {}})  # fmt: skip
        p["when"].append(when)
        p["digests"].add(r["post"]["id"])
        p["ranks"].append((when, rank))
        p["fav"].append(digest["favorites"])
        p["rt"].append(digest["retweets"])
        for link in r["code_urls"]:
            known = p["code"].setdefault(link["url"].lower(), {"url": link["url"], "sources": []})
            known["sources"].extend(s for s in link["sources"] if s not in known["sources"])
    return {paper: _columns(p) for paper, p in papers.items()}


def _columns(p: dict[str, Any]) -> dict[str, Any]:
    dated = [w for w in p["when"] if w is not None]
    return {
        "first_seen": min(dated, default=None),
        "last_seen": max(dated, default=None),
        "digest_count": len(p["digests"]),
        "listing_count": len(p["when"]),
        "best_rank": min(rank for _, rank in p["ranks"]),
        "ranks": [
            {"post_published_at": w, "rank": rank}
            for w, rank in sorted(p["ranks"], key=lambda x: (x[0] or "", x[1]))
        ],
        "max_digest_favorites": max((v for v in p["fav"] if v is not None), default=None),
        "max_digest_retweets": max((v for v in p["rt"] if v is not None), default=None),
        "code_urls": list(p["code"].values()),
    }


COLUMNS = ("first_seen", "last_seen", "digest_count", "listing_count", "best_rank", "ranks",
           "max_digest_favorites", "max_digest_retweets", "code_urls")  # fmt: skip


def _iso(value: Any) -> Any:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


@settings(max_examples=12)
@given(st.lists(_listing, min_size=1, max_size=8))
def test_papers_fold_their_listings_as_the_records_come(
    tmp_path_factory: Any, listings: list[Any]
) -> None:
    tmp = tmp_path_factory.mktemp("fold")
    snapshot = write_snapshot(tmp / "d.jsonl", [_record(*listing) for listing in listings])
    in_order = [json.loads(line) for line in snapshot.read_text("utf-8").splitlines()]
    tables = build_tables(snapshot, tmp / "d.dataset")
    rows = pq.read_table(tables.folder / "papers.parquet").to_pylist()
    got = {}
    for row in rows:
        cols = {name: row[name] for name in COLUMNS}
        cols["first_seen"], cols["last_seen"] = _iso(cols["first_seen"]), _iso(cols["last_seen"])
        cols["ranks"] = [{**r, "post_published_at": _iso(r["post_published_at"])}
                         for r in cols["ranks"]]  # fmt: skip
        got[row["arxiv_id"]] = cols
    assert got == _expected(in_order)
    first_key: dict[str, str] = {}
    for r in in_order:
        first_key.setdefault(r["arxiv_id"], sort_key(r))
    by_first_listing = sorted(first_key, key=lambda paper: (first_key[paper], paper))
    assert [row["arxiv_id"] for row in rows] == by_first_listing  # ties: by arXiv ID
