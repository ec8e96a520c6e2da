"""Files beside the snapshot: a run report (``NAME.run.json``) and a change feed per run.

Per-run facts (times, stats) stay out of the records so the snapshot itself is byte-stable. The
change feed (``NAME.changes/<run id>.jsonl``) lists the records whose enrichment differs from
what an earlier run stored: a new arXiv version, a journal reference added, a tweet deleted.
Changes wait in the state database (written in the same transaction as the new value) until a
snapshot carrying them has replaced the old one; only then is the change file written and the
changes dropped from the state. A run killed or stopped at any point therefore loses none: the
next complete run writes them. Both files are written atomically.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path, PureWindowsPath
from typing import Any
from urllib.parse import urlparse

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.settings import BaseSettings

from crawler import reuse
from crawler import signals as our_signals
from crawler.export import analysis
from crawler.export.contract import sort_key
from crawler.export.files import atomic_write, file_uri_path, posts_file
from crawler.export.ownership import posts_problem
from crawler.export.unchanged import inputs_key, up_to_date
from crawler.items import Post
from crawler.outcome import DIGESTS_TOTAL, RECORDS_SCRUBBED, Outcome
from crawler.record.build import post_block
from crawler.services.registry import SERVICES
from crawler.sources import Source
from crawler.state.extension import State
from crawler.state.store import StateError

logger = logging.getLogger(__name__)


def local_feeds(feeds: Mapping[str, Any]) -> list[tuple[Path, str]]:
    """Every feed that is a local file, with its format, in the order given."""
    found = []
    for uri, options in feeds.items():
        if "%(" in str(uri):
            continue
        if (local := file_uri_path(str(uri))) is not None:
            # As our file storage reads it: ``file:///o/a%20b.jsonl`` writes ``a b.jsonl``
            # (the run files, locks and checks went to ``a%20b``).
            path = Path(local)
        elif _scheme(str(uri)) == "" or _is_drive(str(uri)):
            path = Path(str(uri))
        else:
            continue
        feed_format = options.get("format", "") if isinstance(options, Mapping) else ""
        found.append((path, str(feed_format or "")))
    return found


def _is_drive(uri: str) -> bool:
    """``C:/o/x.jsonl``: Scrapy takes a one-letter scheme that is a Windows drive for a file
    path and hands it to the file storage, which (here, on POSIX) writes ``./C:/o/x.jsonl``."""
    return len(_scheme(uri)) == 1 and bool(PureWindowsPath(uri).drive)


def _scheme(uri: str) -> str:
    try:
        return urlparse(uri).scheme
    except ValueError:  # ``//[x/out.jsonl``: a path urlparse cannot split is still a path
        return ""


def feed_path(feeds: dict[str, Any]) -> Path | None:
    """The first feed that is a local file, if any."""
    found = local_feeds(feeds)
    return found[0][0] if found else None


def _beside(template: str | None, name: str) -> Path | None:
    """``{name}.dataset`` -> ``output/digests.dataset`` for the snapshot output/digests.jsonl;
    empty turns the output off."""
    return Path(template.replace("{name}", name)) if template else None


def writes_dataset(snapshot: Path) -> bool:
    """The dataset (and the report on it) is built from JSON Lines snapshots only."""
    return snapshot.suffix.lower() in (".jsonl", ".jsonlines")


def run_report_path(snapshot: Path) -> Path:
    return snapshot.with_name(f"{snapshot.stem}.run.json")


def changes_folder(snapshot: Path) -> Path:
    return snapshot.with_name(f"{snapshot.stem}.changes")


def beside_outputs(snapshot: Path, settings: BaseSettings) -> list[tuple[str, Path]]:
    """What a run writes beside ``snapshot``, each named as its messages name it."""
    name = str(snapshot.with_suffix(""))
    outputs = [("run report", run_report_path(snapshot))]
    outputs.append(("change feed folder", changes_folder(snapshot)))
    outputs.append(("posts list", posts_file(snapshot)))
    dataset = _beside(settings.get("DATASET_DIR"), name)
    if dataset is not None and writes_dataset(snapshot):
        outputs.append(("DATASET_DIR", dataset))
        if report := _beside(settings.get("REPORT_FILE"), name):
            outputs.append(("REPORT_FILE", report))
    return outputs


def rerun_outputs(snapshot: Path, settings: BaseSettings) -> list[Path]:
    """The files a run leaves that an unchanged rerun keeps: the snapshot and every other
    local feed (``-O out.jsonl -O out.csv``), the posts list, the dataset folder and the
    report (not the run report nor the change feed: every run writes its own). The same list
    before the crawl (``FEEDS`` empty: ``DEFAULT_FEED``) as after it (the addon set it)."""
    feeds = [path for path, _ in local_feeds(settings.getdict("FEEDS"))]
    kept = ("posts list", "DATASET_DIR", "REPORT_FILE")
    beside = [path for name, path in beside_outputs(snapshot, settings) if name in kept]
    return list(dict.fromkeys([snapshot, *feeds, *beside]))


def record_keys(record: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """The (kind, key) pairs of the values a record carries."""
    arxiv_id = record.get("arxiv_id")
    if arxiv_id:
        version = (record.get("digest") or {}).get("linked_version")
        yield "arxiv", f"{arxiv_id}v{version}" if version else arxiv_id
        yield "impact", arxiv_id
        yield "hf", arxiv_id
        yield "openalex", arxiv_id
    for tweet in record.get("tweets") or []:
        yield "embed", tweet["id"]
        yield "details", tweet["id"]


# The change feed names values by the record's block ("semantic_scholar"), the state by kind.
_BLOCK_OF_KIND = {service.kind: service.record_block for service in SERVICES}
_KIND_OF_BLOCK = {block: kind for kind, block in _BLOCK_OF_KIND.items()}


def _json_line(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode() + b"\n"


def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {
        k: {"before": before.get(k), "after": after.get(k)}
        for k in sorted(set(before) | set(after))
        if before.get(k) != after.get(k)
    }


class RunFiles:
    def __init__(self, crawler: Crawler) -> None:
        self.path = feed_path(crawler.settings.getdict("FEEDS"))
        if self.path is None:
            raise NotConfigured
        self.crawler = crawler
        self.state: State | None = None  # extensions are looked up once all exist
        self._pending: dict[tuple[str, str], tuple[dict[str, Any], dict[str, Any]]] = {}
        self._ids: dict[tuple[str, str], list[int]] = {}  # the pending rows behind each change
        self._hits: Any = None  # temporary file: one line per record that carries a change
        self.changed_records = 0
        self.report_written = False  # NAME.run.json: written once, however the run ends
        self.changes: list[dict[str, Any]] = []  # this run's change lines, for the HTML report
        # The dataset and report: "written", "unchanged" (kept: built from these very inputs),
        # "failed", or None when not attempted (turned off, not JSON Lines, snapshot kept).
        self.analysis: str | None = None
        self.deferred: dict[str, Any] | None = None  # the dataset step's job, once the crawl ends
        self.posts: dict[str, dict[str, Any]] = {}  # every digest read, by post ID
        self.finished_at: datetime | None = None  # one instant for every file of the run
        self.read: list[tuple[Source, str]] = []  # every digest read, with its bytes' SHA-256
        self.warnings: list[str] = []  # input warnings as logged, for a skipped rerun to repeat
        name = str(self.path.with_suffix(""))
        self.dataset_dir = _beside(crawler.settings.get("DATASET_DIR"), name)
        self.report_file = _beside(crawler.settings.get("REPORT_FILE"), name)
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(self.item_scraped, signal=signals.item_scraped)
        crawler.signals.connect(self.digest_read, signal=our_signals.digest_read)
        crawler.signals.connect(self.finish, signal=signals.feed_exporter_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RunFiles:
        return cls(crawler)

    @property
    def outcome(self) -> Outcome:
        return Outcome.of(self.crawler)

    @property
    def run_id(self) -> str:
        return self.outcome.run_id

    def spider_opened(self, spider: Any) -> None:
        self.state = self.crawler.get_extension(State)
        self._hits = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115

    def digest_read(
        self,
        post: Post,
        source: tuple[str, str, str] | None = None,
        sha256: str | None = None,
        warnings: list[str] | None = None,
        **_: Any,
    ) -> None:
        """Records exist only for entries: the posts table needs every digest read as well.
        What was read, and what it warned about, goes into the rerun key."""
        block = post_block(post)
        self.posts.setdefault(block["id"], block)
        if source is not None and sha256 is not None:
            self.read.append((Source(*source), sha256))
        self.warnings += warnings or []

    def _write_posts(self) -> None:
        """``NAME.posts.jsonl`` beside the snapshot it describes, so a dataset rebuilt from
        that snapshot later still lists the digests without entries."""
        assert self.path is not None
        path = posts_file(self.path)
        if problem := posts_problem(path):  # checked before the crawl; asked again
            self.outcome.output_failed(problem)
            return
        try:
            atomic_write(path, self._posts_bytes())
        except OSError as exc:
            self.outcome.output_failed(f"posts list {path} not written: {exc.strerror or exc}")

    def _sorted_posts(self) -> list[dict[str, Any]]:
        return sorted(self.posts.values(), key=lambda p: (p["published_at"] or "", p["slug"]))

    def _posts_bytes(self) -> bytes:
        """What ``NAME.posts.jsonl`` holds; also part of the dataset's inputs key."""
        return b"".join(_json_line(p) for p in self._sorted_posts())

    def _load_pending(self) -> None:
        """Changes stored by this run and by earlier runs whose snapshot never landed."""
        self._pending.clear()
        self._ids.clear()
        if self.state is None:
            return
        for change_id, _run, kind, key, before, after in self.state.store.pending_changes():
            first = self._pending.get((kind, key))
            self._pending[(kind, key)] = (first[0] if first else before, after)
            self._ids.setdefault((kind, key), []).append(change_id)

    def item_scraped(self, item: Any, **_: Any) -> None:
        if self.state is None or self._hits is None or not isinstance(item, dict):
            return
        post = item["post"]
        line = {
            "run_id": self.run_id, "entry_id": item["entry_id"], "slug": post["slug"],
            "published_at": post["published_at"], "source": post["source"], "rank": item["rank"],
            "arxiv_id": item["arxiv_id"],
            "keys": list(dict.fromkeys(record_keys(item))), "_k": sort_key(item),
        }  # fmt: skip
        self._hits.write(json.dumps(line, ensure_ascii=False) + "\n")

    def _change_lines(self) -> list[dict[str, Any]]:
        assert self._hits is not None
        self._hits.seek(0)
        lines = []
        for raw in self._hits:
            line = json.loads(raw)
            found = [
                {
                    "what": _BLOCK_OF_KIND.get(kind, kind),
                    "key": key,
                    "fields": _diff(*self._pending[(kind, key)]),
                }
                for kind, key in map(tuple, line.pop("keys"))
                if (kind, key) in self._pending
            ]
            if found:
                lines.append({**line, "changes": found})
        lines.sort(key=lambda c: (c.pop("_k"), json.dumps(c, sort_keys=True)))
        return lines

    def _write_changes(self) -> Path | None:
        """The change file, if the snapshot landed and something changed; then the state
        forgets the changes it carries."""
        assert self.path is not None
        if not self.replaced():
            return None
        self._load_pending()
        if not self._pending:
            return None
        lines = self.changes = self._change_lines()
        self.changed_records = len(lines)
        changes_file = None
        if lines:
            changes_file = changes_folder(self.path) / f"{self.run_id}.jsonl"
            atomic_write(
                changes_file,
                b"".join(json.dumps(c, ensure_ascii=False).encode() + b"\n" for c in lines),
            )
        # Only what a change line carries leaves the state; a change of a paper or tweet this
        # run did not crawl stays pending for a run that does.
        carried = {
            (_KIND_OF_BLOCK.get(c["what"], c["what"]), c["key"])
            for line in lines
            for c in line["changes"]
        }
        assert self.state is not None
        self.state.store.drop_changes([i for k in carried for i in self._ids[k]])
        return changes_file

    def replaced(self) -> bool:
        """Did this run's snapshot replace the previous one?"""
        assert self.path is not None
        return self.outcome.snapshots.get(str(self.path.resolve()), False)

    async def finish(self) -> None:
        assert self.path is not None
        self.finished_at = datetime.now(UTC)
        changes_file: Path | None = None
        try:
            changes_file = self._write_changes()
        except (OSError, StateError) as exc:
            self.outcome.output_failed(f"change feed beside {self.path} not written: {exc}")
        finally:
            if self._hits is not None:
                self._hits.close()
        if self.replaced():
            self._write_posts()
            self.deferred = self.analysis_job(changes_file)
        if self.deferred is not None:
            # The dataset step writes the run report once it is done (analysis.hand_over);
            # from here a stop is the dataset step's.
            self.report_written = True
            self.deferred["rerun"] = self._rerun_job()
            analysis.take_signals()
            return
        self.write_report(changes_file)
        self._remember_rerun()

    def _remember_rerun(self) -> None:
        """Leave the rerun key of a complete run (see :mod:`crawler.reuse`); a failure here
        only means the next run crawls."""
        assert self.path is not None
        summary = self._rerun_summary()
        if summary is None or self.state is None:
            return
        outputs = rerun_outputs(self.path, self.crawler.settings)
        settings = self.crawler.settings.get(reuse.SETTINGS_DIGEST)
        try:
            key = reuse.rerun_key(settings, self.read, outputs)
            self.state.store.remember_rerun(
                str(self.path.resolve()), key, time.time(), self.state.valid_until, summary
            )
        except (OSError, StateError) as exc:
            logger.debug("rerun key not stored (%s): the next run crawls", exc)

    def _rerun_job(self) -> dict[str, Any] | None:
        """What the dataset step needs to leave the rerun key once the dataset and report are
        in (the key stamps them): None when this run must not be skipped next time."""
        assert self.path is not None and self.state is not None
        summary = self._rerun_summary()
        if summary is None:
            return None
        return {
            "state_db": str(self.state.store.path),
            "snapshot": str(self.path.resolve()),
            "settings": self.crawler.settings.get(reuse.SETTINGS_DIGEST),
            "read": [[[s.url, s.name, s.record_name], sha] for s, sha in self.read],
            "outputs": [str(p) for p in rerun_outputs(self.path, self.crawler.settings)],
            "valid_until": self.state.valid_until,
            "summary": summary | {"dataset": "unchanged"},
        }

    def _rerun_summary(self) -> dict[str, Any] | None:
        """What a skipped rerun reports; None when this run must not be skipped next time."""
        stats = self.crawler.stats
        complete = (
            self.outcome.exit_status() == 0
            and self.replaced()
            and self.state is not None
            and self.crawler.settings.get(reuse.SETTINGS_DIGEST)
            and (self.crawler.settings.get("REFRESH") or "none") == "none"
            and len(self.read) == stats.get_value(DIGESTS_TOTAL, 0)
            and all(source.url.startswith("file:") for source, _ in self.read)
            and self.state.valid_until > time.time()
            and not self.state.store.has_pending_changes()
            # Its warning comes from a stored value, not from a source: a skip could not
            # repeat it, so every run crawls (and says it) while that value is stored.
            and not stats.get_value(RECORDS_SCRUBBED)
        )
        if not complete:
            return None
        return {
            "run_id": self.run_id,
            "records": stats.get_value("records/written", 0),
            "digests": len(self.read),
            "dataset": None if self.analysis is None else "unchanged",
            "warnings": self.warnings[: reuse.MAX_WARNINGS],
            "warnings_total": len(self.warnings),
        }

    def analysis_job(self, changes_file: Path | None) -> dict[str, Any] | None:
        """The dataset folder and the HTML report, replaced like the snapshot, only when the
        snapshot was: a run that keeps the previous snapshot keeps the previous dataset. When
        both were built from these very inputs (a byte-identical snapshot, the same code) they
        are kept as they are: rebuilding would cost seconds to write the same data. Else the
        job for the dataset step, which runs once the crawl has ended (``analysis.hand_over``)
        so its memory never adds to the crawl's."""
        assert self.path is not None
        if self.dataset_dir is None:
            return None
        if not writes_dataset(self.path):
            logger.info("no dataset: the snapshot %s is not JSON Lines", self.path)
            return None
        key = self._inputs_key()
        if key is not None and not self.changes and self._kept(key):
            return None
        return self._job(self.report(changes_file), key)

    def _kept(self, key: str) -> bool:
        """Keep the dataset and report if they show exactly these inputs already."""
        assert self.dataset_dir is not None
        if not up_to_date(key, self.dataset_dir, self.report_file):
            return False
        self.analysis = "unchanged"
        logger.info(
            "dataset %s%s kept as it is: built from a byte-identical snapshot",
            self.dataset_dir,
            f" and report {self.report_file}" if self.report_file else "",
        )
        return True

    def _inputs_key(self) -> str | None:
        """The key of what the dataset and report are built from (None: rebuild them)."""
        assert self.path is not None
        try:
            return inputs_key([self.path, self._posts_bytes()])
        except OSError as exc:
            logger.debug("inputs of the dataset not hashed (%s): rebuilt", exc)
            return None

    def _job(self, run_report: dict[str, Any], key: str | None) -> dict[str, Any]:
        """What the dataset and report steps need, and what completes the run report."""
        assert self.path is not None and self.dataset_dir is not None
        settings = self.crawler.settings
        return {
            "snapshot": str(self.path),
            "dataset": str(self.dataset_dir),
            "report": None if self.report_file is None else str(self.report_file),
            "run_report": run_report,
            "run_report_file": str(run_report_path(self.path)),
            "changes": self.changes,
            "posts": list(self.posts.values()),
            "built_from": key,
            "log": {
                "enabled": settings.getbool("LOG_ENABLED", True),
                "file": settings.get("LOG_FILE"),
                "encoding": settings.get("LOG_ENCODING"),
                "level": settings.get("LOG_LEVEL"),
                "format": settings.get("LOG_FORMAT"),
                "datefmt": settings.get("LOG_DATEFORMAT"),
            },
        }

    def report(self, changes_file: Path | None) -> dict[str, Any]:
        stats = self.crawler.stats.get_stats()
        return {
            "run_id": self.run_id,
            "started_at": self.outcome.started.isoformat(),
            "finished_at": (self.finished_at or datetime.now(UTC)).isoformat(),
            "finish_reason": self.outcome.reason,
            "exit_status": int(self.outcome.exit_status()),
            "snapshot": str(self.path),
            "snapshot_replaced": self.replaced(),
            "problems": self.outcome.output_problems
            + ([self.outcome.stop_problem] if self.outcome.stop_problem else []),
            "records": stats.get("records/written", 0),
            "changed_records": self.changed_records,
            "incomplete_services": self.outcome.incomplete_services(),
            "changes_file": str(changes_file) if changes_file else None,
            "dataset": self.analysis,
            "stats": {
                k: v if isinstance(v, int | float | str) else str(v)
                for k, v in sorted(stats.items())
            },
        }

    def write_report(self, changes_file: Path | None) -> None:
        assert self.path is not None
        path = run_report_path(self.path)
        self.report_written = True
        try:
            report = self.report(changes_file)
            atomic_write(path, json.dumps(report, indent=2, ensure_ascii=False).encode() + b"\n")
        except OSError as exc:
            self.outcome.output_failed(f"run report {path} not written: {exc.strerror or exc}")
