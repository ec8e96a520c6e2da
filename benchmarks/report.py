"""Reporting: ``results.json`` (merging rows of earlier runs) and ``results.md`` from it.

Everything here works from the JSON alone, so a table can be rebuilt, or its layout changed,
without re-running hours of crawls::

    python -m benchmarks.report [--results benchmarks/results/results.json] [--out DIR]
                                [--no-plot]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.cost_report import cost_markdown
from benchmarks.model import (
    BATCH_SIZE,
    RESULTS,
    ROOT,
    SERVICE_ORDER,
    TWEET_SERVICES,
    YEAR_POSTS,
    Row,
    ordered,
    row_key,
)
from benchmarks.plot import plot
from benchmarks.services import THROTTLE_STATUSES

MISSING = "—"  # a figure the row's harness did not record


# --- results.json -------------------------------------------------------------------------------
def previous(path: Path, *, merge: bool, merge_from: list[Path]) -> dict[str, Any]:
    """What earlier runs left to keep: ``path`` itself if ``merge``, plus rows (and a profile,
    and parse speed) of each ``merge_from`` file, later files winning."""
    old: dict[str, Any] = json.loads(path.read_text()) if merge and path.exists() else {}
    for extra in merge_from:
        more = json.loads(extra.read_text())
        have = {row_key(d) for d in more["rows"]}
        old["rows"] = [d for d in old.get("rows", []) if row_key(d) not in have]
        old["rows"] += more["rows"]
        old["profile"] = more.get("profile") or old.get("profile")
        if "mb_per_s" in (more.get("meta", {}).get("parse") or {}):
            old.setdefault("meta", {})["parse"] = more["meta"]["parse"]
    return old


def merged_rows(new: list[Row], old: dict[str, Any]) -> list[Row]:
    """New rows, plus old rows of the (mode, posts) pairs not re-run, in table order."""
    done = {row_key(r) for r in new}
    kept = [Row.from_dict(d) for d in old.get("rows", []) if row_key(d) not in done]
    return ordered(kept + new)


def previous_parse(old: dict[str, Any]) -> dict[str, Any] | None:
    """The kept parse-speed figures, unless an older harness measured them differently."""
    parse = old.get("meta", {}).get("parse")
    return parse if parse and "mb_per_s" in parse else None


def write(
    out: Path,
    meta: dict[str, Any],
    rows: list[Row],
    profile: dict[str, Any] | None,
    *,
    figure: bool = True,
) -> None:
    """``results.json``, ``results.md`` and (if ``figure``) ``scale.png`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    raw = {"meta": meta, "rows": [asdict(r) for r in rows], "profile": profile}
    (out / "results.json").write_text(json.dumps(raw, indent=1) + "\n")
    render(out, meta, rows, profile, figure=figure)


def render(
    out: Path,
    meta: dict[str, Any],
    rows: list[Row],
    profile: dict[str, Any] | None,
    *,
    figure: bool = True,
) -> None:
    """``results.md`` and (if ``figure``) ``scale.png`` in ``out``; ``results.json`` untouched.
    Issue 21's section comes from ``cost.json`` beside it, when ``benchmarks.cost`` wrote one."""
    text = markdown(rows, meta, profile)
    cost = out / "cost.json"
    if cost.exists():
        text += "\n".join(cost_markdown(json.loads(cost.read_text()))) + "\n"
    notes = out / "cost_notes.md"  # figures written by hand, with the command behind them
    if notes.exists():
        text += "\n" + notes.read_text("utf-8").strip() + "\n"
    (out / "results.md").write_text(text)
    if figure:
        plot(rows, out / "scale.png")


def rerender(out: Path) -> None:
    """``results.md`` again from the JSON files in ``out``, the plot left alone."""
    path = out / "results.json"
    raw = json.loads(path.read_text()) if path.exists() else {"meta": None, "rows": []}
    if raw["meta"] is None:
        cost = json.loads((out / "cost.json").read_text())
        (out / "results.md").write_text("\n".join(cost_markdown(cost)) + "\n")
        return
    rows = ordered([Row.from_dict(d) for d in raw["rows"]])
    render(out, raw["meta"], rows, raw.get("profile"), figure=False)


# --- results.md ---------------------------------------------------------------------------------
def fmt_s(s: float) -> str:
    """Seconds as the table shows them: hours when long, fewer digits as they grow."""
    if s >= 3600:
        return f"{s / 3600:.1f} h"
    if s >= 100:
        return f"{s:.0f}"
    return f"{s:.1f}"


def markdown(rows: list[Row], meta: dict[str, Any], profile: dict[str, Any] | None) -> str:
    """The whole of ``results.md``."""
    lines = _intro(meta) + targets_markdown(rows) + _main_table(rows)
    short = [r for r in rows if r.crawler_records != r.entries]
    lines += ["", "Records written = entries in every row." if not short else "Short rows:"]
    lines += [f"- {r.mode} {r.posts}: {r.crawler_records} of {r.entries} records" for r in short]
    lines += services_markdown(rows) + provenance_markdown(rows)
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


def _intro(meta: dict[str, Any]) -> list[str]:
    faulted = f", with {meta['faults']:.0%} of requests faulted once" if meta["faults"] else ""
    return [
        "# Benchmark results",
        "",
        f"Written by `python -m benchmarks.run` on {meta['when']} ({meta['machine']}); the "
        "command and the machine's load for each row are under *How each row was measured*. "
        f"Corpora: `benchmarks/corpus.py`, seed {meta['seed']}. Everything runs against the local "
        f"stand-in (`tests/standin`) over real HTTP on 127.0.0.1{faulted}, with the same rules "
        "told to the crawler and enforced by the stand-in (Semantic Scholar's interval is the "
        "crawler's `S2_DELAY`).",
        "",
        *([meta["note"], ""] if meta.get("note") else []),
        "**Modes.** `real`: arXiv's rule (3 s, one at a time) and realistic latencies. `fast`: "
        "real-sized posts, arXiv 0.5 s apart, tweet services at 0.05 s: the crawler against the "
        "sequential peer. `throttle`: the stand-in answers 429 to a ninth tweet request in "
        "flight (per service). `scaled`: delays and latencies scaled down so big corpora are "
        "bound by the crawler's CPU; these rows are about throughput, memory and request counts, "
        "*not* politeness. *settings*: arXiv delay / latencies of arXiv, oEmbed, syndication, "
        "Semantic Scholar / Semantic Scholar interval, seconds.",
        "",
        "**Floor** = arXiv's rule: (B-1)·max(delay, arXiv latency) + arXiv latency, "
        "B = ceil(distinct IDs/100). The crawler's default rule is stricter "
        "(`ARXIV_HOLD_AFTER_ANSWER`: each request also waits the delay after the previous "
        "answer, so the server provably sees starts that far apart): arXiv alone then needs "
        "(B-1)·(delay + latency) + latency, 1.10x the floor at real rules (99.3 s for 31 "
        "batches). *Tweet bounds at 16*: distinct tweets × latency / 16 per "
        "tweet service (oEmbed / syndication), for context. *Ratio* = crawler process wall / "
        "floor; in brackets Scrapy's `elapsed_time_seconds` / floor (spider open to close, "
        "without interpreter and Scrapy start-up). Peer = `benchmarks/peer.py` (`arxiv.Client` "
        "one ID per Search, an oEmbed and a syndication GET per tweet, then Semantic Scholar in "
        "POSTs of 500, 1 per interval; sequential); *extrap.* = measured on the first N posts "
        "and scaled linearly by entries.",
        "",
    ]


# --- targets (issue 14) -------------------------------------------------------------------------
def _find(rows: list[Row], mode: str, posts: int | None = None) -> Row | None:
    """The row of ``mode`` (and ``posts``, else the largest of that mode)."""
    found = [r for r in rows if r.mode == mode and (posts is None or r.posts == posts)]
    return max(found, key=lambda r: r.posts) if found else None


def _verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else ("**met**" if ok else "**not met**")


def _unmeasured(goal: str) -> list[str]:
    return [f"| {goal} | {MISSING} | {MISSING} | {_verdict(None)} |"]


def _target_year(rows: list[Row]) -> list[str]:
    r = _find(rows, "real", YEAR_POSTS)
    goal = "year of digests at real rules, details on: ≤ 1.15x the arXiv floor"
    if r is None:
        return _unmeasured(goal)
    return [
        f"| {goal} | real {r.posts} "
        f"| {fmt_s(r.crawler_wall_s)} s / {fmt_s(r.bound_s)} s = **{r.ratio:.2f}x** "
        f"(engine {r.engine_ratio:.2f}x) | {_verdict(r.ratio <= 1.15)} |"
    ]


def _target_peer(rows: list[Row]) -> list[str]:
    r = _find(rows, "fast")
    if r is None:
        return _unmeasured("60 posts, arXiv 0.5 s, tweets 0.05 s: ≥ 5x the peer")
    how = "extrapolated" if r.peer_extrapolated else "measured"
    return [
        f"| {r.posts} posts, arXiv {r.arxiv_delay:g} s, tweets {r.oembed_latency:g} s: ≥ 5x the "
        f"peer | fast {r.posts} | peer {fmt_s(r.peer_wall_s)} s ({how}) / crawler "
        f"{fmt_s(r.crawler_wall_s)} s = **{r.speedup:.1f}x** | {_verdict(r.speedup >= 5)} |"
    ]


def _target_throttle(rows: list[Row]) -> list[str]:
    r = _find(rows, "throttle")
    goal = (
        "tweet services that refuse a 9th request in flight: < 1 % throttled, and the crawl "
        "settles below the limit (95 % of the second half's requests at or below it)"
    )
    if r is None:
        return _unmeasured(goal)
    cells, ok = [], True
    for name in TWEET_SERVICES:
        f = r.crawler_services.get(name)
        if not f:
            continue
        limit = r.max_in_flight.get(name, 0)
        share = f["throttled"] / f["requests"] if f["requests"] else 0.0
        p95 = f.get("late_p95_concurrency", f.get("late_peak_concurrency", 0))
        ok = ok and share < 0.01 and f.get("peak_admitted", 0) <= limit and p95 <= limit
        cells.append(
            f"{name}: {f['throttled']}/{f['requests']} = {share:.2%} throttled; admitted ≤ "
            f"{f.get('peak_admitted')}; second half: 95 % at ≤ {p95} in flight, at most "
            f"{f.get('late_peak_concurrency')} ({f.get('late_throttled')} refused probes)"
        )
    return [f"| {goal} | throttle {r.posts} | {'; '.join(cells)} | {_verdict(ok)} |"]


def _target_memory(rows: list[Row]) -> list[str]:
    small, big = _find(rows, "scaled", 1000), _find(rows, "scaled", 10000)
    if big is None:
        return _unmeasured("peak RSS < 200 MB at 10,000 posts")
    lines = []
    for what, attr in (
        ("the crawl (until the snapshot is written)", "crawler_rss_crawl_mb"),
        ("the whole command (then the dataset and HTML report)", "crawler_rss_mb"),
    ):
        mb = getattr(big, attr)
        lines.append(
            f"| peak RSS < 200 MB at 10,000 posts: {what} | scaled 10,000 | {mb:.0f} MB "
            f"| {_verdict(mb < 200)} |"
        )
        if small is not None:
            growth = mb / getattr(small, attr) - 1
            lines.append(
                f"| peak RSS within 10 % from 1,000 to 10,000 posts: {what} "
                f"| scaled 1,000 / 10,000 | {getattr(small, attr):.0f} → {mb:.0f} MB = "
                f"{growth:+.1%} | {_verdict(abs(growth) <= 0.10)} |"
            )
    return lines


def _target_s2(rows: list[Row]) -> list[str]:
    goal = "Semantic Scholar: ceil(distinct papers / 500) requests (issue 12: 7 for 3,343)"
    found = [r for r in (_find(rows, "real", 294), _find(rows, "scaled", 294)) if r]
    if not found:
        return _unmeasured(goal)
    lines = []
    for r in found:
        got = r.crawler_services.get("semantic_scholar", {}).get("requests", 0)
        lines.append(
            f"| {goal} | {r.mode} {r.posts} | {got} requests for {r.distinct_papers:,} distinct "
            f"papers (ceil = {r.expected_s2_requests}) "
            f"| {_verdict(got == r.expected_s2_requests)} |"
        )
    return lines


def _target_batches(rows: list[Row]) -> list[str]:
    """Issue 14's batching rule: no partial arXiv batch while more IDs are still coming."""
    goal = "no partial arXiv batch while IDs are still coming: ceil(distinct IDs / 100) requests"
    measured = [r for r in rows if "arxiv" in r.crawler_services]
    if not measured:
        return _unmeasured(goal)
    cells = []
    for r in measured:
        need = -(-r.distinct_ids // BATCH_SIZE)
        got = r.crawler_services["arxiv"]["requests"]
        cells.append(f"{r.mode} {r.posts}: {got}" + ("" if got == need else f" (ceil {need})"))
    ok = all(
        r.crawler_services["arxiv"]["requests"] == -(-r.distinct_ids // BATCH_SIZE)
        for r in measured
    )
    return [f"| {goal} | every row | {'; '.join(cells)} | {_verdict(ok)} |"]


def targets_markdown(rows: list[Row]) -> list[str]:
    """Issue 14's targets, each judged from its row."""
    return [
        "## Targets (issue 14)",
        "",
        "| target | row | measured | verdict |",
        "|---|---|---|---|",
        *_target_year(rows),
        *_target_peer(rows),
        *_target_throttle(rows),
        *_target_memory(rows),
        *_target_s2(rows),
        *_target_batches(rows),
        "",
        "## Rows",
        "",
    ]


# --- rows ---------------------------------------------------------------------------------------
def _main_table(rows: list[Row]) -> list[str]:
    return [
        "| mode | settings | posts | entries | IDs / papers | tweets (embeds / distinct) "
        "| crawler wall s (engine, snapshot at) | floor s | ratio wall (engine) "
        "| tweet bounds at 16 s "
        "| peer wall s | speed-up vs peer | records/s | peak RSS MB crawl / command (peer) |",
        "|" + "---|" * 14,
        *(_main_line(r) for r in rows),
    ]


def _settings(r: Row) -> str:
    limit = (
        " / 429 above " + ", ".join(f"{v}" for v in sorted(set(r.max_in_flight.values())))
        if r.max_in_flight
        else ""
    )
    return (
        f"{r.arxiv_delay:g} / {r.arxiv_latency:g}, {r.oembed_latency:g}, "
        f"{r.syndication_latency:g}, {r.s2_latency:g} / {r.s2_delay:g}{limit}"
    )


def _peer_cell(r: Row) -> str:
    if not r.peer_wall_s:
        return f"{MISSING} | {MISSING}"
    approx = "~" if r.peer_extrapolated else ""
    wall = (
        f"{fmt_s(r.peer_wall_s)} extrap. (measured {r.peer_wall_measured_s:.0f} s on "
        f"{r.peer_posts} posts)"
        if r.peer_extrapolated
        else f"{fmt_s(r.peer_wall_s)} measured"
    )
    return f"{wall} | {approx}{r.speedup:.1f}x"


def _main_line(r: Row) -> str:
    elapsed = r.crawler_stats.get("elapsed_time_seconds")
    engine = f" ({fmt_s(elapsed)})" if elapsed else ""
    snapshot = f", snapshot at {fmt_s(r.crawler_snapshot_s)}" if r.crawler_snapshot_s else ""
    engine_ratio = f" ({r.engine_ratio:.2f})" if elapsed else ""
    peer_rss = f"{r.peer_rss_mb:.0f}" if r.peer_rss_mb else "-"
    return (
        f"| {r.mode} | {_settings(r)} | {r.posts:,} | {r.entries:,} "
        f"| {r.distinct_ids:,} / {r.distinct_papers:,} "
        f"| {r.tweet_embeds:,} / {r.distinct_tweets:,} "
        f"| {fmt_s(r.crawler_wall_s)}{engine}{snapshot} | {fmt_s(r.bound_s)} "
        f"| {r.ratio:.2f}{engine_ratio} "
        f"| {fmt_s(r.bound_oembed_s)} / {fmt_s(r.bound_syndication_s)} | {_peer_cell(r)} "
        f"| {r.crawler_records / r.crawler_wall_s:,.0f} "
        f"| {r.crawler_rss_crawl_mb:.0f} / {r.crawler_rss_mb:.0f} ({peer_rss}) |"
    )


def services_markdown(rows: list[Row]) -> list[str]:
    """Per-service figures of each row's crawl, one line per service (issue 14)."""
    throttles = ", ".join(str(s) for s in sorted(THROTTLE_STATUSES))
    lines = [
        "",
        "## Per service",
        "",
        "The crawl as the stand-in logged it (the peer's requests beside it). *Throttled*: "
        f"answers {throttles}. *Peak in flight*: the most requests of the service in flight "
        "at once, as attempted (refused ones included); in brackets as admitted by the "
        "stand-in; then in the second half of the service's requests (where the adaptive limit "
        "has settled): the most, and the 95th percentile. "
        f"*Span*: first request to last answer. {MISSING}: not recorded.",
        "",
        "| mode | posts | service | requests crawler / peer | throttled | peak in flight "
        "(admitted; 2nd half) | mean latency ms | span s |",
        "|" + "---|" * 8,
    ]
    for r in rows:
        names = [n for n in SERVICE_ORDER if n in r.crawler_services]
        names += sorted(set(r.crawler_services) - set(names))
        for name in names:
            lines.append(f"| {r.mode} | {r.posts:,} | {name} | " + _service_cells(r, name) + " |")
    return lines


def _service_cells(r: Row, name: str) -> str:
    f = r.crawler_services[name]
    latency = f.get("mean_latency_s")
    ms = MISSING if latency is None else f"{latency * 1000:.{1 if latency < 0.01 else 0}f}"
    peer = r.peer_requests.get(name)
    approx = "~" if r.peer_extrapolated else ""
    peer_text = MISSING if peer is None else f"{approx}{peer:,.0f}"
    share = f["throttled"] / f["requests"] if f["requests"] else 0.0
    throttled = f"{f['throttled']:,} ({share:.2%})" if f["throttled"] else "0"
    admitted = f.get("peak_admitted", MISSING)
    late = f.get("late_peak_concurrency", MISSING)
    p95 = f.get("late_p95_concurrency", MISSING)
    return (
        f"{f['requests']:,} / {peer_text} | {throttled} | {f['peak_concurrency']} ({admitted}; "
        f"{late}, p95 {p95}) | {ms} | {fmt_s(f['span_s'])}"
    )


def provenance_markdown(rows: list[Row]) -> list[str]:
    """Which command measured each row, when, and how busy the shared machine was meanwhile."""
    lines = [
        "",
        "## How each row was measured",
        "",
        "`python -m benchmarks.run` with the arguments below (a row is replaced when its mode "
        "and size are measured again; `--merge` keeps the others). CPU seconds during the crawl: "
        "the crawler's process, the harness (the stand-in's threads), and everything else on "
        "the machine (*others*, with the mean number of cores they kept busy): a row measured "
        "while others used a core or more may be slower than the crawler is.",
        "",
        "| mode | posts | command | when | CPU s crawler / stand-in / others (cores) "
        "| load avg before |",
        "|" + "---|" * 6,
    ]
    for r in rows:
        c = r.crawler_cpu
        cpu = (
            f"{c['child_cpu_s']:.0f} / {c['harness_cpu_s']:.0f} / {c['other_cpu_s']:.0f} "
            f"({c['other_cores']:.2f})"
            if c
            else MISSING
        )
        load = f"{c['loadavg_before']:.2f}" if c else MISSING
        command = f"`{r.command}`" if r.command else MISSING
        lines.append(
            f"| {r.mode} | {r.posts:,} | {command} | {r.measured_at or MISSING} | {cpu} | {load} |"
        )
    return lines


def profile_markdown(p: dict[str, Any]) -> list[str]:
    """The cProfile section: self time by phase, the crawler's entry points, top functions."""
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


# --- CLI ----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    """Rebuild ``results.md`` (and ``scale.png``) from a ``results.json``, measuring nothing."""
    ap = argparse.ArgumentParser(description="results.md and scale.png from results.json alone")
    ap.add_argument("--results", type=Path, default=RESULTS / "results.json")
    ap.add_argument("--out", type=Path, default=None, help="folder (default: beside --results)")
    ap.add_argument("--no-plot", action="store_true", help="leave scale.png alone")
    args = ap.parse_args(argv)
    raw = json.loads(args.results.read_text())
    out = args.out or args.results.parent
    out.mkdir(parents=True, exist_ok=True)
    rows = ordered([Row.from_dict(d) for d in raw["rows"]])
    render(out, raw["meta"], rows, raw.get("profile"), figure=not args.no_plot)
    print(f"wrote {out}/results.md" + ("" if args.no_plot else ", scale.png"))


if __name__ == "__main__":
    main()
