"""An unchanged rerun keeps the dataset folder and the report as they are (issue 21): the same
folder, the same files, untouched, and the run report says so; anything else rebuilds them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import SAMPLES, Crawl, run_crawl
from tests.standin import Catalogue, StandIn

pytestmark = pytest.mark.e2e

FAST = {"ARXIV_DELAY": 0.2, "RETRY_BACKOFF_BASE": 0.05}


def _crawl(out: Path, catalogue: Catalogue) -> Crawl:
    with StandIn(catalogue) as server:
        crawl = run_crawl(out, server, settings=FAST, analysis=True)
    assert crawl.returncode == 0, crawl.log[-2000:]
    return crawl


def _stamps(out: Path) -> dict[str, tuple[object, ...]]:
    """Where the dataset link points, and inode and mtime of everything it and the report hold."""
    folder = out.with_name("digests.dataset").resolve()
    stamps: dict[str, tuple[object, ...]] = {"folder": (folder, folder.stat().st_ino)}
    for path in [*sorted(folder.iterdir()), out.with_name("digests.report.html")]:
        st = path.stat()
        stamps[path.name] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return stamps


def _dataset_field(out: Path) -> object:
    return json.loads(out.with_suffix(".run.json").read_text("utf-8"))["dataset"]


def test_an_unchanged_rerun_keeps_the_dataset_and_report(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    out = tmp_path / "digests.jsonl"
    _crawl(out, catalogue)
    assert _dataset_field(out) == "written"
    snapshot, before = out.read_bytes(), _stamps(out)
    again = _crawl(out, catalogue)
    assert out.read_bytes() == snapshot  # the premise: nothing changed upstream
    assert _stamps(out) == before
    assert _dataset_field(out) == "unchanged"
    assert "kept as it is: built from a byte-identical snapshot" in again.log


def test_a_damaged_dataset_or_a_missing_report_is_rebuilt_even_when_unchanged(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    out = tmp_path / "digests.jsonl"
    _crawl(out, catalogue)
    report = out.with_name("digests.report.html")
    report.unlink()
    _crawl(out, catalogue)
    assert _dataset_field(out) == "written" and report.is_file()
    folder = out.with_name("digests.dataset").resolve()
    (folder / "papers.parquet").unlink()
    _crawl(out, catalogue)
    assert _dataset_field(out) == "written"
    rebuilt = out.with_name("digests.dataset").resolve()
    assert rebuilt != folder and (rebuilt / "papers.parquet").is_file()


def test_a_changed_snapshot_rebuilds_the_dataset(tmp_path: Path, catalogue: Catalogue) -> None:
    out = tmp_path / "digests.jsonl"
    _crawl(out, catalogue)
    folder = out.with_name("digests.dataset").resolve()
    with StandIn(catalogue) as server:
        crawl = run_crawl(out, server, "-a", f"source={SAMPLES[0]}", settings=FAST, analysis=True)
    assert crawl.returncode == 0, crawl.log[-2000:]
    assert _dataset_field(out) == "written"
    assert out.with_name("digests.dataset").resolve() != folder
