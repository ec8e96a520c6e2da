"""A file feed storage that never leaves a half-written file behind and never replaces a good
snapshot with a worse one.

Records go to a temporary file beside the target; only when the crawl finishes is it flushed to
disk and renamed over the target, which is atomic on POSIX. A crash leaves the previous file as
it was, plus a stray ``.NAME.*.tmp`` that the next run to the same file removes (runs exclude
each other by a lock, see :mod:`crawler.runlock`). Appending (``-o``) starts from a copy of the
old file, so it is atomic too. Whether the new file may replace the old one is the run
outcome's decision (:class:`crawler.outcome.Outcome`); a failure to write is reported there as
one line, and the exit status says so.
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import tempfile
from glob import escape
from pathlib import Path
from typing import IO, Any

from scrapy.crawler import Crawler
from scrapy.extensions.feedexport import FileFeedStorage

from crawler.export.files import file_uri_path, fsync_dir
from crawler.export.jsonlines import EXPORT_FAILED, RECORDS_IN_FILE, SORT_DIR_PREFIX, mark_failed
from crawler.export.ownership import is_our_sort_folder, snapshot_problem
from crawler.outcome import OUTPUT_STORED, RECORDS_WRITTEN, Outcome

logger = logging.getLogger(__name__)


class _Discard(io.BytesIO):
    """Where records go when the target cannot even be opened: the run goes on, and ends
    with the output failure reported instead of a traceback per record."""

    name = "<unwritable>"

    def write(self, data: Any) -> int:
        return len(data)


def remove_leftovers(target: Path) -> None:
    """What a killed run left beside ``target`` (runs exclude each other by a lock): its
    temporary snapshot (a regular file named as :func:`tempfile.mkstemp` names ours) and the
    folders where its records waited to be sorted (marked as ours). Nothing else is touched."""
    temporary = re.compile(re.escape(f".{target.name}.") + r"[a-z0-9_]{8}\.tmp")
    for stale in target.parent.glob(escape(f".{target.name}.") + "*.tmp"):
        if temporary.fullmatch(stale.name) and stale.is_file() and not stale.is_symlink():
            stale.unlink(missing_ok=True)
    for stale in target.parent.glob(f"{SORT_DIR_PREFIX}*"):
        if is_our_sort_folder(stale):
            shutil.rmtree(stale, ignore_errors=True)


class AtomicFileFeedStorage(FileFeedStorage):
    def __init__(
        self,
        uri: str,
        *,
        feed_options: dict[str, Any] | None = None,
        crawler: Crawler | None = None,
    ) -> None:
        super().__init__(uri, feed_options=feed_options)
        self.path = local if (local := file_uri_path(uri)) is not None else uri
        self.crawler = crawler
        self.feed_format = str((feed_options or {}).get("format") or "")

    @property
    def outcome(self) -> Outcome | None:
        # Looked up when needed: storages are built while the extensions are still being built.
        return self.crawler.get_extension(Outcome) if self.crawler is not None else None

    @classmethod
    def from_crawler(
        cls, crawler: Crawler, uri: str, *, feed_options: dict[str, Any] | None = None
    ) -> AtomicFileFeedStorage:
        return cls(uri, feed_options=feed_options, crawler=crawler)

    def open(self, spider: Any) -> IO[Any]:
        target = Path(self.path)
        try:
            if target.is_dir():
                raise IsADirectoryError(f"{target} is a folder")
            target.parent.mkdir(parents=True, exist_ok=True)
            remove_leftovers(target)
            tmp = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in store()
                mode="w+b", prefix=f".{target.name}.", suffix=".tmp", dir=target.parent,
                delete=False,
            )  # fmt: skip
            if self.write_mode == "ab" and target.exists():
                with target.open("rb") as old:
                    shutil.copyfileobj(old, tmp)
        except OSError as exc:
            sink = _Discard()
            mark_failed(sink, f"{target} cannot be written: {exc.strerror or exc}")
            return sink
        return tmp

    def _refusal(self, file: Any) -> tuple[str, bool] | None:
        """(why the file must not replace the target, whether that is an output failure)."""
        failed = getattr(file, EXPORT_FAILED, None)
        if failed:
            return failed, True
        # Checked before the crawl too; asked again in case the file was swapped meanwhile.
        if problem := snapshot_problem(Path(self.path), self.feed_format):
            return problem, True
        if self.outcome is None:
            return None
        records = getattr(file, RECORDS_IN_FILE, None)
        if records is None and self.crawler is not None:
            # Scrapy's own exporters (-O out.json, .csv, ...) do not say what they wrote: the
            # records that left the record pipeline are the closest count.
            records = int(self.crawler.stats.get_value(RECORDS_WRITTEN, 0) or 0)
        reason = self.outcome.keep_previous_because(records)
        if reason is None:
            return None
        lost = records is not None and reason.startswith("only ")
        assert self.crawler is not None  # the outcome is the crawler's
        return reason, lost and not self.crawler.stats.get_value("records/invalid")

    def store(self, file: IO[Any]) -> None:
        target = Path(self.path)
        if refusal := self._refusal(file):
            reason, is_output_failure = refusal
            self._discard(file)
            message = f"{target} not replaced: {reason}; the previous file stays as it was"
            if self.outcome is not None:
                self.outcome.snapshot_stored(str(target.resolve()), replaced=False)
            if is_output_failure and self.outcome is not None:
                self.outcome.output_failed(message)
            else:
                logger.warning("%s", message)
            return
        try:
            file.flush()
            os.fsync(file.fileno())
            file.close()
            os.chmod(file.name, 0o644)
            os.replace(file.name, target)
            fsync_dir(target.parent)
        except OSError as exc:
            self._discard(file)
            if self.outcome is not None:
                self.outcome.snapshot_stored(str(target.resolve()), replaced=False)
                self.outcome.output_failed(
                    f"{target} could not be written ({exc.strerror or exc}); "
                    "the previous file stays as it was"
                )
            return
        if self.outcome is not None:
            self.outcome.snapshot_stored(str(target.resolve()), replaced=True)
        if self.crawler is not None:
            self.crawler.stats.set_value(OUTPUT_STORED, getattr(file, RECORDS_IN_FILE, 0))

    @staticmethod
    def _discard(file: IO[Any]) -> None:
        file.close()
        name = getattr(file, "name", None)
        if isinstance(name, str) and os.path.isabs(name):
            Path(name).unlink(missing_ok=True)
