"""The papers table's aggregate columns (dates, ranks, digests, favorites, code links) are folded
in the staging file as records stream by; here they are checked against the plain in-memory
fold they replaced, on random listings (None dates and counts, code links in any case)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import pyarrow.parquet as pq
from hypothesis import example, given, settings
from hypothesis import strategies as st

from crawler.export.contract import sort_key
from crawler.export.dataset import build_tables
from tests.records_v2 import details_ok, entry, post, record, tweet, tweet_id_at, write_snapshot

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


# --- the sums over a paper's tweets ------------------------------------------------------------
INT64_MAX = 2**63 - 1
# Like counts near the int64 edge, where two valid ones add up past it.
_likes = st.sampled_from([0, 1, 2**62, INT64_MAX - 1, INT64_MAX]) | st.integers(0, INT64_MAX)
# A tweet: no details (None), or details ok with a like count (maybe unknown) and whether its
# links point at the paper.
_tweet = st.none() | st.tuples(st.none() | _likes, st.booleans())
_tweeted = st.tuples(st.sampled_from(range(len(PAPERS))), st.lists(_tweet, min_size=1, max_size=3))


def _tweeted_records(listings: list[Any]) -> list[dict[str, Any]]:
    """One listing per entry, every tweet distinct (its own snowflake ID)."""
    records, seq = [], 0
    for rank, (paper, tweets) in enumerate(listings, 1):
        embedded = []
        for spec in tweets:
            seq += 1
            tweet_id = tweet_id_at(datetime(2021, 6, 18, tzinfo=UTC), seq)
            if spec is None:
                embedded.append(tweet(tweet_id))
                continue
            likes, links = spec
            urls = [f"https://arxiv.org/abs/{PAPERS[paper]}"] if links else []
            embedded.append(tweet(tweet_id, details=details_ok(likes, urls=urls)))
        records.append(record(entry(POSTS[0], rank, PAPERS[paper], tweets=embedded)))
    return records


def _tweet_columns(listings: list[Any]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The columns as defined (exact sums; a like total no int64 holds is null), and the
    papers whose total is past it."""
    tweets: dict[str, list[Any]] = {}
    for paper, specs in listings:
        tweets.setdefault(PAPERS[paper], []).extend(specs)
    out, past = {}, []
    for paper, specs in sorted(tweets.items()):
        ok = [s for s in specs if s is not None]
        likes = [n for n, _ in ok if n is not None]
        total = sum(likes) if likes else None
        if total is not None and total > INT64_MAX:
            past.append(paper)
            total = None
        out[paper] = {
            "tweet_count": len(specs),
            "linking_tweet_count": sum(links for _, links in ok) if ok else None,
            "tweet_like_count_total": total,
        }
    return out, past


class _Lines(logging.Handler):
    """The dataset's lines about papers."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("papers: "):
            self.lines.append(record.getMessage())


@settings(max_examples=12, deadline=None)
@example([(0, [(2**62, False), (2**62, True)])])  # 2^63: one past the edge
@example([(0, [(INT64_MAX - 1, True)]), (0, [(1, False), None])])  # exactly 2^63 - 1
@example([(0, [(INT64_MAX, True), (INT64_MAX, True), (INT64_MAX, True)]), (1, [(5, False)])])
@given(st.lists(_tweeted, min_size=1, max_size=4))
def test_tweet_sums_are_exact_and_a_like_total_no_int64_holds_is_null(
    tmp_path_factory: Any, listings: list[Any]
) -> None:
    """Like counts are valid up to 2^63 - 1 each, so their sum can pass it: SQLite's sum()
    raised "integer overflow" and the whole tables step failed. Now the dataset is written,
    the total is null (no int64 holds it, and no made-up value stands in) with one line naming
    the paper, and every count is still in the tweets table."""
    tmp = tmp_path_factory.mktemp("sums")
    snapshot = write_snapshot(tmp / "d.jsonl", _tweeted_records(listings))
    heard = _Lines()
    logger = logging.getLogger("crawler.export.dataset")
    logger.addHandler(heard)
    try:
        tables = build_tables(snapshot, tmp / "d.dataset")
    finally:
        logger.removeHandler(heard)
    expected, past = _tweet_columns(listings)
    rows = pq.read_table(tables.folder / "papers.parquet").to_pylist()
    assert {row["arxiv_id"]: {name: row[name] for name in expected[row["arxiv_id"]]}
            for row in rows} == expected  # fmt: skip
    assert sorted(line.split(": ")[1] for line in heard.lines) == past
    for line in heard.lines:
        assert "tweet_like_count_total left null" in line and f"maximum ({INT64_MAX})" in line
    kept = pq.read_table(tables.folder / "tweets.parquet").column("details_like_count")
    given_counts = [s[0] for _, specs in listings for s in specs if s is not None]
    assert sorted(n for n in kept.to_pylist() if n is not None) == sorted(
        n for n in given_counts if n is not None
    )  # every count is kept as it was
