"""The compiled record check, on the schema as written against the copy it runs (oneOf with
null rewritten, ``crawler.record.validate.fast_schema``), side by side on one snapshot.

    python -m benchmarks.validation SNAPSHOT [--rounds 6]

Prints the best CPU seconds of each over the rounds, interleaved so that both see the same
machine. The crawl runs the check once per record.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

import fastjsonschema

from crawler.record.validate import _fast_check, fast_schema, schema


def best_cpu(records: list[dict[str, Any]], rounds: int) -> dict[str, float]:
    checks = {
        "as written": fastjsonschema.compile(copy.deepcopy(schema()), use_formats=False),
        "rewritten": fastjsonschema.compile(fast_schema(), use_formats=False),
        "as the crawl runs it (no detailed exceptions)": _fast_check(),
    }
    best = dict.fromkeys(checks, float("inf"))
    for _ in range(rounds):
        for name, check in checks.items():
            start = time.process_time()
            for record in records:
                check(record)
            best[name] = min(best[name], time.process_time() - start)
    return best


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("snapshot", type=Path)
    ap.add_argument("--rounds", type=int, default=6)
    args = ap.parse_args(argv)
    records = [json.loads(line) for line in args.snapshot.read_bytes().splitlines()]
    best = best_cpu(records, args.rounds)
    for name, cpu in best.items():
        print(f"{name}: {cpu:.3f} CPU s for {len(records):,} records (best of {args.rounds})")


if __name__ == "__main__":
    main()
