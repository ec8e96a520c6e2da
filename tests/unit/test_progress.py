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


@pytest.mark.parametrize(
    ("settings", "policy", "left"),
    [
        ({}, None, 1800.0),  # a year's ~3,000 papers at 500 per 5 minutes: 30 min
        ({"HF_TOKEN": "t"}, None, 900.0),  # 1,000 per window with a token: 15 min
        ({}, (100, 60.0), 1800.0 * 60 / 100 * 500 / 300),  # the header's policy, once seen
    ],
)
def test_eta_accounts_for_the_hf_window(
    settings: dict[str, str], policy: tuple[int, float] | None, left: float
) -> None:
    crawler = unit_crawler(**settings)
    report = CrawlReport.from_crawler(crawler)
    crawler.stats.set_value("hf_papers/keys_wanted", 3000)
    if policy is not None:
        crawler.stats.set_value("ratelimit/hf_papers/quota", policy[0])
        crawler.stats.set_value("ratelimit/hf_papers/window", policy[1])
    assert report.eta(1.0) == pytest.approx(left)
