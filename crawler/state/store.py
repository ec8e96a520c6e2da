"""The state database: one SQLite file (``STATE_DB``) in WAL mode.

Each write is one transaction, so a kill -9 at any moment leaves either the old rows or the new
ones, never half of either: a fetched value, its history point and its pending change go in
together. Every SQLite failure becomes one :class:`StateError` line naming the file.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crawler.parsing.text import utc_ms

FORMAT = 3  # PRAGMA user_version; a newer file is refused rather than misread
GET_MANY_CHUNK = 500  # keys per statement of get_many: far below SQLite's variable limit

# Format 3 stores values under the record schema 3 names, each with its own `fetched_at`.
# A format 2 file is upgraded in place, in one transaction, when it is first opened.
_RENAMED_IN_3: dict[str, dict[str, str]] = {
    "arxiv": {
        "id": "versioned_id", "summary": "abstract", "published": "published_at",
        "updated": "updated_at",
    },
    "impact": {"year": "publication_year"},
    "details": {"favorite_count": "like_count"},
}  # fmt: skip
_COUNTS_RENAMED_IN_3 = {"favorite_count": "like_count"}  # history points

_SCHEMA = """
CREATE TABLE IF NOT EXISTS fetched (
    kind       TEXT NOT NULL,          -- what the value fills: arxiv, embed, details, impact
    key        TEXT NOT NULL,          -- arXiv ID as asked, tweet ID
    status     TEXT NOT NULL,
    value      TEXT NOT NULL,          -- JSON of the value dataclass
    fetched_at REAL NOT NULL,          -- Unix time; 0 = stale, ask again
    run_id     TEXT NOT NULL DEFAULT '', -- the run that last asked upstream for it
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS observations (  -- history points (tweet engagement over time)
    kind        TEXT NOT NULL,
    key         TEXT NOT NULL,
    observed_at TEXT NOT NULL,
    data        TEXT NOT NULL,
    PRIMARY KEY (kind, key, observed_at)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS changes (    -- the change feed, until a snapshot carries it out
    id      INTEGER PRIMARY KEY,
    run_id  TEXT NOT NULL,
    kind    TEXT NOT NULL,
    key     TEXT NOT NULL,
    before  TEXT NOT NULL,
    after   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS reruns (     -- what an unchanged rerun may keep (crawler/reuse.py)
    snapshot    TEXT PRIMARY KEY,       -- the snapshot file, resolved
    key         TEXT NOT NULL,          -- SHA-256 of code, settings, sources and outputs
    written_at  REAL NOT NULL,          -- Unix time
    valid_until REAL NOT NULL,          -- when the first value the snapshot carries goes stale
    summary     TEXT NOT NULL           -- JSON: what the run reported (records, warnings)
) WITHOUT ROWID;
"""

# Any write of a value, a history point or a pending change, by this crawler or another
# program (an older version included: triggers live in the file), forgets every rerun key.
_FORGET = "".join(
    f"CREATE TRIGGER IF NOT EXISTS reruns_forget_{table}_{event.lower()} AFTER {event} ON "
    f"{table} BEGIN DELETE FROM reruns; END;\n"
    for table in ("fetched", "observations", "changes")
    for event in ("INSERT", "UPDATE", "DELETE")
)


class StateError(Exception):
    """The state database cannot be used; the message is one line naming the file."""


@dataclass(frozen=True, slots=True)
class Row:
    status: str
    value: dict[str, Any]
    fetched_at: float
    run_id: str


@dataclass(frozen=True, slots=True)
class Write:
    """One key's outcome of a fetch: a new value to store, or only a mark (kept, stale)."""

    key: str
    value: dict[str, Any] | None  # None: keep the stored value, mark it stale
    status: str = ""
    observation: tuple[str, dict[str, Any]] | None = None  # (observed_at, data)
    change: tuple[dict[str, Any], dict[str, Any]] | None = None  # (before, after)
    history_max: int = 0  # observations kept for this key (0: the store's default)


class StateStore:
    def __init__(self, path: str | Path, history_max: int = 365, *, migrate: bool = True) -> None:
        """``migrate=False`` only checks the file can be used (before a run holds its lock)."""
        self.path = Path(path)
        self.history_max = history_max
        self.failed: str | None = None  # the first failure; every later use fails at once
        self.upgraded: tuple[int, int] | None = None  # (from format, values rewritten)
        if self.path.is_dir():
            raise StateError(f"STATE_DB {self.path} is a folder, not a database file")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"STATE_DB {self.path} cannot be opened: {exc}") from None
        with self._errors("cannot be opened"):
            # A short busy timeout: a lock held by another program fails in seconds, with a
            # message, instead of freezing the crawl (our own runs exclude each other).
            self.db.execute("PRAGMA busy_timeout=2000")
            self._check_readable()
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable per transaction
            if migrate:
                self._migrate()

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        # Any failure stops the crawl; later uses fail at once instead of each waiting out the
        # busy timeout on a database another program has locked (a stop must stay prompt).
        if self.failed is not None:
            raise StateError(self.failed)
        try:
            yield
        except sqlite3.DatabaseError as exc:
            message = " ".join(str(exc).split())  # integrity reports span lines: one line
            if "not a database" in message or "malformed" in message:
                doing = "is corrupt (move it away to start afresh, or restore a backup)"
            self.failed = f"STATE_DB {self.path} {doing}: {message}"
            raise StateError(self.failed) from None

    def _check_readable(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > FORMAT:
            raise StateError(
                f"STATE_DB {self.path} was written by a newer version of the crawler "
                f"(format {version}, this one reads {FORMAT}); use another STATE_DB or upgrade"
            )
        result = self.db.execute("PRAGMA quick_check(1)").fetchone()[0]
        if result != "ok":
            raise sqlite3.DatabaseError(f"database disk image is malformed ({result})")

    def _migrate(self) -> None:
        tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master")}
        self.db.executescript(_SCHEMA + _FORGET)
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if "fetched" in tables:
            columns = {r[1] for r in self.db.execute("PRAGMA table_info(fetched)")}
            if "run_id" not in columns:  # format 1
                self.db.execute("ALTER TABLE fetched ADD COLUMN run_id TEXT NOT NULL DEFAULT ''")
            if version < 3:
                self.upgraded = (version, self._upgrade_to_3())
        if version != FORMAT:
            # Only when it changes: opening a current file writes nothing, so a run refused
            # because another one holds the lock has not touched that run's database.
            self.db.execute(f"PRAGMA user_version={FORMAT}")

    def _upgrade_to_3(self) -> int:
        """Rename stored fields to schema 3's names and give each value its ``fetched_at``
        (from the row; unknown for a row marked stale), in one transaction with the version."""
        rows = self.db.execute("SELECT kind, key, value, fetched_at FROM fetched").fetchall()
        points = self.db.execute("SELECT kind, key, observed_at, data FROM observations")
        history = points.fetchall()
        changes = self.db.execute("SELECT id, kind, before, after FROM changes").fetchall()
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            for kind, key, value, fetched_at in rows:
                data = _renamed(kind, _loads(value))
                if isinstance(data, dict) and "fetched_at" not in data:
                    data["fetched_at"] = utc_ms_text(fetched_at) if fetched_at > 0 else None
                self.db.execute(
                    "UPDATE fetched SET value = ? WHERE kind = ? AND key = ?",
                    (_dumps(data), kind, key),
                )
            for kind, key, observed_at, point in history:
                self.db.execute(
                    "UPDATE observations SET data = ? "
                    "WHERE kind = ? AND key = ? AND observed_at = ?",
                    (_dumps(_renamed_point(_loads(point))), kind, key, observed_at),
                )
            for change_id, kind, before, after in changes:
                self.db.execute(
                    "UPDATE changes SET before = ?, after = ? WHERE id = ?",
                    (_dumps(_renamed(kind, _loads(before))), _dumps(_renamed(kind, _loads(after))),
                     change_id),
                )  # fmt: skip
            self.db.execute(f"PRAGMA user_version={FORMAT}")
        return len(rows)

    # -- reading ------------------------------------------------------------------------------
    def get(self, kind: str, key: str) -> Row | None:
        with self._errors("cannot be read"):
            row = self.db.execute(
                "SELECT status, value, fetched_at, run_id FROM fetched WHERE kind = ? AND key = ?",
                (kind, key),
            ).fetchone()
        return None if row is None else self._row(kind, key, row)

    def get_many(self, kind: str, keys: list[str]) -> dict[str, Row | None]:
        """What :meth:`get` gives for each of ``keys`` (in their order, None when absent), in
        one statement per ``GET_MANY_CHUNK`` keys instead of one per key."""
        found: dict[str, tuple[str, str, float, str]] = {}
        distinct = list(dict.fromkeys(keys))
        with self._errors("cannot be read"):
            for at in range(0, len(distinct), GET_MANY_CHUNK):
                chunk = distinct[at : at + GET_MANY_CHUNK]
                rows = self.db.execute(
                    "SELECT key, status, value, fetched_at, run_id FROM fetched "
                    f"WHERE kind = ? AND key IN ({','.join('?' * len(chunk))})",
                    (kind, *chunk),
                ).fetchall()
                found.update((key, rest) for key, *rest in rows)
        return {key: self._row(kind, key, found[key]) if key in found else None for key in distinct}

    def _row(self, kind: str, key: str, row: Any) -> Row:
        try:
            value = json.loads(row[1])
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise StateError(f"STATE_DB {self.path}: stored value for {kind} {key} is not JSON")
        return Row(row[0], value, row[2], row[3])

    def history(self, kind: str, key: str) -> list[dict[str, Any]]:
        with self._errors("cannot be read"):
            rows = self.db.execute(
                "SELECT data FROM observations WHERE kind = ? AND key = ? ORDER BY observed_at",
                (kind, key),
            ).fetchall()
        return [json.loads(data) for (data,) in rows]

    def some_key_with_status(
        self, kind: str, status: str, exclude: AbstractSet[str], not_by_run: str
    ) -> str | None:
        """A key whose stored value has ``status``, written by a run other than ``not_by_run``:
        a control for probing a service. A key this run wrote was asked this run already."""
        with self._errors("cannot be read"):
            rows = self.db.execute(
                "SELECT key FROM fetched WHERE kind = ? AND status = ? AND run_id != ? LIMIT ?",
                (kind, status, not_by_run, len(exclude) + 1),
            ).fetchall()
        return next((key for (key,) in rows if key not in exclude), None)

    def pending_changes(self) -> list[tuple[int, str, str, str, dict[str, Any], dict[str, Any]]]:
        """(id, run_id, kind, key, before, after), oldest first."""
        with self._errors("cannot be read"):
            rows = self.db.execute(
                "SELECT id, run_id, kind, key, before, after FROM changes ORDER BY id"
            ).fetchall()
        return [(i, r, k, key, json.loads(b), json.loads(a)) for i, r, k, key, b, a in rows]

    def rerun(self, snapshot: str) -> Rerun | None:
        """(key, written_at, valid_until, summary) a complete run left for ``snapshot``; None
        if there is none (or the file predates them)."""
        with self._errors("cannot be read"):
            try:
                return read_rerun(self.db, snapshot)
            except sqlite3.OperationalError:  # no such table: not opened by this version yet
                return None

    def has_pending_changes(self) -> bool:
        with self._errors("cannot be read"):
            return self.db.execute("SELECT 1 FROM changes LIMIT 1").fetchone() is not None

    # -- writing ------------------------------------------------------------------------------
    def remember_rerun(
        self, snapshot: str, key: str, now: float, valid_until: float, summary: dict[str, Any]
    ) -> None:
        with self._errors("cannot be written"), self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute(
                "INSERT OR REPLACE INTO reruns VALUES (?,?,?,?,?)",
                (snapshot, key, now, valid_until, _dumps(summary)),
            )

    def write(self, kind: str, writes: list[Write], now: float, run_id: str) -> None:
        """All of a fetch's outcomes in one transaction."""
        with self._errors("cannot be written"), self.db:
            self.db.execute("BEGIN IMMEDIATE")
            for w in writes:
                self._write_one(kind, w, now, run_id)

    def _write_one(self, kind: str, w: Write, now: float, run_id: str) -> None:
        if w.value is None:
            self.db.execute(
                "UPDATE fetched SET fetched_at = 0, run_id = ? WHERE kind = ? AND key = ?",
                (run_id, kind, w.key),
            )
            return
        self.db.execute(
            "INSERT INTO fetched (kind, key, status, value, fetched_at, run_id) "
            "VALUES (?,?,?,?,?,?) ON CONFLICT (kind, key) DO UPDATE SET status = excluded.status, "
            "value = excluded.value, fetched_at = excluded.fetched_at, run_id = excluded.run_id",
            (kind, w.key, w.status, _dumps(w.value), now, run_id),
        )
        if w.observation is not None:
            observed_at, data = w.observation
            self.db.execute(
                "INSERT OR REPLACE INTO observations VALUES (?,?,?,?)",
                (kind, w.key, observed_at, _dumps(data)),
            )
            self.db.execute(
                "DELETE FROM observations WHERE kind = ? AND key = ? AND observed_at NOT IN "
                "(SELECT observed_at FROM observations WHERE kind = ? AND key = ? "
                "ORDER BY observed_at DESC LIMIT ?)",
                (kind, w.key, kind, w.key, w.history_max or self.history_max),
            )
        if w.change is not None:
            before, after = w.change
            self.db.execute(
                "INSERT INTO changes (run_id, kind, key, before, after) VALUES (?,?,?,?,?)",
                (run_id, kind, w.key, _dumps(before), _dumps(after)),
            )

    def drop_changes(self, ids: list[int]) -> None:
        """The change feed carrying these is on disk: they are no longer pending."""
        with self._errors("cannot be written"), self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("DELETE FROM changes WHERE id = ?", [(i,) for i in ids])

    def close(self) -> None:
        self.db.close()


Rerun = tuple[str, float, float, dict[str, Any]]  # key, written_at, valid_until, summary


def read_rerun(db: sqlite3.Connection, snapshot: str) -> Rerun | None:
    """The ``reruns`` row for ``snapshot`` on any connection (the crawl command reads it on a
    read-only one, before the run opens the state); sqlite3 errors are the caller's."""
    row = db.execute(
        "SELECT key, written_at, valid_until, summary FROM reruns WHERE snapshot = ?",
        (snapshot,),
    ).fetchone()
    if row is None:
        return None
    summary = _loads(row[3])
    return (row[0], row[1], row[2], summary) if isinstance(summary, dict) else None


def utc_ms_text(now: float) -> str:
    """ISO 8601 UTC with milliseconds: two observations never share a timestamp."""
    return utc_ms(datetime.fromtimestamp(now, tz=UTC))


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text  # damaged: left as it is, read back as "cannot be decoded" and fetched again


def _renamed_point(point: Any) -> Any:
    if not isinstance(point, dict):
        return point
    return {_COUNTS_RENAMED_IN_3.get(k, k): v for k, v in point.items()}


def _renamed(kind: str, value: Any) -> Any:
    """A format 2 value (or change) under schema 3's field names, order kept."""
    names = _RENAMED_IN_3.get(kind, {})
    if not isinstance(value, dict):
        return value
    out = {names.get(k, k): v for k, v in value.items()}
    if isinstance(out.get("history"), list):
        out["history"] = [_renamed_point(p) for p in out["history"]]
    return out


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)  # key order kept: records are byte-stable
