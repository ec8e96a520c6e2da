"""The benchmark harness: one command, every number in ``benchmarks/results/``.

    python -m benchmarks.run [--quick] [--rows real:year,fast:60,throttle:year,scaled:294,...]
                             [--arxiv-delay 3.0 --arxiv-latency 0.3 --oembed-latency 0.15
                              --syndication-latency 0.1 --s2-latency 0.2 --s2-delay 1.0]
                             [--peer-max-posts N] [--faults SHARE] [--merge]

A row is a *mode* and a corpus size, all against the local stand-in (``tests/standin``) over real
HTTP, with the same rules told to the crawler and enforced by the stand-in:

* ``real``: arXiv's real delay (3 s) and realistic latencies (arXiv 0.3 s, oEmbed 0.15 s,
  syndication 0.1 s, Semantic Scholar 0.2 s at 1 request/s). Judged against the floor.
* ``fast``: the same corpus shape with arXiv at 0.5 s apart and the tweet services at 0.05 s:
  the crawler against the sequential peer (issue 14: at least 5x).
* ``throttle``: the stand-in refuses (429) more than ``--throttle-limit`` requests at once per
  tweet service, latencies ``--throttle-latency``: does the adaptive limit find the ceiling
  without hammering it (under 1 % throttled, settling below the limit)?
* ``scaled``: delay and latencies scaled down so big corpora are bound by the crawler's CPU,
  not by waits; these rows are about throughput, memory and request counts.

For each row: generate a corpus (``benchmarks.corpus``) in a temp dir, build the stand-in's
catalogue from it, crawl it with ``python -m scrapy crawl digests`` as a subprocess, and measure
wall time, per-service requests, throttling, concurrency and latency (the stand-in's log),
records/s, peak RSS (the child's process tree polled every 0.1 s with psutil), and who else
used the CPUs meanwhile. Then the peer (``benchmarks.peer``) runs on the same stand-in, on at
most the mode's peer posts, extrapolated linearly by entries when it saw only part of the
corpus (marked "extrap.").

The floor of a row is arXiv's rule: B = ceil(distinct IDs / ARXIV_BATCH_SIZE) requests, one at
a time and ARXIV_DELAY apart, so (B-1) * max(delay, latency) + latency. Each tweet service's own
bound at the 16-request cap (distinct tweets * latency / 16) is shown beside it for context.

Plus a parse-speed micro benchmark (entries/s of ``parse_digest_bytes`` on one core) and a
cProfile of a crawl with near-zero latencies, summarised by phase.

This module is only the command line. The work is in ``benchmarks.measure`` (runs and their
figures), ``benchmarks.facts`` (corpus counts, parse speed, the floor),
``benchmarks.profiling`` (cProfile by phase), ``benchmarks.services`` (per-service figures from
the stand-in's log), ``benchmarks.report`` (results.json and results.md; also a CLI that
rebuilds the table from the JSON alone) and ``benchmarks.plot`` (scale.png).
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.facts import parse_speed
from benchmarks.measure import log, run_one, work_corpus
from benchmarks.model import MODE_ORDER, RESULTS, TWEET_SERVICES, YEAR_POSTS, Config, Row
from benchmarks.profiling import run_profile

FULL = "real:year,fast:60,throttle:year,scaled:294,scaled:1000,scaled:10000"
QUICK = "real:10,fast:10,throttle:50,scaled:294"


def parse_rows(text: str) -> list[tuple[str, int]]:
    """``real:year,scaled:1000`` -> [("real", 175), ("scaled", 1000)]."""
    rows = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        mode, _, size = item.partition(":")
        if mode not in MODE_ORDER or not size:
            raise argparse.ArgumentTypeError(f"not MODE:POSTS with a mode of {MODE_ORDER}: {item}")
        rows.append((mode, YEAR_POSTS if size == "year" else int(size)))
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Crawler vs peer vs floor, on the stand-in")
    ap.add_argument("--rows", type=parse_rows, default=None, help=f"MODE:POSTS,... ({FULL})")
    ap.add_argument("--quick", action="store_true", help=f"rows {QUICK}, a small profile")
    real = ap.add_argument_group("real and fast modes")
    real.add_argument("--arxiv-delay", type=float, default=3.0)
    real.add_argument("--arxiv-latency", type=float, default=0.3)
    real.add_argument("--oembed-latency", type=float, default=0.15)
    real.add_argument("--syndication-latency", type=float, default=0.1)
    real.add_argument("--s2-latency", type=float, default=0.2)
    real.add_argument("--s2-delay", type=float, default=1.0, help="S2_DELAY = stand-in interval")
    real.add_argument("--peer-max-posts", type=int, default=2, help="peer posts in real runs")
    real.add_argument("--fast-arxiv-delay", type=float, default=0.5)
    real.add_argument("--fast-tweet-latency", type=float, default=0.05)
    real.add_argument("--peer-max-posts-fast", type=int, default=60)
    throttle = ap.add_argument_group("throttle mode")
    throttle.add_argument("--throttle-limit", type=int, default=8, help="per tweet service")
    throttle.add_argument("--throttle-latency", type=float, default=0.05, help="every service")
    throttle.add_argument("--throttle-arxiv-delay", type=float, default=0.5)
    scaled = ap.add_argument_group("scaled mode")
    scaled.add_argument("--scaled-delay", type=float, default=0.01)
    scaled.add_argument("--scaled-arxiv-latency", type=float, default=0.02)
    scaled.add_argument("--scaled-oembed-latency", type=float, default=0.002)
    scaled.add_argument("--scaled-syndication-latency", type=float, default=0.002)
    scaled.add_argument("--scaled-s2-latency", type=float, default=0.01)
    scaled.add_argument("--scaled-s2-delay", type=float, default=0.05)
    scaled.add_argument("--peer-max-posts-scaled", type=int, default=20)
    ap.add_argument("--faults", type=float, default=0.0, help="share of requests faulted once")
    ap.add_argument("--profile-posts", type=int, default=100, help="0 to skip the profile")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--out", type=Path, default=RESULTS, help="results folder (another one for a smoke run)"
    )
    ap.add_argument("--work", type=Path, default=None, help="temp dir (kept if given)")
    ap.add_argument("--note", default="", help="a paragraph for results.md (how rows were made)")
    ap.add_argument("--merge", action="store_true", help="keep rows of other runs in results")
    ap.add_argument("--merge-from", type=Path, action="append", default=[], help="results.json")
    args = ap.parse_args(argv)
    if args.rows is None:
        args.rows = parse_rows(QUICK if args.quick else FULL)
    if args.quick:
        args.peer_max_posts = min(args.peer_max_posts, 1)
        args.peer_max_posts_fast = min(args.peer_max_posts_fast, 10)
        args.profile_posts = min(args.profile_posts, 50)
    return args


def modes(args: argparse.Namespace) -> dict[str, Config]:
    """The four modes' rules, from the command line."""
    a = args
    tweet = a.fast_tweet_latency
    t = a.throttle_latency
    return {
        "real": Config(
            "real", a.arxiv_delay, None, a.arxiv_latency, a.oembed_latency, a.peer_max_posts,
            a.syndication_latency, a.s2_latency, a.s2_delay,
        ),
        "fast": Config(
            "fast", a.fast_arxiv_delay, None, a.arxiv_latency, tweet, a.peer_max_posts_fast,
            tweet, a.s2_latency, a.s2_delay,
        ),
        "throttle": Config(
            "throttle", a.throttle_arxiv_delay, None, t, t, 0, t, t, a.s2_delay,
            dict.fromkeys(TWEET_SERVICES, a.throttle_limit),
        ),
        "scaled": Config(
            "scaled", a.scaled_delay, 0.0, a.scaled_arxiv_latency, a.scaled_oembed_latency,
            a.peer_max_posts_scaled, a.scaled_syndication_latency, a.scaled_s2_latency,
            a.scaled_s2_delay,
        ),
    }  # fmt: skip


def plan(args: argparse.Namespace) -> list[tuple[int, Config]]:
    """The runs to make, in the order given."""
    configs = modes(args)
    return [(posts, configs[mode]) for mode, posts in args.rows]


def run_all(
    runs: list[tuple[int, Config]], work: Path, args: argparse.Namespace, command: str
) -> tuple[list[Row], dict[str, Any] | None]:
    """Every planned row, then the profile; an interrupted run leaves no temp dir behind."""
    rows: list[Row] = []
    profile = None
    try:
        for posts, cfg in runs:
            log(f"== {cfg.label}: {posts} posts")
            row = run_one(posts, cfg, work, seed=args.seed, faults=args.faults)
            row.command, row.measured_at = command, time.strftime("%Y-%m-%d %H:%M")
            rows.append(row)
        if args.profile_posts:
            log(f"== profile: {args.profile_posts} posts")
            profile = run_profile(args.profile_posts, work, seed=args.seed)
    except BaseException:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
        raise
    return rows, profile


def run_meta(
    command: str, args: argparse.Namespace, parse: dict[str, Any] | None
) -> dict[str, Any]:
    """How and where the figures were taken, for the table's first paragraph."""
    return {
        "argv": command,
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}",
        "seed": args.seed,
        "note": args.note,
        "faults": args.faults,
        "parse": parse,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    command = shlex.join(argv if argv is not None else sys.argv[1:])
    runs = plan(args)
    work = args.work or Path(tempfile.mkdtemp(prefix="hp-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    old = report.previous(args.out / "results.json", merge=args.merge, merge_from=args.merge_from)

    new, profile = run_all(runs, work, args, command)
    rows = report.merged_rows(new, old)
    profile = profile or old.get("profile")
    parse = report.previous_parse(old)
    if runs:
        parse = parse_speed(work_corpus(work, 200, args.seed))
        log(f"== parse speed: {parse['entries_per_s']:,.0f} entries/s")
    meta = run_meta(command, args, parse)
    if args.merge and not args.note:
        meta["note"] = old.get("meta", {}).get("note", "")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    report.write(args.out, meta, rows, profile)
    log(f"wrote {args.out}/results.md, results.json, scale.png")


if __name__ == "__main__":
    main()
