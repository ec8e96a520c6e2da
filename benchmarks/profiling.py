"""Where the crawler's CPU goes: a crawl under cProfile, its self time summed by phase.

Phases are named by module so that the table reads as the crawler's architecture (parse,
enrich, build, validate, export, engine) rather than as a list of thousands of functions.
"""

from __future__ import annotations

import pstats
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.facts import corpus_facts
from benchmarks.measure import (
    child_env,
    count_lines,
    crawl_cmd,
    endpoint_settings,
    fresh,
    log,
    measure,
    work_corpus,
)
from benchmarks.model import ROOT

if TYPE_CHECKING:
    from benchmarks.baseline import Code

# --- profile ------------------------------------------------------------------------------------
PHASES = (
    # (phase, substrings of "file:function"), first match wins; self time (tottime) is summed
    ("idle: waiting on sockets/timers", ("select.epoll", "selectors.py:select")),
    ("parse digests", ("crawler/parsing/digest", "crawler/parsing/tweets", "crawler/parsing/text",
                       "frontmatter", "/yaml/", "ftfy")),
    ("arXiv feed parse + match", ("crawler/services/arxiv", "crawler/parsing/arxiv_ids",
                                  "/arxiv/", "feedparser", "sgmllib")),
    ("tweet and S2 answers", ("crawler/services/oembed", "crawler/services/syndication",
                              "crawler/services/semantic_scholar", "json/decoder")),
    ("record build", ("crawler/record/build", "crawler/parsing/links", "dataclasses.py")),
    ("schema validation", ("jsonschema", "referencing", "rpds", "crawler/record/validate")),
    ("dataset + report (pyarrow, DuckDB, matplotlib)", ("crawler/export/dataset",
        "crawler/export/tables", "crawler/export/report", "crawler/export/parquet", "pyarrow",
        "duckdb", "matplotlib", "PIL/")),
    ("export (JSON lines)", ("scrapy/exporters", "json/encoder", "crawler/export/",
                             "scrapy/extensions/feedexport")),
    ("state database (dedupe, refresh)", ("crawler/state/", "crawler/enrich/memo")),
    ("HTTP + engine (Scrapy/Twisted/asyncio, signals)", ("scrapy/", "twisted/", "asyncio/",
        "selectors", "http/", "socket", "ssl", "pydispatch", "logging/", "crawler/progress",
        "crawler/enrich/", "crawler/downloader/", "spiders/digests")),
)  # fmt: skip
KEY_FUNCTIONS = (
    ("crawler/parsing/digest.py", "parse_digest_bytes"),
    ("crawler/services/arxiv.py", "parse_feed"),
    ("crawler/services/arxiv.py", "match_results"),
    ("crawler/services/oembed.py", "parse_oembed"),
    ("crawler/services/syndication.py", "parse_details"),
    ("crawler/services/semantic_scholar.py", "parse_batch"),
    ("crawler/record/build.py", "build_record"),
    ("crawler/record/validate.py", "schema_errors"),
    ("scrapy/exporters.py", "export_item"),
)


def _direct_phase(key: tuple[str, int, str]) -> str | None:
    where = f"{key[0]}:{key[2]}"
    for name, needles in PHASES:
        if any(n in where for n in needles):
            return name
    return None


def summarise_profile(path: Path) -> dict[str, Any]:
    """Self time per phase. Functions outside every phase (built-ins, lxml, itemadapter, ...)
    are charged to their callers' phases, in proportion, up to three levels up."""
    st = pstats.Stats(str(path))
    raw = st.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())
    other = "other (start-up, imports, misc)"

    def shares(key: tuple[str, int, str], depth: int) -> dict[str, float]:
        direct = _direct_phase(key)
        if direct:
            return {direct: 1.0}
        callers = raw.get(key, (0, 0, 0, 0, {}))[4]
        weight = sum(v[2] for v in callers.values())
        if depth == 0 or not callers or weight <= 0:
            return {other: 1.0}
        out: dict[str, float] = {}
        for ckey, cval in callers.items():
            for phase, frac in shares(ckey, depth - 1).items():
                out[phase] = out.get(phase, 0.0) + frac * cval[2] / weight
        return out

    phases: dict[str, float] = {name: 0.0 for name, _ in PHASES} | {other: 0.0}
    key: dict[str, float] = {}
    for fkey, (_cc, _nc, tt, ct, _callers) in raw.items():
        for phase, frac in shares(fkey, 3).items():
            phases[phase] += tt * frac
        filename, _line, func = fkey
        for kf, kn in KEY_FUNCTIONS:
            if filename.endswith(kf) and func == kn:
                key[f"{kn} ({kf.split('/')[-1]})"] = max(key.get(kn, 0.0), ct)
    top = sorted(raw.items(), key=lambda kv: -kv[1][2])[:15]
    return {
        "total_cpu_s": total,
        "phases_self_s": phases,
        "key_cumulative_s": key,
        "top_self": [
            {"where": f"{Path(f).name}:{ln}:{fn}", "self_s": round(v[2], 3), "calls": v[1]}
            for (f, ln, fn), v in top
        ],
    }


def run_profile(
    posts: int, work: Path, *, seed: int, code: Code | None = None, name: str = "profile"
) -> dict[str, Any]:
    """A crawl with zero latencies and delays under cProfile, summarised by phase; ``code``
    is the checkout to profile (default: this one)."""
    from tests.standin import Catalogue, StandIn

    root, python = (code.root, code.python) if code else (ROOT, sys.executable)

    folder = work_corpus(work, posts, seed)
    facts = corpus_facts(folder)
    catalogue = Catalogue.from_digests(sorted(folder.glob("*.txt")), seed=seed)
    # Every latency is already 0 in the stand-in; its Semantic Scholar rate limit goes too.
    # No interval, and Hugging Face's window opened wide: the profile is of CPU, not of waits.
    with StandIn(
        catalogue,
        min_interval={"semantic_scholar": 0.0, "openalex": 0.0},
        windows={"hf_papers": (10**9, 300.0)},
    ) as standin:
        prof = work / f"{name}.prof"
        settings = endpoint_settings(standin) | {
            "ARXIV_DELAY": 0,
            "ARXIV_DELAY_MARGIN": 0,
            "S2_DELAY": 0,
            "OPENALEX_DELAY": 0,
            "LOG_LEVEL": "INFO",
            "STATE_DB": fresh(work / f"state-{name}.sqlite3"),
            # The crawl alone, on both sides: the crawl's process now becomes the dataset step
            # (os.execv), and an exec never lets cProfile write its file.
            "DATASET_DIR": "",
        }
        out = work / f"{name}.jsonl"
        m = measure(
            crawl_cmd(folder, out, settings, profile=prof, python=python),
            env=child_env(root),
            stdout=work / f"{name}.stdout",
            stderr=work / f"{name}.log",
            cwd=root,
        )
    summary = summarise_profile(prof)
    summary |= {
        "posts": posts,
        "entries": facts["entries"],
        "distinct_tweets": facts["distinct_tweets"],
        "wall_s": m.wall_s,
        "records": count_lines(out),
        "peak_rss_mb": m.peak_rss_mb,
    }
    log(f"  profile: {m.wall_s:.1f}s wall, {summary['total_cpu_s']:.1f}s CPU in Python")
    return summary
