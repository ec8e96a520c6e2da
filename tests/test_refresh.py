"""Scheduled refresh: state between runs, byte-stable snapshots, change feed, crash safety."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crawler.settings import OEMBED_CONCURRENCY_MAX
from tests.conftest import ROOT, SAMPLES, run_crawl, unobserved
from tests.helpers import wait_until
from tests.standin import Catalogue, Fault, StandIn, Tweet
from tests.test_hostile_input import _paper

pytestmark = pytest.mark.e2e  # real crawls in a subprocess

FAST = {"ARXIV_DELAY": 0.2, "RETRY_BACKOFF_BASE": 0.05}


def _copy_catalogue(catalogue: Catalogue) -> Catalogue:
    return catalogue.copy()  # with tweet details and citations, which tests change freely


def _source(folder: Path) -> tuple[str, str]:
    return ("-a", f"source={folder}")


@pytest.fixture
def digests(tmp_path: Path) -> Path:
    folder = tmp_path / "digests"
    folder.mkdir()
    for sample in SAMPLES:
        (folder / sample.name).write_bytes(sample.read_bytes())
    return folder


NEW_DIGEST = """---
title: Hot Papers 2021-07-20
date: 2021-07-21T08:00:00.Z
slug: "hot-papers-2021-07-20"
---

# 1. A New Paper

Ada Lovelace

- retweets: 5, favorites: 1 (07/21/2021 08:00:00)

- links: [abs](https://arxiv.org/abs/2107.10001) | [pdf](https://arxiv.org/pdf/2107.10001)
- [cs.LG](https://arxiv.org/list/cs.LG/recent)

Abstract one.

{tweets}

# 2. Another New Paper

Alan Turing

- retweets: 4, favorites: 1 (07/21/2021 08:00:00)

- links: [abs](https://arxiv.org/abs/2107.10002) | [pdf](https://arxiv.org/pdf/2107.10002)
- [cs.AI](https://arxiv.org/list/cs.AI/recent)

Abstract two.
"""


def _blockquote(tweet_id: str, handle: str = "ada") -> str:
    return (
        f'<blockquote class="twitter-tweet"><p lang="en" dir="ltr">Tweet {tweet_id}</p>&mdash; '
        f'Ada (@{handle}) <a href="https://twitter.com/{handle}/status/{tweet_id}?ref_src=twsrc%5Etfw">'
        'July 20, 2021</a></blockquote>\n<script async src="https://platform.twitter.com/widgets.js"'
        ' charset="utf-8"></script>\n'
    )


def test_unchanged_refresh_costs_nothing_and_is_byte_identical(
    tmp_path: Path, catalogue: Catalogue, digests: Path
) -> None:
    out = tmp_path / "snapshot.jsonl"
    with StandIn(catalogue) as server:
        first = run_crawl(out, server, *_source(digests), settings=FAST)
        # arXiv, S2, HF, oEmbed, details (OpenAlex is counted in tests/test_openalex_e2e.py:
        # 3 list requests here, and one lookup per paper they left out)
        counted = [r for r in server.log if r.service != "openalex"]
        assert len(counted) == 2 + 1 + 103 + 125 + 125
        lists = [r for r in server.requests_for("openalex") if r.path.endswith("/works")]
        assert len(lists) == 3
        server.reset_log()
        # The crawl itself, not the skip of an unchanged run (tests/test_unchanged_rerun.py):
        # every value reused from the state, none asked for.
        crawl_anyway = FAST | {"SKIP_UNCHANGED": False}
        second = run_crawl(out, server, *_source(digests), settings=crawl_anyway)
        assert server.log == []
    assert first.returncode == second.returncode == 0
    assert first.raw == second.raw and len(second.records) == 103
    keys = [(r["post"]["published_at"], r["post"]["slug"], r["rank"]) for r in second.records]
    assert keys == sorted(keys)
    report = json.loads((tmp_path / "snapshot.run.json").read_text())
    assert report["records"] == 103 and report["exit_status"] == 0
    assert report["changed_records"] == 0 and report["changes_file"] is None
    assert report["stats"]["state/arxiv/reused"] == 103
    assert all(r["schema_version"] == 3 and "run_id" not in r for r in second.records)


def test_a_new_digest_costs_one_arxiv_request_and_its_new_tweets(
    tmp_path: Path, catalogue: Catalogue, digests: Path
) -> None:
    cat = _copy_catalogue(catalogue)
    for arxiv_id in ("2107.10001", "2107.10002"):
        cat.add_paper(_paper(arxiv_id))
    new_ids = ["1417000000000000001", "1417000000000000002", "1417000000000000003"]
    for tweet_id in new_ids:
        cat.add_tweet(Tweet(tweet_id, "ada", "Ada", "en", f"Tweet {tweet_id}", "July 20, 2021"))
    known = next(iter(catalogue.tweets.values()))
    out = tmp_path / "snapshot.jsonl"
    with StandIn(cat) as server:
        run_crawl(out, server, *_source(digests), settings=FAST)
        tweets = "\n".join(_blockquote(t) for t in new_ids) + _blockquote(
            known.tweet_id, known.handle
        )
        (digests / "new.md").write_text(NEW_DIGEST.replace("{tweets}", tweets))
        server.reset_log()
        crawl = run_crawl(out, server, *_source(digests), settings=FAST)
        arxiv, oembed = server.requests_for("arxiv"), server.requests_for("oembed")
    assert len(crawl.records) == 105
    assert [r.params["id_list"] for r in arxiv] == [["2107.10001,2107.10002"]]
    assert sorted(r.params["url"][0].rsplit("/", 1)[1] for r in oembed) == new_ids
    new = [r for r in crawl.records if r["post"]["slug"] == "hot-papers-2021-07-20"]
    assert [r["arxiv"]["status"] for r in new] == ["ok", "ok"]
    assert crawl.records[-1]["post"]["slug"] == "hot-papers-2021-07-20"  # sorted by post date


def test_stale_and_failed_fetches_are_asked_again(
    tmp_path: Path, catalogue: Catalogue, digests: Path
) -> None:
    out = tmp_path / "snapshot.jsonl"
    with StandIn(catalogue) as server:
        server.faults.add(Fault("status:503", service="arxiv", times=100))
        first = run_crawl(out, server, *_source(digests), settings=FAST | {"RETRY_TIMES": 0})
        assert {r["arxiv"]["status"] for r in first.records} == {"error"}
        server.faults.clear()
        server.reset_log()
        second = run_crawl(out, server, *_source(digests), settings=FAST)
        assert len(server.requests_for("arxiv")) == 2  # errors are always re-tried
        assert server.requests_for("oembed") == []  # embeds are fresh
        assert {r["arxiv"]["status"] for r in second.records} == {"ok", "not_found"}
        server.reset_log()
        ttl = '{"arxiv/ok": 0, "arxiv/not_found": 1, "embed/ok": 30, "embed/deleted": 180, "embed/protected": 30}'
        run_crawl(out, server, *_source(digests), settings=FAST | {"STATE_TTL_DAYS": ttl})
        asked = [i for r in server.requests_for("arxiv") for i in r.params["id_list"][0].split(",")]
        assert sorted(asked) == sorted(catalogue.papers)  # only the ok ones went stale
        server.reset_log()
        run_crawl(out, server, *_source(digests), "-a", "refresh=tweets", settings=FAST)
        assert server.requests_for("arxiv") == [] and len(server.requests_for("oembed")) == 125
        server.reset_log()
        snapshot = out.read_bytes()
        bad = run_crawl(out, server, *_source(digests), "-a", "refresh=sometimes", settings=FAST)
        assert server.log == []
        assert out.read_bytes() == snapshot  # a refused run never replaces the snapshot
    assert bad.returncode == 1
    assert (
        "refresh=sometimes: must be one of none, all, errors, arxiv, impact, semantic_scholar, "
        "hf, openalex, tweets, embeds, details" in bad.log
    )
    assert "Traceback" not in bad.log


def test_change_feed_lists_records_whose_enrichment_changed(
    tmp_path: Path, catalogue: Catalogue, digests: Path
) -> None:
    cat = _copy_catalogue(catalogue)
    out = tmp_path / "snapshot.jsonl"
    with StandIn(cat) as server:
        first = run_crawl(out, server, *_source(digests), settings=FAST)
        paper_id = first.records[0]["arxiv_id"]
        old = cat.papers[paper_id]
        cat.papers[paper_id] = dataclasses.replace(
            old, latest_version=old.latest_version + 1, journal_ref="Nature 600, 1 (2021)"
        )
        tweet_id = next(
            t["id"] for r in first.records for t in r["tweets"] if t["embed"]["status"] == "ok"
        )
        cat.tweets[tweet_id] = dataclasses.replace(cat.tweets[tweet_id], status="deleted")
        second = run_crawl(out, server, *_source(digests), "-a", "refresh=all", settings=FAST)
    report = json.loads((tmp_path / "snapshot.run.json").read_text())
    assert report["changes_file"] and second.returncode == 0
    changes = [json.loads(line) for line in Path(report["changes_file"]).read_text().splitlines()]
    by_key = {(c["slug"], c["rank"]): c for c in changes}
    first_record = first.records[0]
    change = by_key[(first_record["post"]["slug"], first_record["rank"])]
    (arxiv_change,) = [c for c in change["changes"] if c["what"] == "arxiv"]
    assert arxiv_change["fields"]["version"] == {
        "before": old.latest_version, "after": old.latest_version + 1,
    }  # fmt: skip
    assert arxiv_change["fields"]["journal_ref"] == {
        "before": None,
        "after": "Nature 600, 1 (2021)",
    }
    tweet_changes = [c for ch in changes for c in ch["changes"] if c["what"] == "embed"]
    assert tweet_changes and all(c["key"] == tweet_id for c in tweet_changes)
    assert tweet_changes[0]["fields"]["status"] == {"before": "ok", "after": "deleted"}
    assert report["changed_records"] == len(changes) >= 1
    assert Path(report["changes_file"]).parent == tmp_path / "snapshot.changes"


def test_kill_9_leaves_the_previous_snapshot_and_the_next_run_completes(
    tmp_path: Path, catalogue: Catalogue, digests: Path
) -> None:
    out = tmp_path / "snapshot.jsonl"
    state = tmp_path / "state.sqlite3"
    one = digests / SAMPLES[0].name
    with StandIn(catalogue) as server:
        first = run_crawl(out, server, "-a", f"source={one}", settings=FAST)
        before = out.read_bytes()
        server.latency.update({"oembed": 0.2, "arxiv": 0.2})
        server.reset_log()
        cmd = [
            sys.executable, "-m", "scrapy", "crawl", "digests", "-O", str(out), "-a",
            f"source={digests}", "-s", f"STATE_DB={state}", "-s", "ARXIV_DELAY=0.2",
            *[arg for name, url in server.settings.items() for arg in ("-s", f"{name}={url}")],
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_until(
            lambda: len(server.requests_for("oembed")) >= 30 or proc.poll() is not None,
            "the crawl to be answered 30 oEmbed requests",
        )
        assert proc.poll() is None, "the crawl ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        killed_at = time.monotonic()  # the stand-in's clock: every later request is a new run's
        asked_by_killed = len(server.requests_for("oembed"))
        assert 30 <= asked_by_killed < 125 - 34  # really killed mid-run
        assert out.read_bytes() == before
        with sqlite3.connect(state) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            stored = db.execute("SELECT COUNT(*) FROM fetched WHERE kind = 'embed'").fetchone()[0]
        # All but the answers still on their way to the database were committed: at most one
        # per request the runner may have under way (OEMBED_CONCURRENCY_MAX).
        assert stored >= 34 + asked_by_killed - OEMBED_CONCURRENCY_MAX
        server.latency.update({"oembed": 0.0, "arxiv": 0.0})
        after = run_crawl(out, server, *_source(digests), settings=FAST)
        stats = json.loads((tmp_path / "snapshot.run.json").read_text())["stats"]
        clean = run_crawl(
            tmp_path / "clean" / "out.jsonl", server, *_source(digests), settings=FAST
        )
        # Answers to the killed run's last requests may be logged late: they started earlier.
        asked_since = [r for r in server.requests_for("oembed") if r.start > killed_at]
    assert after.returncode == 0 and len(after.records) == 103
    # The next run asks only for what neither the first run nor the killed one stored, and for
    # one key the first run stored when a tweet's "not found" comes before any good answer: the
    # probe that tells a deleted tweet from a service answering 404 for everything (runner.py).
    # The probe's key is stored and fresh here (nothing is stale), so no entry wants it later.
    probes = stats.get("oembed/probes", 0)
    assert probes in (0, 1) and stats.get("oembed/probe_answers_used", 0) == 0
    assert len(asked_since) - 125 == 125 - stored + probes
    # Complete, and the same as a crawl from scratch but for when each tweet was observed.
    assert unobserved(after.records) == unobserved(clean.records)
    assert first.records == [r for r in after.records if r["post"]["source"].endswith(one.name)]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_run_cut_short_keeps_the_previous_snapshot(
    tmp_path: Path, catalogue: Catalogue, digests: Path
) -> None:
    out = tmp_path / "snapshot.jsonl"
    with StandIn(catalogue) as server:
        run_crawl(out, server, *_source(digests), settings=FAST)
        before = out.read_bytes()
        cut = run_crawl(
            out, server, *_source(digests), "-a", "refresh=all",
            settings=FAST | {"CLOSESPIDER_ITEMCOUNT": 5},
        )  # fmt: skip
    assert cut.returncode == 1
    assert out.read_bytes() == before
    assert "not replaced: the crawl ended early (closespider_itemcount)" in cut.log
    report = json.loads((tmp_path / "snapshot.run.json").read_text())
    assert (report["finish_reason"], report["exit_status"]) == ("closespider_itemcount", 1)
