"""An unchanged refresh: when nothing a run depends on has changed, it does not crawl at all.

A complete run (exit 0, ``refresh=none``, a state database, local sources only) leaves a *rerun
key* in the state database: a SHA-256 over everything that decides its outputs (the crawler's
code and the versions of its libraries, the settings, each source's name and bytes as read,
and the files it left: snapshot, posts list, dataset folder, report), with the moment its first
stored value goes stale (``valid_until``). The next run computes the same key before it starts
Scrapy; when it matches, the state holds the row and the clock is within
``[written_at, valid_until)``, a crawl could only write the same bytes again, so the run keeps
every output as it is, writes its run report, logs the input warnings the crawl would have
logged again, and exits 0, in about the time of Scrapy's start-up, whatever the archive's size.

Anything else runs the crawl as always. The state forgets every key when any value, history
point or pending change is written, by whichever program or crawler version (SQLite triggers,
:mod:`crawler.state.store`). ``SKIP_UNCHANGED = False`` turns this off.

Light on purpose: the crawl command imports it before Scrapy starts a crawl.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from w3lib.url import file_uri_to_path

from crawler.export.files import atomic_write
from crawler.sources import Source, expand_sources
from crawler.state.store import Rerun, read_rerun

logger = logging.getLogger(__name__)

_PACKAGE = Path(__file__).resolve().parent
_SPIDERS = _PACKAGE.parent / "spiders"
DISTRIBUTION = "hot-papers-crawler"
# Settings that change what a run logs or how it reports progress, never what it writes.
_QUIET = ("LOG_", "PROGRESS_", "STATS_DUMP", "TELNETCONSOLE", "RERUN_KEY_")
SETTINGS_DIGEST = "RERUN_KEY_SETTINGS"  # handed from the command to the crawl, not a knob
MAX_WARNINGS = 200  # input warning lines a skipped run repeats (the count is always kept)


@cache
def code_digest() -> str:
    """Every module and data file of the crawler and its spiders, and the versions of the
    Python and the libraries it runs on: another version may write other bytes."""
    h = hashlib.sha256(sys.version.encode())
    files = sorted(p for root in (_PACKAGE, _SPIDERS) for p in root.rglob("*") if _code(p))
    for path in files:
        h.update(str(path.relative_to(_PACKAGE.parent)).encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    for name in _libraries():
        try:
            h.update(f"{name}=={metadata.version(name)}\0".encode())
        except metadata.PackageNotFoundError:
            h.update(f"{name} absent\0".encode())
    return h.hexdigest()


def _code(path: Path) -> bool:
    return path.is_file() and path.suffix in (".py", ".json") and "__pycache__" not in path.parts


def _libraries() -> list[str]:
    try:
        required = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        required = []
    names = {_name(r) for r in required if "extra ==" not in r}
    return sorted(names | {"scrapy", "twisted"})


def _name(requirement: str) -> str:
    for i, char in enumerate(requirement):
        if not (char.isalnum() or char in "-_."):
            return requirement[:i].lower()
    return requirement.lower()


def settings_digest(settings: Mapping[str, Any]) -> str:
    """The code this process runs (:func:`code_digest`) and the settings a run was given,
    logging and progress left out. Taken as the run starts and handed to whatever leaves its
    key (the crawl, or the dataset step it becomes): code deployed while it crawled is not the
    code that wrote its outputs."""
    shown = {name: repr(value) for name, value in settings.items() if not name.startswith(_QUIET)}
    h = hashlib.sha256(code_digest().encode())
    h.update(json.dumps(shown, sort_keys=True).encode())
    return h.hexdigest()


def read_source(source: Source) -> str | None:
    """SHA-256 of a local source's bytes; None for a URL or a file that cannot be read."""
    if not source.url.startswith("file:"):
        return None
    # As the download handler reads it: url2pathname made ``%FF`` U+FFFD, another file, so
    # a digest whose name is not UTF-8 was never "unchanged".
    path = file_uri_to_path(source.url)
    h = hashlib.sha256()
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None  # the crawl refuses it, and says so
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return None
    return h.hexdigest()


def stamp(path: Path) -> list[Any]:
    """What tells a file (or a folder's files) was left as it was: size, mtime, inode, and
    ctime (a file edited in place and given its mtime back, ``touch -r``, changes it)."""
    if path.is_dir():
        found = []
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                child = Path(root, name)
                found.append([str(child.relative_to(path)), *_stat(child)])
        return found
    return _stat(path)


def _stat(path: Path) -> list[int]:
    try:
        st = path.stat()
    except OSError:
        return []
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev, st.st_ctime_ns]


def rerun_key(settings: str, sources: Iterable[tuple[Source, str]], outputs: Iterable[Path]) -> str:
    """The key of a run: code and settings (``settings``: :func:`settings_digest`), sources
    (each with its bytes' SHA-256) and outputs."""
    h = hashlib.sha256(settings.encode())
    listed = sorted((s.url, s.name, s.record_name, digest) for s, digest in sources)
    h.update(json.dumps(listed).encode())
    h.update(json.dumps([[str(p), stamp(p)] for p in outputs]).encode())
    return h.hexdigest()


def _stored(state_db: str, snapshot: str) -> Rerun | None:
    """The rerun row for ``snapshot``, read without writing anything (any problem: None, and
    the crawl that follows reports it)."""
    import sqlite3

    try:
        db = sqlite3.connect(f"{Path(state_db).resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        return read_rerun(db, snapshot)
    except sqlite3.Error:
        return None
    finally:
        db.close()


def unchanged_since(
    state_db: str,
    snapshot: Path,
    settings: str,
    spec: str | None,
    scan_limit: int,
    outputs: Iterable[Path],
    now: float,
) -> tuple[dict[str, Any], float] | None:
    """(summary, valid_until) of the complete run whose outputs this one would write again
    byte for byte; None when anything differs and the crawl must run. ``spec``: the source
    argument, expanded and read here (only when a key is stored and still in time)."""
    stored = _stored(state_db, str(snapshot.resolve()))
    if stored is None:
        return None
    key, written_at, valid_until, summary = stored
    if not written_at <= now < valid_until:  # something went stale, or the clock went back
        return None
    expanded = expand_sources(spec, scan_limit)
    if expanded.problems or not expanded.sources:
        return None
    read = []
    for source in expanded.sources:
        digest = read_source(source)
        if digest is None:
            return None
        read.append((source, digest))
    return (summary, valid_until) if rerun_key(settings, read, outputs) == key else None


def report_skipped(
    snapshot: Path,
    run_report: Path,
    started: datetime,
    summary: dict[str, Any],
    valid_until: float,
) -> bool:
    """Say what was kept, repeat the input warnings, write the run report: True when it was
    written (else the crawl runs, and reports for itself)."""
    until = datetime.fromtimestamp(valid_until, UTC).isoformat()
    warnings = [str(w) for w in summary.get("warnings") or []]
    total = int(summary.get("warnings_total") or 0)
    report = {
        "records": summary.get("records", 0),
        "dataset": summary.get("dataset"),
        "unchanged_since": {"run_id": summary.get("run_id"), "valid_until": until},
        "stats": {"digests/read": summary.get("digests", 0), "digests/problems/warning": total},
    }
    if not write_run_report(run_report, snapshot, started, "finished", 0, report):
        return False
    for line in warnings:
        logger.warning("%s", line)
    if total > len(warnings):
        logger.warning("... and %d more input warnings (as in run %s)", total - len(warnings),
                       summary.get("run_id"))  # fmt: skip
    logger.info(
        "Nothing changed since run %s (code, settings, %d sources and stored values as then; "
        "the first stored value goes stale at %s): %s and everything beside it kept as they "
        "are, no request sent", summary.get("run_id"), summary.get("digests", 0), until, snapshot,
    )  # fmt: skip
    return True


def write_run_report(
    path: Path,
    snapshot: Path,
    started: datetime,
    reason: str,
    status: int,
    fields: dict[str, Any],
) -> bool:
    """``NAME.run.json`` of a run that did not crawl (skipped, or stopped before it), with
    the fields every run report has."""
    report = {
        "run_id": started.strftime("%Y%m%dT%H%M%S.%fZ"),
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "finish_reason": reason,
        "exit_status": status,
        "snapshot": str(snapshot),
        "snapshot_replaced": False,
        "problems": [],
        "records": 0,
        "changed_records": 0,
        "incomplete_services": {},
        "changes_file": None,
        "dataset": None,
    } | fields
    try:
        atomic_write(path, json.dumps(report, indent=2, ensure_ascii=False).encode() + b"\n")
    except OSError as exc:
        logger.error("run report %s not written: %s", path, exc.strerror or exc)
        return False
    return True
