"""The compiled check runs a rewritten copy of the schema (``oneOf: [X, null]`` as X whose type
also names null): it must accept exactly what jsonschema accepts on the schema as written, on
valid records and on records with any value replaced by any other."""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

import fastjsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crawler.record.validate import _fast_check, fast_schema, schema, validator
from tests.records_v2 import small_corpus

RECORDS = small_corpus()
REPLACEMENTS: tuple[Any, ...] = (
    None, "", "x", "ok", "error", "2021-06-18T09:00:00Z", "2021-06-18T09:00:00.000Z",
    "2021-06-18", "2106.00001", "1405203418543595521", 0, -1, 7, 1.5, True, [], [None], ["x"],
    {}, {"status": "ok"}, {"status": "error", "error": "e"},
)  # fmt: skip


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path] if path else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _paths(item, (*path, i))
    return found


def _replaced(record: dict[str, Any], path: tuple[Any, ...], new: Any) -> dict[str, Any]:
    changed = copy.deepcopy(record)
    parent: Any = changed
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = copy.deepcopy(new)
    return changed


def _fast_accepts(record: dict[str, Any]) -> bool:
    try:
        _fast_check()(record)
    except fastjsonschema.JsonSchemaException:
        return False
    return True


def test_the_copy_has_no_null_one_of_left_and_the_schema_is_as_written() -> None:
    text = resources.files("crawler.record").joinpath("record.schema.json").read_text("utf-8")
    assert schema() == json.loads(text)  # what the dataset's schema and card are made from
    written, fast = json.dumps(schema()), json.dumps(fast_schema())
    assert written.count('"oneOf"') == 8 and fast.count('"oneOf"') == 0
    assert written.count('"const"') == 7 and fast.count('"const"') == 0
    assert fast_schema()["definitions"]["utc_ms_or_null"]["type"] == ["string", "null"]
    assert all(_fast_accepts(r) and validator().is_valid(r) for r in RECORDS)


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_the_compiled_check_and_jsonschema_agree_on_any_one_value_changed(data: Any) -> None:
    record = data.draw(st.sampled_from(RECORDS))
    path = data.draw(st.sampled_from(_paths(record)))
    new = data.draw(st.sampled_from(REPLACEMENTS))
    changed = _replaced(record, path, new)
    assert _fast_accepts(changed) == validator().is_valid(changed), (path, new)


def test_values_in_data_keywords_and_defaults_are_not_rewritten(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A ``oneOf`` inside ``const`` is a value to compare, not a schema; a ``default`` beside X
    would have become one the compiled check fills into the record."""
    from crawler.record import validate

    nullable = {"oneOf": [{"type": "string"}, {"type": "null"}]}
    written: dict[str, Any] = {
        "type": "object",
        "properties": {
            "a": {"const": copy.deepcopy(nullable)},
            "b": {"oneOf": [{"type": "string", "default": "x"}, {"type": "null"}]},
            "c": nullable,
        },
        "definitions": {},
    }
    monkeypatch.setattr(validate, "schema", lambda: copy.deepcopy(written))
    fast = validate.fast_schema()
    assert fast["properties"]["a"] == {"enum": [nullable]}
    assert fast["properties"]["b"] == written["properties"]["b"]
    assert fast["properties"]["c"] == {"type": ["string", "null"]}


def test_const_is_checked_as_enum_and_a_property_named_const_is_a_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """fastjsonschema 2.22 cannot compile const without detailed exceptions; enum of one is
    the same match. A property called ``const`` is a name in ``properties``, not a keyword."""
    from crawler.record import validate

    written: dict[str, Any] = {
        "type": "object",
        "properties": {
            "const": {"type": "integer", "const": 3},
            "flag": {"const": True},
            "pair": {"items": [{"const": "a"}, {"const": None}]},
        },
        "definitions": {"v": {"const": 1, "enum": [1, 2]}},
    }
    monkeypatch.setattr(validate, "schema", lambda: copy.deepcopy(written))
    fast = validate.fast_schema()
    assert fast["properties"]["const"] == {"type": "integer", "enum": [3]}
    assert fast["properties"]["flag"] == {"enum": [True]}
    assert fast["properties"]["pair"] == {"items": [{"enum": ["a"]}, {"enum": [None]}]}
    assert fast["definitions"]["v"] == {"enum": [1, 2], "allOf": [{"enum": [1]}]}
    fastjsonschema.compile(fast["definitions"]["v"], detailed_exceptions=False)(1)
    with pytest.raises(fastjsonschema.JsonSchemaValueException):
        fastjsonschema.compile(fast["definitions"]["v"], detailed_exceptions=False)(2)
    check = fastjsonschema.compile(fast, use_formats=False, detailed_exceptions=False)
    check({"const": 3, "flag": True, "pair": ["a", None]})
    for bad in ({"const": 4}, {"flag": 1}, {"pair": ["a", 0]}):
        with pytest.raises(fastjsonschema.JsonSchemaValueException):
            check(bad)


def test_the_compiled_check_is_built_without_the_memory_its_details_took() -> None:
    """With detailed exceptions the generated code was 572 KB, and compiling it took 33 MB at
    its peak (tracemalloc); most of that stayed in the crawl's process (RSS +33 MB at the
    first record of a crawl of the samples)."""
    import tracemalloc

    tracemalloc.start()
    try:
        _fast_check.__wrapped__()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20
