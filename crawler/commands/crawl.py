"""``scrapy crawl`` with checks before anything starts and an exit status a scheduler can trust.

Before the crawl: settings, spider arguments, the state database and the output location are
checked (one ``error:`` line each), and the run takes its locks. The exit status is the run
outcome's (:class:`crawler.outcome.ExitStatus`): 0 complete, 1 did not run to completion, 2 a
source unreadable, 3 a record broke the schema, 4 enrichment incomplete, 5 output not written.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

from scrapy.commands.crawl import Command as ScrapyCrawl
from scrapy.crawler import Crawler
from scrapy.settings import BaseSettings

from crawler.export.runfiles import feed_path
from crawler.outcome import ExitStatus, Outcome
from crawler.runlock import RunLock, RunLocked
from crawler.services.base import number_problems
from crawler.services.registry import SERVICES
from crawler.state.freshness import refresh_choices
from crawler.state.store import StateError, StateStore

# Settings of ours (and Scrapy's we depend on) and their lowest sensible value.
NUMBERS: dict[str, tuple[type, float]] = {
    "RETRY_TIMES": (int, 0), "RETRY_BACKOFF_BASE": (float, 0), "RETRY_BACKOFF_MAX": (float, 0),
    "RETRY_AFTER_MAX": (float, 0), "RETRY_UNREACHABLE_AFTER": (int, 0),
    "PROGRESS_INTERVAL": (float, -1), "CONCURRENT_ITEMS": (int, 1),
    "CONCURRENT_REQUESTS": (int, 1), "DOWNLOAD_TIMEOUT": (float, 0),
    "DOWNLOAD_MAXSIZE": (int, 0), "MAX_ENTRIES_PER_DIGEST": (int, 1),
    "DETAILS_HISTORY_MAX": (int, 1), "SOURCE_SCAN_MAX": (int, 1),
}  # fmt: skip


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


BOOLEANS = ("ARXIV_HOLD_AFTER_ANSWER", "TWEET_DETAILS", "SEMANTIC_SCHOLAR")


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
    return problems


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
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    raise SystemExit(int(status))


def snapshot_path(settings: BaseSettings) -> Path | None:
    """The snapshot file: the first local feed, or ``DEFAULT_FEED`` when no feed is given."""
    feeds = settings.getdict("FEEDS")
    if feeds:
        return feed_path(feeds)
    default = settings.get("DEFAULT_FEED")
    return Path(default) if default else None


class Command(ScrapyCrawl):
    def __init__(self) -> None:
        super().__init__()
        # Not ScrapyCommand's ``_crawler``: that one is typed as always set.
        self._run_crawler: Crawler | None = None

    def _create_crawler(self, spidercls: Any) -> Crawler:
        self._run_crawler = super()._create_crawler(spidercls)
        return self._run_crawler

    def process_options(self, args: list[str], opts: argparse.Namespace) -> None:
        super().process_options(args, opts)
        assert self.settings is not None
        self._refuse(settings_problems(self.settings))

    @staticmethod
    def _refuse(problems: list[str], status: int = ExitStatus.NOT_COMPLETED) -> None:
        if problems:
            _stop(problems, status)

    def _preflight(self, args: list[str], opts: argparse.Namespace) -> list[Path]:
        """Refuse a run that cannot succeed; the paths it must lock."""
        assert self.settings is not None and self.crawler_process is not None
        if args:
            try:
                spidercls = self.crawler_process.spider_loader.load(args[0])
            except KeyError:
                spidercls = None  # Scrapy reports an unknown spider itself
            check = getattr(spidercls, "argument_problems", None)
            if check is not None:
                self._refuse(check(opts.spargs))
        paths = []
        if state_db := self.settings.get("STATE_DB"):
            try:
                # Checked only: an upgrade waits for this run's lock (another run may use it).
                StateStore(state_db, migrate=False).close()
            except StateError as exc:
                self._refuse([str(exc)])
            paths.append(Path(state_db))
        if snapshot := snapshot_path(self.settings):
            if problem := output_problem(snapshot):
                self._refuse([problem], ExitStatus.OUTPUT_FAILED)
            paths.append(snapshot)
        return paths

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        paths = self._preflight(args, opts)
        try:
            lock = RunLock(paths).acquire()
        except RunLocked as exc:
            _stop([str(exc)], ExitStatus.NOT_COMPLETED)
        try:
            super().run(args, opts)
        finally:
            lock.release()
        self.exitcode = int(self.exit_status())

    def exit_status(self) -> ExitStatus:
        if self.exitcode or self._run_crawler is None:
            return ExitStatus.NOT_COMPLETED
        outcome = self._run_crawler.get_extension(Outcome)
        return outcome.exit_status() if outcome is not None else ExitStatus.NOT_COMPLETED
