"""Plotting: ``scale.png``, how wall time and memory grow with the corpus, and how the tweet
services' concurrency moved during the crawls that probe it.

matplotlib is imported inside ``plot`` (Agg backend), so importing the harness stays cheap and
needs no display.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.model import MODE_ORDER, TWEET_CONCURRENCY_MAX, TWEET_SERVICES, Row

COLOURS = {"real": "tab:blue", "fast": "tab:green", "throttle": "tab:red", "scaled": "tab:orange"}
RSS_TARGET_MB = 200


def _wall(ax: Any, rows: list[Row]) -> None:
    for mode in MODE_ORDER:
        rs = sorted((r for r in rows if r.mode == mode), key=lambda r: r.entries)
        if not rs:
            continue
        c = COLOURS[mode]
        x = [r.entries for r in rs]
        ax.plot(x, [r.crawler_wall_s for r in rs], "o-", color=c, label=f"crawler ({mode})")
        ax.plot(x, [r.bound_s for r in rs], "s--", color=c, alpha=0.6, label=f"floor ({mode})")
        peer = [r for r in rs if r.peer_wall_s]
        if peer:
            ax.plot(
                [r.entries for r in peer], [r.peer_wall_s for r in peer], "^:", color=c,
                alpha=0.8, label=f"peer ({mode})",
            )  # fmt: skip
        for r in peer:
            if r.peer_extrapolated:
                ax.plot(r.entries, r.peer_wall_s, "^", mfc="white", color=c)
    ax.set(xscale="log", yscale="log", xlabel="entries in corpus", ylabel="wall time (s)")
    ax.set_title("Wall time (hollow peer marks: extrapolated)")


def _memory(ax: Any, rows: list[Row]) -> None:
    for mode in MODE_ORDER:
        rs = sorted((r for r in rows if r.mode == mode), key=lambda r: r.entries)
        if rs:
            x = [r.entries for r in rs]
            c = COLOURS[mode]
            ax.plot(x, [r.crawler_rss_crawl_mb for r in rs], "o-", color=c, label=f"crawl ({mode})")
            ax.plot(
                x, [r.crawler_rss_mb for r in rs], "x:", color=c,
                label=f"whole command, with dataset + report ({mode})",
            )  # fmt: skip
    ax.set(xscale="log", xlabel="entries in corpus", ylabel="peak RSS (MB)")
    ax.axhline(RSS_TARGET_MB, color="grey", lw=0.8, ls="--")
    ax.text(ax.get_xlim()[0], RSS_TARGET_MB + 3, f" {RSS_TARGET_MB} MB target", color="grey")
    ax.set_ylim(bottom=0)
    ax.set_title("Peak RSS of the crawl process")


def _concurrency(ax: Any, rows: list[Row]) -> None:
    styles = {"oembed": "-", "syndication": "--"}
    shown = [r for r in rows if r.mode in ("real", "throttle") and r.crawler_concurrency]
    for r in shown:
        for name in TWEET_SERVICES:
            points = r.crawler_concurrency.get(name)
            if points:
                ax.plot(
                    *zip(*points, strict=True), styles[name], color=COLOURS[r.mode], lw=1,
                    label=f"{name} ({r.mode} {r.posts})",
                )  # fmt: skip
        for limit in set(r.max_in_flight.values()):
            ax.axhline(limit, color=COLOURS[r.mode], lw=0.8, ls=":")
    ax.axhline(TWEET_CONCURRENCY_MAX, color="grey", lw=0.8, ls=":")
    ax.set(xlabel="seconds since the service's first request", ylabel="requests in flight")
    ax.set_ylim(0, TWEET_CONCURRENCY_MAX + 2)
    ax.set_title("Tweet services in flight (dotted: cap 16, stand-in limit)")


def plot(rows: list[Row], path: Path) -> None:
    """Wall time and peak RSS against corpus size, one colour per mode, and the tweet services'
    concurrency over time, to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(18, 5))
    _wall(ax1, rows)
    _memory(ax2, rows)
    _concurrency(ax3, rows)
    for ax in (ax1, ax2, ax3):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
