"""What an unchanged rerun must still do as a crawl would (review of issue 21's skip): every
output it keeps counts in the key, and what every run does beside its outputs it does too."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.standin import Catalogue, StandIn
from tests.test_unchanged_rerun import Site, _report

pytestmark = pytest.mark.e2e


def test_every_feed_of_a_run_counts_as_an_output(tmp_path: Path, catalogue: Catalogue) -> None:
    """``-O out.jsonl -O out.csv``: the CSV feed removed (or edited) is written again, as a
    crawl writes it; the skip kept it missing until a stored value went stale."""
    with StandIn(catalogue.copy()) as server:
        site = Site(tmp_path, server)
        csv = site.out.with_name("digests.csv")
        first = site.crawl("-O", str(csv))
        assert first.returncode == 0, first.log[-3000:]
        written = csv.read_bytes()
        assert written.count(b"\n") > len(first.records)  # a header line and every record
        csv.unlink()
        again = site.crawl("-O", str(csv))
        assert again.returncode == 0, again.log[-3000:]
        assert "Nothing changed since run" not in again.log
        # The CSV feed is in the order records were written, not sorted like the snapshot.
        assert sorted(csv.read_bytes().splitlines()) == sorted(written.splitlines())
        written = csv.read_bytes()
        third = site.crawl("-O", str(csv))  # now nothing changed: skipped, the feed kept
        assert site.sent == 0 and "Nothing changed since run" in third.log, third.log[-3000:]
        assert csv.read_bytes() == written
        assert _report(site.out)["unchanged_since"] is not None


def test_a_skipped_run_removes_what_a_killed_run_left(tmp_path: Path, catalogue: Catalogue) -> None:
    """A crawl killed before it replaced anything (nothing to fetch: nothing stored either)
    leaves ``.NAME.<8>.tmp`` beside the snapshot; README: the next run to the same file
    removes it. A skipped run kept it for as long as nothing changed."""
    with StandIn(catalogue.copy()) as server:
        site = Site(tmp_path, server)
        first = site.crawl()
        assert first.returncode == 0, first.log[-3000:]
        leftover = site.out.with_name(f".{site.out.name}.k1lled_1.tmp")
        leftover.write_bytes(site.out.read_bytes()[:100])
        kept = site.out.with_name(f".{site.out.name}.not-ours.tmp")  # not named as ours
        kept.write_bytes(b"x")
        again = site.crawl()
        assert again.returncode == 0, again.log[-3000:]
        assert site.sent == 0 and "Nothing changed since run" in again.log
        assert not leftover.exists()
        assert kept.read_bytes() == b"x"
