"""What the report shows, read from the dataset's Parquet files by DuckDB, as plain values.

The report is built in two processes (``crawler.export.analysis``): this module's
:func:`gather` in one, with DuckDB and no matplotlib, and the drawing (``crawler.export.report``)
in the next, with matplotlib and no DuckDB; their imports and buffers (~60 MB each) never add.
DuckDB is imported only by :func:`gather`, so the drawing side can import the constants and
:class:`ReportData` without it.
"""

from __future__ import annotations

import pickle
import shutil
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crawler.export.contract import TABLE_NAMES, sql_string

if TYPE_CHECKING:
    import duckdb

TOP_PAPERS = 15
CITED_LINES = 8  # most-tweeted papers drawn in "citations per year"
# (label, status column, table) of the "Enrichment status" bars, top to bottom.
STATUS_SOURCES = (
    ("arXiv metadata\n(entries)", "arxiv_status", "entries"),
    ("Semantic Scholar\n(entries)", "semantic_scholar_status", "entries"),
    ("Hugging Face\n(entries)", "hf_status", "entries"),
    ("OpenAlex\n(entries)", "openalex_status", "entries"),
    ("oEmbed\n(tweets)", "embed_status", "tweets"),
    ("Tweet details\n(tweets)", "details_status", "tweets"),
)

# The most-tweeted papers (by the likes of their tweets) that have citations per year: those
# papers first, then their years (grouping every paper's years needed more than 64 MB at scale).
_CITED = f"""
WITH top AS (
    SELECT arxiv_id, coalesce(arxiv_title, digest_title) AS title, tweet_like_count_total AS likes
    FROM papers
    WHERE arxiv_id IN (SELECT arxiv_id FROM citations_by_year)
    ORDER BY likes DESC NULLS LAST, arxiv_id
    LIMIT {CITED_LINES}
)
SELECT top.arxiv_id, any_value(title), any_value(likes),
       list(c.year ORDER BY c.year), list(c.cited_by_count ORDER BY c.year)
FROM top JOIN citations_by_year c USING (arxiv_id)
GROUP BY top.arxiv_id
ORDER BY any_value(likes) DESC NULLS LAST, top.arxiv_id
"""

# The most-liked embedded tweet of each paper, for a link beside it.
# The top papers first, then the most-liked tweet of each of them only: a window over every
# embedded tweet of the archive needed more than the report's 64 MB at ~3,000 posts.
_TOP_PAPERS = f"""
WITH top AS (
    SELECT arxiv_id, coalesce(arxiv_title, digest_title) AS title, first_seen::DATE AS first,
           digest_count, best_rank, tweet_like_count_total AS likes,
           max_digest_favorites AS favorites, semantic_scholar_citation_count AS cites,
           list_transform(code_urls, lambda c: c.url) AS code
    FROM papers
    ORDER BY likes DESC NULLS LAST, favorites DESC NULLS LAST, arxiv_id
    LIMIT {TOP_PAPERS}
), top_tweet AS (
    SELECT e.arxiv_id, t.url, t.details_like_count,
           row_number() OVER (PARTITION BY e.arxiv_id
                              ORDER BY t.details_like_count DESC NULLS LAST, t.tweet_id) AS n
    FROM entry_tweets et JOIN entries e USING (entry_id) JOIN tweets t USING (tweet_id)
    WHERE e.arxiv_id IN (SELECT arxiv_id FROM top)
)
SELECT top.*, b.url, b.details_like_count
FROM top LEFT JOIN top_tweet b ON b.arxiv_id = top.arxiv_id AND b.n = 1
ORDER BY likes DESC NULLS LAST, favorites DESC NULLS LAST, top.arxiv_id
"""

Rows = list[tuple[Any, ...]]
Points = tuple[Any, Any]  # two arrays (numpy) of equal length: x and y


@dataclass(frozen=True)
class ReportData:
    """Every query's answer the page needs; only plain values, dates and numpy arrays."""

    overview: dict[str, Any]
    bucket: str  # of the categories plot: day, week or month
    per_day: Rows  # (day, entries)
    categories: Rows  # (bucket start, category, entries)
    statuses: list[tuple[str, dict[str, int]]]  # (label, {status: count})
    attention: Points  # tweet likes, Semantic Scholar citations
    upvotes: Points  # tweet likes, Hugging Face upvotes
    cited: Points  # tweet likes, OpenAlex citations
    code: tuple[int, int]  # papers, papers with a code link
    stars: Any  # GitHub stars (numpy array)
    cited_by_year: Rows
    top_papers: Rows


def bucket(first: date, last: date) -> str:
    span = (last - first).days
    return "month" if span > 120 else "week" if span > 21 else "day"


def _connect(dataset: Path, spill: Path) -> duckdb.DuckDBPyConnection:
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")  # days are UTC days, as in the records
    # One thread and 32 MB (DuckDB's default is 80 % of the machine and a thread per core):
    # a query needing more spills to ``spill``, a private folder (the default is ./.tmp).
    con.execute("SET threads = 1")
    con.execute("SET memory_limit = '32MB'")
    con.execute("SET temp_directory = " + sql_string(str(spill)))
    for name in TABLE_NAMES:
        source = sql_string(str(dataset / f"{name}.parquet"))
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet({source})")
    return con


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> Rows:
    return con.sql(sql).fetchall()


def _points(con: duckdb.DuckDBPyConnection, x: str, y: str) -> Points:
    """Papers' ``x`` and ``y`` where both are known, as two arrays (175,000 pairs as Python
    tuples were ~20 MB a plot)."""
    got = con.sql(f"SELECT {x} AS x, {y} AS y FROM papers "
                  f"WHERE {x} IS NOT NULL AND {y} IS NOT NULL").fetchnumpy()  # fmt: skip
    return got["x"], got["y"]


def _overview(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    ((posts, first, last),) = _rows(
        con,
        "SELECT count(*), min(post_published_at)::DATE, max(post_published_at)::DATE FROM posts",
    )
    counts = {name: _rows(con, f"SELECT count(*) FROM {name}")[0][0] for name in TABLE_NAMES}
    ((empty,),) = _rows(con, "SELECT count(*) FROM posts WHERE entry_count = 0")
    return {"posts": posts, "first": first, "last": last, "counts": counts, "empty": empty}


def _status_rows(con: duckdb.DuckDBPyConnection) -> list[tuple[str, dict[str, int]]]:
    out = []
    for label, column, table in STATUS_SOURCES:
        counts: dict[str, int] = dict(
            _rows(con, f"SELECT {column}, count(*) FROM {table} GROUP BY 1")
        )
        if counts:
            out.append((label, counts))
    return out


def _categories(con: duckdb.DuckDBPyConnection, unit: str) -> Rows:
    return _rows(
        con,
        f"SELECT date_trunc('{unit}', post_published_at)::DATE AS b, "
        "coalesce(arxiv_primary_category, digest_categories[1], 'unknown') AS c, count(*) "
        "FROM entries WHERE post_published_at IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2",
    )


def _query(con: duckdb.DuckDBPyConnection) -> ReportData:
    info = _overview(con)
    unit = bucket(info["first"], info["last"]) if info["first"] else "month"
    likes = "tweet_like_count_total"
    ((papers, with_code),) = _rows(
        con, "SELECT count(*), count(*) FILTER (WHERE len(code_urls) > 0) FROM papers"
    )
    return ReportData(
        overview=info,
        bucket=unit,
        per_day=_rows(
            con,
            "SELECT post_published_at::DATE, count(*) FROM entries "
            "WHERE post_published_at IS NOT NULL GROUP BY 1 ORDER BY 1",
        ),
        categories=_categories(con, unit),
        statuses=_status_rows(con),
        attention=_points(con, likes, "semantic_scholar_citation_count"),
        upvotes=_points(con, likes, "hf_upvotes"),
        cited=_points(con, likes, "openalex_cited_by_count"),
        code=(papers, with_code),
        # one array, not a tuple a paper
        stars=_points(con, "hf_github_stars", "hf_github_stars")[0] if papers else [],
        cited_by_year=_rows(con, _CITED),
        top_papers=_rows(con, _TOP_PAPERS),
    )


def gather(dataset: Path) -> ReportData:
    """Every answer the report needs from ``dataset``, DuckDB closed and its spill gone."""
    spill = Path(tempfile.mkdtemp(prefix="hot-papers-report-"))
    try:
        con = _connect(dataset, spill)
        try:
            return _query(con)
        finally:
            con.close()
    finally:
        shutil.rmtree(spill, ignore_errors=True)


def save(data: ReportData, path: Path) -> None:
    """For the drawing step: pickle keeps dates and numpy arrays exact with no format of our
    own, and both ends are this package's processes in one run's private job folder."""
    path.write_bytes(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))


def load(path: Path) -> ReportData:
    data = pickle.loads(path.read_bytes())  # our own step's file: see save()
    if not isinstance(data, ReportData):
        raise TypeError(f"{path}: not the report's data")
    return data
