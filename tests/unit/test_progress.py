"""The progress line's estimate of the time left."""

from __future__ import annotations

import pytest

from crawler.progress import CrawlReport
from tests.unit.helpers import unit_crawler


def test_eta_extrapolates_from_the_share_of_digests_read() -> None:
    crawler = unit_crawler(ARXIV_DELAY=3.0, ARXIV_DELAY_MARGIN=0.25, ARXIV_BATCH_SIZE=100)
    report = CrawlReport.from_crawler(crawler)
    stats = crawler.stats
    for key, value in {
        "digests/total": 100, "digests/read": 10, "entries/parsed": 200, "records/written": 100,
        "arxiv/keys_wanted": 250, "arxiv/keys_requested": 100,
    }.items():  # fmt: skip
        stats.set_value(key, value)
    # 10 of 100 digests gave 200 entries: ~2,000 expected, 100 written in 60 s -> 1,140 s left.
    assert report.eta(60.0) == pytest.approx(60 * 1900 / 100)
    stats.set_value("records/written", 2000)
    stats.set_value("digests/read", 100)
    stats.set_value("entries/parsed", 2000)
    assert report.eta(60.0) == pytest.approx(2 * 3.25)  # only the arXiv queue is left
