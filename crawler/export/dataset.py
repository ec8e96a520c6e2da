"""The snapshot as analysis-ready tables (``NAME.dataset/``), replaced as a whole.

:func:`write_dataset` reads the JSONL snapshot a line at a time and writes every table in
batches, so memory does not grow with the snapshot. Entries and embeddings go straight to their
Parquet files. Tweets (many records embed the same one), each paper's metadata blocks and its
aggregate (dates, ranks, digests, code links) wait in a staging SQLite file inside the new
folder; only a row per post stays in memory. (The per-paper aggregate in memory was ~2 KB a
paper: 175,000 papers at ~10,000 posts held 490 MB.)

The folder is written beside the target under a fresh name, then ``target`` (a symlink) is
pointed at it with one atomic rename. Readers see the old dataset or the new one, never a mix.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import suppress
from functools import cache
from pathlib import Path
from typing import Any

from crawler.export.card import write_card
from crawler.export.contract import PRIMARY_KEYS, SCHEMA_VERSION, record_schema, sort_key
from crawler.export.files import posts_file
from crawler.export.finish import (  # the DuckDB half, without pyarrow; re-exported here
    DUCKDB_FILE as DUCKDB_FILE,
)
from crawler.export.finish import (
    DatasetError,
    DatasetSummary,
    Notes,
    Tables,
    discarded_on_failure,
    finish_dataset,
)
from crawler.export.finish import (
    foreign_key_violations as foreign_key_violations,
)
from crawler.export.finish import (
    one_line as one_line,
)
from crawler.export.ownership import MANIFEST, WRITTEN_BY, dataset_problem, mark_folder
from crawler.export.tables import (
    LAYOUT,
    PAPER_BLOCKS,
    SCHEMAS,
    TABLE_DOCS,
    TABLE_NAMES,
    TableWriter,
    description,
    entry_row,
    is_paper_leaf,
)

logger = logging.getLogger(__name__)

BATCH_ROWS = 4096  # rows per Parquet row group
# Rows per staging write: a tweet row carries its whole JSON (embed HTML, details, history), and
# 4,096 of them waiting were 40 MB. The upserts run in the same order whatever the batch.
STAGE_ROWS = 256
MANIFEST_FILE = MANIFEST
_STAGING_FILE = ".staging.sqlite3"
_RUN_KEYS = ("run_id", "started_at", "finished_at", "exit_status", "records", "changed_records")


def write_dataset(
    snapshot: Path,
    target: Path,
    *,
    run_report: dict[str, Any] | None = None,
    checked: bool = False,
    built_from: str | None = None,
    posts: Iterable[Mapping[str, Any]] | None = None,
) -> DatasetSummary:
    """Write the tables for ``snapshot`` and swap them in at ``target`` in one step.

    ``checked``: every record was validated against the schema as it was written (the snapshot
    this run just wrote), so it is not validated again; that was 40 % of this step's time.
    ``posts``: the post block of every digest the run read, also those without entries (records
    exist only for entries); None reads them from ``NAME.posts.jsonl`` beside the snapshot.
    On any failure the previous dataset stays and :class:`DatasetError` (one line, the cause
    chained) propagates. ``built_from``: the key of the inputs (``crawler.export.unchanged``),
    kept in the manifest so a run with the same inputs can keep the folder as it is.
    """
    tables = build_tables(
        snapshot, target, checked=checked, posts=posts, run_report=run_report, built_from=built_from
    )
    return finish_dataset(tables, target)


def build_tables(
    snapshot: Path,
    target: Path,
    *,
    checked: bool = False,
    posts: Iterable[Mapping[str, Any]] | None = None,
    run_report: dict[str, Any] | None = None,
    built_from: str | None = None,
) -> Tables:
    """The first half of :func:`write_dataset`: every table's Parquet file, the manifest and
    the card (none of them depends on the DuckDB file). The dataset step runs the halves in two
    processes, so DuckDB's peak never adds to what the Parquet writers leave behind in the heap,
    and the second one needs no pyarrow: what it declares comes in :func:`table_notes`."""
    snapshot, target = Path(snapshot), Path(target)
    if problem := dataset_problem(target):
        raise DatasetError(problem)
    folder = target.parent / f".{target.name}-{secrets.token_hex(6)}"
    with discarded_on_failure(folder, target):
        target.parent.mkdir(parents=True, exist_ok=True)
        folder.mkdir()
        mark_folder(folder)  # first: a killed run's leftover is recognisably ours too
        read = list(posts) if posts is not None else read_posts(snapshot)
        rows, period = _build(snapshot, folder, checked=checked, posts=read)
        _write_manifest(folder, snapshot, rows, period, run_report, built_from)
        write_card(folder, rows=rows, period=period, run_report=run_report)
    return Tables(folder, rows, period, table_notes())


def table_notes() -> Notes:
    """What the DuckDB file declares beside the types it reads off the Parquet files: each
    column's nullability and description and each table's description, from the Arrow schemas."""
    return {
        name: {
            "description": description(schema),
            "columns": {f.name: [f.nullable, description(f)] for f in schema},
        }
        for name, schema in SCHEMAS.items()
    }


def schema_errors(record: dict[str, Any]) -> list[str]:
    """The record's violations of its schema, for a snapshot this run did not write. The
    record package (lxml, ftfy, fastjsonschema) is imported only then."""
    from crawler.record import schema_errors as errors

    return errors(record)


# What can put a lone surrogate into a string json.loads returns: a ``\ud800``-style escape (any
# case) or the raw bytes of one (it decodes with "surrogatepass"). A line without either has
# none; one with either (or an escaped backslash before "ud8…") is looked at string by string.
_MAY_HOLD_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def lone_surrogate(line: bytes, value: Any) -> str | None:
    """Where ``value`` (``line`` as json.loads read it) holds a lone surrogate, which no UTF-8
    writer (Parquet, SQLite, DuckDB) takes: ``tweets/0/text holds \\ud800``; None if nowhere."""
    if b"\\u" not in line and b"\xed" not in line:  # two memchr-fast scans: 6x the regex's speed
        return None
    if not _MAY_HOLD_SURROGATE.search(line):
        return None
    return _surrogate_in(value, [])


def _surrogate_in(value: Any, path: list[str]) -> str | None:
    if isinstance(value, str):
        found = _SURROGATE.search(value)
        return None if found is None else f"{'/'.join(path) or 'it'} holds {_escaped(found[0])}"
    items: Iterable[tuple[Any, Any]] = (
        value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list)
        else ()
    )  # fmt: skip
    for key, item in items:
        name = str(key)
        if _SURROGATE.search(name):
            return f"the key {'/'.join([*path, _escaped(name)])} holds one"
        if inside := _surrogate_in(item, [*path, name]):
            return inside
    return None


def _escaped(text: str) -> str:
    """Surrogates as their JSON escapes (``\\udc80``): a message must be UTF-8 text itself."""
    return _SURROGATE.sub(lambda m: f"\\u{ord(m[0]):04x}", text)


def _records(snapshot: Path, *, checked: bool) -> Iterator[dict[str, Any]]:
    """Records one at a time, each checked: a bad line stops the run before anything is swapped."""
    with snapshot.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{snapshot.name} line {number}: not JSON ({exc})") from None
            if where := lone_surrogate(line, record):
                raise ValueError(
                    f"{snapshot.name} line {number}: not UTF-8 text ({where}, a lone surrogate)"
                )
            if not isinstance(record, dict):
                problems = ["not an object"]
            else:
                problems = [] if checked else schema_errors(record)
            if problems:
                raise ValueError(
                    f"{snapshot.name} line {number}: not a schema {SCHEMA_VERSION} record "
                    f"({problems[0]})"
                )
            yield record


@cache
def _post_validator() -> Any:
    from jsonschema import Draft7Validator  # only for a posts list read back from its file

    whole = record_schema()  # evolved from the whole schema, so its $refs resolve as in a record
    return Draft7Validator(whole).evolve(schema=whole["properties"]["post"])


def post_errors(post: Mapping[str, Any]) -> list[str]:
    """Why ``post`` is not a record's post block (empty when it is one)."""
    return [e.message for e in _post_validator().iter_errors(post)]


def read_posts(snapshot: Path) -> list[Mapping[str, Any]] | None:
    """The posts sidecar's post blocks; None (with one line) when there is none, as beside a
    snapshot of an older version: then ``posts`` lists only the posts seen in records. A line
    that is not a post block is named and skipped (its post still comes from its records)."""
    path = posts_file(snapshot)
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        logger.warning("%s: not found; the posts table lists only posts with entries", path.name)
        return None
    posts: list[Mapping[str, Any]] = []
    for number, line in enumerate(lines, 1):
        try:
            post = json.loads(line)
            problems = ["not an object"] if not isinstance(post, dict) else post_errors(post)
        except ValueError as exc:
            problems = [f"not JSON ({exc})"]
        else:
            if where := lone_surrogate(line, post):
                problems = [f"not UTF-8 text: {where}, a lone surrogate"]
        if problems:
            logger.warning("%s:%d: skipped, not a post block (%s)", path.name, number, problems[0])
            continue
        posts.append(post)
    return posts


def _build(
    snapshot: Path,
    folder: Path,
    *,
    checked: bool,
    posts: list[Mapping[str, Any]] | None,
) -> tuple[dict[str, int], tuple[str | None, str | None]]:
    builder = _Builder(folder)
    try:
        for post in posts or ():
            builder.read_post(post)
        for record in _records(snapshot, checked=checked):
            builder.add(record)
        builder.finish()
    finally:
        builder.close()
    return builder.rows(), builder.period()


def _least(a: Any, b: Any) -> Any:
    """The smaller of two values, ignoring None (ISO 8601 UTC strings compare as times)."""
    return b if a is None else a if b is None else min(a, b)


def _greatest(a: Any, b: Any) -> Any:
    """The larger of two values, ignoring None."""
    return b if a is None else a if b is None else max(a, b)


_STAGING_SQL = """
PRAGMA journal_mode = OFF;
PRAGMA synchronous = OFF;
CREATE TABLE tweet (tweet_id TEXT PRIMARY KEY, k TEXT, first_seen TEXT, last_seen TEXT,
                    appearances INTEGER, favorite_count INTEGER, value TEXT);
CREATE TABLE block (arxiv_id TEXT, block TEXT, ok INTEGER, k TEXT, value TEXT,
                    PRIMARY KEY (arxiv_id, block));
CREATE TABLE paper_tweet (arxiv_id TEXT, tweet_id TEXT, links INTEGER,
                          PRIMARY KEY (arxiv_id, tweet_id)) WITHOUT ROWID;
CREATE TABLE paper (arxiv_id TEXT PRIMARY KEY, first_key TEXT, first_seen TEXT, last_seen TEXT,
                    best_rank INTEGER, listings INTEGER, favorites INTEGER, retweets INTEGER)
                    WITHOUT ROWID;
CREATE TABLE paper_digest (arxiv_id TEXT, post_id TEXT, PRIMARY KEY (arxiv_id, post_id))
                           WITHOUT ROWID;
CREATE TABLE paper_rank (arxiv_id TEXT, seq INTEGER, published_at TEXT, rank INTEGER,
                         PRIMARY KEY (arxiv_id, seq)) WITHOUT ROWID;
CREATE TABLE paper_code (arxiv_id TEXT, url_key TEXT, seq INTEGER, url TEXT,
                         PRIMARY KEY (arxiv_id, url_key)) WITHOUT ROWID;
CREATE TABLE code_source (arxiv_id TEXT, url_key TEXT, source TEXT, seq INTEGER,
                          PRIMARY KEY (arxiv_id, url_key, source)) WITHOUT ROWID;
"""
# The copy from the most recent record (by snapshot order: date, slug, rank, source) wins.
_UPSERT_TWEET = """
INSERT INTO tweet VALUES (?, ?, ?, ?, 1, ?, ?) ON CONFLICT (tweet_id) DO UPDATE SET
  appearances = appearances + 1,
  first_seen = coalesce(min(first_seen, excluded.first_seen), first_seen, excluded.first_seen),
  last_seen = coalesce(max(last_seen, excluded.last_seen), last_seen, excluded.last_seen),
  favorite_count = iif(excluded.k >= k, excluded.favorite_count, favorite_count),
  value = iif(excluded.k >= k, excluded.value, value),
  k = max(k, excluded.k)
"""
# A paper's arXiv (or impact) block: an ok one beats a failure, then the most recent wins.
_UPSERT_BLOCK = """
INSERT INTO block VALUES (?, ?, ?, ?, ?) ON CONFLICT (arxiv_id, block) DO UPDATE SET
  ok = excluded.ok, k = excluded.k, value = excluded.value
  WHERE (excluded.ok, excluded.k) >= (block.ok, block.k)
"""
_UPSERT_PAPER_TWEET = """
INSERT INTO paper_tweet VALUES (?, ?, ?) ON CONFLICT (arxiv_id, tweet_id) DO UPDATE SET
  links = coalesce(max(links, excluded.links), links, excluded.links)
"""
# Per distinct paper (175,000 at ~10,000 posts): dates, ranks, digests and code links wait here
# too, not in memory. A listing's values fold in as the records come (None ignored by min/max).
_UPSERT_PAPER = """
INSERT INTO paper VALUES (?, ?, ?, ?, ?, 1, ?, ?) ON CONFLICT (arxiv_id) DO UPDATE SET
  first_key = min(first_key, excluded.first_key),
  first_seen = coalesce(min(first_seen, excluded.first_seen), first_seen, excluded.first_seen),
  last_seen = coalesce(max(last_seen, excluded.last_seen), last_seen, excluded.last_seen),
  best_rank = min(best_rank, excluded.best_rank),
  listings = listings + 1,
  favorites = coalesce(max(favorites, excluded.favorites), favorites, excluded.favorites),
  retweets = coalesce(max(retweets, excluded.retweets), retweets, excluded.retweets)
"""
_ADD_DIGEST = "INSERT OR IGNORE INTO paper_digest VALUES (?, ?)"
_ADD_RANK = "INSERT INTO paper_rank VALUES (?, ?, ?, ?)"
# A code link keeps its first spelling and place; its sources their first appearance.
_ADD_CODE = "INSERT OR IGNORE INTO paper_code VALUES (?, ?, ?, ?)"
_ADD_CODE_SOURCE = "INSERT OR IGNORE INTO code_source VALUES (?, ?, ?, ?)"
_PAPERS = """
SELECT p.arxiv_id, p.first_seen, p.last_seen, p.best_rank, p.listings, p.favorites, p.retweets,
       (SELECT count(*) FROM paper_digest d WHERE d.arxiv_id = p.arxiv_id)
FROM paper p ORDER BY p.first_key, p.arxiv_id
"""
# Summed here in Python, exactly: SQLite's sum() of two valid like counts (2^62 each) raises
# "integer overflow", and one absurd upstream count cost the whole dataset.
_PAPER_TWEETS = """
SELECT pt.links, t.favorite_count FROM paper_tweet pt JOIN tweet t USING (tweet_id)
WHERE pt.arxiv_id = ?
"""
INT64_MAX = 2**63 - 1  # the largest value of the papers table's int64 columns
_RANKS = """
SELECT published_at, rank FROM paper_rank WHERE arxiv_id = ?
ORDER BY coalesce(published_at, ''), rank
"""
_CODE_URLS = """
SELECT c.url_key, c.url, s.source FROM paper_code c
LEFT JOIN code_source s ON s.arxiv_id = c.arxiv_id AND s.url_key = c.url_key
WHERE c.arxiv_id = ? ORDER BY c.seq, s.seq
"""


class _Stage:
    """The staging SQLite file: rows that many records share, parked on disk until the end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path)
        self.db.executescript(_STAGING_SQL)
        statements = (_UPSERT_TWEET, _UPSERT_BLOCK, _UPSERT_PAPER_TWEET, _UPSERT_PAPER,
                      _ADD_DIGEST, _ADD_RANK, _ADD_CODE, _ADD_CODE_SOURCE)  # fmt: skip
        self.pending: dict[str, list[tuple[Any, ...]]] = {sql: [] for sql in statements}
        self.seq = 0  # first appearance, for what keeps its order (ranks, code links)

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def add(self, sql: str, params: tuple[Any, ...]) -> None:
        rows = self.pending[sql]
        rows.append(params)
        if len(rows) >= STAGE_ROWS:
            self.flush()

    def flush(self) -> None:
        for sql, rows in self.pending.items():
            self.db.executemany(sql, rows)
            rows.clear()

    def close(self) -> None:
        self.db.close()
        self.path.unlink(missing_ok=True)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _is_ok(block: Mapping[str, Any]) -> int:
    return int(block.get("status") == "ok")


class _Builder:
    """Streams records into the table files; aggregates what spans records."""

    def __init__(self, folder: Path) -> None:
        self.stage = _Stage(folder / _STAGING_FILE)
        self.writers = {
            name: TableWriter(folder / f"{name}.parquet", SCHEMAS[name], batch_rows=BATCH_ROWS)
            for name in TABLE_NAMES
        }
        self.posts: dict[str, dict[str, Any]] = {}  # by post ID
        self.post_columns = [f.name for f in SCHEMAS["posts"] if f.name.startswith("post_")]
        self.meta_columns = [leaf.column for leaf in LAYOUT.leaves if is_paper_leaf(leaf)]
        self.first: str | None = None
        self.last: str | None = None

    def add(self, record: dict[str, Any]) -> None:
        row = entry_row(record)
        self.writers["entries"].append(row)
        key = sort_key(record)
        self._tweets(record, key)
        self._paper(record, key)
        self._post(record, row)
        self.first = _least(self.first, record["post"]["published_at"])
        self.last = _greatest(self.last, record["post"]["published_at"])

    def _tweets(self, record: dict[str, Any], key: str) -> None:
        when, paper, entry_id = (
            record["post"]["published_at"],
            record["arxiv_id"],
            record["entry_id"],
        )
        for position, tweet in enumerate(record["tweets"], 1):
            extra = LAYOUT.extract("entry_tweets", tweet)
            row = {"entry_id": entry_id, "position": position, "tweet_id": tweet["id"], **extra}
            self.writers["entry_tweets"].append(row)
            details = tweet["details"]
            likes = details.get("like_count") if details["status"] == "ok" else None
            params = (tweet["id"], key, when, when, likes, _dumps(tweet))
            self.stage.add(_UPSERT_TWEET, params)
            if paper is not None:
                links = tweet["links_paper"]
                self.stage.add(_UPSERT_PAPER_TWEET, (paper, tweet["id"], _bool(links)))

    def _paper(self, record: dict[str, Any], key: str) -> None:
        paper_id = record["arxiv_id"]
        if paper_id is None:
            return
        when, rank, digest = record["post"]["published_at"], record["rank"], record["digest"]
        stage = self.stage
        listing = (paper_id, key, when, when, rank, digest["favorites"], digest["retweets"])
        stage.add(_UPSERT_PAPER, listing)
        stage.add(_ADD_DIGEST, (paper_id, record["post"]["id"]))
        stage.add(_ADD_RANK, (paper_id, stage.next_seq(), when, rank))
        for link in record["code_urls"]:
            url_key = link["url"].lower()
            stage.add(_ADD_CODE, (paper_id, url_key, stage.next_seq(), link["url"]))
            for source in link["sources"]:
                stage.add(_ADD_CODE_SOURCE, (paper_id, url_key, source, stage.next_seq()))
        for block in PAPER_BLOCKS:
            value = record[block]
            stage.add(_UPSERT_BLOCK, (paper_id, block, _is_ok(value), key, _dumps(value)))
        digest_block = {"title": digest["title"]}
        stage.add(_UPSERT_BLOCK, (paper_id, "digest", 1, key, _dumps(digest_block)))

    def read_post(self, post: Mapping[str, Any]) -> dict[str, Any]:
        """A digest that was read, with or without entries: one row of ``posts``."""
        seen = self.posts.get(post["id"])
        if seen is None:
            row = LAYOUT.extract("entries", {"post": post})
            seen = self.posts[post["id"]] = {name: row[name] for name in self.post_columns}
            seen |= {"entry_count": 0, "embedded_tweet_count": 0}
        return seen

    def _post(self, record: dict[str, Any], row: dict[str, Any]) -> None:
        seen = self.read_post(record["post"])
        seen["entry_count"] += 1
        seen["embedded_tweet_count"] += len(record["tweets"])

    def finish(self) -> None:
        self.stage.flush()
        self.stage.db.commit()
        self._write_papers()
        self._write_tweets()
        for post in sorted(self.posts.values(), key=_post_order):
            self.writers["posts"].append(post)
        for writer in self.writers.values():
            writer.close()

    def _write_papers(self) -> None:
        db = self.stage.db
        for paper in db.execute(_PAPERS):
            paper_id = paper[0]
            blocks = {
                block: json.loads(value)
                for block, value in db.execute(
                    "SELECT block, value FROM block WHERE arxiv_id = ?", (paper_id,)
                )
            }
            meta = LAYOUT.extract("entries", blocks)
            row = {name: meta[name] for name in self.meta_columns}
            row |= _paper_columns(db, paper)
            row["digest_title"] = meta["digest_title"]
            self.writers["papers"].append(row)
            self._write_series(paper_id, blocks)

    def _write_series(self, paper_id: str, blocks: Mapping[str, Any]) -> None:
        """paper_history and citations_by_year rows from the paper's blocks as in papers."""
        history: list[dict[str, Any]] = []
        for series in LAYOUT.series:
            rows = LAYOUT.series_rows(blocks[series.block], series)
            if series.table == "citations_by_year":
                rows = _every_year(rows)
            for row in rows:
                row["arxiv_id"] = paper_id
                if series.table == "paper_history":
                    row["service"] = series.block
                    history.append(row)
                else:
                    self.writers[series.table].append(row)
        for row in sorted(history, key=lambda r: (r["service"], r["observed_at"])):
            self.writers["paper_history"].append(row)

    def _write_tweets(self) -> None:
        query = (
            "SELECT value, first_seen, last_seen, appearances FROM tweet "
            "ORDER BY first_seen IS NULL, first_seen, tweet_id"
        )
        for value, first_seen, last_seen, appearances in self.stage.db.execute(query):
            tweet = json.loads(value)
            row = LAYOUT.extract("tweets", tweet)
            row |= {"first_seen": first_seen, "last_seen": last_seen, "entry_count": appearances}
            self.writers["tweets"].append(row)
            details = tweet["details"]
            for observation in details.get("history", ()) if details["status"] == "ok" else ():
                history = LAYOUT.extract("tweet_history", observation)
                self.writers["tweet_history"].append({"tweet_id": tweet["id"], **history})

    def close(self) -> None:
        """Release files whether or not the build finished (the folder is then removed)."""
        for writer in self.writers.values():
            with suppress(Exception):  # already closed, or failing along with the build
                writer.close()
        self.stage.close()

    def rows(self) -> dict[str, int]:
        return {name: writer.written for name, writer in self.writers.items()}

    def period(self) -> tuple[str | None, str | None]:
        return self.first, self.last


def _every_year(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Citations per year from the first to the last year given, oldest first, with 0 for the
    years between that OpenAlex leaves out (it lists only years with a citation)."""
    if not rows:
        return []
    counts = {row["year"]: row["cited_by_count"] for row in rows}
    years = range(min(counts), max(counts) + 1)
    return [{"arxiv_id": None, "year": y, "cited_by_count": counts.get(y, 0)} for y in years]


def _bool(value: bool | None) -> int | None:
    return None if value is None else int(value)


def _post_order(row: Mapping[str, Any]) -> tuple[str, str, str]:
    """Posts in snapshot order: publish time (undated first), slug, source."""
    return (row["post_published_at"] or "", row["post_slug"], row["post_source"])


def _paper_columns(db: sqlite3.Connection, paper: tuple[Any, ...]) -> dict[str, Any]:
    """A paper's aggregate columns from the staging file: its row of ``paper`` and the rows of
    its ranks, tweets and code links."""
    paper_id, first_seen, last_seen, best_rank, listings, favorites, retweets, digests = paper
    tweets = db.execute(_PAPER_TWEETS, (paper_id,)).fetchall()
    links = [linked for linked, _ in tweets if linked is not None]
    return {
        "arxiv_id": paper_id,
        "first_seen": first_seen,
        "last_seen": last_seen,
        "digest_count": digests,
        "listing_count": listings,
        "best_rank": best_rank,
        "ranks": [
            {"post_published_at": when, "rank": rank}
            for when, rank in db.execute(_RANKS, (paper_id,))
        ],
        "max_digest_favorites": favorites,
        "max_digest_retweets": retweets,
        "tweet_count": len(tweets),
        "linking_tweet_count": sum(links) if links else None,
        "tweet_like_count_total": _like_total(paper_id, [likes for _, likes in tweets]),
        "code_urls": _code_urls(db, paper_id),
    }


def _like_total(paper_id: str, likes: list[int | None]) -> int | None:
    """The exact sum of the known like counts; None when none is known, or (with one line
    naming the paper) when the sum does not fit the column's int64: every count is still in
    ``tweets``, and no made-up value stands in for the true one."""
    known = [n for n in likes if n is not None]
    total = sum(known)
    if total > INT64_MAX:
        logger.warning(
            "papers: %s: tweet_like_count_total left null: the likes of its %d tweets add up "
            "to %d, past the column's int64 maximum (%d)",
            paper_id, len(known), total, INT64_MAX,
        )  # fmt: skip
        return None
    return total if known else None


def _code_urls(db: sqlite3.Connection, paper_id: str) -> list[dict[str, Any]]:
    links: dict[str, dict[str, Any]] = {}
    for url_key, url, source in db.execute(_CODE_URLS, (paper_id,)):
        link = links.setdefault(url_key, {"url": url, "sources": []})
        if source is not None:
            link["sources"].append(source)
    return list(links.values())


def _write_manifest(
    folder: Path,
    snapshot: Path,
    rows: dict[str, int],
    period: tuple[str | None, str | None],
    run_report: Mapping[str, Any] | None,
    built_from: str | None = None,
) -> None:
    """What the folder holds, for people and tools that open it without this code."""
    manifest = {
        "written_by": WRITTEN_BY,  # what lets a later run replace this folder
        "record_schema_version": SCHEMA_VERSION,
        "snapshot": snapshot.name,
        "built_from": built_from,  # crawler.export.unchanged: same key, same folder
        "first_post": period[0],
        "last_post": period[1],
        "run": {k: run_report.get(k) for k in _RUN_KEYS} if run_report else None,
        "tables": {
            name: {
                "file": f"{name}.parquet",
                "rows": rows[name],
                "description": TABLE_DOCS[name],
                "primary_key": list(PRIMARY_KEYS[name]),
                "columns": {f.name: str(f.type) for f in SCHEMAS[name]},
            }
            for name in TABLE_NAMES
        },
    }
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    (folder / MANIFEST_FILE).write_text(text, encoding="utf-8")
