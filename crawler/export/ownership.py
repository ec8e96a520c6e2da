"""What a run may replace or remove: only what this crawler wrote.

Every output path is replaced by a rename or removed with its contents, so a setting that points
one at somebody's file or folder (``-s DATASET_DIR=output``, a report named like the snapshot)
would destroy it. Each kind of output carries a mark, checked before anything is replaced:

- a folder we write (a dataset version, a folder where records wait to be sorted) holds the
  marker file :data:`MARKER` from the moment it is made, so a killed run's leftover is ours
  too; a finished dataset trades it for its manifest ``dataset.json``, which names its writer
  (one written before that is recognised by the manifest's keys), and an older sort folder by
  holding nothing but its database;
- a snapshot is one of our exports: JSON Lines whose first record has ``schema_version``,
  Parquet whose footer names that column, or any other feed format naming it near its start;
- the HTML report carries :data:`REPORT_MARK`, a run report is our JSON, a posts list holds
  post blocks, a lock file holds who held it;
- a file we write is a regular file, never a symlink (replacing one would drop the link);
- an empty file loses nothing and may always be replaced.

The crawl command asks these before the crawl starts (one ``error:`` line each, exit 1); the
writers ask again just before they replace anything.
"""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Iterable
from pathlib import Path

WRITTEN_BY = "hot-papers-crawler"
MARKER = ".hot-papers-crawler"  # inside every folder we create, before anything else goes in
MARKER_TEXT = "Written by hot-papers-crawler; it replaces or removes this folder as a whole.\n"
MANIFEST = "dataset.json"  # a finished dataset's manifest names its writer (and replaces MARKER)
_LEGACY_KEYS = {"record_schema_version", "tables"}  # a manifest written before "written_by"
SORT_DATABASE = "records.sqlite3"  # the one file of a sort folder
REPORT_MARK = "<!-- hot-papers-crawler report: replaced by every run that writes a dataset -->"
_LEGACY_REPORT = "<footer class='note'>Tables: <code>"  # in every report written before the mark
_HEAD = 64 * 1024  # bytes of a file read to recognise it
_RECORD_MAX = 64 * 1024 * 1024  # the longest first line read to recognise a snapshot
_JSONL_SUFFIXES = (".jsonl", ".jsonlines", ".jl")
_POST_KEYS = {"id", "slug", "title", "published_at", "source"}  # a record's post block has them


def mark_folder(folder: Path) -> None:
    """Claim a folder just created by this run, before anything is written into it."""
    (folder / MARKER).write_text(MARKER_TEXT, encoding="utf-8")


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_bytes()[: 16 * 1024 * 1024])
    except (OSError, ValueError):
        return None


def is_our_dataset(folder: Path) -> bool:
    """A real folder (not a symlink) carrying our marker or a dataset manifest of ours."""
    if folder.is_symlink() or not folder.is_dir():
        return False
    if (folder / MARKER).is_file():
        return True
    manifest = _read_json(folder / MANIFEST)
    if not isinstance(manifest, dict):
        return False
    return manifest.get("written_by") == WRITTEN_BY or manifest.keys() >= _LEGACY_KEYS


def is_our_sort_folder(folder: Path) -> bool:
    """A sort folder left by a killed run: a real folder with our marker, or (older runs) with
    nothing in it but the records database."""
    if folder.is_symlink() or not folder.is_dir():
        return False
    try:
        names = {p.name for p in folder.iterdir()}
    except OSError:
        return False
    return MARKER in names or names <= {SORT_DATABASE}


def _file_kind(path: Path) -> str | None:
    """None for a missing path or a regular file; else what it is, for the message."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    return None if stat.S_ISREG(mode) else "not a regular file"


def _head(path: Path, size: int = _HEAD) -> bytes:
    with path.open("rb") as f:
        return f.read(size)


def _parquet_footer(path: Path) -> bytes:
    """The Parquet footer (the file's schema), or b"" when it is not Parquet."""
    with path.open("rb") as f:
        if f.read(4) != b"PAR1":
            return b""
        f.seek(0, 2)
        end = f.tell()
        if end < 12:
            return b""
        f.seek(end - 8)
        tail = f.read(8)
        length = int.from_bytes(tail[:4], "little")
        if tail[4:] != b"PAR1" or length > end - 12:
            return b""
        f.seek(end - 8 - length)
        return f.read(length)


def _first_record_is_ours(path: Path) -> bool:
    """The first non-blank line, read whole (a record with its tweets' HTML can be large)."""
    with path.open("rb") as f:
        for line in iter(lambda: f.readline(_RECORD_MAX), b""):
            if line.strip():
                try:
                    record = json.loads(line)
                except ValueError:
                    return False
                return _is_our_record(record)
    return True


def _is_our_record(record: object) -> bool:
    """A record of ours, of any schema: a numbered version and the entry's post and rank (a
    file of someone's events with a ``schema_version`` key is not one)."""
    return (
        isinstance(record, dict)
        and type(record.get("schema_version")) is int
        and {"post", "rank"} <= record.keys()
    )


# How Scrapy's other exporters start a feed of our records (their first key first).
_FEED_STARTS = {
    "csv": re.compile(rb"\A(?:\xef\xbb\xbf)?schema_version,"),
    "json": re.compile(rb'\A\[\s*\{\s*"schema_version"\s*:\s*\d'),
    "xml": re.compile(rb"\A<\?xml[^>]*>\s*<items>\s*<item>\s*<schema_version>\d"),
}


def _is_our_snapshot(path: Path, feed_format: str) -> bool:
    head = _head(path)
    if not head.strip():
        return True  # empty: nothing to lose
    if feed_format in ("jsonlines", "jsonl") or path.suffix.lower() in _JSONL_SUFFIXES:
        return _first_record_is_ours(path)
    if feed_format == "parquet" or head.startswith(b"PAR1"):
        return b"schema_version" in _parquet_footer(path)
    start = _FEED_STARTS.get(feed_format)
    if start is not None:
        return start.match(head) is not None
    return b"schema_version" in head and b"rank" in head  # marshal, pickle: both keys in it


def snapshot_problem(path: Path, feed_format: str) -> str | None:
    """Why the feed file at ``path`` must not be replaced by this run, if it must not."""
    if kind := _file_kind(path):
        return f"output {path} is {kind}, not a snapshot this crawler wrote; not replacing it"
    try:
        if not path.exists() or _is_our_snapshot(path, feed_format):
            return None
    except OSError as exc:
        return f"output {path} cannot be read ({exc.strerror or exc})"
    return (
        f"output {path} exists and is not a snapshot this crawler wrote (no schema_version in "
        "its first record); not replacing it"
    )


def dataset_problem(target: Path, setting: str = "DATASET_DIR") -> str | None:
    """``target`` may be missing, our symlink to a dataset folder of ours, or (older runs) a
    dataset folder of ours itself."""
    if not target.is_symlink():
        if not target.exists() or is_our_dataset(target):
            return None
        return (
            f"{setting} {target} exists and is not a dataset this crawler wrote (no {MARKER} or "
            f"{MANIFEST} in it); not replacing it"
        )
    pointed = Path(target.readlink())
    if pointed.parent != Path(".") or not pointed.name.startswith(f".{target.name}-"):
        return (
            f"{setting} {target} is a symbolic link to {pointed}, not one this crawler made; "
            "not replacing it"
        )
    folder = target.parent / pointed
    if folder.exists() and not is_our_dataset(folder):
        return f"{setting} {target} points to {folder}, not a dataset this crawler wrote"
    return None


def report_problem(path: Path, setting: str = "REPORT_FILE") -> str | None:
    """The HTML report may replace only a report of ours (or an empty file)."""
    if kind := _file_kind(path):
        return f"{setting} {path} is {kind}, not a report this crawler wrote; not replacing it"
    try:
        if not path.exists():
            return None
        head = _head(path).decode("utf-8", "replace")
    except OSError as exc:
        return f"{setting} {path} cannot be read ({exc.strerror or exc})"
    if not head.strip() or REPORT_MARK in head or _LEGACY_REPORT in head:
        return None
    return (
        f"{setting} {path} exists and is not a report this crawler wrote (no report mark in "
        "it); not replacing it"
    )


def run_report_problem(path: Path) -> str | None:
    """``NAME.run.json`` may replace only a run report of ours (or an empty file)."""
    if kind := _file_kind(path):
        return f"run report {path} is {kind}, not one this crawler wrote; not replacing it"
    if not path.exists() or not _head(path, 1).strip():
        return None
    report = _read_json(path)
    if isinstance(report, dict) and {"run_id", "exit_status"} <= report.keys():
        return None
    return f"run report {path} exists and is not one this crawler wrote; not replacing it"


def posts_problem(path: Path) -> str | None:
    """``NAME.posts.jsonl`` may replace only a posts list of ours (or an empty file): JSON
    Lines whose first line is a record's ``post`` block."""
    if kind := _file_kind(path):
        return f"posts list {path} is {kind}, not one this crawler wrote; not replacing it"
    if not path.exists() or not _head(path, 1).strip():
        return None
    with path.open("rb") as f:
        first = f.readline(_HEAD)
    try:
        post = json.loads(first)
    except ValueError:
        post = None
    if (
        isinstance(post, dict)
        and post.keys() >= _POST_KEYS
        and re.fullmatch(r"[0-9a-f]{16}", str(post["id"]))
    ):
        return None
    return f"posts list {path} exists and is not one this crawler wrote; not replacing it"


def changes_problem(folder: Path) -> str | None:
    """Change files are only ever added to ``NAME.changes/``: it must be a folder."""
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        return f"change feed folder {folder} exists and is not a folder; not writing into it"
    return None


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def overlap_problems(paths: Iterable[tuple[str, Path]]) -> list[str]:
    """One line per output that is, or is inside, another one: replacing the outer one would
    take the inner one with it (``DATASET_DIR`` = the snapshot's folder), and two outputs at
    one path overwrite each other. ``paths``: (what names the output, its path)."""
    named = [(name, path, path.resolve()) for name, path in paths]
    problems = []
    reported: set[int] = set()
    for i, (outer, outer_path, outer_real) in enumerate(named):
        for j, (inner, inner_path, inner_real) in enumerate(named):
            if i == j or {i, j} & reported or not _within(inner_real, outer_real):
                continue
            relation = "is" if inner_real == outer_real else "contains"
            problems.append(
                f"{outer} {outer_path} {relation} {inner} {inner_path}; "
                "each output needs a path of its own"
            )
            reported.update((i, j))
    return problems


def first_problems(checks: Iterable[tuple[str, str | None]]) -> list[str]:
    """The first problem per output (named by its first item): one line per setting."""
    seen: dict[str, str] = {}
    for name, problem in checks:
        if problem and name not in seen:
            seen[name] = problem
    return list(seen.values())
