"""Plotting: ``scale.png``, how wall time and memory grow with the corpus.

matplotlib is imported inside ``plot`` (Agg backend), so importing the harness stays cheap and
needs no display.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.model import Row


def plot(rows: list[Row], path: Path) -> None:
    """Wall time and peak RSS against corpus size, one colour per mode, to ``path`` (PNG)."""
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
