"""The dataset's second half: the DuckDB file beside the Parquet tables, then the swap.

The dataset step runs this in a process of its own after the tables step (``crawler.export.
analysis``). It imports DuckDB and nothing of pyarrow (~40 MB of that process's peak): what
the DuckDB file declares beyond the types it reads off the Parquet files (NOT NULL, the
descriptions) comes in :attr:`Tables.notes`, plain JSON the tables step wrote from the Arrow
schemas (``crawler.export.dataset.table_notes``).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from glob import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from crawler.export.contract import FOREIGN_KEYS, PRIMARY_KEYS, sql_string
from crawler.export.files import fsync_dir
from crawler.export.ownership import MARKER, dataset_problem, is_our_dataset

if TYPE_CHECKING:  # imported where used: the tables step imports this module, not DuckDB
    import duckdb

logger = logging.getLogger("crawler.export.dataset")  # its lines read as the dataset's, as before

DUCKDB_FILE = "hot_papers.duckdb"
_T = TypeVar("_T")
# Per table: {"description": text, "columns": {name: [nullable, description]}} in schema order.
Notes = dict[str, dict[str, Any]]

# A version folder's name after ``.TARGET``: ours are "-" and 12 hex digits (secrets.token_hex(6)),
# with ".link" (the symlink on its way in) or ".previous" (an older real folder moved aside).
_VERSION_NAME = re.compile(r"-[0-9a-f]{12}(\.link|\.previous)?")


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


@dataclass(frozen=True)
class Tables:
    """The Parquet tables in a new hidden folder beside the target, not yet swapped in."""

    folder: Path
    rows: dict[str, int]  # per table
    period: tuple[str | None, str | None]
    notes: Notes  # per table: what the DuckDB file declares beside the Parquet types


@contextmanager
def discarded_on_failure(folder: Path, target: Path) -> Iterator[None]:
    """On any failure the new folder goes and the previous dataset stays: one line, the
    cause chained."""
    try:
        yield
    except Exception as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise DatasetError(f"dataset {target} not replaced: {one_line(exc)}") from exc
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def finish_dataset(tables: Tables, target: Path) -> DatasetSummary:
    """The second half of ``write_dataset``: the DuckDB file, then the folder swapped in at
    ``target``."""
    target, folder = Path(target), tables.folder
    with discarded_on_failure(folder, target):
        _write_duckdb(folder, tables.notes)
        (folder / MARKER).unlink()  # the manifest marks the finished folder as ours
        _sync_tree(folder)
        _swap(target, folder)
    _remove_old(target, keep=folder)
    return DatasetSummary(target, folder, tables.rows, *tables.period)


def _write_duckdb(folder: Path, notes: Notes) -> None:
    """The same tables in one DuckDB file, copied (not views) so the folder can move, with
    their keys, NOT NULL and descriptions; every foreign key is checked once written.

    Rows go in by chunks of :data:`_CHUNK_ROWS`, each committed and checkpointed by a
    connection of its own: DuckDB then holds one chunk and the indexes of the keys, not the
    whole dataset in one transaction (which ran out of its 64 MB at ~3,000 posts).
    """
    duckdb_file = _DuckDBFile(folder / DUCKDB_FILE, folder / ".duckdb.tmp")
    try:
        for name in _REFERENCED_FIRST:
            _load_table(duckdb_file, name, folder / f"{name}.parquet", notes[name])
        broken = duckdb_file.run(foreign_key_violations)
        if broken:
            raise DatasetError(f"foreign key does not hold: {broken[0]}")
    finally:
        shutil.rmtree(duckdb_file.spill, ignore_errors=True)


# DuckDB's buffer starts at 64 MB (one thread), near 50 MB of the step's peak; it spills to the
# temp folder where it can. The indexes behind the keys (ART) cannot spill and grow with the
# rows: a statement that does not fit runs again, in a new connection with twice the limit.
_MEMORY_LIMIT_MB = 64
_MAX_DOUBLINGS = 8  # up to 16 GB; DuckDB's own error beyond that
_CHUNK_ROWS = 50_000  # the 294 real posts' largest table has ~25,000 rows: one chunk
# Rows go to disk as each row group fills, not at the commit (DuckDB's default is 122,880). Until
# then a row group's rows stay in memory, all 88 columns of an entry: at 8,192 rows the entries
# table took the step to 136 MB at 294 posts, at 2,048 to 122 (the file is ~15 % larger).
_ROW_GROUP_ROWS = 2_048  # the smallest DuckDB takes: a multiple of its 2,048-row vector


@dataclass
class _DuckDBFile:
    path: Path
    spill: Path  # DuckDB's temp_directory
    # What the last statement needed; each table starts at the base again.
    limit_mb: int = field(default_factory=lambda: _MEMORY_LIMIT_MB)

    def run(self, action: Callable[[duckdb.DuckDBPyConnection], _T]) -> _T:
        """``action`` in a fresh connection, checkpointed; while DuckDB cannot allocate, again
        in another with twice the memory limit (a failed statement commits nothing, and a
        connection that failed is closed: DuckDB may have invalidated it)."""
        for attempt in range(_MAX_DOUBLINGS + 1):
            try:
                with self._connected(self.limit_mb) as con:
                    return action(con)
            except Exception as exc:
                if attempt == _MAX_DOUBLINGS or not _out_of_memory(exc):
                    raise
            self.limit_mb *= 2
            logger.debug("DuckDB needs more memory; the limit is now %d MB", self.limit_mb)
        raise AssertionError("unreachable")

    @contextmanager
    def _connected(self, limit_mb: int) -> Iterator[duckdb.DuckDBPyConnection]:
        """The file attached with small row groups, one thread and ``limit_mb``; checkpointed
        and closed on the way out, so the next statement starts with nothing cached."""
        import duckdb  # here, not at the top: the tables step (pyarrow's peak) never loads it

        con = duckdb.connect(":memory:")
        try:
            con.execute("SET threads = 1")
            con.execute(f"SET memory_limit = '{limit_mb}MB'")
            con.execute(f"SET temp_directory = {sql_string(str(self.spill))}")
            attach = f"ATTACH {sql_string(str(self.path))} AS dataset"
            con.execute(f"{attach} (ROW_GROUP_SIZE {_ROW_GROUP_ROWS})")
            con.execute("USE dataset")
            yield con
            con.execute("CHECKPOINT")
        finally:
            con.close()


def _out_of_memory(exc: Exception) -> bool:
    """DuckDB's OutOfMemoryException, or a commit or checkpoint that could not allocate (which
    DuckDB reports as a TransactionException, an IOException, or a FatalException when it
    invalidates the connection). A full disk is an IOException too, but says so."""
    import duckdb

    kinds = (duckdb.TransactionException, duckdb.IOException, duckdb.FatalException)
    return isinstance(exc, duckdb.OutOfMemoryException) or (
        isinstance(exc, kinds) and "could not allocate" in str(exc)
    )


def _load_table(
    duckdb_file: _DuckDBFile, name: str, parquet: Path, note: Mapping[str, Any]
) -> None:
    """CREATE TABLE with its keys and comments, then the rows in file order, chunk by chunk."""
    source = f"read_parquet({sql_string(str(parquet))})"

    def create(con: duckdb.DuckDBPyConnection) -> int:
        there = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'dataset' "
            "AND table_name = ?",
            [name],
        ).fetchall()
        if there != [(1,)]:  # else a try that failed at its checkpoint created it
            con.execute("BEGIN TRANSACTION")  # one commit: 150 comments one by one cost seconds
            con.execute(_create_table(con, name, source, note))
            _comment(con, name, note)
            con.execute("COMMIT")
        ((rows,),) = con.execute(f"SELECT count(*) FROM {source}").fetchall()
        return int(rows)

    duckdb_file.limit_mb = _MEMORY_LIMIT_MB  # each table starts small again
    rows = duckdb_file.run(create)
    for first in range(0, rows, _CHUNK_ROWS):
        duckdb_file.run(
            partial(_insert_chunk, name, parquet, first, min(rows, first + _CHUNK_ROWS))
        )


def _insert_chunk(
    name: str, parquet: Path, first: int, end: int, con: duckdb.DuckDBPyConnection
) -> None:
    """Rows ``first`` to ``end`` (exclusive) of the file, unless a try that failed after its
    commit (at the checkpoint) wrote them already; a repeated key is named."""
    import duckdb

    ((have,),) = con.execute(f"SELECT count(*) FROM {name}").fetchall()
    if have == end:
        return
    if have != first:
        raise DatasetError(f"{name}: {have} rows where {first} were written")
    numbered = f"read_parquet({sql_string(str(parquet))}, file_row_number = true)"
    try:
        con.execute(
            f"INSERT INTO {name} SELECT * EXCLUDE (file_row_number) FROM {numbered} "
            f"WHERE file_row_number >= {first} AND file_row_number < {end}"
        )
    except duckdb.ConstraintException as exc:  # the file is discarded; the Parquet says which
        source = f"read_parquet({sql_string(str(parquet))})"
        raise DatasetError(_duplicate_key(con, name, source) or one_line(exc)) from exc


# Tables in an order where every referenced table is filled before the tables referring to it.
_REFERENCED_FIRST = (
    "posts",
    "papers",
    "tweets",
    "entries",
    "entry_tweets",
    "tweet_history",
    "paper_history",
    "citations_by_year",
)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _create_table(
    con: duckdb.DuckDBPyConnection, name: str, source: str, note: Mapping[str, Any]
) -> str:
    """CREATE TABLE with the types DuckDB reads off the Parquet file, NOT NULL where the Arrow
    schema has it, the primary key and the foreign keys of :data:`FOREIGN_KEYS`."""
    columns = note["columns"]
    parts = [
        f"{_ident(column)} {kind}{'' if columns[column][0] else ' NOT NULL'}"
        for column, kind, *_ in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    ]
    parts.append(f"PRIMARY KEY ({', '.join(map(_ident, PRIMARY_KEYS[name]))})")
    for table, columns, referenced in FOREIGN_KEYS:
        if table == name:
            parts.append(
                f"FOREIGN KEY ({', '.join(map(_ident, columns))}) REFERENCES {referenced} "
                f"({', '.join(map(_ident, PRIMARY_KEYS[referenced]))})"
            )
    return f"CREATE TABLE {name} ({', '.join(parts)})"


def _duplicate_key(con: duckdb.DuckDBPyConnection, name: str, source: str) -> str | None:
    """Which key repeats, and for an entry where (a digest that numbers two entries alike)."""
    keys = ", ".join(map(_ident, PRIMARY_KEYS[name]))
    extra = ", any_value(post_source), any_value(rank)" if name == "entries" else ""
    found = con.execute(
        f"SELECT count(*), {keys}{extra} FROM {source} GROUP BY {keys} HAVING count(*) > 1 LIMIT 1"
    ).fetchall()
    if not found:
        return None
    count, *values = found[0]
    width = len(PRIMARY_KEYS[name])
    where = f" (post {values[width]}, rank {values[width + 1]})" if extra else ""
    shown = ", ".join(f"{k} {v}" for k, v in zip(PRIMARY_KEYS[name], values, strict=False))
    return f"{name}: {shown} is not unique, {count} rows{where}"


def _comment(con: duckdb.DuckDBPyConnection, name: str, note: Mapping[str, Any]) -> None:
    con.execute(f"COMMENT ON TABLE {name} IS {sql_string(note['description'])}")
    for column, (_, text) in note["columns"].items():
        con.execute(f"COMMENT ON COLUMN {name}.{_ident(column)} IS {sql_string(text)}")


def foreign_key_violations(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Each foreign key that some row breaks (an anti-join per key), with a count and example."""
    broken = []
    for table, columns, referenced in FOREIGN_KEYS:
        keys = PRIMARY_KEYS[referenced]
        on = " AND ".join(
            f"r.{_ident(k)} = t.{_ident(c)}" for c, k in zip(columns, keys, strict=True)
        )
        known = " AND ".join(f"t.{_ident(c)} IS NOT NULL" for c in columns)
        sql = (
            f"SELECT count(*), min(t.{_ident(columns[0])}) FROM {table} t WHERE {known} AND NOT "
            f"EXISTS (SELECT 1 FROM {referenced} r WHERE {on})"
        )
        ((count, example),) = con.execute(sql).fetchall()
        if count:
            broken.append(
                f"{table}({', '.join(columns)}) -> {referenced}: {count} rows, e.g. {example}"
            )
    return broken


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
