"""``NAME.report.html``: one self-contained page about the dataset and the run that wrote it.

Figures are drawn with matplotlib (no pyplot, no display) and embedded as inline SVG whose text
stays text, styles are inline, and the page loads nothing from outside the file: it can be mailed,
archived or opened offline, and it shows the same thing wherever it is. It still links out
(plain ``<a href>``, opened only when clicked) to each paper's arXiv page and its tweet. Numbers
come from the dataset's Parquet files through DuckDB, so the page agrees with what a reader of
the tables sees; axes print plain numbers (the style turns mathtext off, so matplotlib's
default ``10^3`` labels would show as raw ``$\\mathdefault{...}$``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from html import escape
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from crawler.export.files import atomic_write
from crawler.export.ownership import REPORT_MARK, report_problem
from crawler.export.report_data import CITED_LINES, Points, ReportData, Rows, gather
from crawler.export.unchanged import report_meta

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

SERVICES = ("arxiv", "oembed", "syndication", "semantic_scholar", "hf_papers", "openalex")
SERVICE_LABELS = {
    "arxiv": "arXiv API",
    "oembed": "oEmbed",
    "syndication": "Tweet details",
    "semantic_scholar": "Semantic Scholar",
    "hf_papers": "Hugging Face papers",
    "openalex": "OpenAlex",
}
# A scatter of more dots than this is drawn as one embedded image (axes, ticks and labels stay
# SVG text): 175,000 vector dots (~10,000 posts) made megabytes of SVG per plot and hundreds
# of megabytes of memory to write it. The 294 real posts have ~5,000 papers: vector dots.
DENSE_DOTS = 20_000
# Bins of GitHub stars, as (label, lowest count): each bin up to the next one's lowest.
STAR_BINS = (("0", 0), ("1–9", 1), ("10–99", 10), ("100–999", 100), ("1,000–9,999", 1000),
             ("10,000+", 10000))  # fmt: skip
CHANGES_SHOWN = 25
STATUS_COLORS = {
    "ok": "#2a9d8f",
    "not_found": "#e9c46a",
    "not_indexed": "#e9c46a",
    "deleted": "#f4a261",
    "protected": "#e76f51",
    "tombstone": "#b5838d",
    "error": "#c1121f",
    "disabled": "#adb5bd",
}
PALETTE = ["#264653", "#2a9d8f", "#e9c46a", "#f4a261", "#e76f51", "#8ab17d", "#6d597a", "#adb5bd"]
_STYLE: dict[RcKeyType, Any] = {
    # Digest text holds LaTeX ($\frac{...$): labels are text, never mathtext to be parsed.
    "text.parse_math": False,
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.grid.axis": "y",
    "grid.color": "#e5e5e5",
    "axes.edgecolor": "#999999",
    "axes.titleweight": "bold",
    "legend.frameon": False,
    "axes.axisbelow": True,
}

CSS = """
:root { color-scheme: light; }
body { margin: 0; background: #f4f5f7; color: #1d2330;
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main { max-width: 980px; margin: 0 auto; padding: 28px 24px 48px; }
header h1 { margin: 0 0 4px; font-size: 28px; }
.period { margin: 0; color: #4a5263; font-size: 16px; }
.stats { display: flex; flex-wrap: wrap; gap: 12px; margin: 18px 0 8px; padding: 0; }
.stats li { list-style: none; background: #fff; border-radius: 8px; padding: 10px 16px;
            box-shadow: 0 1px 2px rgba(0,0,0,.08); min-width: 110px; }
.stats b { display: block; font-size: 22px; }
.stats span { color: #4a5263; font-size: 13px; }
nav { margin: 12px 0 0; font-size: 14px; }
nav a { color: #1d6fa5; margin-right: 14px; text-decoration: none; }
section { background: #fff; border-radius: 10px; margin: 22px 0; padding: 18px 22px;
          box-shadow: 0 1px 3px rgba(0,0,0,.08); }
h2 { margin: 0 0 10px; font-size: 20px; }
h3 { margin: 18px 0 6px; font-size: 16px; }
figure { margin: 0; }
figure svg { display: block; width: 100%; height: auto; }
figcaption, .note { color: #4a5263; font-size: 13.5px; margin-top: 6px; }
.nodata { background: #f4f5f7; border-radius: 6px; padding: 18px; color: #4a5263;
          text-align: center; font-style: italic; }
table { border-collapse: collapse; width: 100%; font-size: 13.5px; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid #e8e9ec;
         vertical-align: top; }
th { background: #f4f5f7; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .mono { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12.5px;
              color: #4a5263; overflow-wrap: anywhere; }
.bad { color: #c1121f; font-weight: 600; }
.good { color: #2a7d6f; font-weight: 600; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; }
dl.facts dt { color: #4a5263; }
dl.facts dd { margin: 0; }
"""


def _figure(height: float = 3.0) -> Figure:
    fig = Figure(figsize=(9.0, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _img(fig: Figure, alt: str) -> str:
    """The figure as inline SVG: labels and tick numbers stay text a reader can select and
    search; ids are salted by the figure so two plots never share one."""
    buf = BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": alt}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None},
                    facecolor="white")  # fmt: skip
    svg = buf.getvalue().decode("utf-8")
    svg = svg[svg.index("<svg") :]  # no XML prolog or DOCTYPE inside HTML
    label = f'<svg class="plot" role="img" aria-label="{escape(alt)}"'
    return svg.replace("<svg", label, 1)


def _figure_html(fig: Figure | None, alt: str, caption: str, empty: str) -> str:
    if fig is None:
        return f'<p class="nodata">No data: {escape(empty)}</p>'
    return f"<figure>{_img(fig, alt)}<figcaption>{escape(caption)}</figcaption></figure>"


def _date_axis(ax: Any) -> None:
    locator = AutoDateLocator(maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def _plain(value: float, _position: Any = None) -> str:
    """A tick label as a plain number: 1,000 rather than 10^3 (mathtext is off)."""
    return f"{value:,.0f}" if abs(value) >= 1 or value == 0 else f"{value:g}"


PLAIN = FuncFormatter(_plain)


def _symlog(ax: Any, which: str) -> None:
    """A symmetric log scale on ``which`` ("x" or "y") for counts, from 0 (so 0, 1, 10, …
    always show, even for one point), whose ticks read as numbers."""
    getattr(ax, f"set_{which}scale")("symlog", linthresh=1)
    getattr(ax, f"set_{which}lim")(0, None)
    getattr(ax, f"{which}axis").set_major_formatter(PLAIN)


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


# -- plots -----------------------------------------------------------------------------------


def _daily(rows: Sequence[tuple[date, int]]) -> tuple[list[date], list[int]]:
    """Every day from the first to the last, zero where no digest appeared."""
    by_day = dict(rows)
    first, last = rows[0][0], rows[-1][0]
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return days, [by_day.get(d, 0) for d in days]


def _entries_per_day(rows: Rows) -> Figure | None:
    if not rows:
        return None
    days, counts = _daily(rows)
    fig = _figure()
    ax = fig.add_subplot()
    edges = date2num([*days, days[-1] + timedelta(days=1)])
    ax.stairs(counts, edges, fill=True, color="#9ec5d8", label="entries")
    if len(days) >= 14:
        # trailing 7-day mean (fewer days at the very start)
        mean = [sum(counts[max(0, i - 6) : i + 1]) / min(7, i + 1) for i in range(len(days))]
        middays = date2num(days) + 0.5
        ax.plot(middays, mean, color="#264653", linewidth=1.8, label="7-day mean")
    ax.set_ylabel("entries")
    ax.set_ylim(bottom=0)
    fig.legend(loc="outside upper right", ncol=2)
    _date_axis(ax)
    return fig


def _categories(rows: Rows, bucket: str) -> Figure | None:
    if not rows:
        return None
    totals: Counter[str] = Counter()
    for _, category, n in rows:
        totals[category] += n
    top = [c for c, _ in totals.most_common(7)]
    buckets = sorted({b for b, _, _ in rows})
    series: dict[str, dict[date, int]] = defaultdict(lambda: defaultdict(int))
    for b, category, n in rows:
        series[category if category in top else "other"][b] += n
    fig = _figure(3.4)
    ax = fig.add_subplot()
    width = {"month": 24, "week": 5.5, "day": 0.85}[bucket]
    bottom = [0] * len(buckets)
    for i, category in enumerate([*top, "other"] if "other" in series else top):
        values = [series[category].get(b, 0) for b in buckets]
        ax.bar(buckets, values, width=width, bottom=bottom, label=category,
               color=PALETTE[i % len(PALETTE)], align="edge")  # fmt: skip
        bottom = [a + v for a, v in zip(bottom, values, strict=True)]
    ax.set_ylabel(f"entries per {bucket}")
    handles, labels = ax.get_legend_handles_labels()  # listed top to bottom, as stacked
    ax.legend(handles[::-1], labels[::-1], loc="center left", bbox_to_anchor=(1.0, 0.5))
    _date_axis(ax)
    return fig


def _status_order(statuses: Iterable[str]) -> list[str]:
    """ok first, then the known failures in a fixed order, unknown ones last."""
    known = list(STATUS_COLORS)
    return sorted(statuses, key=lambda s: (known.index(s) if s in known else len(known), s))


def _label_bars(ax: Any, bars: Any, shares: Sequence[float]) -> None:
    for bar, share in zip(bars, shares, strict=True):
        if share >= 7:  # narrower segments have no room for a label
            x = bar.get_x() + bar.get_width() / 2
            y = bar.get_y() + bar.get_height() / 2
            ax.text(x, y, f"{share:.0f}%", ha="center", va="center", color="white", fontsize=9)


def _statuses(rows: list[tuple[str, dict[str, int]]]) -> Figure | None:
    if not rows:
        return None
    fig = _figure(0.75 * len(rows) + 1.0)
    ax = fig.add_subplot()
    ax.grid(False)
    statuses = _status_order({s for _, c in rows for s in c})
    labels = [label for label, _ in rows][::-1]
    left = [0.0] * len(rows)
    for status in statuses:
        shares = [100 * c.get(status, 0) / sum(c.values()) for _, c in rows][::-1]
        color = STATUS_COLORS.get(status, "#6d597a")
        label = status.replace("_", " ")
        bars = ax.barh(labels, shares, left=left, color=color, label=label, height=0.6)
        _label_bars(ax, bars, shares)
        left = [a + s for a, s in zip(left, shares, strict=True)]
    ax.set_xlim(0, 100)
    ax.set_xlabel("share (%)")
    fig.legend(loc="outside lower center", ncol=len(statuses))
    return fig


def _attention(points: Points) -> tuple[Figure | None, int]:
    likes, citations = points
    if not len(likes):
        return None, 0
    fig = _figure(3.6)
    ax = fig.add_subplot()
    ax.grid(True, axis="both")
    ax.scatter(likes, citations, s=14, alpha=0.45, color="#264653", edgecolors="none",
               rasterized=len(likes) > DENSE_DOTS)  # fmt: skip
    _symlog(ax, "x")
    _symlog(ax, "y")
    ax.set_xlabel("likes of its tweets, summed (symmetric log scale)")
    ax.set_ylabel("citations, Semantic Scholar (symmetric log scale)")
    return fig, len(likes)


def _short_title(arxiv_id: str, title: str | None, likes: int | None) -> str:
    name = title or arxiv_id
    name = name if len(name) <= 40 else name[:39] + "…"
    return f"{name} ({arxiv_id}, {_fmt(likes)} likes)"


def _cited_by_year(rows: Rows) -> tuple[Figure | None, int]:
    if not rows:
        return None, 0
    fig = _figure(3.8)
    ax = fig.add_subplot()
    for i, (paper, title, likes, years, counts) in enumerate(rows):
        color = PALETTE[i % len(PALETTE)]
        ax.plot(years, counts, marker="o", markersize=4, color=color,
                label=_short_title(paper, title, likes))  # fmt: skip
        ax.annotate(f"{counts[-1]:,}", (years[-1], counts[-1]), textcoords="offset points",
                    xytext=(4, 0), va="center", fontsize=8, color=color)  # fmt: skip
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0f}"))
    ax.yaxis.set_major_formatter(PLAIN)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("year (OpenAlex counts_by_year)")
    ax.set_ylabel("citations that year")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    return fig, len(rows)


def _scatter(ax: Any, points: tuple[Any, Any], xlabel: str, ylabel: str) -> None:
    ax.grid(True, axis="both")
    xs, ys = points
    if len(xs):
        ax.scatter(xs, ys, s=14, alpha=0.45, color="#264653", edgecolors="none",
                   rasterized=len(xs) > DENSE_DOTS)  # fmt: skip
    _symlog(ax, "x")
    _symlog(ax, "y")
    ax.set_title(f"{len(xs):,} papers", fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


def _likes_against(upvotes: Points, cited: Points) -> tuple[Figure | None, int, int]:
    """Tweet likes against HF upvotes and against OpenAlex citations, side by side."""
    if not len(upvotes[0]) and not len(cited[0]):
        return None, 0, 0
    fig = _figure(3.6)
    left, right = fig.subplots(1, 2)
    likes = "likes of its tweets, summed (symlog)"
    _scatter(left, upvotes, likes, "Hugging Face upvotes (symlog)")
    _scatter(right, cited, likes, "citations, OpenAlex (symlog)")
    return fig, len(upvotes[0]), len(cited[0])


def _star_bins(stars: Iterable[int]) -> list[int]:
    counts = [0] * len(STAR_BINS)
    for n in stars:
        counts[max(i for i, (_, low) in enumerate(STAR_BINS) if n >= low)] += 1
    return counts


def _code(papers_with_code: tuple[int, int], stars: Any) -> tuple[Figure | None, int, int]:
    """The share of papers with a code link, and the GitHub stars Hugging Face counted."""
    papers, with_code = papers_with_code
    if not papers:
        return None, 0, 0
    fig = _figure(3.0)
    share, hist = fig.subplots(1, 2, width_ratios=(1, 2))
    shares = (("with code", with_code, "#2a9d8f"), ("without", papers - with_code, "#adb5bd"))
    for label, n, color in shares:
        bar = share.bar(label, n, color=color)
        share.bar_label(bar, labels=[f"{n:,} ({100 * n / papers:.0f}%)"], fontsize=9)
    share.set_ylabel("papers")
    share.yaxis.set_major_formatter(PLAIN)
    counts = _star_bins(stars)
    bars = hist.bar([label for label, _ in STAR_BINS], counts, color="#264653")
    hist.bar_label(bars, labels=[f"{n:,}" for n in counts], fontsize=9)
    hist.set_xlabel("GitHub stars of the paper's repository (Hugging Face)")
    hist.set_ylabel("papers")
    hist.yaxis.set_major_formatter(PLAIN)
    return fig, with_code, len(stars)


def _mattered(data: ReportData) -> str:
    papers = data.overview["counts"]["papers"]
    likes, upvoted, cited = _likes_against(data.upvotes, data.cited)
    code, with_code, starred = _code(data.code, data.stars)
    by_year, lines = _cited_by_year(data.cited_by_year)
    body = (
        "<p class='note'>What the papers did after their digest: citations from OpenAlex, "
        "attention on Hugging Face and code. Each value is as of its block's "
        "<code>*_fetched_at</code>; <code>paper_history</code> keeps one observation per "
        "refresh.</p><h3>Citations per year of the most-tweeted papers</h3>"
        + _figure_html(
            by_year, "Line chart of citations per year of the most-tweeted papers",
            f"The {lines:,} papers (at most {CITED_LINES}) with the most tweet likes that "
            "OpenAlex has citations per year for: citations received each year (table "
            "citations_by_year, years between the first and last with a citation filled with "
            "0), the last year's count labelled.",
            "no paper has citations per year (is OpenAlex off?).")
        + "<h3>Tweet likes against Hugging Face upvotes and citations</h3>"
        + _figure_html(
            likes, "Scatter plots of tweet likes against upvotes and against citations",
            f"Left: {upvoted:,} papers' summed tweet likes against their Hugging Face upvotes. "
            f"Right: {cited:,} papers' tweet likes against their OpenAlex citation count. Axes "
            "are logarithmic above 1 and linear below, so zeros still show.",
            "no paper has tweet likes and upvotes or citations.")
        + "<h3>Papers with code</h3>"
        + _figure_html(
            code, "Bar charts of the share of papers with code and their GitHub stars",
            f"Left: {with_code:,} of {papers:,} papers have a code link (from tweets or "
            f"Hugging Face, code_urls). Right: {starred:,} papers by the GitHub stars Hugging "
            "Face counted for their repository.",
            "no papers.")
    )  # fmt: skip
    return _section("mattered", "What mattered since", body)


def _service_counts(stats: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    names = list(SERVICES)
    for key in stats:
        parts = key.split("/")
        if len(parts) == 3 and parts[0] in ("service", "retry") and parts[1] not in names:
            names.append(parts[1])
    out = {}
    for name in names:
        counts = {
            "requests": stats.get(f"service/{name}/requests"),
            "throttled": stats.get(f"service/{name}/throttled"),
            "retries": stats.get(f"retry/{name}/count"),
            "gave up": stats.get(f"retry/{name}/max_reached"),
        }
        if any(v is not None for v in counts.values()):
            out[name] = {k: int(v or 0) for k, v in counts.items()}
    return out


def _health(services: Mapping[str, Mapping[str, int]]) -> Figure | None:
    if not services or not any(any(c.values()) for c in services.values()):
        return None
    kinds = ("requests", "throttled", "retries", "gave up")
    colors = ("#9ec5d8", "#f4a261", "#e9c46a", "#c1121f")
    names = list(services)[::-1]  # the first service on top, as in the table below
    fig = _figure(0.55 * len(names) + 1.2)
    ax = fig.add_subplot()
    ax.grid(True, axis="x")
    ax.grid(False, axis="y")
    height = 0.8 / len(kinds)
    for i, (kind, color) in enumerate(zip(kinds, colors, strict=True)):
        ys = [n + (1.5 - i) * height for n in range(len(names))]
        ax.barh(ys, [services[n][kind] for n in names], height=height, color=color, label=kind)
    ax.set_yticks(range(len(names)), [SERVICE_LABELS.get(n, n) for n in names])
    _symlog(ax, "x")
    ax.set_xlabel("count (symmetric log scale)")
    fig.legend(loc="outside lower center", ncol=4)
    return fig


# -- sections --------------------------------------------------------------------------------


def _day(d: date) -> str:
    return f"{d.day} {d:%B %Y}"


def _subtitle(info: Mapping[str, Any], run_report: Mapping[str, Any] | None) -> str:
    """The period the digests cover and the run that wrote the data (not a folder's name)."""
    first, last = info["first"], info["last"]
    period = f"Digests published {_day(first)} – {_day(last)}" if first else "No dated digest"
    if not run_report:
        return period
    return f"{period} · run {run_report.get('run_id')}, finished {run_report.get('finished_at')}"


def _header(info: Mapping[str, Any], run_report: Mapping[str, Any] | None) -> str:
    counts = info["counts"]
    tiles = (
        ("digests read", counts["posts"]),
        ("digests without entries", info["empty"]),
        ("entries", counts["entries"]),
        ("distinct papers", counts["papers"]),
        ("distinct tweets", counts["tweets"]),
    )
    items = "".join(f"<li><b>{n:,}</b><span>{escape(label)}</span></li>" for label, n in tiles)
    anchors = (
        ("activity", "Activity"), ("categories", "Categories"), ("enrichment", "Enrichment"),
        ("attention", "Attention"), ("mattered", "What mattered since"),
        ("top-papers", "Top papers"), ("run", "This run"),
    )  # fmt: skip
    nav = "".join(f'<a href="#{a}">{escape(t)}</a>' for a, t in anchors)
    return (
        f"<header><h1>Hot Papers dataset report</h1>"
        f'<p class="period">{escape(_subtitle(info, run_report))}</p>'
        f'<ul class="stats">{items}</ul><nav>{nav}</nav></header>'
    )


def _table(head: str, body: str) -> str:
    return f"<table><thead>{head}</thead><tbody>{body}</tbody></table>"


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>{body}</section>'


def _plots(data: ReportData) -> list[str]:
    bucket = data.bucket
    attention, plotted = _attention(data.attention)
    return [
        _section("activity", "Entries per day", _figure_html(
            _entries_per_day(data.per_day), "Bar chart of digest entries per day",
            "Digest entries per day (shaded) and their trailing 7-day mean.",
            "no dated entries.")),
        _section("categories", "Categories over time", _figure_html(
            _categories(data.categories, bucket),
            f"Stacked bars of entries per {bucket} by category",
            f"Entries per {bucket} by arXiv primary category (the digest's first category when "
            "arXiv had no metadata); the seven most frequent shown, the rest as “other”.",
            "no dated entries.")),
        _section("enrichment", "Enrichment status", _figure_html(
            _statuses(data.statuses), "Stacked bars of enrichment statuses",
            "Share of entries (arXiv, Semantic Scholar) and of distinct tweets (oEmbed, tweet "
            "details) by the status their enrichment ended with.",
            "no entries and no tweets.")),
        _section("attention", "Attention and citations", _figure_html(
            attention, "Scatter plot of likes against citations",
            f"{plotted:,} papers: the likes of the paper's embedded tweets (summed over distinct "
            "tweets, latest count each) against its citation count from Semantic Scholar. Both "
            "axes are logarithmic above 1 and linear below, so papers with no citations still "
            "show.",
            "no paper has both tweet likes and a citation count (are details or Semantic "
            "Scholar off?).")),
    ]  # fmt: skip


def _link(url: str | None, text: str) -> str:
    """An outbound link, opened only when clicked; anything but http(s) stays text."""
    if not url or not url.startswith(("https://", "http://")):
        return escape(text)
    return f'<a href="{escape(url, quote=True)}" rel="noopener noreferrer">{escape(text)}</a>'


def _code_cell(urls: Sequence[str] | None) -> str:
    if not urls:
        return "–"
    more = f" <span class='note'>+{len(urls) - 1} more</span>" if len(urls) > 1 else ""
    return f'<span class="mono">{_link(urls[0], urls[0])}</span>{more}'


_TOP_HEAD = (
    "<tr><th class='num'>#</th><th>Paper (arXiv page)</th><th>First listed</th>"
    "<th class='num'>Digests listing it</th><th class='num'>Best rank</th>"
    "<th class='num'>Tweet likes (sum)</th><th class='num'>Digest favorites (max)</th>"
    "<th class='num'>Citations</th><th>Most-liked tweet</th><th>Code</th></tr>"
)


def _top_row(n: int, row: Sequence[Any]) -> str:
    paper, title, first, digests, best, likes, favorites, cites, code, tweet, tweet_likes = row
    abs_url = f"https://arxiv.org/abs/{paper}"
    tweet_cell = _link(tweet, f"tweet ({_fmt(tweet_likes)} likes)") if tweet else "–"
    return (
        f"<tr><td class='num'>{n}</td><td>{_link(abs_url, title or paper)}<br>"
        f"<span class='mono'>{_link(abs_url, 'arXiv:' + paper)}</span></td>"
        f"<td>{_fmt(first)}</td><td class='num'>{_fmt(digests)}</td>"
        f"<td class='num'>{_fmt(best)}</td><td class='num'>{_fmt(likes)}</td>"
        f"<td class='num'>{_fmt(favorites)}</td><td class='num'>{_fmt(cites)}</td>"
        f"<td>{tweet_cell}</td><td>{_code_cell(code)}</td></tr>"
    )


def _top_papers(rows: Rows) -> str:
    if not rows:
        return _section("top-papers", "Top papers", '<p class="nodata">No data: no papers.</p>')
    body = "".join(_top_row(n, row) for n, row in enumerate(rows, 1))
    note = (
        "<p class='note'>Ordered by the likes of the paper's embedded tweets (the sum over "
        "distinct tweets of their latest like count, <code>tweet_like_count_total</code>), then "
        "by the largest favorites count a digest printed for it "
        "(<code>max_digest_favorites</code>, counted by the digest, not by Twitter). Citations "
        "are Semantic Scholar's. Links open arXiv and Twitter; the page itself loads nothing "
        "from outside.</p>"
    )
    return _section("top-papers", "Top papers", _table(_TOP_HEAD, body) + note)


def _facts(run: Mapping[str, Any]) -> str:
    labels = (
        ("run_id", "Run"), ("started_at", "Started"), ("finished_at", "Finished"),
        ("exit_status", "Exit status"), ("records", "Records written"),
        ("changed_records", "Records changed"),
    )  # fmt: skip
    items = []
    for key, label in labels:
        value = run.get(key)
        css = ""
        if key == "exit_status" and value is not None:
            css = ' class="good"' if value == 0 else ' class="bad"'
        items.append(f"<dt>{escape(label)}</dt><dd{css}>{escape(_fmt(value))}</dd>")
    return f'<dl class="facts">{"".join(items)}</dl>'


def _service_table(services: Mapping[str, Mapping[str, int]]) -> str:
    if not services:
        return '<p class="nodata">No data: the run report has no per-service counts.</p>'
    kinds = ("requests", "throttled", "retries", "gave up")
    head = "<tr><th>Service</th>" + "".join(f"<th class='num'>{k}</th>" for k in kinds) + "</tr>"
    body = "".join(
        f"<tr><td>{escape(SERVICE_LABELS.get(name, name))}</td>"
        + "".join(
            f"<td class='num{' bad' if k == 'gave up' and c[k] else ''}'>{c[k]:,}</td>"
            for k in kinds
        )
        + "</tr>"
        for name, c in services.items()
    )
    return _table(head, body)


def _record_statuses(stats: Mapping[str, Any]) -> str:
    fields: dict[str, dict[str, int]] = defaultdict(dict)
    for key, value in stats.items():
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == "records" and isinstance(value, int):
            field = "embed" if parts[1] == "embeds" else parts[1]  # schema-1 crawls said embeds
            fields[field][parts[2]] = fields[field].get(parts[2], 0) + value
    if not fields:
        return ""
    rows = "".join(
        f"<tr><td>{escape(field)}</td><td>"
        + ", ".join(f"{escape(s.replace('_', ' '))} {n:,}" for s, n in sorted(counts.items()))
        + "</td></tr>"
        for field, counts in sorted(fields.items())
    )
    return "<h3>Record statuses</h3>" + _table("<tr><th>Field</th><th>Statuses</th></tr>", rows)


def _short(value: Any, limit: int = 60) -> str:
    text = "null" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _change_rows(changes: Sequence[Mapping[str, Any]]) -> Iterable[str]:
    for line in changes[:CHANGES_SHOWN]:
        for change in line.get("changes") or ():
            fields = change.get("fields") or {}
            what = "; ".join(
                f"{name}: {_short(v.get('before'))} → {_short(v.get('after'))}"
                for name, v in fields.items()
            )
            day = str(line.get("published_at") or line.get("date") or "")[:10]  # schema 2: date
            yield (
                f"<tr><td>{escape(day)}</td>"
                f"<td>{escape(str(line.get('slug', '')))} #{_fmt(line.get('rank'))}</td>"
                f"<td>{escape(str(change.get('what', '')))} "
                f"<span class='mono'>{escape(str(change.get('key', '')))}</span></td>"
                f"<td>{escape(what) or '–'}</td></tr>"
            )


def _changes(changes: Sequence[Mapping[str, Any]] | None) -> str:
    if changes is None:
        return "<h3>What changed</h3><p class='note'>No change feed was given.</p>"
    if not changes:
        return "<h3>What changed</h3><p class='note'>Nothing changed since the previous run.</p>"
    every = [c for line in changes for c in line.get("changes") or ()]
    names = Counter(name for c in every for name in c.get("fields") or {})
    kinds = Counter(c.get("what", "?") for c in every)
    summary = ", ".join(f"{n:,} {escape(str(k))}" for k, n in kinds.most_common())
    fields = ", ".join(f"{escape(k)} ({n:,})" for k, n in names.most_common(8))
    head = "<tr><th>Date</th><th>Entry</th><th>What</th><th>Fields (before → after)</th></tr>"
    shown = (
        f"All {len(changes):,} changed records."
        if len(changes) <= CHANGES_SHOWN
        else f"The first {CHANGES_SHOWN:,} of {len(changes):,} changed records."
    )
    return (
        f"<h3>What changed</h3><p>{len(changes):,} records changed: {summary}. "
        f"Fields most often changed: {fields or '–'}.</p>"
        f"{_table(head, ''.join(_change_rows(changes)))}"
        f"<p class='note'>{shown}</p>"
    )


def _run(run_report: Mapping[str, Any] | None, changes: Sequence[Mapping[str, Any]] | None) -> str:
    if run_report is None:
        body = "<p class='nodata'>No data: no run report was given.</p>" + _changes(changes)
        return _section("run", "This run", body)
    stats = run_report.get("stats") or {}
    services = _service_counts(stats)
    figure = _figure_html(
        _health(services), "Bar chart of requests, retries and failures per service",
        "Requests, retries, throttled answers and requests given up, per upstream service.",
        "no requests were counted in this run.",
    )  # fmt: skip
    body = (
        _facts(run_report) + "<h3>Upstream services</h3>" + figure + _service_table(services)
        + _record_statuses(stats) + _changes(changes)
    )  # fmt: skip
    return _section("run", "This run", body)


def render_page(
    data: ReportData,
    *,
    run_report: Mapping[str, Any] | None = None,
    changes: Sequence[Mapping[str, Any]] | None = None,
    built_from: str | None = None,
) -> str:
    """The report page of ``data`` (``crawler.export.report_data``) as a string; ``built_from``
    is the key of its inputs (``crawler.export.unchanged``), carried in a ``<meta>`` tag."""
    info = data.overview
    with matplotlib.rc_context(_STYLE):
        parts = [*_plots(data), _mattered(data), _top_papers(data.top_papers),
                 _run(run_report, changes)]  # fmt: skip
    first, last = info["first"], info["last"]
    title = f"Hot Papers {first} – {last}" if first else "Hot Papers"
    return (
        f'<!DOCTYPE html>\n{REPORT_MARK}\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{report_meta(built_from)}<title>{escape(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{_header(info, run_report)}{''.join(parts)}"
        "<footer class='note'>Tables: the dataset folder written with this page (Parquet, "
        "DuckDB and a dataset card).</footer></main></body></html>\n"
    )


def render_report(dataset: Path, **page: Any) -> str:
    """:func:`render_page` of ``dataset``'s data, both in this process (the run uses two)."""
    return render_page(gather(Path(dataset)), **page)


def write_page(
    path: Path,
    data: ReportData,
    *,
    run_report: dict[str, Any] | None,
    changes: list[dict[str, Any]] | None,
    built_from: str | None = None,
) -> None:
    """Render the report of ``data`` and replace ``path`` with it in one rename."""
    path = Path(path)
    page = render_page(data, run_report=run_report, changes=changes, built_from=built_from)
    if problem := report_problem(path):  # checked before the crawl; asked again
        raise ValueError(problem)
    atomic_write(path, page.encode("utf-8"))


def write_report(path: Path, dataset: Path, **page: Any) -> None:
    """:func:`write_page` of ``dataset``'s data, both in this process."""
    write_page(path, gather(Path(dataset)), **page)
