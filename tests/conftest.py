"""Shared fixtures: the stand-in serving a catalogue built from the samples, and a real crawl.

Crawls run as ``python -m scrapy crawl digests`` in a subprocess, exactly as a user runs them,
pointed at the stand-in through the ordinary settings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

from crawler.sources import sample_dir
from tests.standin import Catalogue, StandIn

# No per-example deadline: a wall-clock limit fails at random on a busy 2-core machine (the first
# example also pays for lazy imports). Examples are bounded by their count instead.
hypothesis_settings.register_profile("project", deadline=None)
hypothesis_settings.load_profile("project")

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted(sample_dir().glob("*.txt"))


@dataclass
class Crawl:
    records: list[dict[str, Any]]
    raw: bytes
    log: str
    returncode: int


def run_crawl(
    out: Path,
    standin: StandIn | None,
    *args: str,
    settings: Mapping[str, object] | None = None,
    timeout: float = 300,
    default_feed: bool = False,
    analysis: bool = False,
) -> Crawl:
    """``scrapy crawl digests -O out`` (or ``-s DEFAULT_FEED=out``) as a user runs it.

    The dataset folder and HTML report cost ~2 s per crawl; only ``analysis=True`` keeps them.
    """
    cmd = [sys.executable, "-m", "scrapy", "crawl", "digests"]
    cmd += ["-s", f"DEFAULT_FEED={out}"] if default_feed else ["-O", str(out)]
    # Each crawl gets its own state next to its output unless a test shares one on purpose.
    merged: dict[str, object] = {"LOG_LEVEL": "INFO", "STATE_DB": out.parent / "state.sqlite3"}
    if not analysis:
        merged |= {"DATASET_DIR": "", "REPORT_FILE": ""}
    if standin is not None:
        merged |= standin.settings
    merged |= settings or {}
    for name, value in merged.items():
        cmd += ["-s", f"{name}={value}"]
    cmd += list(args)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=timeout, env=env, check=False)
    raw = out.read_bytes() if out.exists() else b""
    records = [json.loads(line) for line in raw.splitlines()]
    return Crawl(records, raw, proc.stderr.decode("utf-8", "replace"), proc.returncode)


def unobserved(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records without the times values were fetched and tweets observed: two crawls from
    scratch differ in nothing else."""
    records = json.loads(json.dumps(records))
    for record in records:
        blocks = [record[k] for k in ("arxiv", "semantic_scholar", "hf", "openalex")]
        blocks += [t[k] for t in record["tweets"] for k in ("embed", "details")]
        for block in blocks:
            block.pop("fetched_at")
            for point in block.get("history") or []:
                point.pop("observed_at")
    return records


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return Catalogue.from_digests(SAMPLES, seed=0)


@pytest.fixture
def standin(catalogue: Catalogue) -> Iterator[StandIn]:
    with StandIn(catalogue) as server:
        yield server


def _fetch_times(records: list[dict[str, Any]]) -> list[str | None]:
    blocks = [b for r in records for b in (r["arxiv"], r["semantic_scholar"])]
    blocks += [t[k] for r in records for t in r["tweets"] for k in ("embed", "details")]
    return [b["fetched_at"] for b in blocks]


def assert_same_values(records: list[dict[str, Any]], before: list[dict[str, Any]]) -> None:
    """The same records as ``before`` but for when values were fetched, and no fetch time went
    back (a value kept keeps its time, one fetched again has a later one)."""
    assert unobserved(records) == unobserved(before)
    for now, then in zip(_fetch_times(records), _fetch_times(before), strict=True):
        assert then is None or (now is not None and now >= then)
