"""The snapshot as analysis-ready tables (``NAME.dataset/``), replaced as a whole.

:func:`write_dataset` reads the JSONL snapshot a line at a time and writes every table in
batches, so memory does not grow with the snapshot. Entries and embeddings go straight to their
Parquet files. Tweets (many records embed the same one) and each paper's metadata blocks wait in
a staging SQLite file inside the new folder. Only a small aggregate per distinct paper (dates,
ranks, code links: well under a kilobyte) and per post stays in memory: about 40 MB for the
~40,000 papers of a 10,000-post corpus, independent of abstracts, HTML and tweet counts.

The folder is written beside the target under a fresh name, then ``target`` (a symlink) is
pointed at it with one atomic rename. Readers see the old dataset or the new one, never a mix.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from glob import escape
from pathlib import Path
from typing import Any

import duckdb

from crawler.export.files import fsync_dir
from crawler.export.jsonlines import sort_key
from crawler.export.ownership import (
    MANIFEST,
    MARKER,
    WRITTEN_BY,
    dataset_problem,
    is_our_dataset,
    mark_folder,
)
from crawler.export.tables import (
    LAYOUT,
    PAPER_BLOCKS,
    SCHEMAS,
    TABLE_DOCS,
    TABLE_NAMES,
    TableWriter,
    entry_row,
)
from crawler.record import SCHEMA_VERSION, schema_errors

BATCH_ROWS = 4096  # rows per Parquet row group and per staging write
DUCKDB_FILE = "hot_papers.duckdb"
MANIFEST_FILE = MANIFEST
_STAGING_FILE = ".staging.sqlite3"
_RUN_KEYS = ("run_id", "started_at", "finished_at", "exit_status", "records", "changed_records")


# A version folder's name after ``.TARGET``: ours are "-" and 12 hex digits (secrets.token_hex(6)),
# with ".link" (the symlink on its way in) or ".previous" (an older real folder moved aside).
_VERSION_NAME = re.compile(r"-[0-9a-f]{12}(\.link|\.previous)?")
logger = logging.getLogger(__name__)


class DatasetError(RuntimeError):
    """The dataset could not be written; the previous one is left as it was."""


@dataclass(frozen=True)
class DatasetSummary:
    target: Path  # the symlink readers open
    folder: Path  # the folder it points to now
    rows: dict[str, int]  # per table
    first_post: str | None  # ISO 8601 UTC, None when no record is dated
    last_post: str | None


def one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def write_dataset(
    snapshot: Path,
    target: Path,
    *,
    run_report: dict[str, Any] | None = None,
    checked: bool = False,
    built_from: str | None = None,
) -> DatasetSummary:
    """Write the tables for ``snapshot`` and swap them in at ``target`` in one step.

    ``checked``: every record was validated against the schema as it was written (the snapshot
    this run just wrote), so it is not validated again; that was 40 % of this step's time.
    On any failure the previous dataset stays and :class:`DatasetError` (one line, the cause
    chained) propagates. ``built_from``: the key of the inputs (``crawler.export.unchanged``),
    kept in the manifest so a run with the same inputs can keep the folder as it is.
    """
    snapshot, target = Path(snapshot), Path(target)
    if problem := dataset_problem(target):
        raise DatasetError(problem)
    folder = target.parent / f".{target.name}-{secrets.token_hex(6)}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        folder.mkdir()
        mark_folder(folder)  # first: a killed run's leftover is recognisably ours too
        rows, period = _build(snapshot, folder, checked=checked)
        _write_duckdb(folder)
        _write_manifest(folder, snapshot, rows, period, run_report, built_from)
        (folder / MARKER).unlink()  # the manifest marks the finished folder as ours
        _sync_tree(folder)
        _swap(target, folder)
    except Exception as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise DatasetError(f"dataset {target} not replaced: {one_line(exc)}") from exc
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    _remove_old(target, keep=folder)
    return DatasetSummary(target, folder, rows, *period)


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


def _build(
    snapshot: Path, folder: Path, *, checked: bool
) -> tuple[dict[str, int], tuple[str | None, str | None]]:
    builder = _Builder(folder)
    try:
        for record in _records(snapshot, checked=checked):
            builder.add(record)
        builder.finish()
    finally:
        builder.close()
    return builder.rows(), builder.period()


@dataclass(slots=True)
class _Paper:
    """What is kept in memory per distinct paper: small and bounded by its listings."""

    first_key: str  # the snapshot order of its first listing: rows follow it
    first_seen: str | None
    last_seen: str | None
    best_rank: int
    appearances: int = 0
    ranks: list[tuple[str | None, int]] = field(default_factory=list)
    favorites: int | None = None
    retweets: int | None = None
    code_urls: dict[str, None] = field(default_factory=dict)  # an ordered set

    def see(self, record: Mapping[str, Any]) -> None:
        when, rank, digest = record["post"]["date"], record["rank"], record["digest"]
        self.first_seen = _least(self.first_seen, when)
        self.last_seen = _greatest(self.last_seen, when)
        self.best_rank = min(self.best_rank, rank)
        self.appearances += 1
        self.ranks.append((when, rank))
        self.favorites = _greatest(self.favorites, digest["favorites"])
        self.retweets = _greatest(self.retweets, digest["retweets"])
        self.code_urls.update(dict.fromkeys(record["code_urls"]))


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
_PAPER_TWEETS = """
SELECT pt.arxiv_id, count(*), sum(pt.links), count(pt.links),
       sum(t.favorite_count), count(t.favorite_count)
FROM paper_tweet pt JOIN tweet t USING (tweet_id) GROUP BY pt.arxiv_id
"""


class _Stage:
    """The staging SQLite file: rows that many records share, parked on disk until the end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path)
        self.db.executescript(_STAGING_SQL)
        self.pending: dict[str, list[tuple[Any, ...]]] = {
            _UPSERT_TWEET: [],
            _UPSERT_BLOCK: [],
            _UPSERT_PAPER_TWEET: [],
        }

    def add(self, sql: str, params: tuple[Any, ...]) -> None:
        rows = self.pending[sql]
        rows.append(params)
        if len(rows) >= BATCH_ROWS:
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
        self.papers: dict[str, _Paper] = {}
        self.posts: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.post_columns = [f.name for f in SCHEMAS["posts"] if f.name.startswith("post_")]
        self.meta_columns = [
            leaf.column for leaf in LAYOUT.leaves_of("entries") if leaf.path[0] in PAPER_BLOCKS
        ]
        self.first: str | None = None
        self.last: str | None = None

    def add(self, record: dict[str, Any]) -> None:
        row = entry_row(record)
        self.writers["entries"].append(row)
        key = sort_key(record)
        self._tweets(record, key)
        self._paper(record, key)
        self._post(record, row)
        self.first = _least(self.first, record["post"]["date"])
        self.last = _greatest(self.last, record["post"]["date"])

    def _tweets(self, record: dict[str, Any], key: str) -> None:
        when, paper = record["post"]["date"], record["arxiv_id"]
        keys = _entry_keys(record)
        for position, tweet in enumerate(record["tweets"], 1):
            extra = LAYOUT.extract("entry_tweets", tweet)
            row = {**keys, "position": position, "tweet_id": tweet["id"], **extra}
            self.writers["entry_tweets"].append(row)
            details = tweet["details"]
            likes = details.get("favorite_count") if details["status"] == "ok" else None
            params = (tweet["id"], key, when, when, likes, _dumps(tweet))
            self.stage.add(_UPSERT_TWEET, params)
            if paper is not None:
                links = tweet["links_paper"]
                self.stage.add(_UPSERT_PAPER_TWEET, (paper, tweet["id"], _bool(links)))

    def _paper(self, record: dict[str, Any], key: str) -> None:
        paper_id = record["arxiv_id"]
        if paper_id is None:
            return
        paper = self.papers.get(paper_id)
        if paper is None:
            paper = self.papers[paper_id] = _Paper(key, None, None, record["rank"])
        paper.first_key = min(paper.first_key, key)
        paper.see(record)
        for block in PAPER_BLOCKS:
            value = record[block]
            self.stage.add(_UPSERT_BLOCK, (paper_id, block, _is_ok(value), key, _dumps(value)))
        digest = {"title": record["digest"]["title"]}
        self.stage.add(_UPSERT_BLOCK, (paper_id, "digest", 1, key, _dumps(digest)))

    def _post(self, record: dict[str, Any], row: dict[str, Any]) -> None:
        post = record["post"]
        ident = (post["date"] or "", post["slug"], post["source"])
        seen = self.posts.get(ident)
        if seen is None:
            seen = self.posts[ident] = {name: row[name] for name in self.post_columns}
            seen |= {"entries": 0, "embedded_tweets": 0}
        seen["entries"] += 1
        seen["embedded_tweets"] += len(record["tweets"])

    def finish(self) -> None:
        self.stage.flush()
        self.stage.db.commit()
        self._write_papers()
        self._write_tweets()
        for _, post in sorted(self.posts.items()):
            self.writers["posts"].append(post)
        for writer in self.writers.values():
            writer.close()

    def _write_papers(self) -> None:
        tweets = {row[0]: row[1:] for row in self.stage.db.execute(_PAPER_TWEETS)}
        order = sorted(self.papers.items(), key=lambda p: (p[1].first_key, p[0]))
        for paper_id, paper in order:
            blocks = {
                block: json.loads(value)
                for block, value in self.stage.db.execute(
                    "SELECT block, value FROM block WHERE arxiv_id = ?", (paper_id,)
                )
            }
            meta = LAYOUT.extract("entries", blocks)
            row = {name: meta[name] for name in self.meta_columns}
            row |= _paper_columns(paper_id, paper, tweets.get(paper_id))
            row["digest_title"] = meta["digest_title"]
            self.writers["papers"].append(row)

    def _write_tweets(self) -> None:
        query = (
            "SELECT value, first_seen, last_seen, appearances FROM tweet "
            "ORDER BY first_seen IS NULL, first_seen, tweet_id"
        )
        for value, first_seen, last_seen, appearances in self.stage.db.execute(query):
            tweet = json.loads(value)
            row = LAYOUT.extract("tweets", tweet)
            row |= {"first_seen": first_seen, "last_seen": last_seen, "appearances": appearances}
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


def _bool(value: bool | None) -> int | None:
    return None if value is None else int(value)


def _entry_keys(record: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "post_slug": record["post"]["slug"],
        "post_date": record["post"]["date"],
        "rank": record["rank"],
        "arxiv_id": record["arxiv_id"],
    }


def _paper_columns(paper_id: str, paper: _Paper, tweets: tuple[Any, ...] | None) -> dict[str, Any]:
    count, linking, known_links, likes, known_likes = tweets or (0, 0, 0, 0, 0)
    return {
        "arxiv_id": paper_id,
        "first_seen": paper.first_seen,
        "last_seen": paper.last_seen,
        "appearances": paper.appearances,
        "best_rank": paper.best_rank,
        "ranks": [
            {"post_date": when, "rank": rank}
            for when, rank in sorted(paper.ranks, key=lambda r: (r[0] or "", r[1]))
        ],
        "favorites": paper.favorites,
        "retweets": paper.retweets,
        "tweet_count": count,
        "linking_tweet_count": linking if known_links else None,
        "tweet_likes": likes if known_likes else None,
        "code_urls": list(paper.code_urls),
    }


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _write_duckdb(folder: Path) -> None:
    """The same tables in one DuckDB file, copied (not views) so the folder can move."""
    spill = folder / ".duckdb.tmp"
    con = duckdb.connect(str(folder / DUCKDB_FILE))
    try:
        # One thread and a small buffer keep DuckDB's share of peak memory near 50 MB; it spills
        # to ``spill`` if a table ever needs more. Copying Parquet is I/O-bound anyway.
        con.execute("SET threads = 1")
        con.execute("SET memory_limit = '64MB'")
        con.execute(f"SET temp_directory = {_sql_string(str(spill))}")
        for name in TABLE_NAMES:
            source = _sql_string(str(folder / f"{name}.parquet"))
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM read_parquet({source})")
            con.execute(f"COMMENT ON TABLE {name} IS {_sql_string(TABLE_DOCS[name])}")
        con.execute("CHECKPOINT")
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)


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
                "columns": {f.name: str(f.type) for f in SCHEMAS[name]},
            }
            for name in TABLE_NAMES
        },
    }
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    (folder / MANIFEST_FILE).write_text(text, encoding="utf-8")


def _sync_tree(folder: Path) -> None:
    """Data on disk before the swap, so a crash after it cannot expose empty files."""
    for path in folder.iterdir():
        with path.open("rb") as f:
            os.fsync(f.fileno())
    fsync_dir(folder)


def _swap(target: Path, folder: Path) -> None:
    """Point ``target`` at ``folder`` with one rename(2) of a fresh symlink over it.

    A real folder at ``target`` (a dataset of an older version) cannot be renamed over
    atomically; it is moved aside first, the one moment ``target`` is missing. Only a dataset
    of ours is ever replaced (:mod:`crawler.export.ownership`).
    """
    if problem := dataset_problem(target):
        raise DatasetError(problem)
    link = folder.with_name(folder.name + ".link")
    os.symlink(folder.name, link)  # relative: the parent folder can move as a whole
    aside = None
    try:
        if target.is_dir() and not target.is_symlink():
            aside = folder.with_name(folder.name + ".previous")
            os.rename(target, aside)
        os.replace(link, target)
    except BaseException:
        link.unlink(missing_ok=True)
        if aside is not None and not os.path.lexists(target):
            os.rename(aside, target)
        raise
    fsync_dir(target.parent)


def _remove_old(target: Path, *, keep: Path) -> None:
    """Earlier folders, and leftovers of runs that were killed (ours by their marker or
    manifest, and by their name); anything else there is left alone. One writer per target."""
    for path in target.parent.glob(escape(f".{target.name}-") + "*"):
        suffix = path.name[len(target.name) + 1 :]
        if path.name == keep.name or not _VERSION_NAME.fullmatch(suffix):
            continue
        if is_our_dataset(path):
            shutil.rmtree(path, ignore_errors=True)
        elif path.is_symlink() and path.name.endswith(".link"):
            path.unlink(missing_ok=True)  # a link of ours that never went in
        elif not path.is_symlink() and path.is_dir():
            logger.warning("left alone: %s is not marked as a dataset this crawler wrote", path)
