"""Serve the stand-in by hand so the crawler can be tried offline: ``python -m tests.standin``."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from .catalogue import Catalogue
from .server import StandIn

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DIGESTS = REPO_ROOT / "crawler" / "samples"


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.standin",
        description="Local stand-in for the arXiv export API and Twitter oEmbed.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--digests",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="digest files or directories (default: crawler/samples/*.txt)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--arxiv-latency", type=float, default=0.0, metavar="S")
    parser.add_argument("--oembed-latency", type=float, default=0.0, metavar="S")
    parser.add_argument(
        "--fault-share",
        type=float,
        default=0.0,
        help="share of request keys that fail before succeeding (e.g. 0.33)",
    )
    parser.add_argument(
        "--fault-repeat", type=int, default=3, help="how many attempts of a faulty key fail"
    )
    parser.add_argument("--verbose", action="store_true", help="print one line per request")
    args = parser.parse_args(argv)

    paths: list[Path] = []
    for p in args.digests or [DEFAULT_DIGESTS]:
        paths.extend(sorted(p.glob("*.txt")) if p.is_dir() else [p])
    if not paths:
        parser.error("no digest files found")
    catalogue = Catalogue.from_digests(paths, seed=args.seed)
    standin = StandIn(
        catalogue,
        host=args.host,
        port=args.port,
        quiet=not args.verbose,
        latency={"arxiv": args.arxiv_latency, "oembed": args.oembed_latency},
    )
    if args.fault_share > 0:
        standin.faults.mixed(share=args.fault_share, repeat=args.fault_repeat, seed=args.seed)

    signal.signal(signal.SIGTERM, _interrupt)  # stop as cleanly as on Ctrl-C
    with standin:
        n_bad = sum(t.status != "ok" for t in catalogue.tweets.values())
        print(
            f"{len(paths)} digests: {len(catalogue.papers)} papers served "
            f"({len(catalogue.absent)} withheld), {len(catalogue.tweets)} tweets "
            f"({n_bad} deleted/protected)"
        )
        print(f"arXiv API:  {standin.arxiv_url}")
        print(f"oEmbed:     {standin.oembed_url}")
        print("Try:")
        print(
            f"  scrapy crawl digests -s ARXIV_API_URL={standin.arxiv_url} "
            f"-s OEMBED_URL={standin.oembed_url}"
        )
        print("Ctrl-C to stop.", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print(f"\nstopping; served {len(standin.log)} requests", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
