"""The steps row: the scaled archive (``benchmarks.scaled``) is the crawler's own kind of snapshot
with keys no two copies share, its steps run as the crawl's supervisor runs them
(``benchmarks.steps``, which measures with psutil: the bench extra), and the cost table meets the
goal only on every step measured and succeeded."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from benchmarks.baseline import Code
from benchmarks.cost_report import cost_markdown
from benchmarks.scaled import scale_snapshot
from crawler.export import analysis
from crawler.export.contract import sort_key
from crawler.export.dataset import write_dataset
from crawler.export.files import posts_file
from crawler.export.jsonlines import dumps
from tests.conftest import ROOT
from tests.records_v2 import (
    details_ok,
    entry,
    post,
    record,
    small_corpus,
    tweet,
    write_snapshot,
)

# Papers whose month and number meet across years (2012.00566 / 2112.00566), old-style ones too,
# and one old-style ID from 1991: copy 31 used to give hep-th/0501001 the year 91.
PAPERS = ("2012.00566", "2112.00566", "hep-th/9901001", "hep-th/0001001", "hep-th/9101001",
          "hep-th/0501001", "math.AG/0101001")  # fmt: skip
STEPS = analysis.STEPS
# A pre-snowflake ID (Jack's first tweet) and one from 2025-12-14, 2e18 above it.
TWEETS = ("20", str(2 * 10**18 + 20), "1405203418543595521")


def _archive(tmp_path: Path) -> Path:
    the_post = post("hot-papers-2021-06-18", "2021-06-18T09:00:00Z")
    records = []
    for rank, paper in enumerate(PAPERS, 1):
        tweets = [tweet(TWEETS[rank % len(TWEETS)], details=details_ok(5))]
        r = record(entry(the_post, rank, paper, tweets=tweets))
        r["tweets"][0]["linked_arxiv_ids"] = [paper, PAPERS[0]]
        r["tweets"][0]["links_paper"] = True
        r["tweets"][0]["details"]["quoted_tweet_id"] = TWEETS[(rank + 1) % len(TWEETS)]
        records.append(r)
    snapshot = write_snapshot(tmp_path / "d.jsonl", records)
    posts_file(snapshot).write_bytes(json.dumps(records[0]["post"]).encode() + b"\n")
    return snapshot


def _copy_of(r: dict[str, Any]) -> int:
    prefix = r["post"]["source"].split("_", 1)[0]
    return int(prefix[1:]) if prefix.startswith("x") and prefix[1:].isdigit() else 0


def test_no_two_copies_and_no_two_papers_of_one_copy_share_a_key(tmp_path: Path) -> None:
    """A copy's papers and tweets are its own: one ID per original in each copy, met by no other
    copy and by no other paper of the same copy, and every reference to them follows."""
    copies = 39
    out = tmp_path / "scaled"
    out.mkdir()
    scale_snapshot(_archive(tmp_path), out, copies)
    scaled = [json.loads(line) for line in (out / "digests.jsonl").read_bytes().splitlines()]
    named: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    tweet_ids: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for r in scaled:
        copy, original = _copy_of(r), PAPERS[r["rank"] - 1]
        named[copy][original].add(r["arxiv_id"])
        assert r["arxiv"]["versioned_id"] == f"{r['arxiv_id']}v1"
        t = r["tweets"][0]
        assert t["linked_arxiv_ids"][0] == r["arxiv_id"]
        named[copy][PAPERS[0]].add(t["linked_arxiv_ids"][1])
        tweet_ids[copy][TWEETS[r["rank"] % len(TWEETS)]].add(t["id"])
        tweet_ids[copy][TWEETS[(r["rank"] + 1) % len(TWEETS)]].add(t["details"]["quoted_tweet_id"])
    assert sorted(named) == list(range(copies))
    every_paper = [next(iter(ids)) for c in named.values() for ids in c.values()]
    assert all(len(ids) == 1 for c in named.values() for ids in c.values())
    assert len(set(every_paper)) == copies * len(PAPERS)
    every_tweet = [next(iter(ids)) for c in tweet_ids.values() for ids in c.values()]
    assert all(len(ids) == 1 for c in tweet_ids.values() for ids in c.values())
    assert len(set(every_tweet)) == copies * len(TWEETS)
    assert all(len(t) <= 20 for t in every_tweet)
    summary = write_dataset(out / "digests.jsonl", out / "d.dataset")  # every record valid
    assert summary.rows["papers"] == copies * len(PAPERS)
    assert summary.rows["tweets"] == copies * len(TWEETS)


def test_scaled_archive_is_written_and_ordered_as_the_crawler_writes_it(tmp_path: Path) -> None:
    """The crawler's own line format, and its order: snapshot key, then (entries of one rank
    in a damaged post) the line's bytes."""
    records = small_corpus()
    for r in list(records):  # each entry again under the same rank: equal sort keys
        twin = json.loads(json.dumps(r))
        twin["entry_id"] = f"{int(r['entry_id'], 16) ^ 1:016x}"
        twin["digest"]["title"] = "Another paper, numbered alike"
        records.append(twin)
    out, _ = _scaled(tmp_path, records, 5)
    lines = (out / "digests.jsonl").read_bytes().splitlines(keepends=True)
    assert len(lines) == 5 * len(records)
    assert all(dumps(json.loads(line)) == line for line in lines)
    assert lines == sorted(lines, key=lambda line: (sort_key(json.loads(line)), line))


def _scaled_job(tmp_path: Path) -> tuple[Path, Path]:
    from benchmarks.steps import write_job

    out, facts = _scaled(tmp_path, small_corpus(), 2)
    side = tmp_path / "after"
    run_report = {"run_id": "r", "exit_status": 0, "records": 0, "problems": [], "stats": {}}
    return write_job(out / "digests.jsonl", side, run_report, facts["records"]), side


def test_steps_run_as_the_supervisor_runs_them(tmp_path: Path) -> None:
    """The job carries the posts list as the crawl's does, every step runs in the supervisor's
    order, and a failed step ends the run there: the steps after it are not run (the
    supervisor never runs them), not even on a handoff an earlier run left behind."""
    pytest.importorskip("psutil")
    from benchmarks import steps

    job_file, side = _scaled_job(tmp_path)
    job = json.loads(job_file.read_text("utf-8"))
    sidecar = posts_file(Path(job["snapshot"])).read_bytes().splitlines()
    assert job["posts"] == [json.loads(line) for line in sidecar]
    code = Code(label="after", rev="test", root=ROOT, python=sys.executable)
    assert steps.STEPS == analysis.STEPS
    done = steps.run_steps(code, job_file, side)
    assert [done[s]["exit"] for s in STEPS] == [0, 0, 0, 0]
    assert all(done[s]["peak_rss_mb"] > 0 and done[s]["failure"] is None for s in STEPS)
    with Path(job["snapshot"]).open("ab") as f:
        f.write(b"{not json\n")
    again = steps.run_steps(code, job_file, side)
    assert again["tables"]["exit"] == analysis.FAILED
    assert "not JSON" in again["tables"]["failure"]
    assert [again[s] for s in STEPS[1:]] == [None, None, None]


def test_each_step_gets_the_environment_the_supervisor_gives_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The supervisor's own environment for a step, with the side's checkout on the path: an
    allocator chosen in the environment is kept, as the supervisor keeps it."""
    pytest.importorskip("psutil")
    from benchmarks.steps import step_env

    for chosen in ("mimalloc", None):
        if chosen is None:
            monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
        else:
            monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", chosen)
        env = step_env(Path("/elsewhere"))
        assert env["ARROW_DEFAULT_MEMORY_POOL"] == (chosen or "system")
        assert env["PYTHONPATH"] == "/elsewhere"
        assert {k: v for k, v in env.items() if k != "PYTHONPATH"} == {
            k: v for k, v in analysis.step_env().items() if k != "PYTHONPATH"
        }


def _steps_line(after: dict[str, Any]) -> str:
    ok = {"exit": 0, "wall_s": 30.0, "peak_rss_mb": 150.0, "failure": None, "load_before": 0.5}
    before = {step: ok for step in STEPS}
    row = {"copies": 34, "posts": 9996, "records": 227630, "steps": list(STEPS),
           "sides": {"before": before, "after": after}}  # fmt: skip
    return next(x for x in cost_markdown({"meta": {}, "rows": {"steps": row}}) if "9,996" in x)


def test_cost_table_meets_the_steps_goal_only_on_every_step_measured() -> None:
    ok = {"exit": 0, "wall_s": 30.0, "peak_rss_mb": 150.0, "failure": None, "load_before": 0.5}
    failed = {**ok, "exit": 5, "failure": "dataset d not replaced: OutOfMemoryException"}
    assert _steps_line({s: ok for s in STEPS}).endswith("| **met** |")
    not_run = _steps_line({"tables": ok, "dataset": failed, "report_data": None, "report": None})
    assert "dataset **exit 5** (dataset d not replaced" in not_run and "report not run" in not_run
    assert "report_data not run" in not_run
    assert not_run.endswith("| **not met** |")
    missing = _steps_line({"tables": ok, "dataset": ok})  # a cost.json without the report step
    assert "report not run" in missing and missing.endswith("| **not met** |")
    unmeasured = _steps_line({**{s: ok for s in STEPS}, "report": {**ok, "peak_rss_mb": 0.0}})
    assert unmeasured.endswith("| **not met** |")


def _scaled(
    tmp_path: Path, records: list[dict[str, Any]], copies: int
) -> tuple[Path, dict[str, int]]:
    """``records`` as a snapshot with its posts list, copied ``copies`` times into ./scaled."""
    snapshot = write_snapshot(tmp_path / "d.jsonl", records)
    posts = {r["post"]["id"]: r["post"] for r in records}
    posts_file(snapshot).write_text("".join(json.dumps(p) + "\n" for p in posts.values()))
    out = tmp_path / "scaled"
    out.mkdir()
    return out, scale_snapshot(snapshot, out, copies)


def test_scaled_snapshot_has_fresh_keys_in_snapshot_order(tmp_path: Path) -> None:
    """Each copy of the archive brings entries, posts, papers and tweets of its own, in the
    order the crawler writes, so the steps see an archive ``copies`` times the size."""
    records = small_corpus()
    out, facts = _scaled(tmp_path, records, 3)
    posts = {r["post"]["id"] for r in records}
    scaled = [json.loads(line) for line in (out / "digests.jsonl").read_text().splitlines()]
    assert (facts["records"], facts["posts"]) == (3 * len(records), 3 * len(posts))
    assert [sort_key(r) for r in scaled] == sorted(sort_key(r) for r in scaled)
    assert len({r["entry_id"] for r in scaled}) == len(scaled)
    papers = {r["arxiv_id"] for r in records if r["arxiv_id"]}
    assert len({r["arxiv_id"] for r in scaled if r["arxiv_id"]}) == 3 * len(papers)
    tweets = {t["id"] for r in records for t in r["tweets"]}
    assert len({t["id"] for r in scaled for t in r["tweets"]}) == 3 * len(tweets)
    summary = write_dataset(out / "digests.jsonl", out / "d.dataset")  # every key holds
    assert summary.rows["entries"] == len(scaled) and summary.rows["posts"] == 3 * len(posts)


def test_each_side_runs_the_steps_its_own_supervisor_has(tmp_path: Path) -> None:
    """A baseline from before ``report_data`` would take that name for its DuckDB step and run
    it again on the dataset already in: each side is asked for its own steps, and the table
    shows each side's."""
    pytest.importorskip("psutil")
    from benchmarks.steps import steps_of

    old = tmp_path / "old"
    (old / "crawler" / "export").mkdir(parents=True)
    (old / "crawler" / "__init__.py").write_text("")
    (old / "crawler" / "export" / "__init__.py").write_text("")
    (old / "crawler" / "export" / "analysis.py").write_text(
        "STEPS = ('tables', 'dataset', 'report')\n"
    )
    assert steps_of(Code(label="before", rev="old", root=old, python=sys.executable)) == (
        "tables", "dataset", "report",
    )  # fmt: skip
    assert steps_of(Code(label="after", rev="new", root=ROOT, python=sys.executable)) == STEPS
    ok = {"exit": 0, "wall_s": 30.0, "peak_rss_mb": 150.0, "failure": None, "load_before": 0.5}
    before = {"steps": ["tables", "dataset", "report"], "tables": ok, "dataset": ok, "report": ok}
    line = _steps_line({"steps": list(STEPS), **{s: ok for s in STEPS}} | {"rev": "x"})
    row = {"copies": 34, "posts": 9996, "records": 227630, "steps": list(STEPS),
           "sides": {"before": before, "after": {"steps": list(STEPS), **{s: ok for s in STEPS}}}}  # fmt: skip
    shown = next(x for x in cost_markdown({"meta": {}, "rows": {"steps": row}}) if "9,996" in x)
    before_cell = shown.split(" | ")[1]
    assert "report_data" not in before_cell and "report 150 MB" in before_cell
    assert "report_data 150 MB" in shown.split(" | ")[2]
    assert line.endswith("| **met** |") and shown.endswith("| **met** |")


def test_each_side_gets_its_job_in_the_layout_its_crawl_writes(tmp_path: Path) -> None:
    """This checkout's crawl hands the posts list over beside the job (``analysis.write_job``);
    a revision from before that reads it from the job, and is given it there."""
    pytest.importorskip("psutil")
    from benchmarks import steps

    code = Code(label="after", rev="test", root=ROOT, python=sys.executable)
    assert steps.splits_job(code) is True
    out, facts = _scaled(tmp_path, small_corpus(), 2)
    run_report = {"run_id": "r", "exit_status": 0, "records": 0, "problems": [], "stats": {}}
    inline = steps.write_job(out / "digests.jsonl", tmp_path / "a", run_report, facts["records"])
    split = steps.write_job(
        out / "digests.jsonl", tmp_path / "b", run_report, facts["records"], split=True
    )
    whole = json.loads(inline.read_text("utf-8"))
    assert "posts" not in json.loads(split.read_text("utf-8"))
    assert json.loads(split.with_name("posts.json").read_text("utf-8")) == whole["posts"]
    assert json.loads(split.with_name("changes.json").read_text("utf-8")) == whole["changes"]
