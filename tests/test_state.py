"""The state database and the in-crawl memo on top of it."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from scrapy import Spider
from scrapy.utils.test import get_crawler

from crawler.enrich.memo import Memo
from crawler.items import ArxivMeta, Embed
from crawler.state import DAY, Freshness, State, StateStore, Stored

TTL = {"arxiv/ok": 7, "arxiv/not_found": 1, "embed/ok": 30, "embed/deleted": 180}


def _state(tmp_path: Path) -> State:
    crawler = get_crawler(Spider, {"STATE_DB": str(tmp_path / "s.sqlite3"), "STATE_TTL_DAYS": TTL})
    return State.from_crawler(crawler)


def test_store_round_trip_and_wal(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.sqlite3")
    meta = ArxivMeta(
        status="ok", id="2106.09685v2", version=2, authors=[{"name": "A", "affiliations": ["X"]}]
    )
    store.put_many("arxiv", [("2106.09685", meta)], now=100.0)
    store.put_many(
        "embed", [("1", Embed(status="deleted", error="oEmbed answered HTTP 404"))], now=5.0
    )
    assert store.get("arxiv", "2106.09685") == Stored(meta, 100.0)
    assert store.get("embed", "1").value.status == "deleted"
    assert store.get("arxiv", "nope") is None
    assert store.db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    store.close()
    with sqlite3.connect(tmp_path / "s.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM fetched").fetchone() == (2,)


@pytest.mark.parametrize(
    ("kind", "status", "age_days", "refresh", "fresh"),
    [
        ("arxiv", "ok", 6.9, "none", True),
        ("arxiv", "ok", 7.1, "none", False),
        ("arxiv", "not_found", 0.5, "none", True),
        ("arxiv", "error", 0.0, "none", False),  # errors are always re-tried
        ("embed", "deleted", 100, "none", True),
        ("embed", "protected", 1, "none", False),  # not in the TTL dict: always re-checked
        ("arxiv", "ok", 0.1, "all", False),
        ("arxiv", "ok", 0.1, "arxiv", False),
        ("embed", "ok", 0.1, "arxiv", True),
        ("embed", "ok", 0.1, "tweets", False),
    ],
)
def test_freshness(kind: str, status: str, age_days: float, refresh: str, fresh: bool) -> None:
    now = 1_000_000_000.0
    value = ArxivMeta(status=status) if kind == "arxiv" else Embed(status=status)  # type: ignore[arg-type]
    stored = Stored(value, now - age_days * DAY)
    assert Freshness(TTL, refresh).is_fresh(kind, stored, now) is fresh  # type: ignore[arg-type]


def test_state_notes_changes_and_keeps_good_values_through_errors(tmp_path: Path) -> None:
    state = _state(tmp_path)
    first = [("a", ArxivMeta(status="ok", version=1)), ("b", ArxivMeta(status="ok", version=1))]
    assert state.save("arxiv", first) == [v for _, v in first]
    assert state.changed == {}  # new values are not changes
    kept = state.save(
        "arxiv", [("a", ArxivMeta(status="ok", version=2)), ("b", ArxivMeta(status="error"))]
    )
    assert [v.version for v in kept] == [2, 1]  # b keeps its last good value...
    assert not state.is_fresh("arxiv", "b")  # ...but is asked again next run
    assert list(state.changed) == [("arxiv", "a")]
    before, after = state.changed[("arxiv", "a")]
    assert (before["version"], after["version"]) == (1, 2)
    state.save("arxiv", [("b", ArxivMeta(status="ok", version=3))])
    assert state.changed[("arxiv", "b")][0]["version"] == 1  # compared with the last good one
    assert state.is_fresh("arxiv", "b")
    assert state.save("arxiv", [("c", ArxivMeta(status="error"))])[0].status == "error"


def test_memo_with_state_keeps_nothing_but_keys(tmp_path: Path) -> None:
    state = _state(tmp_path)
    memo: Memo[ArxivMeta] = Memo("arxiv", state)

    async def scenario() -> None:
        assert memo.needs_fetch("x")
        future = memo.start("x")
        assert not memo.needs_fetch("x")  # in flight
        waiter = asyncio.ensure_future(memo.value("x"))
        value = ArxivMeta(status="error", error="arXiv answered HTTP 503")
        state.save("arxiv", [("x", value)])
        memo.finish("x", value)
        assert await waiter == value and future.result() == value
        # Gone from memory, read back from the database, even though errors are never "fresh".
        assert memo._pending == {} and memo._kept == {}
        assert not memo.needs_fetch("x")
        assert await memo.value("x") == value

    asyncio.run(scenario())


def test_memo_without_state_keeps_values() -> None:
    memo: Memo[Embed] = Memo("embed", None)

    async def scenario() -> None:
        memo.start("t")
        memo.finish("t", Embed(status="ok", text="hi"))
        assert memo._kept["t"].text == "hi"
        assert (await memo.value("t")).text == "hi"
        assert await memo.value("unknown") is None

    asyncio.run(scenario())
