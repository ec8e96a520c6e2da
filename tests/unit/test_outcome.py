"""The run's outcome: whether the snapshot may replace the previous one, and the exit status."""

from __future__ import annotations

from typing import Any

import pytest

from crawler.outcome import (
    ARGUMENTS_INVALID,
    DIGESTS_MISSING,
    DIGESTS_READ,
    DIGESTS_UNREADABLE,
    ENTRIES_PARSED,
    OUTPUT_FAILED,
    RECORDS_INVALID,
    ExitStatus,
    Outcome,
    failed_key,
)
from tests.unit.helpers import unit_crawler

CLEAN = {DIGESTS_READ: 5, ENTRIES_PARSED: 103}


def _outcome(
    stats: dict[str, int] | None = None,
    reason: str | None = "finished",
    crawling: bool = True,
    stop: str | None = None,
    output_problem: str | None = None,
) -> Outcome:
    crawler = unit_crawler()
    crawler.crawling = crawling
    outcome = Outcome.of(crawler)
    for key, value in (CLEAN | (stats or {})).items():
        crawler.stats.set_value(key, value)
    outcome.reason = reason
    outcome.stop_problem = stop
    if output_problem:
        outcome.output_failed(output_problem)
    return outcome


CASES: list[tuple[str, dict[str, Any], ExitStatus, str | None]] = [
    ("finished", {}, ExitStatus.OK, None),
    ("shutdown", {"reason": "shutdown"}, ExitStatus.NOT_COMPLETED,
     "the crawl ended early (shutdown)"),
    ("closespider", {"reason": "closespider_itemcount"}, ExitStatus.NOT_COMPLETED,
     "the crawl ended early (closespider_itemcount)"),
    ("our own stop", {"stop": "STATE_DB x cannot be written: disk I/O error"},
     ExitStatus.NOT_COMPLETED, "STATE_DB x cannot be written: disk I/O error"),
    ("refused arguments", {"stats": {ARGUMENTS_INVALID: 1}}, ExitStatus.NOT_COMPLETED,
     "the crawl's arguments were refused"),
    ("no digest read", {"stats": {DIGESTS_READ: 0, DIGESTS_UNREADABLE: 5}},
     ExitStatus.SOURCE_UNREADABLE, "no digest could be read"),
    ("nothing to read", {"stats": {DIGESTS_READ: 0, ENTRIES_PARSED: 0}},
     ExitStatus.SOURCE_UNREADABLE, "no digest could be read"),
    ("output failed", {"output_problem": "run report x not written: disk full"},
     ExitStatus.OUTPUT_FAILED, "run report x not written: disk full"),
    ("records invalid", {"stats": {RECORDS_INVALID: 1}}, ExitStatus.INVALID_RECORDS, None),
    ("source unreadable", {"stats": {DIGESTS_UNREADABLE: 1}}, ExitStatus.SOURCE_UNREADABLE,
     None),
    ("source missing", {"stats": {DIGESTS_MISSING: 1}}, ExitStatus.SOURCE_UNREADABLE, None),
    ("enrichment incomplete", {"stats": {failed_key("arxiv"): 3}},
     ExitStatus.ENRICHMENT_INCOMPLETE, None),
]  # fmt: skip


@pytest.mark.parametrize(("case", "facts", "status", "keep"), CASES, ids=[c[0] for c in CASES])
def test_each_case(case: str, facts: dict[str, Any], status: ExitStatus, keep: str | None) -> None:
    outcome = _outcome(**facts)
    assert outcome.exit_status() == status
    assert outcome.keep_previous_because(records_in_file=103) == keep


def test_a_crawl_stopped_before_spider_closed_keeps_the_previous_snapshot() -> None:
    outcome = _outcome(reason=None, crawling=False)
    assert outcome.keep_previous_because(103) == "the crawl was stopped before it finished"
    assert outcome.exit_status() == ExitStatus.NOT_COMPLETED


def test_records_lost_on_the_way_keep_the_previous_snapshot() -> None:
    outcome = _outcome()
    assert outcome.keep_previous_because(records_in_file=101) == (
        "only 101 of 103 entries reached the file"
    )
    assert outcome.keep_previous_because(records_in_file=104) is None  # duplicates collapsed
    assert outcome.keep_previous_because(records_in_file=None) is None  # not a sorted export


@pytest.mark.parametrize(
    ("stats", "status"),
    [
        # Each row adds the next more important fact: it decides the status.
        ({failed_key("oembed"): 1}, ExitStatus.ENRICHMENT_INCOMPLETE),
        ({failed_key("oembed"): 1, DIGESTS_MISSING: 1}, ExitStatus.SOURCE_UNREADABLE),
        ({failed_key("oembed"): 1, DIGESTS_MISSING: 1, RECORDS_INVALID: 1},
         ExitStatus.INVALID_RECORDS),
        ({failed_key("oembed"): 1, DIGESTS_MISSING: 1, RECORDS_INVALID: 1, OUTPUT_FAILED: 1},
         ExitStatus.OUTPUT_FAILED),
        ({failed_key("oembed"): 1, DIGESTS_MISSING: 1, RECORDS_INVALID: 1, OUTPUT_FAILED: 1,
          ARGUMENTS_INVALID: 1}, ExitStatus.NOT_COMPLETED),
    ],
)  # fmt: skip
def test_exit_status_precedence(stats: dict[str, int], status: ExitStatus) -> None:
    assert _outcome(stats).exit_status() == status
    assert _outcome(stats, reason="shutdown").exit_status() == ExitStatus.NOT_COMPLETED


def test_keep_previous_precedence() -> None:
    everything = {ARGUMENTS_INVALID: 1, DIGESTS_READ: 0}
    outcome = _outcome(everything, reason="shutdown", crawling=False, stop="state broken",
                       output_problem="disk full")  # fmt: skip
    reasons = []
    for undo in (
        lambda: setattr(outcome, "stop_problem", None),
        lambda: setattr(outcome, "reason", "finished"),
        lambda: setattr(outcome.crawler, "crawling", True),
        lambda: outcome.stats.set_value(ARGUMENTS_INVALID, 0),
        lambda: outcome.stats.set_value(DIGESTS_READ, 1),
        lambda: outcome.output_problems.clear(),
    ):
        reasons.append(outcome.keep_previous_because(records_in_file=1))
        undo()
    reasons.append(outcome.keep_previous_because(records_in_file=1))
    assert reasons == [
        "state broken",
        "the crawl ended early (shutdown)",
        "the crawl was stopped before it finished",
        "the crawl's arguments were refused",
        "no digest could be read",
        "disk full",
        "only 1 of 103 entries reached the file",
    ]


def test_incomplete_services_lists_only_services_with_failures() -> None:
    outcome = _outcome({failed_key("arxiv"): 2, failed_key("oembed"): 0, "arxiv/batches": 4})
    assert outcome.incomplete_services() == {"arxiv": 2}
