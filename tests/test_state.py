"""The state database, the freshness rules and the extension on top of them, in-process."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from scrapy.crawler import Crawler

from crawler.enrich.memo import Memo
from crawler.items import ArxivMeta, Embed
from crawler.services.arxiv import Arxiv
from crawler.services.base import DAY
from crawler.services.hf_papers import HfPapers
from crawler.services.oembed import OEmbed
from crawler.services.syndication import Syndication
from crawler.state.extension import State
from crawler.state.freshness import Freshness, written_by_newer
from crawler.state.store import FORMAT, Row, StateError, StateStore, Write
from tests.helpers import project_crawler, project_settings

TTL = {"arxiv/ok": 7, "arxiv/not_found": 1, "embed/ok": 30, "embed/deleted": 180}


def _crawler(tmp_path: Path, **settings: Any) -> Crawler:
    return project_crawler(STATE_DB=str(tmp_path / "s.sqlite3"), STATE_TTL_DAYS=TTL, **settings)


def _state(crawler: Crawler) -> State:
    state = crawler.get_extension(State)
    assert state is not None
    return state


def test_each_service_caps_its_own_history(tmp_path: Path) -> None:
    """PAPER_HISTORY_MAX caps a paper's Hugging Face observations; DETAILS_HISTORY_MAX the
    tweets'."""
    settings = project_settings(PAPER_HISTORY_MAX=2, DETAILS_HISTORY_MAX=3)
    hf, details = HfPapers(settings), Syndication(settings)
    assert (hf.history_max, details.history_max) == (2, 3)
    store = StateStore(tmp_path / "s.sqlite3", history_max=365)
    for n in range(4):
        when = f"2026-01-0{n + 1}T00:00:00.000Z"
        for service, key, count in ((hf, "2106.09685", "upvotes"), (details, "7", "like_count")):
            point = (when, {"observed_at": when, count: n})
            write = Write(key, {"status": "ok"}, "ok", observation=point,
                          history_max=service.history_max)  # fmt: skip
            store.write(service.kind, [write], 5.0, "r1")
    assert [p["upvotes"] for p in store.history("hf", "2106.09685")] == [2, 3]
    assert [p["like_count"] for p in store.history("details", "7")] == [1, 2, 3]
    store.close()


def test_store_round_trip_wal_history_and_changes(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.sqlite3", history_max=2)
    meta = {"status": "ok", "versioned_id": "2106.09685v2", "version": 2}
    store.write("arxiv", [Write("2106.09685", meta, status="ok", change=({"v": 1}, {"v": 2}))],
                now=100.0, run_id="r1")  # fmt: skip
    for day in ("01", "02", "03"):
        point = (f"2021-06-{day}T00:00:00Z", {"like_count": int(day)})
        store.write("details", [Write("7", {"status": "ok"}, "ok", observation=point)], 5.0, "r1")
    assert store.get("arxiv", "2106.09685") == Row("ok", meta, 100.0, "r1")
    assert store.get("arxiv", "nope") is None
    assert [p["like_count"] for p in store.history("details", "7")] == [2, 3]  # capped at 2
    (change,) = store.pending_changes()
    assert change[1:] == ("r1", "arxiv", "2106.09685", {"v": 1}, {"v": 2})
    store.drop_changes([change[0]])
    assert store.pending_changes() == []
    store.write("arxiv", [Write("2106.09685", None)], now=200.0, run_id="r2")  # mark stale
    assert store.get("arxiv", "2106.09685") == Row("ok", meta, 0.0, "r2")
    assert store.db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    store.close()
    with sqlite3.connect(tmp_path / "s.sqlite3") as db:
        assert db.execute("PRAGMA user_version").fetchone() == (FORMAT,)


@pytest.mark.parametrize(
    ("service", "status", "age_days", "refresh", "fresh"),
    [
        (Arxiv, "ok", 6.9, "none", True),
        (Arxiv, "ok", 7.1, "none", False),
        (Arxiv, "not_found", 0.5, "none", True),
        (Arxiv, "error", 0.0, "none", False),  # errors are always fetched again
        (OEmbed, "deleted", 100, "none", True),
        (OEmbed, "protected", 1, "none", True),  # the service's default: 30 days
        (Arxiv, "ok", 0.1, "all", False),
        (Arxiv, "ok", 0.1, "arxiv", False),
        (OEmbed, "ok", 0.1, "arxiv", True),
        (OEmbed, "ok", 0.1, "tweets", False),
    ],
)
def test_freshness(service: type, status: str, age_days: float, refresh: str, fresh: bool) -> None:
    now = 1_000_000_000.0
    settings = project_settings(STATE_TTL_DAYS=TTL)
    svc = service(settings)
    row = Row(status, {}, now - age_days * DAY, "earlier run")
    value = svc.value_type(status=status)
    assert Freshness(refresh).is_fresh(svc, row, value, now, "this run") is fresh
    # Whatever the age or status, a value this very run fetched is never fetched again.
    this_run = dataclasses.replace(row, fetched_at=0.0, run_id="this run")
    assert Freshness(refresh).is_fresh(svc, this_run, value, now, "this run")


def test_state_keeps_good_values_through_errors_and_queues_changes(tmp_path: Path) -> None:
    crawler = _crawler(tmp_path)
    state, arxiv = _state(crawler), Arxiv(crawler.settings)
    first = {"a": ArxivMeta(status="ok", version=1), "b": ArxivMeta(status="ok", version=1)}
    assert state.save(arxiv, first) == first
    assert state.store.pending_changes() == []  # new values are not changes
    kept = state.save(arxiv, {"a": ArxivMeta(status="ok", version=2),
                              "b": ArxivMeta(status="error", error="x")})  # fmt: skip
    assert (kept["a"].version, kept["b"].version, kept["b"].status) == (2, 1, "ok")
    row = state.store.get("arxiv", "b")
    assert row is not None and row.fetched_at == 0.0  # b is asked again next run
    [(_, run_id, kind, key, before, after)] = state.store.pending_changes()
    assert (run_id, kind, key, before["version"], after["version"]) == (
        state.run_id, "arxiv", "a", 1, 2,
    )  # fmt: skip
    held = state.save(arxiv, {"a": ArxivMeta(status="not_found", error="gone")}, held={"a"})
    assert held["a"].version == 2  # an incident keeps the good value
    assert state.save(arxiv, {"c": ArxivMeta(status="error", error="e")})["c"].status == "error"


def test_values_written_by_another_version_are_fetched_again(tmp_path: Path) -> None:
    crawler = _crawler(tmp_path)
    state, oembed = _state(crawler), OEmbed(crawler.settings)
    newer = {"status": "ok", "text": "hi", "added_later": [1, 2]}
    state.store.write("embed", [Write("1", newer, "ok")], 1e10, "x")
    assert state.stored(oembed, "1") == Embed(status="ok", text="hi")  # unknown field ignored
    state.store.db.execute("UPDATE fetched SET value = '[1]' WHERE key = '1'")
    with pytest.raises(StateError, match="stored value for embed 1 is not JSON"):
        state.stored(oembed, "1")


def test_unusable_databases_are_one_line_errors(tmp_path: Path) -> None:
    folder = tmp_path / "folder.sqlite3"
    folder.mkdir()
    with pytest.raises(StateError, match=r"^STATE_DB .*folder.sqlite3 is a folder"):
        StateStore(folder)
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StateError, match="is corrupt") as info:
        StateStore(garbage)
    assert "\n" not in str(info.value)
    newer = tmp_path / "newer.sqlite3"
    with sqlite3.connect(newer) as db:
        db.execute(f"PRAGMA user_version={FORMAT + 1}")
    with pytest.raises(StateError, match="written by a newer version"):
        StateStore(newer)


def test_memo_with_state_keeps_nothing_in_memory(tmp_path: Path) -> None:
    crawler = _crawler(tmp_path)
    state, arxiv = _state(crawler), Arxiv(crawler.settings)
    memo: Memo[ArxivMeta] = Memo(arxiv, state)

    async def scenario() -> None:
        assert memo.needs_fetch("x")
        memo.start("x")
        assert not memo.needs_fetch("x")  # in flight
        waiter = asyncio.ensure_future(memo.value("x"))
        value = ArxivMeta(status="error", error="arXiv answered HTTP 503")
        state.save(arxiv, {"x": value})
        memo.finish("x", value)
        assert await waiter == value
        # Gone from memory, read back from the database: an error is not fresh, but this run
        # fetched it, so it is not fetched twice in one crawl.
        assert memo.pending == {} and memo._kept == {}
        assert not memo.needs_fetch("x")
        assert await memo.value("x") == value

    asyncio.run(scenario())


def test_memo_without_state_keeps_values() -> None:
    memo: Memo[Embed] = Memo(OEmbed(project_settings()), None)

    async def scenario() -> None:
        memo.start("t")
        memo.finish("t", Embed(status="ok", text="hi"))
        assert (await memo.value("t")) == Embed(status="ok", text="hi")
        assert await memo.value("unknown") is None

    asyncio.run(scenario())


def test_stored_values_keep_their_key_order(tmp_path: Path) -> None:
    # Records are built from stored values: reordered keys would change the snapshot's bytes.
    store = StateStore(tmp_path / "s.sqlite3")
    store.write("embed", [Write("1", {"b": {"z": 1, "y": 2}, "a": 2}, "ok")], 1.0, "r")
    (raw,) = store.db.execute("SELECT value FROM fetched").fetchone()
    assert raw == json.dumps({"b": {"z": 1, "y": 2}, "a": 2})


# A state written by schema 2's crawler (main at f98debe): `git archive f98debe`, then a crawl of
# the sample 001_b1bb273091d25c9c.txt against the stand-in, dumped with sqlite3's iterdump.
SCHEMA2_STATE = Path(__file__).parent / "fixtures" / "state_schema2.sql.gz"


def schema2_state(path: Path, fetched_at: float) -> Path:
    """The schema-2 fixture as a database file, its values fetched at ``fetched_at``."""
    with sqlite3.connect(path) as db:
        db.executescript(gzip.decompress(SCHEMA2_STATE.read_bytes()).decode("utf-8"))
        db.execute("UPDATE fetched SET fetched_at = ? WHERE fetched_at > 0", (fetched_at,))
    db.close()
    return path


def test_a_schema_2_state_is_upgraded_in_place(tmp_path: Path) -> None:
    path = schema2_state(tmp_path / "old.sqlite3", 1_700_000_000.5)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
        old = {
            (k, key): json.loads(v)
            for k, key, v in db.execute("SELECT kind, key, value FROM fetched")
        }
    db.close()
    store = StateStore(path)
    assert store.upgraded == (2, len(old))
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == FORMAT == 3
    for (kind, key), before in old.items():
        row = store.get(kind, key)
        assert row is not None
        after = row.value
        assert after["fetched_at"] == "2023-11-14T22:13:20.500Z"  # the row's time, carried over
        renamed = {"id", "summary", "published", "updated", "year", "favorite_count"}
        assert not renamed & set(after)
        if kind == "arxiv" and before["status"] == "ok":
            assert (after["versioned_id"], after["abstract"]) == (before["id"], before["summary"])
            assert (after["published_at"], after["updated_at"]) == (
                before["published"], before["updated"],
            )  # fmt: skip
        if kind == "impact" and before["status"] == "ok":
            assert after["publication_year"] == before["year"]
        if kind == "details" and before["status"] == "ok":
            assert after["like_count"] == before["favorite_count"]
    points = store.db.execute("SELECT data FROM observations").fetchall()
    assert points and all("like_count" in json.loads(d) for (d,) in points)
    assert not any("favorite_count" in json.loads(d) for (d,) in points)
    store.close()
    again = StateStore(path)  # a current file is opened without writing anything
    assert again.upgraded is None
    again.close()


def test_the_state_hands_an_upgraded_value_back_with_its_fetch_time(tmp_path: Path) -> None:
    path = schema2_state(tmp_path / "s.sqlite3", 1_700_000_000.0)
    crawler = project_crawler(STATE_DB=str(path))
    state, arxiv = _state(crawler), Arxiv(crawler.settings)
    key = next(k for (k,) in state.store.db.execute(
        "SELECT key FROM fetched WHERE kind = 'arxiv' AND status = 'ok'"))  # fmt: skip
    value = state.stored(arxiv, key)
    assert value is not None and value.status == "ok" and value.versioned_id
    assert value.fetched_at == "2023-11-14T22:13:20.000Z"
    row = state.store.get("arxiv", key)
    assert row is not None and not written_by_newer(arxiv, row)  # not fetched again for it
    # a refresh that fetches it again: the new time, and no change for the rename
    refetched = dataclasses.replace(value, fetched_at="2026-01-01T00:00:00.000Z")
    assert state.save(arxiv, {key: refetched})[key].fetched_at == "2026-01-01T00:00:00.000Z"
    assert state.store.pending_changes() == []
