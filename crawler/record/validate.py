"""Every record is checked against the JSON Schema before export, and repaired where it can be.

A record whose enrichment block breaks the schema (an upstream answer of a shape nobody
foresaw) keeps its place in the output: the block becomes ``{"status": "error", ...}`` naming
what was wrong, and the run's exit status reports incomplete enrichment. Only a record whose own
digest part is off-schema (a parser bug) is dropped. Text that cannot be written as UTF-8 (lone
surrogates from a file name or a JSON escape) is replaced by U+FFFD before the check.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any

import fastjsonschema
from jsonschema import Draft7Validator

from crawler.parsing.text import SURROGATE
from crawler.record.build import PAPER_BLOCKS, error_block


@cache
def schema() -> dict[str, Any]:
    text = resources.files("crawler.record").joinpath("record.schema.json").read_text("utf-8")
    return json.loads(text)  # type: ignore[no-any-return]  # the schema file is an object


@cache
def validator() -> Draft7Validator:
    Draft7Validator.check_schema(schema())
    return Draft7Validator(schema())


@cache
def _fast_check() -> Any:
    # fastjsonschema compiles the schema to Python: ~20x faster than jsonschema on the hot path
    # (the profile had validation at a fifth of the crawler's CPU). jsonschema still explains.
    # Formats (date-time, uri, ...) document the fields; the patterns check them. Asserting
    # them here only would make the fast check stricter than the one that explains (jsonschema
    # treats format as an annotation), and a digest's link "as written" must not drop a record.
    # A copy: compiling rewrites every $ref in place to an absolute URI, and schema() is what
    # the dataset's record.schema.json and the field descriptions are made from.
    # No defaults either: jsonschema never fills one in, and a check must not change a record.
    # No details in its exceptions (fastjsonschema 2.21): a failure is explained by jsonschema,
    # and the details made its code 572 KB, whose compiling peaked at 33 MB, 9 MB without them
    # (the crawl of the samples peaked 23 MB lower).
    return fastjsonschema.compile(
        fast_schema(), use_formats=False, use_default=False, detailed_exceptions=False
    )


# Keywords that say nothing about a null: a schema of one non-null type made only of these
# accepts exactly what it accepted, plus null, once its type also names null.
_NULL_BLIND = frozenset({
    "type", "description", "title", "$comment", "examples", "format", "pattern",
    "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "multipleOf", "items", "additionalItems", "minItems", "maxItems", "uniqueItems",
    "contains", "properties", "additionalProperties", "patternProperties", "required",
    "minProperties", "maxProperties", "propertyNames", "dependencies",
})  # fmt: skip
_NULL = {"type": "null"}
_DATA = frozenset({"const", "enum", "default", "examples"})  # values, not schemas: not rewritten
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "definitions", "dependencies"})


def fast_schema() -> dict[str, Any]:
    """A copy of :func:`schema` for the compiled check, each ``oneOf: [X, null]`` written as X
    whose type also names null: the same verdict on every value (X's one type is not null, and
    none of its keywords constrains a null), without the exception fastjsonschema raises and
    catches for the branch that fails, on every such value of every record (32 a record, a
    third of the check's CPU: ``benchmarks.validation``)."""
    copied = copy.deepcopy(schema())
    _nullable(copied, copied.get("definitions", {}))
    _const_as_enum(copied)
    return copied


def _const_as_enum(node: Any) -> None:
    """Each ``const: X`` as ``enum: [X]`` (beside an enum: in an ``allOf``): fastjsonschema
    generates the same match for both, but (2.21+) only enum's failure compiles without
    detailed exceptions."""
    if isinstance(node, list):
        for item in node:
            _const_as_enum(item)
        return
    if not isinstance(node, dict):
        return
    if "const" in node:
        only = {"enum": [node.pop("const")]}
        if "enum" in node:
            node.setdefault("allOf", []).append(only)
        else:
            node.update(only)
    for key, value in node.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):  # names -> schemas: not a schema
            _const_as_enum(list(value.values()))
        elif key not in _DATA:
            _const_as_enum(value)


def _nullable(node: Any, definitions: dict[str, Any]) -> None:
    if isinstance(node, list):
        for item in node:
            _nullable(item, definitions)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key not in _DATA:
            _nullable(value, definitions)
    branches = node.get("oneOf")
    if not isinstance(branches, list) or len(branches) != 2 or _NULL not in branches:
        return
    other = branches[1 - branches.index(_NULL)]
    if set(other) == {"$ref"} and other["$ref"].startswith("#/definitions/"):
        other = definitions.get(other["$ref"].removeprefix("#/definitions/"), other)
    if set(node) - {"oneOf", "description", "title", "$comment"} or set(other) - _NULL_BLIND:
        return
    if isinstance(kind := other.get("type"), str) and kind != "null":
        del node["oneOf"]
        node.update(copy.deepcopy(other) | {"type": [kind, "null"]})


def schema_errors(record: dict[str, Any]) -> list[str]:
    """Human-readable violations, empty when the record is valid."""
    return [
        f"{'/'.join(map(str, path)) or '<record>'}: {message}" for path, message in _errors(record)
    ]


def _errors(record: dict[str, Any]) -> list[tuple[list[Any], str]]:
    try:
        _fast_check()(record)
        return []
    except fastjsonschema.JsonSchemaException:
        pass
    errors = sorted(validator().iter_errors(record), key=lambda e: list(e.absolute_path))
    found = [(list(e.absolute_path), e.message) for e in errors]
    return found or [([], "rejected by the compiled schema check")]


def scrub_text(value: Any) -> tuple[Any, int]:
    """``value`` with lone surrogates replaced in every string, and how many were replaced.
    Every list and dict is a new one: the record shares no container with the values."""
    replaced = [0]
    return _scrubbed(value, replaced), replaced[0]


def _scrubbed(value: Any, replaced: list[int]) -> Any:
    # Exact types first (JSON's own, all but every value): one pass, no pairs to unpack.
    kind = type(value)
    if kind is str and value.isascii():  # no surrogate in ASCII: most strings stop here
        return value
    if kind is dict or (kind is not str and isinstance(value, dict)):
        return {k: _scrubbed(v, replaced) for k, v in value.items()}
    if kind is list or isinstance(value, list):
        return [_scrubbed(v, replaced) for v in value]
    if isinstance(value, str):
        fixed, count = SURROGATE.subn("\ufffd", value)
        replaced[0] += count
        return fixed
    return value


def _block_path(path: list[Any]) -> list[Any] | None:
    """The enrichment block an error lies in: ["arxiv"], ["tweets", 2, "details"], ..."""
    if path and path[0] in PAPER_BLOCKS:
        return path[:1]
    if len(path) >= 3 and path[0] == "tweets" and path[2] in ("embed", "details"):
        return path[:3]
    return None


def repair(record: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Replace enrichment blocks that break the schema by error blocks, in place.

    Returns (what was repaired, what still breaks the schema).
    """
    repaired: dict[str, str] = {}
    for path, message in _errors(record):
        block = _block_path(path)
        where = "/".join(map(str, block or []))
        if block is None or where in repaired:
            continue
        parent: Any = record
        for step in block[:-1]:
            parent = parent[step]
        error = f"answer broke the output schema: {message}"
        parent[block[-1]] = error_block(block[-1], error[:300])
        repaired[where] = message
    if not repaired:
        return [], schema_errors(record)
    return [f"{where}: {message}" for where, message in repaired.items()], schema_errors(record)
