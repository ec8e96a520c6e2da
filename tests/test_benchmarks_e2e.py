"""Issue 21's harness: the floor spider replays what a crawl asked, as politely; the cost table
judges goals from its figures."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from benchmarks.cost_report import cost_markdown
from benchmarks.floor import dump_requests
from tests.conftest import ROOT, run_crawl
from tests.standin import RequestRecord, StandIn


def _identity(r: RequestRecord) -> tuple[object, ...]:
    """What a request asked: service, method, path, query (any order), body."""
    query = tuple(sorted((k, tuple(v)) for k, v in r.params.items()))
    return r.service, r.method, r.path, query, r.body


@pytest.mark.e2e
def test_floor_spider_sends_the_crawls_requests_with_its_spacing(
    tmp_path: Path, standin: StandIn
) -> None:
    delay = 0.2
    # OpenAlex (403) and Semantic Scholar (429) refuse a request that starts too close to the
    # previous one. Whether one does depends on the machine's load, not on the work asked, and
    # the crawl's retry of a refused request is itself replayed: with the limits on, the two
    # runs' answers could differ.
    standin.min_interval.update({"openalex": 0.0, "semantic_scholar": 0.0})
    crawl = run_crawl(
        tmp_path / "out.jsonl",
        standin,
        settings={"ARXIV_DELAY": delay, "ARXIV_BATCH_SIZE": 20, "S2_DELAY": 0.05},
    )
    assert crawl.returncode == 0
    asked = Counter(map(_identity, standin.log))
    answered = _answers(standin.log)
    assert dump_requests(standin.log, tmp_path / "requests.jsonl") == sum(asked.values())
    standin.reset_log()
    cmd = [
        sys.executable, "-m", "benchmarks.floor", "--requests", str(tmp_path / "requests.jsonl"),
        "--base", standin.base_url, "--arxiv-delay", str(delay), "--s2-delay", "0.05",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    replayed = Counter(map(_identity, standin.log))
    assert replayed == asked
    assert _answers(standin.log) == answered  # same answers: same work asked
    arxiv = sorted(standin.requests_for("arxiv"), key=lambda r: r.start)
    assert len(arxiv) >= 2
    assert standin.max_concurrency("arxiv") == 1
    assert standin.max_concurrency("semantic_scholar") == 1
    # Held after each answer, as the crawler does: every start is the delay after the last end.
    assert all(b.start - a.end >= delay for a, b in itertools.pairwise(arxiv))
    bodies = {r.body for r in standin.requests_for("semantic_scholar")}
    assert bodies and all(b.startswith(b"{") for b in bodies)


def _answers(log: list[RequestRecord]) -> Counter[tuple[str, int | None]]:
    return Counter((r.service, r.status) for r in log)


def _side(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "wall_s": 2.0, "cpu_s": 1.0, "records": 3000, "records_per_cpu_s": 3000,
        "peak_rss_mb": 120.0, "peak_rss_crawl_mb": 100.0, "requests": 0, "load_before": 0.3,
    }  # fmt: skip
    return base | kw


def test_cost_table_judges_the_rerun_goal_on_every_figure() -> None:
    kept = {"dataset": False, "report": False}
    rows = {
        "instant": {
            "sides": {"after": _side()},
            "rerun": {
                "before": _side(wall_s=10.2, records_per_cpu_s=500, peak_rss_mb=396.0,
                                rebuilt={"dataset": True, "report": True}),
                "after": _side(rebuilt=kept, run_report_dataset="unchanged"),
            },
        }
    }  # fmt: skip
    text = "\n".join(cost_markdown({"meta": {}, "rows": rows}))
    line = next(x for x in text.splitlines() if x.startswith("| unchanged rerun"))
    assert "**10.2 s** wall" in line and "dataset rebuilt, report rebuilt" in line
    assert "dataset kept, report kept, run report `dataset: 'unchanged'`" in line
    assert line.endswith("| **met** |")
    rows["instant"]["rerun"]["after"]["rebuilt"] = {"dataset": True, "report": False}
    text = "\n".join(cost_markdown({"meta": {}, "rows": rows}))
    line = next(x for x in text.splitlines() if x.startswith("| unchanged rerun"))
    assert line.endswith("| **not met** |")


def test_cost_table_shows_each_step_on_the_scaled_archive() -> None:
    def steps(tables: float, dataset: int) -> dict[str, Any]:
        ok = {"exit": 0, "wall_s": 30.0, "peak_rss_mb": 150.0, "failure": None,
              "load_before": 0.5}  # fmt: skip
        failed = {**ok, "exit": 5, "failure": "dataset d not replaced: OutOfMemoryException"}
        return {"tables": {**ok, "peak_rss_mb": tables},
                "dataset": ok if dataset == 0 else failed, "report": ok}  # fmt: skip

    rows: dict[str, Any] = {"steps": {"copies": 34, "posts": 9996, "records": 227630,
                      "sides": {"before": steps(490.0, 5), "after": steps(160.0, 0)}}}  # fmt: skip
    line = next(x for x in cost_markdown({"meta": {}, "rows": rows}) if "9,996 posts" in x)
    assert "tables 490 MB, 30 s; dataset **exit 5** (dataset d not replaced" in line
    assert "tables 160 MB, 30 s; dataset 150 MB, 30 s; report 150 MB" in line
    assert line.endswith("| **met** |")
    rows["steps"]["sides"]["after"]["report"]["peak_rss_mb"] = 190.0
    line = next(x for x in cost_markdown({"meta": {}, "rows": rows}) if "9,996 posts" in x)
    assert line.endswith("| **not met** |")


def test_cost_table_shows_the_engines_own_floor_beside_the_arxiv_bound() -> None:
    side = {"wall_s": 76.6, "load_before": 1.0}
    rows: dict[str, Any] = {"arxiv_bound": {
        "facts": {"bound_s": 25.8}, "sides": {"before": {**side, "wall_s": 93.5}, "after": side},
        "floor": {"requests": 7500, "wall_s": 51.6, "cpu_s": 47.0, "load_before": 1.0},
    }}  # fmt: skip
    lines = cost_markdown({"meta": {}, "rows": rows})
    row = next(x for x in lines if x.startswith("| arXiv 0.5 s"))
    assert "93.5 s / 25.8 s = **3.62x**" in row and "76.6 s / 25.8 s = **2.97x**" in row
    assert row.endswith("| **not met** |")
    floor = lines[lines.index(row) + 1]
    assert "replaying the after side's 7,500 requests" in floor
    assert "51.6 s = **2.00x** the bound, 47.0 CPU s" in floor
    del rows["arxiv_bound"]["floor"]
    assert not any("replaying" in x for x in cost_markdown({"meta": {}, "rows": rows}))


def test_cost_table_names_the_command_of_each_kept_row_and_a_failed_floor() -> None:
    side = {"cpu_s": 144.4, "records_per_cpu_s": 46, "records": 6695, "load_before": 1.0}
    now = {"argv": "--rows instant", "when": "today", "sides": {"after": "bbb"}}
    earlier = {"argv": "--rows near_instant", "when": "yesterday", "sides": {"after": "aaa"}}
    floor = {"exit": 0, "cpu_s": 135.7, "wall_s": 145.7, "requests": 21727, "load_before": 1.0}
    rows: dict[str, Any] = {"near_instant": {"sides": {"after": side}, "floor": floor,
                                             "measured_by": earlier}}  # fmt: skip
    lines = cost_markdown({"meta": now, "rows": rows})
    assert (
        lines.count(
            "The `near_instant` row is kept from an earlier command (`--merge`): `python -m "
            "benchmarks.cost --rows near_instant` on yesterday; after = `aaa`."
        )
        == 1
    )
    row = next(x for x in lines if x.startswith("| backfill, near-instant"))
    assert "144.4 CPU s = **46** records/CPU-s; 1.06x the floor" in row
    assert row.endswith("| **not met** (≤ 1.5x the floor: met; 500 is above the floor's own 49) |")
    rows["near_instant"]["measured_by"] = now
    assert not any("kept from" in x for x in cost_markdown({"meta": now, "rows": rows}))
    rows["near_instant"]["floor"] = {**floor, "exit": 1}
    lines = cost_markdown({"meta": now, "rows": rows})
    assert "| the floor: `benchmarks/floor.py` **failed** (exit 1) | | | |" in lines
    row = next(x for x in lines if x.startswith("| backfill, near-instant"))
    assert "x the floor (" not in row and "records/CPU-s; " not in row
    assert row.endswith("| not measured |")
