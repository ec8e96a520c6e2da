"""End-to-end checks written during the independent review: each fails on main and shows one
finding. Real crawls against the stand-in, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from crawler.state.store import StateStore, Write
from tests.conftest import ROOT, SAMPLES, run_crawl
from tests.standin import StandIn

pytestmark = pytest.mark.e2e
FAST: dict[str, object] = {"ARXIV_DELAY": 0.2, "RETRY_BACKOFF_BASE": 0.05}


def test_a_mistyped_tweet_endpoint_does_not_poison_a_fresh_state(
    tmp_path: Path, standin: StandIn
) -> None:
    """First run with typos in OEMBED_URL / SYNDICATION_URL: every tweet "deleted" or
    "not_found", exit 0, stored for 180 / 30 days. The run after the typo is fixed asks for
    nothing and still exits 0 with every tweet deleted."""
    out = tmp_path / "out.jsonl"
    bad = {
        "OEMBED_URL": standin.settings["OEMBED_URL"] + "x",
        "SYNDICATION_URL": standin.settings["SYNDICATION_URL"] + "x",
    }
    first = run_crawl(out, standin, settings=FAST | bad)
    statuses = {t["embed"]["status"] for r in first.records for t in r["tweets"]}
    assert first.returncode != 0 or statuses != {"deleted"}, "exit 0, every tweet deleted"
    fixed = run_crawl(out, standin, settings=FAST)
    ok = sum(t["embed"]["status"] == "ok" for r in fixed.records for t in r["tweets"])
    assert ok > 100, f"after fixing the URL only {ok} embeds are ok"


def test_a_pending_change_of_a_paper_outside_this_run_is_not_dropped(
    tmp_path: Path, standin: StandIn
) -> None:
    """A killed run left a pending change for a paper of digest B; a complete run over digest
    A only (same snapshot, same state) drops it without writing it anywhere."""
    out, state = tmp_path / "out.jsonl", tmp_path / "state.sqlite3"
    store = StateStore(state)
    change = ({"title": "old"}, {"title": "new"})
    store.write(
        "arxiv", [Write("9912.99999", {"status": "ok"}, "ok", change=change)], 1.0, "killed"
    )
    store.close()
    done = run_crawl(out, standin, "-a", f"source={SAMPLES[0]}", settings=FAST)
    assert done.returncode == 0, done.log[-2000:]
    left = [c[3] for c in StateStore(state).pending_changes()]
    written = [
        line for f in (tmp_path / "out.changes").glob("*.jsonl") for line in f.read_text().split()
    ]
    assert left == ["9912.99999"] or any("9912.99999" in w for w in written), "change lost"


def test_a_complete_run_to_a_json_file_exits_0(tmp_path: Path, standin: StandIn) -> None:
    """``-O out.json`` (Scrapy's JSON array format): RunFiles treats ``.json`` as JSON Lines,
    the dataset fails to parse it, and a complete crawl whose snapshot WAS replaced exits 5."""
    out = tmp_path / "out.json"
    unused = tmp_path / "unused.jsonl"  # run_crawl reads its own output as JSON Lines
    crawl = run_crawl(
        unused, standin, "-O", str(out), settings=FAST, analysis=True, default_feed=True
    )
    report = json.loads((tmp_path / "out.run.json").read_text())
    assert report["snapshot_replaced"] is True
    assert crawl.returncode == 0, report["problems"]


def test_the_api_key_is_not_written_to_a_world_readable_file(
    tmp_path: Path, standin: StandIn
) -> None:
    """A short command line, as cron runs it: the lock file beside the snapshot (0644, kept
    after the run) records sys.argv, key included."""
    out = tmp_path / "out.jsonl"
    cmd = [sys.executable, "-m", "scrapy", "crawl", "digests", "-O", str(out),
           "-s", "SEMANTIC_SCHOLAR_API_KEY=SECRET-REVIEW-KEY", "-s", f"STATE_DB={tmp_path / 's.db'}",
           "-a", "source=/nonexistent.md"]  # fmt: skip
    subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=120, check=False,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    leaks = [
        p.name for p in tmp_path.iterdir() if p.is_file() and b"SECRET-REVIEW" in p.read_bytes()
    ]
    assert leaks == []


def test_latex_in_a_digest_category_does_not_fail_the_report(
    tmp_path: Path, standin: StandIn
) -> None:
    """Digests hold LaTeX. A category label ``$\\frac{$`` on entries whose paper arXiv does not
    know becomes a matplotlib legend label; mathtext refuses it at savefig, the report fails,
    and a complete crawl whose snapshot was replaced exits 5 with an empty problem line."""
    import re

    text = SAMPLES[4].read_text(encoding="utf-8")
    text = re.sub(r"\[[^\]\n]+\]\((https?://arxiv\.org/list/)", r"[$\\frac{$](\1", text)
    ids: dict[str, str] = {}
    text = re.sub(
        r"(arxiv\.org/(?:abs|pdf)/)(\d{4}\.\d{4,5})",
        lambda m: m.group(1) + ids.setdefault(m.group(2), f"2101.{90000 + len(ids)}"),
        text,
    )
    digest = tmp_path / "digest.md"
    digest.write_text(text, encoding="utf-8")
    out = tmp_path / "out.jsonl"
    crawl = run_crawl(out, standin, "-a", f"source={digest}", settings=FAST, analysis=True)
    report = json.loads((tmp_path / "out.run.json").read_text())
    # arXiv knows none of these made-up papers: a whole batch "not found" is not believed
    # (exit 4). What matters here: the report was written, and no output problem.
    assert crawl.returncode == 4 and report["problems"] == [], report["problems"]
    assert (tmp_path / "out.report.html").stat().st_size > 10_000
