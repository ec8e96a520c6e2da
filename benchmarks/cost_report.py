"""The *Cost* section of ``results.md`` (issue 21) from ``cost.json``: before | after per goal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MISSING = "—"
Side = dict[str, Any]


def _load(s: Side) -> str:
    return f"load {s['load_before']:.2f}"


def _verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else ("**met**" if ok else "**not met**")


def _cells(row: dict[str, Any] | None, part: str, show: Callable[[Side], str]) -> list[str]:
    """before and after cells of ``row[part]``; a missing side is a dash."""
    sides = (row or {}).get(part) or {}
    return [show(sides[k]) if k in sides else MISSING for k in ("before", "after")]


def _after(row: dict[str, Any] | None, part: str) -> Side | None:
    return ((row or {}).get(part) or {}).get("after")


def _line(goal: str, cells: list[str], ok: bool | None) -> str:
    return f"| {goal} | {cells[0]} | {cells[1]} | {_verdict(ok)} |"


def _floor_failed(raw: Side) -> str:
    return f"| the floor: `benchmarks/floor.py` **failed** (exit {raw['exit']}) | | | |"


def _near_instant(rows: dict[str, Any]) -> list[str]:
    row = rows.get("near_instant")
    after, raw = _after(row, "sides"), (row or {}).get("floor")
    fl = raw if raw and raw.get("exit", 0) == 0 else None  # a failed floor measured nothing

    def show(s: Side) -> str:
        ratio = f"; {s['cpu_s'] / fl['cpu_s']:.2f}x the floor" if fl and fl["cpu_s"] else ""
        rate = s["records_per_cpu_s"]
        return f"{s['cpu_s']:.1f} CPU s = **{rate:,}** records/CPU-s{ratio} ({_load(s)})"

    ok = None
    if after and fl:
        ok = after["records_per_cpu_s"] >= 500 and after["cpu_s"] <= 1.5 * fl["cpu_s"]
    line = _line(
        "backfill, near-instant upstreams (arXiv 0.1 s), all services: ≥ 500 records per "
        "CPU-second and ≤ 1.5x the floor's CPU",
        _cells(row, "sides", show),
        ok,
    )
    if after and fl and fl["cpu_s"] and after["records"] / fl["cpu_s"] < 500:
        floor_rate = after["records"] / fl["cpu_s"]
        within = "met" if after["cpu_s"] <= 1.5 * fl["cpu_s"] else "not met"
        line = line[: -len(" |")] + (
            f" (≤ 1.5x the floor: {within}; 500 is above the floor's own {floor_rate:,.0f}) |"
        )
    lines = [line]
    if raw and fl is None:
        lines.append(_floor_failed(raw))
    if fl:
        records = after["records"] if after else 0
        per = f" = {records / fl['cpu_s']:,.0f} records/CPU-s" if fl["cpu_s"] and records else ""
        lines.append(
            f"| the floor: `benchmarks/floor.py` replaying the after side's {fl['requests']:,} "
            f"requests (a bare Scrapy spider: the engine alone) | | {fl['cpu_s']:.1f} CPU s{per}, "
            f"{fl['wall_s']:.1f} s wall ({_load(fl)}) | |"
        )
    return lines


def _instant(rows: dict[str, Any]) -> list[str]:
    row = rows.get("instant")
    after = _after(row, "sides")

    def show(s: Side) -> str:
        return (
            f"{s['wall_s']:.1f} s wall, peak RSS **{s['peak_rss_mb']:.0f} MB** "
            f"(crawl {s['peak_rss_crawl_mb']:.0f}) ({_load(s)})"
        )

    ok = None if after is None else after["peak_rss_mb"] <= 150
    return [
        _line(
            "backfill, instant upstreams (arXiv 0.3 s): wall; peak RSS of the whole command "
            "≤ 150 MB",
            _cells(row, "sides", show),
            ok,
        )
    ]


def _rerun(rows: dict[str, Any]) -> list[str]:
    row = rows.get("instant")
    after = _after(row, "rerun")

    def show(s: Side) -> str:
        rebuilt = s.get("rebuilt") or {}
        kept = ", ".join(f"{k} {'rebuilt' if v else 'kept'}" for k, v in rebuilt.items())
        field = s.get("run_report_dataset")
        told = f", run report `dataset: {field!r}`" if field is not None else ""
        if s.get("crawl_skipped"):
            told += "; crawl skipped (`unchanged_since`)"
        return (
            f"**{s['wall_s']:.1f} s** wall, {s['requests']} requests, "
            f"**{s['records_per_cpu_s']:,}** records/CPU-s, "
            f"peak RSS **{s['peak_rss_mb']:.0f} MB**; "
            f"{kept}{told} ({_load(s)})"
        )

    ok = None
    if after:
        ok = (
            after["wall_s"] <= 2.5
            and after["records_per_cpu_s"] >= 3000
            and after["peak_rss_mb"] <= 150
            and not any((after.get("rebuilt") or {}).values())
        )
    return [
        _line(
            "unchanged rerun (0 requests): whole command ≤ 2.5 s, ≥ 3,000 records per "
            "CPU-second, peak RSS ≤ 150 MB, dataset and report kept",
            _cells(row, "rerun", show),
            ok,
        )
    ]


def _bound(rows: dict[str, Any]) -> list[str]:
    row = rows.get("arxiv_bound")
    after, fl = _after(row, "sides"), (row or {}).get("floor")
    bound = (row or {}).get("facts", {}).get("bound_s")

    def show(s: Side) -> str:
        return f"{s['wall_s']:.1f} s / {bound:.1f} s = **{s['wall_s'] / bound:.2f}x** ({_load(s)})"

    ok = None if after is None or not bound else after["wall_s"] / bound <= 1.3
    lines = [
        _line(
            "arXiv 0.5 s (latency 0.3 s), details, citations and Hugging Face off: ≤ 1.3x the "
            "arXiv bound",
            _cells(row, "sides", show) if bound else [MISSING, MISSING],
            ok,
        )
    ]
    if fl and bound and fl.get("exit", 0) != 0:
        lines.append(_floor_failed(fl))
    elif fl and bound:
        lines.append(
            f"| the floor: `benchmarks/floor.py` replaying the after side's {fl['requests']:,} "
            f"requests at the same spacing (the engine alone) | | {fl['wall_s']:.1f} s = "
            f"**{fl['wall_s'] / bound:.2f}x** the bound, {fl['cpu_s']:.1f} CPU s ({_load(fl)}) | |"
        )
    return lines


def _peer(rows: dict[str, Any]) -> list[str]:
    row = rows.get("peer")
    peer = (row or {}).get("peer")
    after = _after(row, "sides")

    def show(s: Side) -> str:
        if not peer:
            return f"{s['wall_s']:.1f} s (peer not measured)"
        speedup = peer["wall_s"] / s["wall_s"]
        return (
            f"peer {peer['wall_s']:.0f} s / {s['wall_s']:.1f} s = **{speedup:.1f}x** ({_load(s)})"
        )

    ok = None if after is None or not peer else peer["wall_s"] / after["wall_s"] >= 6
    return [_line("60 posts: ≥ 6x the sequential peer", _cells(row, "sides", show), ok)]


def _big(rows: dict[str, Any]) -> list[str]:
    row = rows.get("big")
    if not row:
        return [
            _line("10,000 posts (`--big`): rerun ≤ 30 s, peak RSS ≤ 200 MB", [MISSING] * 2, None)
        ]
    after, again = _after(row, "sides"), _after(row, "rerun")

    def show_rerun(s: Side) -> str:
        return f"rerun {s['wall_s']:.1f} s, peak RSS {s['peak_rss_mb']:.0f} MB ({_load(s)})"

    ok = None
    if after and again:
        ok = again["wall_s"] <= 30 and max(after["peak_rss_mb"], again["peak_rss_mb"]) <= 200
    return [
        _line(
            "10,000 posts: backfill peak RSS ≤ 200 MB",
            _cells(
                row,
                "sides",
                lambda s: (
                    f"peak RSS {s['peak_rss_mb']:.0f} MB, {s['records_per_cpu_s']:,} records/CPU-s"
                ),
            ),
            None if after is None else after["peak_rss_mb"] <= 200,
        ),
        _line("10,000 posts: unchanged rerun ≤ 30 s", _cells(row, "rerun", show_rerun), ok),
    ]


def _step_cell(steps: tuple[str, ...]) -> Callable[[Side], str]:
    def show(s: Side) -> str:
        cells = []
        for step in s.get("steps") or steps:  # a side's own steps (an older one has fewer)
            got = s.get(step)
            if got is None:  # after a step that failed, as the supervisor does
                what = "not run"
            elif got["exit"] == 0:
                what = f"{got['peak_rss_mb']:.0f} MB, {got['wall_s']:.0f} s"
            else:
                what = f"**exit {got['exit']}** ({got['failure'] or 'no line'})"
            cells.append(f"{step} {what}")
        first = s.get(steps[0])
        return "; ".join(cells) + (f" ({_load(first)})" if first else "")

    return show


def _step_met(got: Side | None) -> bool:
    """Succeeded, and measured: a peak of 0 MB is a run psutil never saw."""
    return got is not None and got["exit"] == 0 and 0 < got["peak_rss_mb"] <= 186


def _steps(rows: dict[str, Any]) -> list[str]:
    """The steps after the crawl on the scaled archive (``benchmarks.steps``): met only when
    every step, these and any other the row ran, succeeded within the budget."""
    row = rows.get("steps")
    if not row:
        return []
    steps = tuple(dict.fromkeys([*row.get("steps", ()), *STEP_NAMES]))
    after = _after(row, "sides")
    ok = None if not after else all(_step_met(after.get(k)) for k in steps)
    goal = (
        f"{row['posts']:,} posts ({row['records']:,} records, the instant snapshot copied "
        f"{row['copies']} times): each step after the crawl succeeds at ≤ 186 MB (200 MB less "
        "the ~14 MB of the process running them)"
    )
    return [_line(goal, _cells(row, "sides", _step_cell(steps)), ok)]


STEP_NAMES = ("tables", "dataset", "report")  # every supervisor's; later ones add report_data


def _profile(rows: dict[str, Any]) -> list[str]:
    prof = rows.get("profile") or {}
    if not prof:
        return []
    labels = [k for k in ("before", "after") if k in prof]
    phases = sorted(
        {p for k in labels for p in prof[k]["phases_self_s"]},
        key=lambda p: -prof[labels[-1]]["phases_self_s"].get(p, 0.0),
    )
    first = prof[labels[-1]]
    lines = [
        "",
        f"### Profile by phase ({first['posts']} posts, {first['entries']:,} entries, latencies "
        "and delays 0; cProfile CPU seconds of the crawl process, self time by module)",
        "",
        "| phase | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for p in phases:
        lines.append(
            f"| {p} | "
            + " | ".join(f"{prof[k]['phases_self_s'].get(p, 0.0):.1f}" for k in labels)
            + " |"
        )
    lines.append(
        "| **total** | " + " | ".join(f"**{prof[k]['total_cpu_s']:.1f}**" for k in labels) + " |"
    )
    lines.append("| wall s | " + " | ".join(f"{prof[k]['wall_s']:.1f}" for k in labels) + " |")
    return lines


def _kept(meta: dict[str, Any], rows: dict[str, Any]) -> list[str]:
    """The rows an earlier command measured (kept by ``--merge``), each with that command."""
    lines = []
    for name, row in rows.items():
        by = row.get("measured_by") or {}
        if not by or (by.get("argv"), by.get("when")) == (meta.get("argv"), meta.get("when")):
            continue
        sides = ", ".join(f"{k} = `{v}`" for k, v in by.get("sides", {}).items())
        lines.append(
            f"The `{name}` row is kept from an earlier command (`--merge`): `python -m "
            f"benchmarks.cost {by.get('argv', '')}` on {by.get('when', MISSING)}; {sides}."
        )
    return lines


def cost_markdown(data: dict[str, Any]) -> list[str]:
    """Issue 21's table: every goal, before | after, the load average beside every figure."""
    meta, rows = data.get("meta", {}), data.get("rows", {})
    posts = (rows.get("near_instant") or rows.get("instant") or {}).get("posts", MISSING)
    sides = ", ".join(f"{k} = `{v}`" for k, v in meta.get("sides", {}).items())
    return [
        "",
        "## Cost (issue 21): before | after",
        "",
        f"`python -m benchmarks.cost {meta.get('argv', '')}` on {meta.get('when', MISSING)}; "
        f"{sides}. Each side is measured in the same command against the same stand-in, "
        "before then after; *load* is the 1-minute load average as each figure's run began. "
        "CPU seconds are the crawl process and its children (`getrusage`); peak RSS is the "
        "process tree (every step of the command). The backfill rows crawl "
        f"{posts} posts of the synthetic corpus (`benchmarks/corpus.py`, seed 0), not the "
        "issue's held-out one; every service is on (Hugging Face's window opened wide).",
        *_kept(meta, rows),
        "",
        "| run and goal | before | after | verdict (after) |",
        "|---|---|---|---|",
        *_near_instant(rows),
        *_instant(rows),
        *_rerun(rows),
        *_bound(rows),
        *_peer(rows),
        *_big(rows),
        *_steps(rows),
        *_profile(rows),
    ]
