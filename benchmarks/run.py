"""The benchmark harness: one command, every number in ``benchmarks/results/``.

    python -m benchmarks.run [--quick] [--sizes 10,1000,10000] [--real-sizes 10,175]
                             [--arxiv-delay 3.0] [--arxiv-latency 0.3 --oembed-latency 0.15]
                             [--peer-max-posts N] [--faults SHARE] [--merge]

Two kinds of run, both against the local stand-in (``tests/standin``) over real HTTP:

* **real** (``--real-sizes``): arXiv's real delay (``--arxiv-delay``, 3 s) and realistic
  latencies. This is where "within 1.2x of the politeness bound" is checked.
* **scaled** (``--sizes``): the arXiv delay and both latencies scaled down (``--scaled-*``) so
  that big corpora are bound by the crawler's CPU, not by waits (10,000 posts: ~21 min at
  ~180 records/s); these rows measure throughput and memory, and say so.

For each run: generate a corpus (``benchmarks.corpus``) in a temp dir, build the stand-in's
catalogue from it, crawl it with ``python -m scrapy crawl digests`` as a subprocess, and measure
wall time, requests per service (the stand-in's log), records/s and peak RSS (the child's process
tree polled every 0.1 s with psutil). Then the peer (``benchmarks.peer``) runs on the
same stand-in, on at most ``--peer-max-posts`` posts, and its wall time and requests are
extrapolated linearly by entries when it saw only part of the corpus (marked "extrap.").

The politeness lower bound of a run: arXiv needs B = ceil(distinct IDs / ARXIV_BATCH_SIZE)
requests, one at a time and ARXIV_DELAY apart, so (B-1) * max(delay, latency) + latency;
oEmbed needs T requests (distinct tweets) at concurrency C, so ceil(T/C) * latency. The two
overlap, so the bound is the larger.

Plus a parse-speed micro benchmark (entries/s of ``parse_digest_bytes`` on one core) and a
cProfile of a crawl with near-zero latencies, summarised by phase.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from benchmarks import corpus

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BATCH_SIZE = 100  # crawler.settings.ARXIV_BATCH_SIZE
OEMBED_CONCURRENCY = 4  # crawler.settings.OEMBED_CONCURRENCY
YEAR_POSTS = 175  # ~4,000 entries / ~5,000 tweet embeds: a year of digests by upstreams.md


@dataclass
class Config:
    label: str  # "real" or "scaled"
    arxiv_delay: float
    arxiv_margin: float | None  # None: the crawler's default ARXIV_DELAY_MARGIN
    arxiv_latency: float
    oembed_latency: float
    peer_max_posts: int


@dataclass
class Measure:
    wall_s: float
    peak_rss_mb: float
    rss_samples: list[tuple[float, float]] = field(default_factory=list)
    returncode: int = 0


@dataclass
class Row:
    mode: str
    posts: int
    entries: int
    tweet_embeds: int
    distinct_ids: int
    distinct_tweets: int
    arxiv_delay: float
    arxiv_margin: float | None
    arxiv_latency: float
    oembed_latency: float
    bound_s: float
    bound_arxiv_s: float
    bound_oembed_s: float
    crawler_wall_s: float = 0.0
    crawler_rss_mb: float = 0.0
    crawler_records: int = 0
    crawler_arxiv_requests: int = 0
    crawler_oembed_requests: int = 0
    crawler_stats: dict[str, Any] = field(default_factory=dict)
    crawler_rss_timeline: list[tuple[float, float]] = field(default_factory=list)
    peer_posts: int = 0
    peer_entries: int = 0
    peer_wall_measured_s: float = 0.0
    peer_wall_s: float = 0.0
    peer_extrapolated: bool = False
    peer_arxiv_requests: float = 0
    peer_oembed_requests: float = 0
    peer_rss_mb: float = 0.0
    parse_entries_per_s: float = 0.0
    corpus_mb: float = 0.0
    faults: float = 0.0

    @property
    def ratio(self) -> float:
        return self.crawler_wall_s / self.bound_s if self.bound_s else math.nan

    @property
    def speedup(self) -> float:
        return self.peer_wall_s / self.crawler_wall_s if self.crawler_wall_s else math.nan


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
    for stale in path.parent.glob(path.name + "*"):  # the database and its -wal/-shm files
        stale.unlink()
    return path


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def crawl_cmd(source: Path, out: Path, settings: dict[str, object], profile: Path | None = None):
    cmd = [sys.executable]
    if profile is not None:
        cmd += ["-m", "cProfile", "-o", str(profile)]
    cmd += ["-m", "scrapy", "crawl", "digests", "-a", f"source={source}", "-O", str(out)]
    for name, value in settings.items():
        cmd += ["-s", f"{name}={value}"]
    return cmd


_STAT = re.compile(r"'(?P<k>[a-z_/]+(?:/[a-z_]+)*)': (?P<v>[0-9.]+)")


def scrapy_stats(log: str) -> dict[str, float]:
    """The numeric entries of Scrapy's final stats dump."""
    at = log.rfind("Dumping Scrapy stats")
    return {m["k"]: float(m["v"]) for m in _STAT.finditer(log[at:])} if at >= 0 else {}


def count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    n = 0
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            n += block.count(b"\n")
    return n




def work_corpus(work: Path, posts: int, seed: int) -> Path:
    folder = work / f"corpus-{posts}-seed{seed}"
    if not folder.exists():
        t = time.monotonic()
        corpus.generate(posts, folder, seed=seed)
        log(f"  generated {posts} posts in {time.monotonic() - t:.1f}s -> {folder}")
    return folder


# --- corpus facts and the bound -----------------------------------------------------------------
def corpus_facts(folder: Path) -> dict[str, float]:
    """Parse the corpus with the crawler's parser: counts for the bound, and parse speed."""
    from crawler.parsing.digest import parse_digest_bytes

    files = sorted(folder.glob("*.txt"))
    ids: set[str] = set()
    tweets: set[str] = set()
    entries = embeds = 0
    parse_s = 0.0
    for path in files:
        data = path.read_bytes()
        t = time.perf_counter()
        digest = parse_digest_bytes(data, path.name)
        parse_s += time.perf_counter() - t
        for e in digest.entries:
            entries += 1
            if e.arxiv_query:
                ids.add(e.arxiv_query)
            embeds += len(e.tweets)
            tweets.update(t.id for t in e.tweets)
    return {
        "posts": len(files),
        "entries": entries,
        "tweet_embeds": embeds,
        "distinct_ids": len(ids),
        "distinct_tweets": len(tweets),
        "bytes": sum(p.stat().st_size for p in files),
        "parse_s": parse_s,
        "parse_entries_per_s": entries / parse_s if parse_s else 0.0,
    }


def parse_speed(folder: Path, posts: int = 200, repeats: int = 5) -> dict[str, float]:
    """Entries/s of ``parse_digest_bytes`` on one core, best of ``repeats`` passes over bytes.

    Best-of, because the machine may be shared; the first pass also warms imports and caches.
    """
    from crawler.parsing.digest import parse_digest_bytes

    blobs = [(p.name, p.read_bytes()) for p in sorted(folder.glob("*.txt"))[:posts]]
    best, entries = math.inf, 0
    for _ in range(repeats):
        t = time.perf_counter()
        entries = sum(len(parse_digest_bytes(data, name).entries) for name, data in blobs)
        best = min(best, time.perf_counter() - t)
    return {
        "posts": len(blobs),
        "entries": entries,
        "mb": sum(len(d) for _, d in blobs) / 2**20,
        "entries_per_s": entries / best,
        "mb_per_s": sum(len(d) for _, d in blobs) / 2**20 / best,
    }


def bound(ids: int, tweets: int, cfg: Config) -> tuple[float, float, float]:
    batches = math.ceil(ids / BATCH_SIZE)
    arxiv = (
        (batches - 1) * max(cfg.arxiv_delay, cfg.arxiv_latency) + cfg.arxiv_latency
        if batches
        else 0.0
    )
    oembed = math.ceil(tweets / OEMBED_CONCURRENCY) * cfg.oembed_latency
    return max(arxiv, oembed), arxiv, oembed


# --- one run ------------------------------------------------------------------------------------
def run_one(posts: int, cfg: Config, work: Path, args: argparse.Namespace) -> Row:
    from tests.standin import Catalogue, StandIn

    folder = work_corpus(work, posts, args.seed)
    facts = corpus_facts(folder)
    log(
        f"  {facts['entries']} entries, {facts['tweet_embeds']} embeds, "
        f"{facts['distinct_ids']} IDs, {facts['distinct_tweets']} tweets; "
        f"parse {facts['parse_entries_per_s']:.0f} entries/s"
    )
    b, b_arxiv, b_oembed = bound(facts["distinct_ids"], facts["distinct_tweets"], cfg)
    row = Row(
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
        faults=args.faults,
    )
    t = time.monotonic()
    catalogue = Catalogue.from_digests(sorted(folder.glob("*.txt")), seed=args.seed)
    log(f"  catalogue: {len(catalogue.papers)} papers in {time.monotonic() - t:.1f}s")
    latency = {"arxiv": cfg.arxiv_latency, "oembed": cfg.oembed_latency}
    with StandIn(catalogue, latency=latency) as standin:
        if args.faults:
            standin.faults.mixed(share=args.faults, repeat=1)
        settings: dict[str, object] = {
            "ARXIV_API_URL": standin.arxiv_url,
            "OEMBED_URL": standin.oembed_url,
            "ARXIV_DELAY": cfg.arxiv_delay,
            "LOG_LEVEL": "INFO",
            # A fresh state file per run, as a first crawl sees it: nothing to reuse, nothing
            # written under output/ (the default path), and the crawler's bounded-memory path on.
            "STATE_DB": fresh(work / f"state-{cfg.label}-{posts}.sqlite3"),
        }
        if cfg.arxiv_margin is not None:
            settings["ARXIV_DELAY_MARGIN"] = cfg.arxiv_margin
        out = work / f"crawl-{cfg.label}-{posts}.jsonl"
        logs = work / f"crawl-{cfg.label}-{posts}.log"
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
        row.crawler_arxiv_requests = len(standin.requests_for("arxiv"))
        row.crawler_oembed_requests = len(standin.requests_for("oembed"))
        stats = scrapy_stats(logs.read_text("utf-8", "replace"))
        keep = ("elapsed_time_seconds", "arxiv/batches", "oembed/tweets_requested")
        row.crawler_stats = {k: v for k, v in stats.items() if k in keep or k.startswith("records")}
        row.crawler_stats["min_arxiv_gap_s"] = round(standin.min_start_gap("arxiv"), 3)
        for service in ("arxiv", "oembed"):
            reqs = standin.requests_for(service)
            if reqs:  # first start to last end, as the service saw the crawl
                span = max(r.end for r in reqs) - reqs[0].start
                row.crawler_stats[f"{service}_span_s"] = round(span, 3)
        if m.returncode:
            log(f"  !! crawler exited {m.returncode}; see {logs}")
        with contextlib.suppress(OSError):
            out.unlink()  # big at 10,000 posts; the count is kept
        log(
            f"  crawler: {m.wall_s:.1f}s (bound {b:.1f}s, x{row.ratio:.2f}), "
            f"{row.crawler_records} records, {row.crawler_arxiv_requests} arXiv + "
            f"{row.crawler_oembed_requests} oEmbed requests, peak RSS {m.peak_rss_mb:.0f} MB"
        )

        standin.reset_log()
        peer_posts = min(posts, cfg.peer_max_posts)
        if peer_posts > 0:
            peer_out = work / f"peer-{cfg.label}-{posts}.jsonl"
            cmd = [
                sys.executable, "-m", "benchmarks.peer", "--source", str(folder),
                "--out", str(peer_out), "--arxiv-url", standin.arxiv_url,
                "--oembed-url", standin.oembed_url, "--delay", str(cfg.arxiv_delay),
                "--max-posts", str(peer_posts),
            ]  # fmt: skip
            pm = measure(
                cmd, env=child_env(), stdout=work / "peer.stdout", stderr=work / "peer.log"
            )
            report = json.loads((work / "peer.stdout").read_text() or "{}")
            loop = float(report.get("wall_s", pm.wall_s))
            startup = max(0.0, pm.wall_s - loop)
            scale = row.entries / max(1, int(report.get("entries", 0)))
            row.peer_posts = peer_posts
            row.peer_entries = int(report.get("entries", 0))
            row.peer_wall_measured_s = pm.wall_s
            row.peer_extrapolated = peer_posts < posts
            row.peer_wall_s = startup + loop * scale if row.peer_extrapolated else pm.wall_s
            row.peer_arxiv_requests = len(standin.requests_for("arxiv")) * scale
            row.peer_oembed_requests = len(standin.requests_for("oembed")) * scale
            row.peer_rss_mb = pm.peak_rss_mb
            log(
                f"  peer: {pm.wall_s:.1f}s on {peer_posts} posts"
                + (f" -> {row.peer_wall_s:.0f}s extrapolated" if row.peer_extrapolated else "")
            )
    return row


# --- profile ------------------------------------------------------------------------------------
PHASES = (
    # (phase, substrings of "file:function"), first match wins; self time (tottime) is summed
    ("idle: waiting on sockets/timers", ("select.epoll", "selectors.py:select")),
    ("parse digests", ("crawler/parsing/digest", "crawler/parsing/tweets", "crawler/parsing/text",
                       "frontmatter", "/yaml/", "ftfy")),
    ("arXiv feed parse + match", ("crawler/parsing/arxiv_feed", "crawler/parsing/arxiv_ids",
                                  "crawler/enrich/arxiv", "/arxiv/", "feedparser", "sgmllib")),
    ("oEmbed parse", ("crawler/parsing/oembed", "crawler/enrich/oembed", "json/decoder")),
    ("record build", ("crawler/record.py:build_record", "crawler/record.py:_tweet",
                      "crawler/record.py:_status_block", "dataclasses.py")),
    ("schema validation", ("jsonschema", "referencing", "rpds", "crawler/record.py:schema_errors")),
    ("export (JSON lines)", ("scrapy/exporters", "json/encoder", "crawler/feedstorage",
                             "crawler/exporters", "crawler/runfiles",
                             "scrapy/extensions/feedexport")),
    ("state database (dedupe, refresh)", ("crawler/state", "crawler/enrich/memo")),
    ("HTTP + engine (Scrapy/Twisted/asyncio, signals)", ("scrapy/", "twisted/", "asyncio/",
        "selectors", "http/", "socket", "ssl", "pydispatch", "logging/", "crawler/extensions",
        "spiders/digests")),
)  # fmt: skip
KEY_FUNCTIONS = (
    ("crawler/parsing/digest.py", "parse_digest_bytes"),
    ("crawler/parsing/arxiv_feed.py", "parse_feed"),
    ("crawler/enrich/arxiv.py", "match_results"),
    ("crawler/parsing/oembed.py", "parse_oembed"),
    ("crawler/record.py", "build_record"),
    ("crawler/record.py", "schema_errors"),
    ("scrapy/exporters.py", "export_item"),
)


def _direct_phase(key: tuple[str, int, str]) -> str | None:
    where = f"{key[0]}:{key[2]}"
    for name, needles in PHASES:
        if any(n in where for n in needles):
            return name
    return None


def summarise_profile(path: Path) -> dict[str, Any]:
    """Self time per phase. Functions outside every phase (built-ins, lxml, itemadapter, ...)
    are charged to their callers' phases, in proportion, up to three levels up."""
    st = pstats.Stats(str(path))
    raw = st.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())
    other = "other (start-up, imports, misc)"

    def shares(key: tuple[str, int, str], depth: int) -> dict[str, float]:
        direct = _direct_phase(key)
        if direct:
            return {direct: 1.0}
        callers = raw.get(key, (0, 0, 0, 0, {}))[4]
        weight = sum(v[2] for v in callers.values())
        if depth == 0 or not callers or weight <= 0:
            return {other: 1.0}
        out: dict[str, float] = {}
        for ckey, cval in callers.items():
            for phase, frac in shares(ckey, depth - 1).items():
                out[phase] = out.get(phase, 0.0) + frac * cval[2] / weight
        return out

    phases: dict[str, float] = {name: 0.0 for name, _ in PHASES} | {other: 0.0}
    key: dict[str, float] = {}
    for fkey, (_cc, _nc, tt, ct, _callers) in raw.items():
        for phase, frac in shares(fkey, 3).items():
            phases[phase] += tt * frac
        filename, _line, func = fkey
        for kf, kn in KEY_FUNCTIONS:
            if filename.endswith(kf) and func == kn:
                key[f"{kn} ({kf.split('/')[-1]})"] = max(key.get(kn, 0.0), ct)
    top = sorted(raw.items(), key=lambda kv: -kv[1][2])[:15]
    return {
        "total_cpu_s": total,
        "phases_self_s": phases,
        "key_cumulative_s": key,
        "top_self": [
            {"where": f"{Path(f).name}:{ln}:{fn}", "self_s": round(v[2], 3), "calls": v[1]}
            for (f, ln, fn), v in top
        ],
    }


def run_profile(posts: int, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    from tests.standin import Catalogue, StandIn

    folder = work_corpus(work, posts, args.seed)
    facts = corpus_facts(folder)
    catalogue = Catalogue.from_digests(sorted(folder.glob("*.txt")), seed=args.seed)
    with StandIn(catalogue, latency={"arxiv": 0.0, "oembed": 0.0}) as standin:
        prof = work / "crawl.prof"
        settings = {
            "ARXIV_API_URL": standin.arxiv_url,
            "OEMBED_URL": standin.oembed_url,
            "ARXIV_DELAY": 0,
            "ARXIV_DELAY_MARGIN": 0,
            "LOG_LEVEL": "INFO",
            "STATE_DB": fresh(work / "state-profile.sqlite3"),
        }
        out = work / "profile.jsonl"
        m = measure(
            crawl_cmd(folder, out, settings, profile=prof),
            env=child_env(),
            stdout=work / "profile.stdout",
            stderr=work / "profile.log",
        )
    summary = summarise_profile(prof)
    summary |= {
        "posts": posts,
        "entries": facts["entries"],
        "distinct_tweets": facts["distinct_tweets"],
        "wall_s": m.wall_s,
        "records": count_lines(out),
        "peak_rss_mb": m.peak_rss_mb,
    }
    log(f"  profile: {m.wall_s:.1f}s wall, {summary['total_cpu_s']:.1f}s CPU in Python")
    return summary


# --- reporting ----------------------------------------------------------------------------------
def fmt_s(s: float) -> str:
    if s >= 3600:
        return f"{s / 3600:.1f} h"
    if s >= 100:
        return f"{s:.0f}"
    return f"{s:.1f}"


def markdown(rows: list[Row], meta: dict[str, Any], profile: dict[str, Any] | None) -> str:
    lines = [
        "# Benchmark results",
        "",
        (
            "Generated by `python -m benchmarks.run` (see the note below)"
            if meta.get("note")
            else f"Generated by `python -m benchmarks.run {meta['argv']}`"
        )
        + f" on {meta['when']} "
        f"({meta['machine']}). Corpora: `benchmarks/corpus.py`, seed {meta['seed']}. "
        "Everything runs against the local stand-in (`tests/standin`) over real HTTP on "
        "127.0.0.1"
        + (f", with {meta['faults']:.0%} of requests faulted once" if meta["faults"] else "")
        + ".",
        "",
        *([meta["note"], ""] if meta.get("note") else []),
        "**Mode** `real`: arXiv delay as arXiv asks (3 s, counted from each answer), "
        "realistic latencies. **Mode** `scaled`: arXiv delay, margin and latencies scaled down so "
        "big corpora are bound by CPU, not waits; these rows measure throughput and memory, *not* "
        "politeness "
        "(their bound is tiny, so the ratio shows the crawler's own CPU cost). Delay/latencies "
        "are in the *settings* column (arXiv delay / arXiv latency / oEmbed latency, seconds).",
        "",
        "Bound = max((B-1)·max(delay, arXiv latency) + arXiv latency, ceil(T/4)·oEmbed latency), "
        "B = ceil(distinct IDs/100), T = distinct tweets. Peer = `benchmarks/peer.py` "
        "(`arxiv.Client` one ID per Search + `requests.get` per tweet, sequential); "
        "*extrap.* = measured on the first N posts and scaled linearly by entries. Ratio = crawler "
        "process wall / bound; in brackets for real rows, Scrapy's `elapsed_time_seconds` "
        "(spider open to close, i.e. without the ~1.5-2 s of interpreter and Scrapy start-up).",
        "",
        "| mode | settings | posts | entries | tweets (embeds / distinct) | crawler wall s "
        "| bound s | ratio wall (engine) | peer wall s | speed-up vs peer "
        "| arXiv req crawler / peer | oEmbed req crawler / peer | records/s "
        "| peak RSS MB crawler (peer) |",
        "|" + "---|" * 14,
    ]
    for r in rows:
        peer = (
            f"{fmt_s(r.peer_wall_s)} extrap. (measured {r.peer_wall_measured_s:.0f} s on "
            f"{r.peer_posts} posts)"
            if r.peer_extrapolated
            else f"{fmt_s(r.peer_wall_s)} measured"
        )
        approx = "~" if r.peer_extrapolated else ""
        elapsed = r.crawler_stats.get("elapsed_time_seconds")
        engine = f" ({elapsed / r.bound_s:.2f})" if elapsed and r.mode == "real" else ""
        lines.append(
            f"| {r.mode} | {r.arxiv_delay:g} / {r.arxiv_latency:g} / {r.oembed_latency:g} "
            f"| {r.posts:,} | {r.entries:,} | {r.tweet_embeds:,} / {r.distinct_tweets:,} "
            f"| {fmt_s(r.crawler_wall_s)} | {fmt_s(r.bound_s)} | {r.ratio:.2f}{engine} | {peer} "
            f"| {approx}{r.speedup:.1f}x | {r.crawler_arxiv_requests:,} / "
            f"{approx}{r.peer_arxiv_requests:,.0f} | {r.crawler_oembed_requests:,} / "
            f"{approx}{r.peer_oembed_requests:,.0f} "
            f"| {r.crawler_records / r.crawler_wall_s:,.0f} | {r.crawler_rss_mb:.0f} "
            f"({f'{r.peer_rss_mb:.0f}' if r.peer_rss_mb else '-'}) |"
        )
    short = [r for r in rows if r.crawler_records != r.entries]
    lines += ["", "Records written = entries in every row." if not short else "Short rows:"]
    lines += [f"- {r.mode} {r.posts}: {r.crawler_records} of {r.entries} records" for r in short]
    parse = meta.get("parse")
    if parse:
        lines += [
            "",
            f"**Parse speed** (`parse_digest_bytes`, one core, bytes already in memory, best of 5 "
            f"passes): {parse['entries_per_s']:,.0f} entries/s ({parse['mb_per_s']:.1f} MB/s) on "
            f"the first {parse['posts']:,} generated posts ({parse['entries']:,} entries, "
            f"{parse['mb']:.0f} MB). Target: 2,000 entries/s.",
        ]
    if profile:
        lines += profile_markdown(profile)
    return "\n".join(lines) + "\n"


def profile_markdown(p: dict[str, Any]) -> list[str]:
    total = p["total_cpu_s"] or 1.0
    lines = [
        "",
        f"## Where the crawler's CPU goes ({p['posts']} posts, {p['entries']:,} entries, "
        f"{p['distinct_tweets']:,} tweets; latencies and delay 0)",
        "",
        f"cProfile of the crawl process: {p['wall_s']:.1f} s wall, {p['total_cpu_s']:.1f} s "
        f"profiled CPU (cProfile itself slows Python code ~1.5-2x), "
        f"{p['entries'] / p['wall_s']:,.0f} records/s under the profiler.",
        "",
        "| phase (self time of its modules) | CPU s | share |",
        "|---|---|---|",
    ]
    for name, s in sorted(p["phases_self_s"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {name} | {s:.1f} | {s / total:.0%} |")
    lines += ["", "Cumulative time of the crawler's own entry points:", ""]
    for name, s in sorted(p["key_cumulative_s"].items(), key=lambda kv: -kv[1]):
        lines.append(f"- `{name}`: {s:.1f} s ({s / total:.0%})")
    lines += ["", "Top self time:", ""]
    lines += [f"- `{t['where']}`: {t['self_s']} s, {t['calls']:,} calls" for t in p["top_self"][:8]]
    notes = (ROOT / "benchmarks" / "profile_notes.md").read_text("utf-8").strip()
    lines += ["", notes]
    return lines


def plot(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    colours = {"real": "tab:blue", "scaled": "tab:orange"}
    for mode in ("scaled", "real"):
        rs = sorted((r for r in rows if r.mode == mode), key=lambda r: r.entries)
        if not rs:
            continue
        c = colours[mode]
        x = [r.entries for r in rs]
        ax1.plot(x, [r.crawler_wall_s for r in rs], "o-", color=c, label=f"crawler ({mode})")
        ax1.plot(x, [r.bound_s for r in rs], "s--", color=c, alpha=0.6, label=f"bound ({mode})")
        ax1.plot(x, [r.peer_wall_s for r in rs], "^:", color=c, alpha=0.8, label=f"peer ({mode})")
        for r in rs:
            if r.peer_extrapolated:
                ax1.plot(r.entries, r.peer_wall_s, "^", mfc="white", color=c)
        ax2.plot(x, [r.crawler_rss_mb for r in rs], "o-", color=c, label=f"crawler ({mode})")
        peer = [(r.entries, r.peer_rss_mb) for r in rs if r.peer_rss_mb]
        if peer:
            ax2.plot(*zip(*peer, strict=True), "^:", color=c, alpha=0.8, label=f"peer ({mode})")
    ax1.set(xscale="log", yscale="log", xlabel="entries in corpus", ylabel="wall time (s)")
    ax1.set_title("Wall time (hollow peer marks: extrapolated)")
    ax2.set(xscale="log", xlabel="entries in corpus", ylabel="peak RSS (MB)")
    ax2.axhline(300, color="grey", lw=0.8, ls="--")
    ax2.text(ax2.get_xlim()[0], 305, " 300 MB target", color="grey", fontsize=8)
    ax2.set_title("Peak RSS of the process")
    for ax in (ax1, ax2):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


# --- main ---------------------------------------------------------------------------------------
def log(msg: str) -> None:
    print(msg, flush=True)


def sizes(text: str) -> list[int]:
    return [YEAR_POSTS if s.strip() == "year" else int(s) for s in text.split(",") if s.strip()]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Crawler vs peer vs politeness bound, on the stand-in")
    ap.add_argument("--sizes", default="10,1000,10000", help="posts per scaled run ('' for none)")
    ap.add_argument("--real-sizes", default=f"10,{YEAR_POSTS}", help="posts per real-delay run")
    ap.add_argument("--quick", action="store_true", help="sizes 10,1000; real 10; small peer")
    ap.add_argument("--arxiv-delay", type=float, default=3.0)
    ap.add_argument("--arxiv-latency", type=float, default=0.3)
    ap.add_argument("--oembed-latency", type=float, default=0.15)
    ap.add_argument("--scaled-delay", type=float, default=0.01)
    ap.add_argument("--scaled-arxiv-latency", type=float, default=0.02)
    ap.add_argument("--scaled-oembed-latency", type=float, default=0.002)
    ap.add_argument("--peer-max-posts", type=int, default=2, help="peer posts in real runs")
    ap.add_argument("--peer-max-posts-scaled", type=int, default=20)
    ap.add_argument("--faults", type=float, default=0.0, help="share of requests faulted once")
    ap.add_argument("--profile-posts", type=int, default=200, help="0 to skip the profile")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--work", type=Path, default=None, help="temp dir (kept if given)")
    ap.add_argument("--note", default="", help="a line for results.md (how rows were produced)")
    ap.add_argument("--merge", action="store_true", help="keep rows of other runs in results")
    ap.add_argument("--merge-from", type=Path, action="append", default=[], help="results.json")
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.real_sizes = "10,1000", "10"
        args.peer_max_posts = min(args.peer_max_posts, 1)
        args.profile_posts = min(args.profile_posts, 100)

    real = Config(
        "real", args.arxiv_delay, None, args.arxiv_latency, args.oembed_latency,
        args.peer_max_posts,
    )  # fmt: skip
    scaled = Config(
        "scaled", args.scaled_delay, 0.0, args.scaled_arxiv_latency, args.scaled_oembed_latency,
        args.peer_max_posts_scaled,
    )  # fmt: skip
    plan = [(n, scaled) for n in sizes(args.sizes)] + [(n, real) for n in sizes(args.real_sizes)]
    work = args.work or Path(tempfile.mkdtemp(prefix="hp-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    raw_path = args.out / "results.json"
    old = json.loads(raw_path.read_text()) if args.merge and raw_path.exists() else {}
    for extra in args.merge_from:  # rows (and a profile) from another results.json
        more = json.loads(extra.read_text())
        have = {(d["mode"], d["posts"]) for d in more["rows"]}
        old["rows"] = [d for d in old.get("rows", []) if (d["mode"], d["posts"]) not in have]
        old["rows"] += more["rows"]
        old["profile"] = more.get("profile") or old.get("profile")
        if "mb_per_s" in (more.get("meta", {}).get("parse") or {}):
            old.setdefault("meta", {})["parse"] = more["meta"]["parse"]

    rows: list[Row] = []
    try:
        for posts, cfg in plan:
            log(f"== {cfg.label}: {posts} posts")
            rows.append(run_one(posts, cfg, work, args))
        profile = None
        if args.profile_posts:
            log(f"== profile: {args.profile_posts} posts")
            profile = run_profile(args.profile_posts, work, args)
    except BaseException:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
        raise

    done = {(r.mode, r.posts) for r in rows}
    kept = [Row(**d) for d in old.get("rows", []) if (d["mode"], d["posts"]) not in done]
    rows = sorted(kept + rows, key=lambda r: (r.mode != "real", r.entries))
    profile = profile or old.get("profile")
    parse = old.get("meta", {}).get("parse")
    if parse and "mb_per_s" not in parse:
        parse = None  # from an older harness
    if plan:
        parse = parse_speed(work_corpus(work, 200, args.seed))
        log(f"== parse speed: {parse['entries_per_s']:,.0f} entries/s")
    meta = {
        "argv": " ".join(argv if argv is not None else sys.argv[1:]),
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}",
        "seed": args.seed,
        "note": args.note,
        "faults": args.faults,
        "parse": parse,
    }
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    raw = {"meta": meta, "rows": [asdict(r) for r in rows], "profile": profile}
    raw_path.write_text(json.dumps(raw, indent=1) + "\n")
    (args.out / "results.md").write_text(markdown(rows, meta, profile))
    plot(rows, args.out / "scale.png")
    log(f"wrote {args.out}/results.md, results.json, scale.png")


if __name__ == "__main__":
    main()
