"""Two crawls' outputs, compared byte for byte except for the times of the crawl itself.

    python -m benchmarks.same_output DIR_A DIR_B [--name digests]

For issue 21's rule "the speed comes from doing less, not from doing it differently": crawl
the same corpus against the same stand-in with the old and the new code (``benchmarks.cost``
keeps both sides' files in ``--work``: ``near_instant/before`` and ``near_instant/after``),
then compare the snapshot, the posts list, the run report and the dataset folder. What differs
between two runs of the same code is masked, nothing else: timestamps of the days the crawls
ran (``fetched_at``, history points), the run's id, paths and clock figures of the run report,
and in the dataset folder the files' checksums and sizes (they hash those timestamps). Exit
status 0 when the outputs are the same, 1 with the first differences otherwise.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

# Figures of the run report that measure the run's clock or memory, not its output.
CLOCK_KEYS = frozenset({"run_id", "started_at", "finished_at", "snapshot"})
# ``log_count/INFO`` counts the progress lines too, one per PROGRESS_INTERVAL of wall time.
CLOCK_STATS = ("elapsed_time_seconds", "finish_time", "start_time", "memusage/", "log_count/INFO")
# How often a request found the politeness gate closed: a matter of timing, not of output.
CLOCK_SUFFIXES = ("/gated",)
_HEX = re.compile(r"\b[0-9a-f]{64}\b")


def _days(*reports: dict[str, Any]) -> set[str]:
    return {str(r.get("started_at", ""))[:10] for r in reports} - {""}


def masked(text: str, days: set[str]) -> str:
    """``text`` with every timestamp of ``days`` replaced by a placeholder."""
    if not days:
        return text
    alts = "|".join(re.escape(d) for d in sorted(days))
    text = re.sub(rf"(?:{alts})[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)?", "<now>", text)
    compact = "|".join(d.replace("-", "") for d in sorted(days))
    return re.sub(rf"(?:{compact})T\d{{6}}\.\d{{6}}Z", "<run id>", text)  # the run's id


def report_fields(report: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in report.items() if k not in CLOCK_KEYS}
    out["stats"] = {
        k: v
        for k, v in report.get("stats", {}).items()
        if not k.startswith(CLOCK_STATS) and not k.endswith(CLOCK_SUFFIXES)
    }
    return out


def _table_rows(path: Path, days: set[str]) -> str:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    return masked(json.dumps([str(table.schema), *table.to_pylist()], default=str), days)


def _dataset_files(folder: Path, days: set[str]) -> dict[str, str]:
    files: dict[str, str] = {}
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.suffix == ".parquet":
            files[path.name] = _table_rows(path, days)
        elif path.suffix in (".json", ".md"):
            text = _HEX.sub("<sha256>", masked(path.read_text("utf-8"), days))
            files[path.name] = re.sub(r'"contentSize": "[^"]*"', '"contentSize": <size>', text)
        else:
            files[path.name] = "<binary: compared by its tables>"
    return files


def outputs(folder: Path, name: str, days: set[str]) -> dict[str, Any]:
    """What one crawl wrote, masked as the module says."""
    report = json.loads((folder / f"{name}.run.json").read_text("utf-8"))
    return {
        "snapshot": masked((folder / f"{name}.jsonl").read_text("utf-8"), days),
        "posts": masked((folder / f"{name}.posts.jsonl").read_text("utf-8"), days),
        "run report": masked(json.dumps(report_fields(report), indent=1), days),
        "dataset": _dataset_files(folder / f"{name}.dataset", days),
    }


def differences(a: dict[str, Any], b: dict[str, Any], where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        found: list[str] = []
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                found.append(f"{where}{key}: only in {'B' if key not in a else 'A'}")
            else:
                found += differences(a[key], b[key], f"{where}{key}/")
        return found
    if a == b:
        return []
    lines_a, lines_b = str(a).splitlines(), str(b).splitlines()
    at = next((i for i, (x, y) in enumerate(zip(lines_a, lines_b, strict=False)) if x != y), None)
    if at is None:
        return [f"{where}: {len(lines_a)} lines vs {len(lines_b)}"]
    return [f"{where} line {at + 1}:\n  A {lines_a[at][:300]}\n  B {lines_b[at][:300]}"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--name", default="digests", help="the snapshot's stem")
    args = ap.parse_args(argv)
    reports = [json.loads((d / f"{args.name}.run.json").read_text()) for d in (args.a, args.b)]
    days = _days(*reports)
    found = differences(outputs(args.a, args.name, days), outputs(args.b, args.name, days))
    for line in found[:20]:
        print(line)
    print("same outputs" if not found else f"{len(found)} differences")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
