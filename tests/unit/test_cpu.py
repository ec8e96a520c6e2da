"""Issue 21's CPU cuts do less, never something else: each shortcut gives what the long way gave."""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crawler import logredact
from crawler.items import TweetDetails
from crawler.parsing.text import SURROGATE
from crawler.record.build import BLOCK_FIELDS, _status_block
from crawler.record.validate import scrub_text
from crawler.services.syndication import Syndication
from crawler.state.extension import State, _fields
from crawler.state.store import StateError, StateStore, Write
from tests.helpers import project_crawler

KEYS = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=4)
STATUSES = st.sampled_from(["ok", "deleted", "protected", "error"])


@given(
    stored=st.dictionaries(KEYS, STATUSES, max_size=12),
    asked=st.lists(KEYS, max_size=20),
    chunk=st.integers(1, 5),
)
@settings(max_examples=60, deadline=None)
def test_get_many_is_get_for_each_key(stored: dict[str, str], asked: list[str], chunk: int) -> None:
    """One statement per chunk of keys reads exactly the rows one statement per key read:
    present or absent, repeated keys, keys that look like SQL, chunks of any size."""
    with pytest.MonkeyPatch.context() as mp, tempfile.TemporaryDirectory() as tmp:
        mp.setattr("crawler.state.store.GET_MANY_CHUNK", chunk)
        store = StateStore(Path(tmp) / "s.sqlite3")
        writes = [Write(k, {"status": s, "n": i}, s) for i, (k, s) in enumerate(stored.items())]
        store.write("embed", writes, 5.0, "r1")
        store.write("details", [Write(k, {"other": 1}, "ok") for k in asked], 6.0, "r1")
        many = store.get_many("embed", asked + list(stored)[:2])
        assert list(many) == list(dict.fromkeys(asked + list(stored)[:2]))
        assert many == {key: store.get("embed", key) for key in many}
        store.close()


def test_get_many_names_the_key_whose_value_is_not_json(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.sqlite3")
    store.write("embed", [Write("1", {"status": "ok"}, "ok")], 5.0, "r1")
    store.db.execute("UPDATE fetched SET value = 'not json' WHERE key = '1'")
    with pytest.raises(StateError, match=r"stored value for embed 1 is not JSON"):
        store.get_many("embed", ["0", "1"])
    store.close()


def test_stored_many_is_stored_for_each_key(tmp_path: Path) -> None:
    """Decoded once per key as ``stored`` decodes: an undecodable value is None and counted."""
    crawler = project_crawler(STATE_DB=str(tmp_path / "s.sqlite3"))
    state = crawler.get_extension(State)
    assert state is not None
    service = Syndication(crawler.settings)
    state.save(service, {"1": TweetDetails("ok", like_count=3), "2": TweetDetails("not_found")})
    out_of_range = {"status": "ok", "like_count": 2**70}
    state.store.write("details", [Write("3", out_of_range, "ok")], 5.0, "x")
    many = state.stored_many(service, ["4", "2", "1", "3"])
    assert many == {key: state.stored(service, key) for key in ("4", "2", "1", "3")}
    assert many["1"] == TweetDetails("ok", like_count=3)
    assert many["2"] == TweetDetails("not_found")
    assert many["3"] is None and many["4"] is None
    assert crawler.stats.get_value("state/details/undecodable") == 2  # once by each read


VALUES = st.builds(
    TweetDetails,
    status=st.sampled_from(["ok", "not_found", "tombstone", "error", "disabled"]),
    error=st.none() | st.text(max_size=5),
    reason=st.none() | st.text(max_size=5),
    like_count=st.none() | st.integers(),
    author=st.none() | st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
    urls=st.lists(st.fixed_dictionaries({"url": st.text(max_size=3)}), max_size=2),
    history=st.lists(st.fixed_dictionaries({"like_count": st.integers()}), max_size=2),
)


@given(VALUES)
def test_fields_encode_as_asdict_did(value: TweetDetails) -> None:
    """The state stores the same JSON bytes as when values went through ``asdict``."""
    assert json.dumps(_fields(value), ensure_ascii=False) == json.dumps(
        dataclasses.asdict(value), ensure_ascii=False
    )


@given(VALUES)
def test_a_block_is_what_it_was_with_asdict(value: TweetDetails) -> None:
    """The block read field by field equals the one built from ``asdict``'s copy."""
    data = dataclasses.asdict(value)
    ok = value.status == "ok"
    expected: dict[str, Any] = {"status": value.status}
    for name in BLOCK_FIELDS["details"]:
        expected[name] = data[name] if ok or name in ("error", "fetched_at", "reason") else None
    expected["error"] = (
        (value.error or value.status) if value.status in ("not_found", "error") else None
    )
    expected["reason"] = (data["reason"] or "") if value.status == "tombstone" else None
    if value.status == "disabled":
        expected["fetched_at"] = None
    assert json.dumps(_status_block(value, "details")) == json.dumps(expected)


# -- log redaction ---------------------------------------------------------------------------
SECRET_URL = "https://api.example/works?api_key=hunter2&x=1"


@pytest.fixture
def quiet_logger() -> Iterator[logging.Logger]:
    """A filtered logger, restored afterwards; :func:`_only` gives it its handlers."""
    logger = logging.getLogger("crawler.enrich.runner")
    saved = (logger.handlers[:], logger.propagate, logger.level)
    logger.setLevel(logging.DEBUG)
    logredact.install()
    try:
        yield logger
    finally:
        logger.handlers, logger.propagate, logger.level = saved


def _only(logger: logging.Logger, *levels: int) -> list[str]:
    """``logger``'s handlers become ones at ``levels`` (as Scrapy's at LOG_LEVEL), not
    propagating; set inside the test, after pytest adds its capture handlers to it."""
    seen: list[str] = []
    handlers = [logging.Handler(level) for level in levels]
    for handler in handlers:
        handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logger.handlers, logger.propagate = handlers, False
    return seen


def test_a_record_no_handler_emits_is_not_masked(
    quiet_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DEBUG line (Scrapy's "Crawled (200)" per request) that every handler drops is not
    masked: the mask cost more CPU than the request's middleware."""
    calls: list[object] = []

    def counted(value: object) -> object:
        calls.append(value)
        return value

    monkeypatch.setattr(logredact, "redact", counted)
    _only(quiet_logger, logging.INFO)
    quiet_logger.debug("Crawled %s", SECRET_URL)
    assert calls == []
    quiet_logger.info("Crawled %s", SECRET_URL)
    assert calls == [SECRET_URL, "Crawled %s"]


def test_a_record_some_handler_emits_is_masked(quiet_logger: logging.Logger) -> None:
    """A DEBUG handler anywhere on the way (LOG_LEVEL=DEBUG, a test's capture) gets it masked."""
    seen = _only(quiet_logger, logging.INFO, logging.DEBUG)
    quiet_logger.debug("Crawled %s", SECRET_URL)
    assert seen == ["Crawled https://api.example/works?api_key=***&x=1"]


def test_without_handlers_the_last_resort_decides(quiet_logger: logging.Logger) -> None:
    """No handler at all: Python's last resort prints WARNING and above, masked."""
    _only(quiet_logger)
    assert logredact._lowest_level(quiet_logger) == logging.WARNING


# -- record pipeline -------------------------------------------------------------------------
# Lone surrogates (what scrub_text is for) drawn often, beside ASCII and any other character.
# (Joined from characters: st.text leaves surrogates out of any alphabet.)
TEXT = st.lists(
    st.sampled_from("a\ud800\udfff\u00e9") | st.characters(max_codepoint=0xFFFF), max_size=6
).map("".join)
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=12,
)


def _reference_scrub(value: Any) -> tuple[Any, int]:
    """The plain recursive scrub the fast one replaced."""
    if isinstance(value, str):
        return SURROGATE.subn("\ufffd", value)
    if isinstance(value, list):
        items = [_reference_scrub(v) for v in value]
        return [v for v, _ in items], sum(n for _, n in items)
    if isinstance(value, dict):
        pairs = {k: _reference_scrub(v) for k, v in value.items()}
        return {k: v for k, (v, _) in pairs.items()}, sum(n for _, n in pairs.values())
    return value, 0


def _containers(value: Any) -> list[int]:
    if isinstance(value, dict):
        return [id(value), *(i for v in value.values() for i in _containers(v))]
    if isinstance(value, list):
        return [id(value), *(i for v in value for i in _containers(v))]
    return []


@given(JSONISH)
def test_scrub_text_is_the_plain_scrub_and_shares_no_container(value: Any) -> None:
    """Same value and count as the plain recursive scrub, and a new list or dict for each one
    (build_record no longer copies values: the records rely on this copy)."""
    scrubbed, count = scrub_text(value)
    expected, expected_count = _reference_scrub(value)
    assert (json.dumps(scrubbed), count) == (json.dumps(expected), expected_count)
    assert not set(_containers(scrubbed)) & set(_containers(value))


@given(VALUES)
def test_comparable_is_asdict_without_the_volatile_fields(value: TweetDetails) -> None:
    service = Syndication(project_crawler().settings)
    expected = dataclasses.asdict(value)
    for name in (*service.volatile, "fetched_at"):
        expected.pop(name, None)
    assert service.comparable(value) == expected
