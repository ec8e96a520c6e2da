"""What lets an unchanged rerun skip the crawl (crawler/reuse.py), in-process: when the values a
run used go stale (TTLs by age included), and that any write to the state forgets the key."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from crawler import reuse
from crawler.items import HfPaper, TweetDetails
from crawler.services.base import DAY, age_row_ends, ttl_for_age
from crawler.services.hf_papers import HfPapers
from crawler.services.syndication import Syndication
from crawler.sources import Source
from crawler.state.extension import State
from crawler.state.store import StateStore, Write, utc_ms_text
from tests.helpers import project_crawler

ROWS = st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 400)), min_size=1, max_size=5).map(
    lambda rows: sorted((float(a), float(d)) for a, d in rows)
)


@given(ROWS, st.integers(0, 3000 * 86400), st.integers(0, 3000 * 86400))
def test_the_ttl_by_age_stays_what_it_is_until_the_row_ends(
    rows: list[tuple[float, float]], age_s: int, later_s: int
) -> None:
    """Whole seconds: the property is about rows, not about float rounding at an instant."""
    born = 1_000_000_000.0
    now = born + age_s
    age = (now - born) / DAY
    ends = age_row_ends(rows, age, born)
    moment = now + later_s
    if moment < ends:
        assert ttl_for_age(rows, (moment - born) / DAY) == ttl_for_age(rows, age)
    assert ends >= now


def _state(tmp_path: Path) -> State:
    crawler = project_crawler(STATE_DB=str(tmp_path / "s.sqlite3"))
    state = crawler.get_extension(State)
    assert state is not None
    return state


def test_a_tweet_crossing_an_age_row_is_trusted_only_until_then(tmp_path: Path) -> None:
    """DETAILS_TTL_BY_AGE [[7, 1], [30, 3], ...]: a tweet 6.5 days old, fetched now, would stay
    good a day, but at 7 days its TTL becomes 3 days: a rerun may trust it for half a day."""
    state = _state(tmp_path)
    details = Syndication(state.crawler.settings)
    now = time.time()
    created = now - 6.5 * DAY
    value = TweetDetails(status="ok", created_at=utc_ms_text(created), like_count=1)
    state.save(details, {"20": value})
    assert abs(state.valid_until - (created + 7 * DAY)) < 1.0


def test_a_value_kept_after_a_failure_is_due_at_once(tmp_path: Path) -> None:
    state = _state(tmp_path)
    hf = HfPapers(state.crawler.settings)
    state.save(hf, {"2106.09685": HfPaper(status="ok", upvotes=3)})
    assert state.valid_until > time.time()
    state.save(hf, {"2106.09685": hf.error("Hugging Face answered HTTP 500")})
    assert state.valid_until <= time.time()


def test_a_stored_value_counts_with_its_own_fetch_time(tmp_path: Path) -> None:
    """A paper older than PAPER_TTL_BY_AGE's last row (three years): Hugging Face's ``ok``
    TTL, 30 days, counted from when its page was fetched, three days ago."""
    store = StateStore(tmp_path / "s.sqlite3")
    fetched = time.time() - 3 * DAY
    value = {"status": "ok", "upvotes": 3}
    store.write("hf", [Write("1706.03762", value, "ok")], fetched, "earlier")
    store.close()
    state = _state(tmp_path)
    hf = HfPapers(state.crawler.settings)
    assert state.fresh(hf, "1706.03762") is not None
    assert abs(state.valid_until - (fetched + 30 * DAY)) < 1.0


def test_any_write_to_the_state_forgets_every_rerun_key(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = StateStore(path)
    for snapshot in ("a.jsonl", "b.jsonl"):
        store.remember_rerun(snapshot, "k", 1.0, 2.0, {"run_id": "r"})
    assert store.rerun("a.jsonl") == ("k", 1.0, 2.0, {"run_id": "r"})
    store.write("hf", [Write("1", {"status": "ok"}, "ok")], 5.0, "r2")
    assert store.rerun("a.jsonl") is None and store.rerun("b.jsonl") is None
    store.remember_rerun("a.jsonl", "k", 1.0, 2.0, {"run_id": "r"})
    store.close()
    with sqlite3.connect(path) as db:  # another program, knowing nothing of reruns
        db.execute("DELETE FROM observations")
        assert db.execute("SELECT count(*) FROM reruns").fetchone() == (1,)  # nothing deleted
        db.execute("UPDATE fetched SET fetched_at = 0")
        assert db.execute("SELECT count(*) FROM reruns").fetchone() == (0,)


def test_the_key_changes_with_any_source_byte_setting_or_output(tmp_path: Path) -> None:
    digest, output = tmp_path / "a.md", tmp_path / "out.jsonl"
    digest.write_text("one")
    output.write_text("{}\n")
    source = Source(digest.resolve().as_uri(), "a.md", "a.md")

    def key(settings: str = "s") -> str:
        found = reuse.read_source(source)
        assert found is not None
        return reuse.rerun_key(settings, [(source, found)], [output])

    first = key()
    assert key() == first
    assert key("t") != first
    digest.write_text("two")
    second = key()
    assert second != first
    output.write_text("{}\n")  # the same bytes, written again: another file
    assert key() != second
    url = Source("https://example.org/a.md", "https://example.org/a.md", "a.md")
    assert reuse.read_source(url) is None  # a URL is never taken as unchanged


def test_compiling_the_fast_validator_leaves_the_schema_as_the_file_says() -> None:
    """fastjsonschema rewrote the cached schema's $refs in place: what read it afterwards (the
    dataset's record.schema.json, the field descriptions) depended on what ran first."""
    import json

    from crawler.export import contract
    from crawler.record import validate

    validate._fast_check()
    assert (
        validate.schema()
        == contract.record_schema()
        == json.loads((Path(validate.__file__).parent / "record.schema.json").read_text("utf-8"))
    )
