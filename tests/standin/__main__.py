"""Serve the stand-in by hand so the crawler can be tried offline: ``python -m tests.standin``."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from .catalogue import Catalogue
from .common import SERVICES
from .server import StandIn

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DIGESTS = REPO_ROOT / "crawler" / "samples"
FLAG = {s: s.replace("_", "-") for s in SERVICES}  # semantic_scholar -> --semantic-scholar-…


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tests.standin",
        description=(
            "Local stand-in for the arXiv export API, Twitter oEmbed and syndication, "
            "Semantic Scholar's paper batch endpoint, Hugging Face's paper pages and "
            "OpenAlex's works API, all on one port."
        ),
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    p.add_argument(
        "--digests",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="digest files or directories (default: crawler/samples/*.txt)",
    )
    p.add_argument("--seed", type=int, default=0)
    for flag in FLAG.values():
        p.add_argument(f"--{flag}-latency", type=float, default=0.0, metavar="S")
    for service, flag in FLAG.items():
        p.add_argument(
            f"--{flag}-max-in-flight",
            type=int,
            metavar="N",
            help=f"answer 429 at once to {service} requests beyond N in flight",
        )
    p.add_argument(
        "--semantic-scholar-interval",
        type=float,
        default=1.0,
        metavar="S",
        help="answer 429 to a Semantic Scholar request starting sooner after the previous one",
    )
    p.add_argument(
        "--openalex-budget",
        type=int,
        metavar="N",
        help="OpenAlex's daily budget: list requests after the first N get 429",
    )
    p.add_argument(
        "--hf-window-requests",
        type=int,
        default=500,
        metavar="N",
        help="Hugging Face's fixed window: N requests (the anonymous limit: 500) ...",
    )
    p.add_argument(
        "--hf-window-seconds",
        type=float,
        default=300.0,
        metavar="S",
        help="... per S seconds; more get 429 (RateLimit headers on every answer)",
    )
    p.add_argument(
        "--fault-share",
        type=float,
        default=0.0,
        help="share of request keys that fail before succeeding (e.g. 0.33)",
    )
    p.add_argument(
        "--fault-repeat", type=int, default=3, help="how many attempts of a faulty key fail"
    )
    p.add_argument("--verbose", action="store_true", help="print one line per request")
    return p


def crawl_command(standin: StandIn) -> str:
    """The crawl command pointing every service at ``standin``."""
    settings = " ".join(f"-s {name}={url}" for name, url in standin.settings.items())
    return f"scrapy crawl digests {settings}"


def build(args: argparse.Namespace) -> tuple[StandIn, list[Path]]:
    """The (not yet started) stand-in the arguments describe, and the digests it serves."""
    paths: list[Path] = []
    for p in args.digests or [DEFAULT_DIGESTS]:
        paths.extend(sorted(p.glob("*.txt")) if p.is_dir() else [p])
    if not paths:
        parser().error("no digest files found")
    options = vars(args)
    standin = StandIn(
        Catalogue.from_digests(paths, seed=args.seed),
        host=args.host,
        port=args.port,
        quiet=not args.verbose,
        latency={s: options[f"{s}_latency"] for s in SERVICES},
        max_in_flight={
            s: options[f"{s}_max_in_flight"]
            for s in SERVICES
            if options[f"{s}_max_in_flight"] is not None
        },
        min_interval={"semantic_scholar": args.semantic_scholar_interval},
        openalex_budget=args.openalex_budget,
        windows={"hf_papers": (args.hf_window_requests, args.hf_window_seconds)},
    )
    if args.fault_share > 0:
        standin.faults.mixed(share=args.fault_share, repeat=args.fault_repeat, seed=args.seed)
    return standin, paths


def main(argv: list[str] | None = None) -> int:
    standin, paths = build(parser().parse_args(argv))
    catalogue = standin.catalogue
    signal.signal(signal.SIGTERM, _interrupt)  # stop as cleanly as on Ctrl-C
    with standin:
        n_bad = sum(t.status != "ok" for t in catalogue.tweets.values())
        n_hidden = sum(d.status != "ok" for d in catalogue.details.values())
        print(
            f"{len(paths)} digests: {len(catalogue.papers)} papers served "
            f"({len(catalogue.absent)} withheld, {len(catalogue.citations)} known to Semantic "
            f"Scholar, {len(catalogue.hf_pages)} with a Hugging Face page, "
            f"{len(catalogue.openalex)} known to OpenAlex), "
            f"{len(catalogue.tweets)} tweets ({n_bad} deleted/protected, "
            f"{n_hidden} without details)"
        )
        print(f"arXiv API:        {standin.arxiv_url}")
        print(f"oEmbed:           {standin.oembed_url}")
        print(f"Syndication:      {standin.syndication_url}")
        print(f"Semantic Scholar: {standin.semantic_scholar_url}")
        print(f"OpenAlex:         {standin.openalex_url}")
        print(f"Hugging Face:     {standin.hf_papers_url}")
        print("Try:")
        print(f"  {crawl_command(standin)}")
        print("Ctrl-C to stop.", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print(f"\nstopping; served {len(standin.log)} requests", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
