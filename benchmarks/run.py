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

This module is only the command line. The work is in ``benchmarks.measure`` (runs and their
figures), ``benchmarks.facts`` (corpus counts, parse speed, the bound),
``benchmarks.profiling`` (cProfile by phase), ``benchmarks.services`` (per-service figures from
the stand-in's log), ``benchmarks.report`` (results.json and results.md; also a CLI that
rebuilds the table from the JSON alone) and ``benchmarks.plot`` (scale.png).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.facts import parse_speed
from benchmarks.measure import log, run_one, work_corpus
from benchmarks.model import RESULTS, YEAR_POSTS, Config, Row
from benchmarks.profiling import run_profile


def sizes(text: str) -> list[int]:
    """``10,1000,year`` -> [10, 1000, 175]; an empty string means no run of that mode."""
    return [YEAR_POSTS if s.strip() == "year" else int(s) for s in text.split(",") if s.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
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
    ap.add_argument(
        "--out", type=Path, default=RESULTS, help="results folder (another one for a smoke run)"
    )
    ap.add_argument("--work", type=Path, default=None, help="temp dir (kept if given)")
    ap.add_argument("--note", default="", help="a line for results.md (how rows were produced)")
    ap.add_argument("--merge", action="store_true", help="keep rows of other runs in results")
    ap.add_argument("--merge-from", type=Path, action="append", default=[], help="results.json")
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.real_sizes = "10,1000", "10"
        args.peer_max_posts = min(args.peer_max_posts, 1)
        args.profile_posts = min(args.profile_posts, 100)
    return args


def plan(args: argparse.Namespace) -> list[tuple[int, Config]]:
    """The runs to make, scaled ones first (they are about the crawler; real ones wait)."""
    real = Config(
        "real", args.arxiv_delay, None, args.arxiv_latency, args.oembed_latency,
        args.peer_max_posts,
    )  # fmt: skip
    scaled = Config(
        "scaled", args.scaled_delay, 0.0, args.scaled_arxiv_latency, args.scaled_oembed_latency,
        args.peer_max_posts_scaled,
    )  # fmt: skip
    return [(n, scaled) for n in sizes(args.sizes)] + [(n, real) for n in sizes(args.real_sizes)]


def run_all(
    runs: list[tuple[int, Config]], work: Path, args: argparse.Namespace
) -> tuple[list[Row], dict[str, Any] | None]:
    """Every planned row, then the profile; an interrupted run leaves no temp dir behind."""
    rows: list[Row] = []
    profile = None
    try:
        for posts, cfg in runs:
            log(f"== {cfg.label}: {posts} posts")
            rows.append(run_one(posts, cfg, work, seed=args.seed, faults=args.faults))
        if args.profile_posts:
            log(f"== profile: {args.profile_posts} posts")
            profile = run_profile(args.profile_posts, work, seed=args.seed)
    except BaseException:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
        raise
    return rows, profile


def run_meta(
    argv: list[str] | None, args: argparse.Namespace, parse: dict[str, Any] | None
) -> dict[str, Any]:
    """How and where the figures were taken, for the table's first paragraph."""
    return {
        "argv": " ".join(argv if argv is not None else sys.argv[1:]),
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
    runs = plan(args)
    work = args.work or Path(tempfile.mkdtemp(prefix="hp-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    old = report.previous(args.out / "results.json", merge=args.merge, merge_from=args.merge_from)

    new, profile = run_all(runs, work, args)
    rows = report.merged_rows(new, old)
    profile = profile or old.get("profile")
    parse = report.previous_parse(old)
    if runs:
        parse = parse_speed(work_corpus(work, 200, args.seed))
        log(f"== parse speed: {parse['entries_per_s']:,.0f} entries/s")
    meta = run_meta(argv, args, parse)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    report.write(args.out, meta, rows, profile)
    log(f"wrote {args.out}/results.md, results.json, scale.png")


if __name__ == "__main__":
    main()
