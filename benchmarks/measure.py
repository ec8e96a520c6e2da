"""Measuring: run the stand-in, the crawler and the peer, and collect the figures of one row.

Every number comes from outside the crawler where possible: wall time and RSS from the child
process, requests from the stand-in's own log, so the crawler's stats cannot flatter it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import resource
import shutil
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
from benchmarks.model import ROOT, TWEET_SERVICES, Config, Row
from benchmarks.services import concurrency_timeline, service_figures

if TYPE_CHECKING:
    from tests.standin import RequestRecord, StandIn


def log(msg: str) -> None:
    """Progress on stdout, flushed: a long run is watched live."""
    print(msg, flush=True)


@dataclass
class Measure:
    wall_s: float
    peak_rss_mb: float
    rss_samples: list[tuple[float, float]] = field(default_factory=list)
    returncode: int = 0
    cpu: dict[str, float] = field(default_factory=dict)
    marker_s: float | None = None  # when the ``marker`` file appeared (None: never)

    @property
    def peak_before_marker_mb(self) -> float:
        """Peak RSS until the marker appeared: the crawl without what follows the snapshot."""
        end = math.inf if self.marker_s is None else self.marker_s
        return max((mb for t, mb in self.rss_samples if t <= end), default=0.0)


def _busy_cpu_s() -> float:
    """CPU seconds the whole machine has spent busy (all cores), from /proc/stat via psutil."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


class CpuShare:
    """Who used the CPUs while a child ran: the child (and its children), this process (the
    stand-in's threads), and everything else on the machine (other engineers' test suites).

    The machine is shared; a row whose "others" figure is high was measured under load and may
    be slower than the crawler is.
    """

    def __init__(self) -> None:
        self.busy = _busy_cpu_s()
        self.own = self._usage(resource.RUSAGE_SELF)
        self.children = self._usage(resource.RUSAGE_CHILDREN)
        self.load = os.getloadavg()[0]

    @staticmethod
    def _usage(who: int) -> float:
        r = resource.getrusage(who)
        return r.ru_utime + r.ru_stime

    def since(self, wall: float) -> dict[str, float]:
        child = self._usage(resource.RUSAGE_CHILDREN) - self.children
        own = self._usage(resource.RUSAGE_SELF) - self.own
        other = max(0.0, _busy_cpu_s() - self.busy - child - own)
        return {
            "child_cpu_s": round(child, 1),
            "harness_cpu_s": round(own, 1),
            "other_cpu_s": round(other, 1),
            "other_cores": round(other / wall, 2) if wall else 0.0,  # mean cores used by others
            "loadavg_before": round(self.load, 2),
        }


# --- measuring a child process ------------------------------------------------------------------
def measure(
    cmd: list[str],
    *,
    env: dict[str, str],
    stdout: Path,
    stderr: Path,
    marker: Path | None = None,
    cwd: Path = ROOT,
) -> Measure:
    """Run ``cmd``: wall time, peak RSS of the process tree polled every 0.1 s with psutil, who
    used the CPUs meanwhile (:class:`CpuShare`), and when ``marker`` appeared: the crawl's
    snapshot, written atomically once the last record is in, after which the same process
    writes the dataset and the HTML report (another phase, with other libraries in memory).

    Not ``ru_maxrss``: the child is forked from this process before it execs, and the kernel
    counts the harness's own resident pages (the stand-in's catalogue) at that moment as the
    child's maximum.
    """
    samples: list[tuple[float, float]] = []
    seen: list[float] = []
    share = CpuShare()
    start = time.monotonic()
    with stdout.open("wb") as out, stderr.open("wb") as err:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err)
        done = threading.Event()

        def poll() -> None:
            ps = psutil.Process(proc.pid)
            while not done.is_set():
                with contextlib.suppress(psutil.Error):
                    rss = ps.memory_info().rss + sum(
                        c.memory_info().rss for c in ps.children(recursive=True)
                    )
                    samples.append((round(time.monotonic() - start, 2), rss / 2**20))
                if marker is not None and not seen and marker.exists():
                    seen.append(round(time.monotonic() - start, 2))
                done.wait(0.1)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        proc.wait()
        wall = time.monotonic() - start
        done.set()
        poller.join()
    peak = max((s[1] for s in samples), default=0.0)
    return Measure(wall, peak, samples, proc.returncode, share.since(wall), next(iter(seen), None))


def fresh(path: Path) -> Path:
    """``path`` with no state left from an earlier run (the database and its -wal/-shm files)."""
    for stale in path.parent.glob(path.name + "*"):
        stale.unlink()
    return path


def child_env(root: Path = ROOT) -> dict[str, str]:
    """The children import ``crawler``, ``tests`` and ``benchmarks`` from ``root`` (this
    checkout, or the baseline's for a side-by-side run): first on the path, before the
    editable install's finder."""
    return {**os.environ, "PYTHONPATH": str(root)}


def crawl_cmd(
    source: Path,
    out: Path,
    settings: dict[str, object],
    profile: Path | None = None,
    python: str = sys.executable,
) -> list[str]:
    """``scrapy crawl digests`` as a user runs it, optionally under cProfile."""
    cmd = [python]
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
    with StandIn(
        catalogue,
        latency=cfg.latency,
        max_in_flight=cfg.max_in_flight,
        # The crawler is told the same rate (S2_DELAY) the stand-in enforces.
        min_interval={"semantic_scholar": cfg.s2_delay},
        # Hugging Face's 500 per 5 minutes made a 175-post row a 30-minute wait for its window.
        windows={"hf_papers": (10**9, 300.0)},
    ) as standin:
        if faults:
            standin.faults.mixed(share=faults, repeat=1)
        _crawl(row, cfg, folder, work, standin)
        standin.reset_log()
        _peer(row, cfg, folder, work, standin)
    return row


def _new_row(posts: int, cfg: Config, folder: Path, faults: float) -> Row:
    """The row's corpus facts and floor, before anything runs."""
    facts = corpus_facts(folder)
    log(
        f"  {facts['entries']} entries, {facts['tweet_embeds']} embeds, "
        f"{facts['distinct_ids']} IDs, {facts['distinct_tweets']} tweets; "
        f"parse {facts['parse_entries_per_s']:.0f} entries/s"
    )
    floor, b_oembed, b_syndication = bound(
        int(facts["distinct_ids"]), int(facts["distinct_tweets"]), cfg
    )
    return Row(
        mode=cfg.label,
        posts=posts,
        entries=int(facts["entries"]),
        tweet_embeds=int(facts["tweet_embeds"]),
        distinct_ids=int(facts["distinct_ids"]),
        distinct_tweets=int(facts["distinct_tweets"]),
        distinct_papers=int(facts["distinct_papers"]),
        arxiv_delay=cfg.arxiv_delay,
        arxiv_margin=cfg.arxiv_margin,
        arxiv_latency=cfg.arxiv_latency,
        oembed_latency=cfg.oembed_latency,
        syndication_latency=cfg.syndication_latency,
        s2_latency=cfg.s2_latency,
        s2_delay=cfg.s2_delay,
        max_in_flight=dict(cfg.max_in_flight),
        bound_s=floor,
        bound_arxiv_s=floor,
        bound_oembed_s=b_oembed,
        bound_syndication_s=b_syndication,
        parse_entries_per_s=facts["parse_entries_per_s"],
        corpus_mb=facts["bytes"] / 2**20,
        faults=faults,
    )


def crawl_settings(cfg: Config, standin: StandIn, state: Path) -> dict[str, object]:
    """The crawler's settings for a run: the stand-in's URLs and the mode's rules."""
    settings: dict[str, object] = endpoint_settings(standin) | {
        "ARXIV_DELAY": cfg.arxiv_delay,
        "S2_DELAY": cfg.s2_delay,
        "LOG_LEVEL": "INFO",
        # A fresh state file per run, as a first crawl sees it: nothing to reuse, nothing
        # written under output/ (the default path), and the crawler's bounded-memory path on.
        "STATE_DB": fresh(state),
    }
    if cfg.arxiv_margin is not None:
        settings["ARXIV_DELAY_MARGIN"] = cfg.arxiv_margin
    return settings


_KEPT_STATS = re.compile(r"elapsed_time_seconds|records.*|[a-z_]+/batches|service/.*|retry/.*")


def _crawl(row: Row, cfg: Config, folder: Path, work: Path, standin: StandIn) -> None:
    """The crawler's figures, from its process, its stats dump and the stand-in's log."""
    name = f"{cfg.label}-{row.posts}"
    settings = crawl_settings(cfg, standin, work / f"state-{name}.sqlite3")
    out = work / f"crawl-{name}.jsonl"
    out.unlink(missing_ok=True)  # it marks the end of the crawl (``measure``'s marker)
    logs = work / f"crawl-{name}.log"
    m = measure(
        crawl_cmd(folder, out, settings),
        env=child_env(),
        stdout=work / "crawl.stdout",
        stderr=logs,
        marker=out,
    )
    row.crawler_wall_s = m.wall_s
    row.crawler_rss_mb = m.peak_rss_mb
    row.crawler_snapshot_s = m.marker_s
    row.crawler_rss_crawl_mb = m.peak_before_marker_mb
    row.crawler_cpu = m.cpu
    step = max(1, len(m.rss_samples) // 60)
    row.crawler_rss_timeline = m.rss_samples[::step] + m.rss_samples[-1:]
    row.crawler_records = count_lines(out)
    served = standin.log
    dump_log(served, work / f"standin-{name}.jsonl")
    row.crawler_services = service_figures(served)
    row.crawler_concurrency = concurrency_timeline(served, TWEET_SERVICES)
    stats = scrapy_stats(logs.read_text("utf-8", "replace"))
    row.crawler_stats = {k: v for k, v in stats.items() if _KEPT_STATS.fullmatch(k)}
    row.crawler_stats["min_arxiv_gap_s"] = round(standin.min_start_gap("arxiv"), 3)
    for service, figures in row.crawler_services.items():
        row.crawler_stats[f"{service}_span_s"] = figures["span_s"]
    if m.returncode:
        log(f"  !! crawler exited {m.returncode}; see {logs}")
    with contextlib.suppress(OSError):
        out.unlink()  # big at 10,000 posts; the count is kept
    shutil.rmtree(work / f"crawl-{name}.dataset", ignore_errors=True)
    _log_crawl(row, m)


def _log_crawl(row: Row, m: Measure) -> None:
    elapsed = row.crawler_stats.get("elapsed_time_seconds", math.nan)
    log(
        f"  crawler: {m.wall_s:.1f}s, engine {elapsed:.1f}s, snapshot at {m.marker_s}s (floor "
        f"{row.bound_s:.1f}s, x{row.ratio:.2f}), {row.crawler_records} records, peak RSS "
        f"{m.peak_rss_mb:.0f} MB ({m.peak_before_marker_mb:.0f} MB before the snapshot); "
        f"CPU s: crawler {m.cpu['child_cpu_s']}, harness {m.cpu['harness_cpu_s']}, others "
        f"{m.cpu['other_cpu_s']} (load before {m.cpu['loadavg_before']})"
    )
    for service, f in row.crawler_services.items():
        latency = f.get("mean_latency_s")
        log(
            f"    {service}: {f['requests']} requests, {f['throttled']} throttled, peak "
            f"concurrency {f['peak_concurrency']} (admitted {f.get('peak_admitted')}, second "
            f"half {f.get('late_peak_concurrency')}), span {f['span_s']:.1f}s, mean latency "
            + (f"{latency * 1000:.0f} ms" if latency is not None else "-")
        )


def dump_log(served: list[RequestRecord], path: Path) -> None:
    """The stand-in's log as JSON lines, kept with ``--work`` for looking into a row later."""
    fields = ("service", "start", "end", "status", "concurrent", "admitted", "refused", "key")
    with path.open("w", encoding="utf-8") as fh:
        for r in served:
            record = {f: getattr(r, f) for f in fields}
            record["end"] = None if math.isnan(r.end) else r.end
            fh.write(json.dumps(record) + "\n")


def _peer(row: Row, cfg: Config, folder: Path, work: Path, standin: StandIn) -> None:
    """The peer on at most ``cfg.peer_max_posts`` posts, extrapolated by entries beyond that."""
    peer_posts = min(row.posts, cfg.peer_max_posts)
    if peer_posts <= 0:
        return
    cmd = [
        sys.executable, "-m", "benchmarks.peer", "--source", str(folder),
        "--out", str(work / f"peer-{cfg.label}-{row.posts}.jsonl"),
        "--arxiv-url", standin.arxiv_url, "--oembed-url", standin.oembed_url,
        "--syndication-url", standin.syndication_url, "--s2-url", standin.semantic_scholar_url,
        "--delay", str(cfg.arxiv_delay), "--s2-delay", str(cfg.s2_delay),
        "--max-posts", str(peer_posts),
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
    row.peer_requests = {
        name: f["requests"] * scale for name, f in service_figures(standin.log).items()
    }
    if row.peer_extrapolated and "semantic_scholar" in row.peer_requests:
        # Not linear: the peer posts every distinct paper once, 500 per request.
        row.peer_requests["semantic_scholar"] = row.expected_s2_requests
    row.peer_rss_mb = pm.peak_rss_mb
    if pm.returncode:
        log(f"  !! peer exited {pm.returncode}; see {work / 'peer.log'}")
    log(
        f"  peer: {pm.wall_s:.1f}s on {peer_posts} posts"
        + (f" -> {row.peer_wall_s:.0f}s extrapolated" if row.peer_extrapolated else "")
        + f"; requests {', '.join(f'{k} {v:,.0f}' for k, v in row.peer_requests.items())}"
    )
