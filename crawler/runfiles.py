"""Files beside the snapshot: a run report (``NAME.run.json``) and a change feed per run.

Per-run facts (times, stats) stay out of the records so the snapshot itself is byte-stable. The
change feed (``NAME.changes/<run id>.jsonl``) lists the records whose enrichment differs from
what the previous run stored: a new arXiv version, a journal reference added, a tweet deleted.
Downstream jobs read it instead of diffing snapshots. Both are written atomically.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured

from crawler.commands.crawl import exit_status
from crawler.exporters import sort_key
from crawler.state import State

logger = logging.getLogger(__name__)


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def feed_path(feeds: dict[str, Any]) -> Path | None:
    """The first feed that is a local file, if any."""
    for uri in feeds:
        parsed = urlparse(str(uri))
        if parsed.scheme in ("", "file") and "%(" not in str(uri):
            return Path(parsed.path if parsed.scheme == "file" else str(uri))
    return None


def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {
        k: {"before": before.get(k), "after": after.get(k)}
        for k in after
        if before.get(k) != after.get(k)
    }


class RunFiles:
    def __init__(self, crawler: Crawler) -> None:
        self.path = feed_path(crawler.settings.getdict("FEEDS"))
        if self.path is None:
            raise NotConfigured
        self.crawler = crawler
        self.state: State | None = None  # another extension: looked up once all exist
        self.started = datetime.now(UTC)
        self.run_id = self.started.strftime("%Y%m%dT%H%M%S.%fZ")
        self.changes: list[dict[str, Any]] = []
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(self.item_scraped, signal=signals.item_scraped)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    def spider_opened(self, spider: Any) -> None:
        self.state = self.crawler.get_extension(State)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RunFiles:
        return cls(crawler)

    def item_scraped(self, item: Any, **_: Any) -> None:
        if self.state is None or not self.state.changed or not isinstance(item, dict):
            return
        found = []
        key = item["arxiv_id"]
        if key and item["digest"]["arxiv_version"]:
            key = f"{key}v{item['digest']['arxiv_version']}"
        if ("arxiv", key) in self.state.changed:
            before, after = self.state.changed[("arxiv", key)]
            found.append({"what": "arxiv", "key": key, "fields": _diff(before, after)})
        for tweet in item["tweets"]:
            if ("embed", tweet["id"]) in self.state.changed:
                before, after = self.state.changed[("embed", tweet["id"])]
                found.append({"what": "embed", "key": tweet["id"], "fields": _diff(before, after)})
        if found:
            post = item["post"]
            self.changes.append({
                "run_id": self.run_id, "slug": post["slug"], "date": post["date"],
                "source": post["source"], "rank": item["rank"], "arxiv_id": item["arxiv_id"],
                "changes": found, "_k": sort_key(item),
            })  # fmt: skip

    def spider_closed(self, spider: Any, reason: str) -> None:
        assert self.path is not None
        changes_file = None
        if self.changes:
            self.changes.sort(key=lambda c: c.pop("_k"))
            changes_file = self.path.with_name(f"{self.path.stem}.changes") / f"{self.run_id}.jsonl"
            atomic_write(
                changes_file,
                b"".join(json.dumps(c, ensure_ascii=False).encode() + b"\n" for c in self.changes),
            )
        stats = self.crawler.stats.get_stats()
        report = {
            "run_id": self.run_id,
            "started_at": self.started.isoformat(),
            "finished_at": datetime.now(UTC).isoformat(),
            "finish_reason": reason,
            "exit_status": exit_status(stats, reason),
            "snapshot": str(self.path),
            "records": stats.get("records/written", 0),
            "changed_records": len(self.changes),
            "changes_file": str(changes_file) if changes_file else None,
            "stats": {
                k: v if isinstance(v, int | float | str) else str(v)
                for k, v in sorted(stats.items())
            },
        }
        atomic_write(
            self.path.with_name(f"{self.path.stem}.run.json"),
            json.dumps(report, indent=2, ensure_ascii=False).encode() + b"\n",
        )
