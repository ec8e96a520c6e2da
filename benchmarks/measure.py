"""Measuring: run the stand-in, the crawler and the peer, and collect the figures of one row.

Every number comes from outside the crawler where possible: wall time and RSS from the child
process, requests from the stand-in's own log, so the crawler's stats cannot flatter it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from benchmarks import corpus
from benchmarks.facts import bound, corpus_facts
from benchmarks.model import ROOT, Config, Row
from benchmarks.services import service_figures

if TYPE_CHECKING:
    from tests.standin import StandIn


def log(msg: str) -> None:
    """Progress on stdout, flushed: a long run is watched live."""
    print(msg, flush=True)


@dataclass
class Measure:
    wall_s: float
    peak_rss_mb: float
    rss_samples: list[tuple[float, float]] = field(default_factory=list)
    returncode: int = 0


# --- measuring a child process ------------------------------------------------------------------
def measure(cmd: list[str], *, env: dict[str, str], stdout: Path, stderr: Path) -> Measure:
    """Run ``cmd``: wall time, and peak RSS of the process tree polled every 0.1 s with psutil.

    Not ``ru_maxrss``: the child is forked from this process before it execs, and the kernel
    counts the harness's own resident pages (the stand-in's catalogue) at that moment as the
    child's maximum.
    """
    samples: list[tuple[float, float]] = []
    start = time.monotonic()
    with stdout.open("wb") as out, stderr.open("wb") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=err)
        done = threading.Event()

        def poll() -> None:
            ps = psutil.Process(proc.pid)
            while not done.is_set():
                with contextlib.suppress(psutil.Error):
                    rss = ps.memory_info().rss + sum(
                        c.memory_info().rss for c in ps.children(recursive=True)
                    )
                    samples.append((round(time.monotonic() - start, 2), rss / 2**20))
                done.wait(0.1)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        proc.wait()
        wall = time.monotonic() - start
        done.set()
        poller.join()
    peak = max((s[1] for s in samples), default=0.0)
    return Measure(wall, peak, samples, proc.returncode)


def fresh(path: Path) -> Path:
    """``path`` with no state left from an earlier run (the database and its -wal/-shm files)."""
    for stale in path.parent.glob(path.name + "*"):
        stale.unlink()
    return path


def child_env() -> dict[str, str]:
    """The children import ``crawler``, ``tests`` and ``benchmarks`` from this checkout."""
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def crawl_cmd(
    source: Path, out: Path, settings: dict[str, object], profile: Path | None = None
) -> list[str]:
    """``scrapy crawl digests`` as a user runs it, optionally under cProfile."""
    cmd = [sys.executable]
    if profile is not None:
        cmd += ["-m", "cProfile", "-o", str(profile)]
    cmd += ["-m", "scrapy", "crawl", "digests", "-a", f"source={source}", "-O", str(out)]
    for name, value in settings.items():
        cmd += ["-s", f"{name}={value}"]
    return cmd


def endpoint_settings(standin: StandIn) -> dict[str, object]:
    """Point every upstream the crawler calls at the stand-in (one line per new service)."""
    return dict(standin.settings)


_STAT = re.compile(r"'(?P<k>[a-z_/]+(?:/[a-z_]+)*)': (?P<v>[0-9.]+)")


def scrapy_stats(log: str) -> dict[str, float]:
    """The numeric entries of Scrapy's final stats dump."""
    at = log.rfind("Dumping Scrapy stats")
    return {m["k"]: float(m["v"]) for m in _STAT.finditer(log[at:])} if at >= 0 else {}


def count_lines(path: Path) -> int:
    """Records in a JSON Lines output, without loading a 10,000-post file."""
    if not path.exists():
        return 0
    n = 0
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            n += block.count(b"\n")
    return n


def work_corpus(work: Path, posts: int, seed: int) -> Path:
    """The corpus of ``posts`` posts in ``work``, generated once and reused by later runs."""
    folder = work / f"corpus-{posts}-seed{seed}"
    if not folder.exists():
        t = time.monotonic()
        corpus.generate(posts, folder, seed=seed)
        log(f"  generated {posts} posts in {time.monotonic() - t:.1f}s -> {folder}")
    return folder


# --- one run ------------------------------------------------------------------------------------
def run_one(posts: int, cfg: Config, work: Path, *, seed: int, faults: float) -> Row:
    """Crawl a corpus of ``posts`` posts, then run the peer on (part of) it: one row."""
    from tests.standin import Catalogue, StandIn

    folder = work_corpus(work, posts, seed)
    row = _new_row(posts, cfg, folder, faults)
    t = time.monotonic()
    catalogue = Catalogue.from_digests(sorted(folder.glob("*.txt")), seed=seed)
    log(f"  catalogue: {len(catalogue.papers)} papers in {time.monotonic() - t:.1f}s")
    latency = {"arxiv": cfg.arxiv_latency, "oembed": cfg.oembed_latency}
    with StandIn(catalogue, latency=latency) as standin:
        if faults:
            standin.faults.mixed(share=faults, repeat=1)
        _crawl(row, cfg, folder, work, standin)
        standin.reset_log()
        _peer(row, cfg, folder, work, standin)
    return row


def _new_row(posts: int, cfg: Config, folder: Path, faults: float) -> Row:
    """The row's corpus facts and bound, before anything runs."""
    facts = corpus_facts(folder)
    log(
        f"  {facts['entries']} entries, {facts['tweet_embeds']} embeds, "
        f"{facts['distinct_ids']} IDs, {facts['distinct_tweets']} tweets; "
        f"parse {facts['parse_entries_per_s']:.0f} entries/s"
    )
    b, b_arxiv, b_oembed = bound(int(facts["distinct_ids"]), int(facts["distinct_tweets"]), cfg)
    return Row(
        mode=cfg.label,
        posts=posts,
        entries=int(facts["entries"]),
        tweet_embeds=int(facts["tweet_embeds"]),
        distinct_ids=int(facts["distinct_ids"]),
        distinct_tweets=int(facts["distinct_tweets"]),
        arxiv_delay=cfg.arxiv_delay,
        arxiv_margin=cfg.arxiv_margin,
        arxiv_latency=cfg.arxiv_latency,
        oembed_latency=cfg.oembed_latency,
        bound_s=b,
        bound_arxiv_s=b_arxiv,
        bound_oembed_s=b_oembed,
        parse_entries_per_s=facts["parse_entries_per_s"],
        corpus_mb=facts["bytes"] / 2**20,
        faults=faults,
    )


def _crawl(row: Row, cfg: Config, folder: Path, work: Path, standin: StandIn) -> None:
    """The crawler's figures, from its process, its stats dump and the stand-in's log."""
    settings: dict[str, object] = endpoint_settings(standin) | {
        "ARXIV_DELAY": cfg.arxiv_delay,
        "LOG_LEVEL": "INFO",
        # A fresh state file per run, as a first crawl sees it: nothing to reuse, nothing
        # written under output/ (the default path), and the crawler's bounded-memory path on.
        "STATE_DB": fresh(work / f"state-{cfg.label}-{row.posts}.sqlite3"),
    }
    if cfg.arxiv_margin is not None:
        settings["ARXIV_DELAY_MARGIN"] = cfg.arxiv_margin
    out = work / f"crawl-{cfg.label}-{row.posts}.jsonl"
    logs = work / f"crawl-{cfg.label}-{row.posts}.log"
    m = measure(
        crawl_cmd(folder, out, settings),
        env=child_env(),
        stdout=work / "crawl.stdout",
        stderr=logs,
    )
    row.crawler_wall_s = m.wall_s
    row.crawler_rss_mb = m.peak_rss_mb
    step = max(1, len(m.rss_samples) // 60)
    row.crawler_rss_timeline = m.rss_samples[::step] + m.rss_samples[-1:]
    row.crawler_records = count_lines(out)
    row.crawler_services = service_figures(standin.log)
    row.crawler_arxiv_requests = len(standin.requests_for("arxiv"))
    row.crawler_oembed_requests = len(standin.requests_for("oembed"))
    stats = scrapy_stats(logs.read_text("utf-8", "replace"))
    keep = ("elapsed_time_seconds", "arxiv/batches", "oembed/tweets_requested")
    row.crawler_stats = {k: v for k, v in stats.items() if k in keep or k.startswith("records")}
    row.crawler_stats["min_arxiv_gap_s"] = round(standin.min_start_gap("arxiv"), 3)
    for name, figures in row.crawler_services.items():
        row.crawler_stats[f"{name}_span_s"] = figures["span_s"]
    if m.returncode:
        log(f"  !! crawler exited {m.returncode}; see {logs}")
    with contextlib.suppress(OSError):
        out.unlink()  # big at 10,000 posts; the count is kept
    log(
        f"  crawler: {m.wall_s:.1f}s (bound {row.bound_s:.1f}s, x{row.ratio:.2f}), "
        f"{row.crawler_records} records, {row.crawler_arxiv_requests} arXiv + "
        f"{row.crawler_oembed_requests} oEmbed requests, peak RSS {m.peak_rss_mb:.0f} MB"
    )
    for name, f in row.crawler_services.items():
        log(
            f"    {name}: {f['requests']} requests, {f['throttled']} throttled, "
            f"peak concurrency {f['peak_concurrency']}, mean latency "
            + (f"{f['mean_latency_s'] * 1000:.0f} ms" if f["mean_latency_s"] is not None else "-")
        )


def _peer(row: Row, cfg: Config, folder: Path, work: Path, standin: StandIn) -> None:
    """The peer on at most ``cfg.peer_max_posts`` posts, extrapolated by entries beyond that."""
    peer_posts = min(row.posts, cfg.peer_max_posts)
    if peer_posts <= 0:
        return
    cmd = [
        sys.executable, "-m", "benchmarks.peer", "--source", str(folder),
        "--out", str(work / f"peer-{cfg.label}-{row.posts}.jsonl"),
        "--arxiv-url", standin.arxiv_url, "--oembed-url", standin.oembed_url,
        "--delay", str(cfg.arxiv_delay), "--max-posts", str(peer_posts),
    ]  # fmt: skip
    pm = measure(cmd, env=child_env(), stdout=work / "peer.stdout", stderr=work / "peer.log")
    report = json.loads((work / "peer.stdout").read_text() or "{}")
    loop = float(report.get("wall_s", pm.wall_s))
    startup = max(0.0, pm.wall_s - loop)
    scale = row.entries / max(1, int(report.get("entries", 0)))
    row.peer_posts = peer_posts
    row.peer_entries = int(report.get("entries", 0))
    row.peer_wall_measured_s = pm.wall_s
    row.peer_extrapolated = peer_posts < row.posts
    row.peer_wall_s = startup + loop * scale if row.peer_extrapolated else pm.wall_s
    row.peer_arxiv_requests = len(standin.requests_for("arxiv")) * scale
    row.peer_oembed_requests = len(standin.requests_for("oembed")) * scale
    row.peer_rss_mb = pm.peak_rss_mb
    log(
        f"  peer: {pm.wall_s:.1f}s on {peer_posts} posts"
        + (f" -> {row.peer_wall_s:.0f}s extrapolated" if row.peer_extrapolated else "")
    )
