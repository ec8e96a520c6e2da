"""``scrapy crawl`` with checks before anything starts and an exit status a scheduler can trust.

Before the crawl: settings, spider arguments, the state database and the output location are
checked (one ``error:`` line each), and the run takes its locks. The exit status is the run
outcome's (:class:`crawler.outcome.ExitStatus`): 0 complete, 1 did not run to completion, 2 a
source unreadable, 3 a record broke the schema, 4 enrichment incomplete, 5 output not written.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import logging
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from scrapy.commands.crawl import Command as ScrapyCrawl
from scrapy.crawler import Crawler
from scrapy.exceptions import UsageError
from scrapy.settings import BaseSettings

from crawler import reuse
from crawler.export import analysis, ownership
from crawler.export.feedstorage import remove_leftovers
from crawler.export.runfiles import (
    RunFiles,
    beside_outputs,
    feed_path,
    local_feeds,
    rerun_outputs,
    run_report_path,
)
from crawler.outcome import ExitStatus, Outcome
from crawler.runlock import RunLock, RunLocked
from crawler.services.base import number_problems
from crawler.services.registry import SERVICES
from crawler.sources import not_text, printable
from crawler.state.freshness import refresh_choices
from crawler.state.store import StateError, StateStore

logger = logging.getLogger(__name__)
T = TypeVar("T")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
FORCED_STOP = "shutdown forced (a second signal)"  # the finish reason nothing else records

# Settings of ours (and Scrapy's we depend on) and their lowest sensible value.
NUMBERS: dict[str, tuple[type, float]] = {
    "RETRY_TIMES": (int, 0), "RETRY_BACKOFF_BASE": (float, 0), "RETRY_BACKOFF_MAX": (float, 0),
    "RETRY_AFTER_MAX": (float, 0), "RETRY_UNREACHABLE_AFTER": (int, 0),
    "PROGRESS_INTERVAL": (float, -1), "CONCURRENT_ITEMS": (int, 1),
    "CONCURRENT_REQUESTS": (int, 1), "DOWNLOAD_TIMEOUT": (float, 0),
    "DOWNLOAD_MAXSIZE": (int, 0), "MAX_ENTRIES_PER_DIGEST": (int, 1),
    "DETAILS_HISTORY_MAX": (int, 1), "SOURCE_SCAN_MAX": (int, 1), "RATELIMIT_RESERVE": (int, 0),
    "MALLOC_ARENA_MAX": (int, 0),
}  # fmt: skip
M_ARENA_MAX = -8  # mallopt's parameter for the arena cap, in glibc's malloc.h


def limit_malloc_arenas(arenas: int, libc: Any = None) -> bool:
    """Cap glibc's malloc arenas for this process; True when it was applied.

    glibc gives a thread that allocates a heap of its own (up to eight per core). Digests are
    parsed in short-lived daemon threads, so their strings were spread over a dozen heaps, each
    kept: ~15 MB of a backfill's peak. The same work in one heap. A ``MALLOC_ARENA_MAX`` in the
    environment (glibc reads it itself) wins; without glibc, nothing happens.
    """
    if arenas <= 0 or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        mallopt = (libc if libc is not None else ctypes.CDLL(None)).mallopt
    except (OSError, AttributeError):  # not glibc (musl has it too; macOS does not)
        return False
    return bool(mallopt(M_ARENA_MAX, arenas))


def _ttl_problems(settings: BaseSettings) -> list[str]:
    try:
        ttl = settings.getdict("STATE_TTL_DAYS")
        bad = [
            k for k, v in ttl.items()
            if isinstance(v, bool) or not isinstance(v, int | float) or not v >= 0
            or v == float("inf")
        ]  # fmt: skip
    except (TypeError, ValueError):
        bad = ["(not a JSON object)"]
    return [f"STATE_TTL_DAYS needs finite numbers of days >= 0; wrong: {', '.join(bad)}"] * bool(
        bad
    )


BOOLEANS = (
    "ARXIV_HOLD_AFTER_ANSWER",
    "SKIP_UNCHANGED",
    "TWEET_DETAILS",
    "SEMANTIC_SCHOLAR",
    "HF_PAPERS",
    "OPENALEX",
)


def _boolean_problems(settings: BaseSettings) -> list[str]:
    problems = []
    for name in BOOLEANS:
        try:
            settings.getbool(name)
        except ValueError:
            problems.append(f"{name} must be true or false, not {settings.get(name)!r}")
    return problems


def settings_problems(settings: BaseSettings) -> list[str]:
    """One line per setting a crawl cannot run with (checked before anything starts)."""
    problems = _boolean_problems(settings)
    if problems:
        return problems  # the services below read some of them
    problems = number_problems(settings, NUMBERS) + _ttl_problems(settings)
    choices = refresh_choices(SERVICES)
    if (refresh := settings.get("REFRESH") or "none") not in choices:
        problems.append(f"REFRESH must be one of {', '.join(choices)}, not {refresh!r}")
    for service in SERVICES:
        if service.enabled(settings):
            problems += service.settings_problems(settings)
    # Settings several services share (PAPER_TTL_BY_AGE) are checked by each: one line each.
    return list(dict.fromkeys(problems))


# Bytes the longest name a run derives from an output's adds, beside it: ``.NAME.XXXXXXXX.tmp``
# (an atomic write; ``.NAME.lock`` is shorter), and for the dataset folder its hidden versions
# ``.NAME-<12 hex digits>.previous``. Scrapy opens ``LOG_FILE`` as named.
DERIVED_NAME_ROOM = len("..12345678.tmp")
NAME_ROOM = {"DATASET_DIR": len(".-0123456789ab.previous"), "LOG_FILE": 0}


def _name_max(folder: Path) -> int:
    """The longest file name (in bytes) the file system of ``folder``, or of its nearest
    existing parent, takes; 255 where it names none (-1 for no limit, 0 from some FUSE file
    systems' ``f_namelen``: either refused every output)."""
    for parent in [folder, *folder.parents]:
        with contextlib.suppress(OSError, ValueError):
            return max(os.pathconf(parent, "PC_NAME_MAX"), 0) or 255
    return 255


def path_problem(path: Path, room: int = DERIVED_NAME_ROOM) -> str | None:
    """Why a run cannot use an output path, found before anything is read or written (each
    of these ended in a traceback): a name that is not UTF-8 text (the run files name their
    paths, in UTF-8), one the file system cannot look up (too long, a symlink loop), or one
    too long for the names derived from it (``room`` bytes more)."""
    if reason := not_text(str(path)):
        return f"{reason}; give a path that is (the run files name their paths in UTF-8)"
    if "\0" in str(path):  # from a file:// feed's %00 or a FEEDS key: os.lstat raised
        return "holds a NUL byte, which no path can"
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        pass  # to be created (a file where a folder should be has its own line, later)
    except OSError as exc:
        return exc.strerror or str(exc)
    name_max = _name_max(path.parent)
    if (size := len(os.fsencode(path.name))) > name_max - room:
        return (
            f"file name is {size} bytes; at most {name_max - room} leave room for the files "
            f"named after it (NAME_MAX {name_max})"
        )
    return None


def _room_of_snapshot(snapshot: Path, settings: BaseSettings) -> int:
    """The bytes the snapshot's name must leave for the longest name made from it (by
    default its dataset folder's hidden versions, 25 more): a name too long for them is one
    line about the snapshot, not one per file named after it, in settings never set."""
    size, room = len(os.fsencode(snapshot.name)), DERIVED_NAME_ROOM
    for name, path in beside_outputs(snapshot, settings):
        if name in _SHARED_OUTPUTS and "{name}" not in Path(settings.get(name) or "").name:
            continue  # a DATASET_DIR or REPORT_FILE of its own name: its own line, if any
        grown = len(os.fsencode(path.name)) - size
        room = max(room, grown + NAME_ROOM.get(name, DERIVED_NAME_ROOM))
    return room


def path_problems(settings: BaseSettings) -> list[str]:
    """One line per path of this run (the snapshot and the files beside it, ``STATE_DB``,
    ``LOG_FILE``) it could not name or create. Files named after a bad snapshot path are
    not named again: one cause, one line."""
    outputs = [("output", path) for path, _ in _feeds(settings)]
    rooms = {}  # the snapshot's: what the names made from it need
    if outputs:
        snapshot = outputs[0][1]
        rooms[snapshot] = _room_of_snapshot(snapshot, settings)
        if not path_problem(snapshot, rooms[snapshot]):
            outputs += beside_outputs(snapshot, settings)
    if state_db := settings.get("STATE_DB"):
        outputs.append(("STATE_DB", Path(state_db)))
    if log_file := settings.get("LOG_FILE"):
        outputs.append(("LOG_FILE", Path(log_file)))
    return [
        f"{name} {printable(str(path))}: {problem}"
        for name, path in outputs
        if (problem := path_problem(path, rooms.get(path, NAME_ROOM.get(name, DERIVED_NAME_ROOM))))
        or (name == "DATASET_DIR" and (problem := _duckdb_path_problem(path)))
    ]


def _duckdb_path_problem(dataset: Path) -> str | None:
    """DuckDB reads a backslash as a folder separator, on POSIX too: the dataset's
    ``hot_papers.duckdb`` could never be written there, and every run would end in exit 5."""
    if "\\" in os.path.abspath(dataset):
        return (
            "holds a backslash, which DuckDB reads as a folder separator (give DATASET_DIR "
            "another path, or empty to turn the dataset off)"
        )
    return None


def output_problem(path: Path) -> str | None:
    """Why the snapshot could not be written there, found before hours of crawling."""
    if path.is_dir():
        return f"output {path} is a folder"
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder) as probe:
            probe.write(b"\n")  # a full filesystem creates files but cannot fill them
            probe.flush()
    except OSError as exc:
        return f"output folder {folder} is not writable ({exc.strerror or exc})"
    return None


def _stop(problems: list[str], status: int) -> NoReturn:
    """One ``error:`` line per problem: a newline or an undecodable byte in a path it names
    (``-O $'a\\nb.jsonl'`` onto a file of someone else's) is escaped, never a second line."""
    for problem in problems:
        print(f"error: {printable(problem)}", file=sys.stderr)
    raise SystemExit(int(status))


def usage_error(message: str) -> NoReturn:
    """Replaces argparse's ``error``: Scrapy routes every usage error (argparse's own, and each
    :class:`UsageError` a command raises) through it, and it would print the usage text and
    exit 2, which README reserves for an unreadable source. A usage error is a refused run."""
    _stop(
        [message.strip().splitlines()[0] if message.strip() else "usage error"],
        ExitStatus.NOT_COMPLETED,
    )


_BESIDE_CHECKS = {
    "run report": ownership.run_report_problem,
    "change feed folder": ownership.changes_problem,
    "posts list": ownership.posts_problem,
    "DATASET_DIR": ownership.dataset_problem,
    "REPORT_FILE": ownership.report_problem,
}


def _feeds(settings: BaseSettings) -> list[tuple[Path, str]]:
    """The local feed files (``DEFAULT_FEED`` when no feed is given), with their formats."""
    if feeds := settings.getdict("FEEDS"):
        return local_feeds(feeds)
    default = settings.get("DEFAULT_FEED")
    return [(Path(default), "jsonlines")] if default else []


def ownership_problems(settings: BaseSettings) -> list[str]:
    """Every path this run would replace must be free, or hold what this crawler wrote there,
    and no output may be, or lie inside, another (replacing the outer one would take the inner
    one along). One line per output; see :mod:`crawler.export.ownership`."""
    feeds = _feeds(settings)
    named = [("output", path) for path, _ in feeds]
    checks = [(str(path), ownership.snapshot_problem(path, fmt)) for path, fmt in feeds]
    if feeds:
        for name, path in beside_outputs(feeds[0][0], settings):
            named.append((name, path))
            checks.append((name, _BESIDE_CHECKS[name](path)))
    if state_db := settings.get("STATE_DB"):
        named.append(("STATE_DB", Path(state_db)))
    return ownership.overlap_problems(named) or ownership.first_problems(checks)


def snapshot_path(settings: BaseSettings) -> Path | None:
    """The snapshot file: the first local feed, or ``DEFAULT_FEED`` when no feed is given."""
    feeds = settings.getdict("FEEDS")
    if feeds:
        return feed_path(feeds)
    default = settings.get("DEFAULT_FEED")
    return Path(default) if default else None


def abandonable(func: Callable[[], T]) -> tuple[bool, T | None]:
    """(True, ``func()``) run in a daemon thread, or (False, None) once SIGINT or SIGTERM
    came first: a hung filesystem must not hold a stop off. A failure of ``func`` is
    (True, None): the crawl that follows meets the same problem and reports it."""
    finished, stopped = threading.Event(), threading.Event()
    result: list[T | None] = [None]

    def work() -> None:
        try:
            result[0] = func()
        except Exception as exc:  # an optimisation must never keep a run from crawling
            logger.debug("unchanged-run check failed (%s): crawling", exc)
        finished.set()

    previous = {sig: signal.signal(sig, lambda *_: stopped.set()) for sig in STOP_SIGNALS}
    try:
        threading.Thread(target=work, name="unchanged-check", daemon=True).start()
        while not finished.wait(0.05) and not stopped.is_set():
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return (finished.is_set() and not stopped.is_set()), result[0]


def _appends(settings: BaseSettings) -> bool:
    """Does a run write a feed a skipped one would not: one appended to (``-o``), or one
    that is not a local file (a skipped run uploads nothing)?"""
    feeds = settings.getdict("FEEDS")
    appended = any(not (isinstance(o, dict) and o.get("overwrite")) for o in feeds.values())
    return appended or len(local_feeds(feeds)) != len(feeds)


def _arguments(opts: argparse.Namespace) -> dict[str, Any]:
    """The spider arguments that decide a run's outputs, in one order: not Scrapyd's ``_job``
    (a new one per job; the spider ignores every ``_`` argument), else no job is ever skipped."""
    return dict(sorted((k, v) for k, v in opts.spargs.items() if not k.startswith("_")))


def _remove_leftovers(settings: BaseSettings) -> None:
    """What a killed run left beside each feed (README): every run to the same file removes
    it, a skipped one too (else a killed crawl's temporary snapshot and sort folders stay
    for as long as nothing changes)."""
    for feed, _ in _feeds(settings):
        with contextlib.suppress(OSError):
            remove_leftovers(feed)


# Outputs beside the snapshot that another run's settings may name too (-s DATASET_DIR=...).
_SHARED_OUTPUTS = ("DATASET_DIR", "REPORT_FILE")


class Command(ScrapyCrawl):
    def __init__(self) -> None:
        super().__init__()
        # Not ScrapyCommand's ``_crawler``: that one is typed as always set.
        self._run_crawler: Crawler | None = None

    def _create_crawler(self, spidercls: Any) -> Crawler:
        self._run_crawler = super()._create_crawler(spidercls)
        return self._run_crawler

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.error = usage_error  # type: ignore[method-assign]

    def process_options(self, args: list[str], opts: argparse.Namespace) -> None:
        super().process_options(args, opts)
        assert self.settings is not None
        self._refuse(settings_problems(self.settings) + path_problems(self.settings))
        limit_malloc_arenas(self.settings.getint("MALLOC_ARENA_MAX"))  # before any thread

    @staticmethod
    def _refuse(problems: list[str], status: int = ExitStatus.NOT_COMPLETED) -> None:
        if problems:
            _stop(problems, status)

    def _check_spider(self, args: list[str], opts: argparse.Namespace) -> None:
        """One spider, known, with arguments it accepts (usage errors: one line, exit 1)."""
        assert self.crawler_process is not None
        if unknown := [a for a in args if a.startswith("-")]:
            raise UsageError(f"unrecognized option {unknown[0]} (scrapy crawl -h lists them)")
        if len(args) != 1:
            raise UsageError("name one spider: scrapy crawl digests [options]")
        loader = self.crawler_process.spider_loader
        try:
            spidercls = loader.load(args[0])
        except KeyError:
            known = ", ".join(sorted(loader.list())) or "none"
            self._refuse([f"spider {args[0]!r} is unknown; this project has: {known}"])
        check = getattr(spidercls, "argument_problems", None)
        if check is not None:
            self._refuse(check(opts.spargs))

    def _preflight(self, args: list[str], opts: argparse.Namespace) -> list[Path]:
        """Refuse a run that cannot succeed; the paths it must lock."""
        assert self.settings is not None
        self._check_spider(args, opts)
        snapshot = snapshot_path(self.settings)
        if snapshot is not None and (problem := output_problem(snapshot)):
            self._refuse([problem], ExitStatus.OUTPUT_FAILED)
        self._refuse(ownership_problems(self.settings))
        paths = [snapshot] if snapshot is not None else []
        if snapshot is not None:  # two runs writing one dataset would remove each other's
            paths += [p for n, p in beside_outputs(snapshot, self.settings) if n in _SHARED_OUTPUTS]
        if state_db := self.settings.get("STATE_DB"):
            try:
                # Checked only: an upgrade waits for this run's lock (another run may use it).
                StateStore(state_db, migrate=False).close()
            except StateError as exc:
                self._refuse([str(exc)])
            paths.append(Path(state_db))
        return paths

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        paths = self._preflight(args, opts)
        try:
            lock = RunLock(paths).acquire()
        except RunLocked as exc:
            _stop([str(exc)], ExitStatus.NOT_COMPLETED)
        status: int | None = None
        try:
            skipped = self._skip_unchanged(opts)
            if not skipped:
                super().run(args, opts)
                self._report_forced_stop()
                status = self._dataset_step(lock)
        finally:
            lock.release()
        if status is None:
            status = int(ExitStatus.OK if skipped else self.exit_status())
        self.exitcode = status

    def _dataset_step(self, lock: RunLock) -> int | None:
        """The crawl is over: this process becomes the dataset and report step, with its
        locks (see crawler.export.analysis), so the crawl's memory is gone while they are
        built. Returns the run's exit status only if it could not be replaced."""
        files = self._run_files()
        if files is None or files.deferred is None:
            return None
        job = {**files.deferred, "exit_status": int(self.exit_status())}
        return analysis.hand_over(job | {"forced_reason": FORCED_STOP}, lock.held())

    def _run_files(self) -> RunFiles | None:
        crawler = self._run_crawler
        assert self.crawler_process is not None
        if crawler is None or self.crawler_process.bootstrap_failed:
            return None  # it never started: an error while starting, already reported
        try:
            return crawler.get_extension(RunFiles)
        except RuntimeError:  # the extensions were never built
            return None

    def _skip_unchanged(self, opts: argparse.Namespace) -> bool:
        """Skip the crawl when it could only write the same bytes again (crawler/reuse.py):
        True once the run report of the skipped run is written. A signal while the sources
        are read for it (a hung mount) ends the run: exit 1, with a run report."""
        settings = self.settings
        assert settings is not None
        digest = reuse.settings_digest({**settings.copy_to_dict(), "-a": _arguments(opts)})
        settings.set(reuse.SETTINGS_DIGEST, digest, priority="cmdline")
        snapshot, state_db = snapshot_path(settings), settings.get("STATE_DB")
        refresh = opts.spargs.get("refresh") or settings.get("REFRESH") or "none"
        if not settings.getbool("SKIP_UNCHANGED") or not snapshot or not state_db:
            return False
        if refresh != "none" or _appends(settings):
            return False  # forced values; or -o, which appends every run's records again
        started = datetime.now(UTC)
        check = partial(
            reuse.unchanged_since, state_db, snapshot, digest, opts.spargs.get("source"),
            settings.getint("SOURCE_SCAN_MAX"), rerun_outputs(snapshot, settings),
            started.timestamp(),
        )  # fmt: skip
        done, found = abandonable(check)
        report = run_report_path(snapshot)
        if not done:
            reuse.write_run_report(report, snapshot, started, "shutdown", 1, {})
            _stop(["stopped while reading the sources (nothing was crawled)"], 1)
        if found is None:
            return False
        _remove_leftovers(settings)
        return reuse.report_skipped(snapshot, report, started, *found)

    def _report_forced_stop(self) -> None:
        """Scrapy's forced shutdown (a second Ctrl-C) stops the reactor before the crawl
        closes, so nothing wrote ``NAME.run.json``; README promises one for every run."""
        files = self._run_files()
        if files is None or files.report_written:
            return
        assert self._run_crawler is not None
        outcome = Outcome.of(self._run_crawler)
        outcome.reason = outcome.reason or FORCED_STOP
        files.write_report(None)

    def exit_status(self) -> ExitStatus:
        if self.exitcode or self._run_crawler is None:
            return ExitStatus.NOT_COMPLETED
        outcome = self._run_crawler.get_extension(Outcome)
        return outcome.exit_status() if outcome is not None else ExitStatus.NOT_COMPLETED
