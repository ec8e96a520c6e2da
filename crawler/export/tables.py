"""The dataset's tables, with column types derived from the record JSON schema.

Every leaf of ``crawler/record/record.schema.json`` becomes a column whose type is read off the
schema (``string`` -> string, ``integer`` -> int64, ``boolean`` -> bool, arrays -> lists, the
``utc``/``utc_ms`` definitions -> timestamp[ms, UTC], ``date`` -> date32), nullable when the
schema allows null or a status branch may leave it out. Types therefore never depend on what a
run happened to see: a column that no record fills keeps its type, and a schema change shows up
here as a column change (or a :class:`SchemaMappingError`) instead of drifting silently.

Column names follow one mechanical rule: a nested leaf's path below the table's row joined by
``_`` (``digest.retweets`` -> ``digest_retweets``, ``details.author.handle`` ->
``details_author_handle``); top-level fields keep their name; a tweet's ``id`` is ``tweet_id``.
Every column carries its description in its Arrow field metadata (``description``), read off the
schema's ``description`` for leaves and declared once here for derived columns, so Parquet,
DuckDB's ``COMMENT ON`` and the dataset card never write one twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from crawler.export.contract import (  # the keys live there: the DuckDB step has no pyarrow
    FOREIGN_KEYS as FOREIGN_KEYS,
)
from crawler.export.contract import (
    OBSERVED,
    TABLE_NAMES,
    record_schema,
)
from crawler.export.contract import (
    PRIMARY_KEYS as PRIMARY_KEYS,
)

STRING = pa.string()
INT = pa.int64()
TIMESTAMP = pa.timestamp("ms", tz="UTC")
DATE = pa.date32()
ITEM = "*"  # a path step into the items of an array

_JSON_TYPES: dict[str, pa.DataType] = {
    "string": STRING,
    "integer": INT,
    "boolean": pa.bool_(),
    "number": pa.float64(),
}
# Definitions whose strings are instants or days: typed by name, so every use agrees.
_REF_TYPES: dict[str, pa.DataType] = {"utc": TIMESTAMP, "utc_ms": TIMESTAMP, "date": DATE}
# Arrays of objects that are tables of their own rather than list<struct> columns.
_EXPLODED: dict[tuple[str, ...], str] = {
    ("tweets",): "tweets",
    ("tweets", ITEM, "details", "history"): "tweet_history",
}
# Facts about an embedding (this tweet in this entry), not about the tweet.
_MOVED: dict[tuple[str, ...], str] = {("tweets", ITEM, "links_paper"): "entry_tweets"}
_ROOTS: dict[str, tuple[str, ...]] = {
    "entries": (),
    "tweets": ("tweets", ITEM),
    "entry_tweets": ("tweets", ITEM),
    "tweet_history": ("tweets", ITEM, "details", "history", ITEM),
}
# A bare ``id`` says nothing in a table full of IDs.
_RENAMED: dict[tuple[str, ...], str] = {
    ("tweets", ITEM, "id"): "tweet_id",
}
DESCRIPTION = "description"  # the key of a column's (and a table's) description in Arrow metadata
# Record names the derived columns are computed from (one place to follow a schema rename).
WHEN = "post_published_at"  # when the digest was published
LIKES = "details_like_count"  # a tweet's like count (latest observation)
_KEY_FIRST = ("entry_id", "post_id", "post_slug", WHEN, "rank", "arxiv_id")
# The record blocks a paper's metadata comes from (the most recent record where they are ok).
PAPER_BLOCKS = ("arxiv", "semantic_scholar", "hf", "openalex")
# A paper's series: lists of a paper block whose items are rows of a table of their own (in
# papers they would repeat those rows; entries keeps them as the record has them).
PAPER_SERIES: dict[tuple[str, ...], str] = {
    ("hf", "history"): "paper_history",
    ("openalex", "history"): "paper_history",
    ("semantic_scholar", "history"): "paper_history",
    ("openalex", "counts_by_year"): "citations_by_year",
}

TABLE_DOCS = {
    "entries": "One row per digest entry (one JSON Lines record), flattened: block.leaf -> "
    "block_leaf. Key: entry_id.",
    "papers": "One row per distinct arXiv ID: the latest good arXiv and Semantic Scholar "
    "metadata (from the most recent listing whose block is ok), and aggregates over its "
    "listings and their tweets. Key: arxiv_id.",
    "tweets": "One row per distinct tweet: its embed and details as last fetched, and its "
    "availability. Key: tweet_id.",
    "entry_tweets": "One row per tweet embedded in an entry, in post order. "
    "Key: (entry_id, position).",
    "tweet_history": "One row per observation of a tweet's like and reply counts: one per "
    "successful details fetch, so it grows by one row per refresh. Key: (tweet_id, observed_at).",
    "paper_history": "One row per observation of a paper's counts by one service (service = "
    "the record block: hf, openalex or semantic_scholar): one per successful fetch of that "
    "service, kept across runs, so it grows by one row per refresh; the other services' count "
    "columns are null in that row. From the paper's block as in papers. "
    "Key: (arxiv_id, service, observed_at).",
    "citations_by_year": "One row per paper and year of OpenAlex's counts_by_year (from the "
    "paper's openalex block as in papers), every year from the first to the last year OpenAlex "
    "lists for the paper, with 0 for the years in between that it leaves out (no citation); "
    "years before the first or after the last listed one have no row. Key: (arxiv_id, year).",
    "posts": "One row per digest read, including digests without entries. Key: post_id.",
}


class SchemaMappingError(ValueError):
    """The record schema has a shape that no column type is defined for."""


@dataclass
class _Shape:
    """A JSON schema node reduced to what a column needs: kind, type and nullability."""

    kind: str  # "scalar", "list", "object" or "null"
    nullable: bool = False
    type: pa.DataType | None = None
    item: _Shape | None = None
    props: dict[str, tuple[_Shape, bool]] = field(default_factory=dict)  # name -> (shape, optional)
    description: str | None = None


def _described(shape: _Shape, node: Mapping[str, Any], alternatives: list[_Shape]) -> _Shape:
    """The node's own description wins; else the first alternative's (a status branch's)."""
    text = node.get("description") if isinstance(node, Mapping) else None
    shape.description = (
        text
        or shape.description
        or next((s.description for s in alternatives if s.description), None)
    )
    return shape


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(path) or "<record>"


def _type_of(value: Any, path: tuple[str, ...]) -> str:
    for kind, cls in (("boolean", bool), ("integer", int), ("number", float), ("string", str)):
        if isinstance(value, cls):
            return kind
    if value is None:
        return "null"
    raise SchemaMappingError(f"{_dotted(path)}: no column type for constant {value!r}")


def _json_types(node: Mapping[str, Any], path: tuple[str, ...]) -> list[str]:
    if "type" in node:
        kind = node["type"]
        return [kind] if isinstance(kind, str) else list(kind)
    if "const" in node:
        return [_type_of(node["const"], path)]
    if "enum" in node:
        return sorted({_type_of(v, path) for v in node["enum"]})
    if "properties" in node:
        return ["object"]
    raise SchemaMappingError(f"{_dotted(path)}: the schema gives no type")


def _union(shapes: list[_Shape], path: tuple[str, ...]) -> _Shape:
    """oneOf/anyOf: one column holds every alternative, so they must agree on the type."""
    nullable = any(s.nullable for s in shapes)
    real = [s for s in shapes if s.kind != "null"]
    if not real:
        return _described(_Shape("null", nullable=True), {}, shapes)
    kinds = {s.kind for s in real}
    if len(kinds) > 1:
        raise SchemaMappingError(f"{_dotted(path)}: alternatives of kinds {sorted(kinds)}")
    first = real[0]
    if first.kind == "scalar":
        if len({str(s.type) for s in real}) > 1:
            types = sorted({str(s.type) for s in real})
            raise SchemaMappingError(f"{_dotted(path)}: alternatives typed {types}")
        return _described(_Shape("scalar", nullable, type=first.type), {}, real)
    if first.kind == "list":
        items = [s.item for s in real if s.item is not None]
        return _described(_Shape("list", nullable, item=_union(items, (*path, ITEM))), {}, real)
    props: dict[str, tuple[_Shape, bool]] = {}
    for name in dict.fromkeys(n for s in real for n in s.props):
        present = [s.props[name] for s in real if name in s.props]
        # absent from an alternative (an error has no title) or optional in one: may be missing
        optional = len(present) < len(real) or any(opt for _, opt in present)
        props[name] = (_union([sh for sh, _ in present], (*path, name)), optional)
    return _described(_Shape("object", nullable, props=props), {}, real)


def _intersection(shapes: list[_Shape], path: tuple[str, ...]) -> _Shape:
    """allOf: every part applies, so properties add up and one part's requirement holds."""
    if len(shapes) == 1:
        return shapes[0]
    if any(s.kind != "object" for s in shapes):
        raise SchemaMappingError(f"{_dotted(path)}: allOf is only mapped for objects")
    props: dict[str, tuple[_Shape, bool]] = {}
    for name in dict.fromkeys(n for s in shapes for n in s.props):
        present = [s.props[name] for s in shapes if name in s.props]
        merged = _union([sh for sh, _ in present], (*path, name))
        merged.nullable = all(sh.nullable for sh, _ in present)
        props[name] = (merged, all(opt for _, opt in present))
    return _described(_Shape("object", all(s.nullable for s in shapes), props=props), {}, shapes)


class _Walker:
    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.definitions: Mapping[str, Any] = schema.get("definitions", {})

    def shape(self, node: Mapping[str, Any], path: tuple[str, ...]) -> _Shape:
        """The node's shape, described by its own ``description`` (else its parts')."""
        return _described(self._shape(node, path), node, [])

    def _shape(self, node: Mapping[str, Any], path: tuple[str, ...]) -> _Shape:
        if "$ref" in node:
            return self._ref(str(node["$ref"]), path)
        for key in ("oneOf", "anyOf"):
            if key in node:
                return _union([self.shape(b, path) for b in node[key]], path)
        if "allOf" in node:
            return _intersection([self.shape(b, path) for b in node["allOf"]], path)
        return self._typed(node, path)

    def _ref(self, ref: str, path: tuple[str, ...]) -> _Shape:
        name = ref.rsplit("/", 1)[-1]
        if name in _REF_TYPES:
            text = self.definitions.get(name, {}).get("description")
            return _Shape("scalar", type=_REF_TYPES[name], description=text)
        if name not in self.definitions:
            raise SchemaMappingError(f"{_dotted(path)}: unknown $ref {ref}")
        return self.shape(self.definitions[name], path)

    def _typed(self, node: Mapping[str, Any], path: tuple[str, ...]) -> _Shape:
        types = _json_types(node, path)
        nullable = "null" in types
        kinds = [t for t in types if t != "null"]
        if not kinds:
            return _Shape("null", nullable=True)
        if len(kinds) > 1:
            raise SchemaMappingError(f"{_dotted(path)}: one column cannot hold {kinds}")
        kind = kinds[0]
        if kind == "object":
            required = set(node.get("required", ()))
            props = {
                name: (self.shape(sub, (*path, name)), name not in required)
                for name, sub in node.get("properties", {}).items()
            }
            return _Shape("object", nullable, props=props)
        if kind == "array":
            if "items" not in node:
                raise SchemaMappingError(f"{_dotted(path)}: an array without items")
            return _Shape("list", nullable, item=self.shape(node["items"], (*path, ITEM)))
        if kind in _JSON_TYPES:
            return _Shape("scalar", nullable, type=_JSON_TYPES[kind])
        raise SchemaMappingError(f"{_dotted(path)}: no column type for JSON type {kind!r}")


def _arrow(shape: _Shape, path: tuple[str, ...]) -> pa.DataType:
    if shape.kind == "scalar" and shape.type is not None:
        return shape.type
    if shape.kind == "list" and shape.item is not None:
        item = shape.item
        return pa.list_(pa.field("item", _arrow(item, (*path, ITEM)), nullable=item.nullable))
    if shape.kind == "object" and shape.props:
        return pa.struct(
            pa.field(name, _arrow(sub, (*path, name)), nullable=sub.nullable or optional)
            for name, (sub, optional) in shape.props.items()
        )
    raise SchemaMappingError(f"{_dotted(path)}: no column type for a {shape.kind} value")


@dataclass(frozen=True)
class Leaf:
    """One leaf of the record and the column it lands in."""

    path: tuple[str, ...]  # from the record's root; ITEM steps into array items
    table: str
    column: str
    type: pa.DataType
    nullable: bool
    description: str = ""  # the schema's; "" when it gives none

    @property
    def rel(self) -> tuple[str, ...]:
        """The path below the table's row object (the record, a tweet, a history item)."""
        return self.path[len(_ROOTS[self.table]) :]

    @property
    def field(self) -> pa.Field:
        return described(pa.field(self.column, self.type, nullable=self.nullable), self.description)


def described(f: pa.Field, text: str) -> pa.Field:
    """``f`` carrying ``text`` as its description (Parquet keeps it in the file's schema)."""
    return f.with_metadata({DESCRIPTION: text}) if text else f.remove_metadata()


def description(f: pa.Field | pa.Schema) -> str:
    """A column's (or a table's) description, "" when it has none."""
    meta: dict[bytes, bytes] = f.metadata or {}
    return meta.get(DESCRIPTION.encode(), b"").decode("utf-8")


_Raw = tuple[tuple[str, ...], str, pa.DataType, bool, str]


def _flatten(shape: _Shape, path: tuple[str, ...], table: str, nullable: bool) -> list[_Raw]:
    if shape.kind == "object":
        if not shape.props:
            raise SchemaMappingError(f"{_dotted(path)}: an object without properties")
        out: list[_Raw] = []
        for name, (sub, optional) in shape.props.items():
            child = (*path, name)
            inner = nullable or shape.nullable or optional
            out += _flatten(sub, child, _MOVED.get(child, table), inner)
        return out
    if path in _EXPLODED and shape.kind == "list" and shape.item is not None:
        # one row per item, in a table of its own: the row exists, so nothing is inherited
        return _flatten(shape.item, (*path, ITEM), _EXPLODED[path], False)
    text = shape.description or ""
    return [(path, table, _arrow(shape, path), nullable or shape.nullable, text)]


def _name(raw: list[_Raw]) -> list[Leaf]:
    """The mechanical rule: the path below the row joined by "_", unless renamed."""
    leaves = []
    for path, table, kind, nullable, text in raw:
        name = _RENAMED.get(path) or "_".join(path[len(_ROOTS[table]) :])
        leaves.append(Leaf(path, table, name, kind, nullable, text))
    dupes = Counter((leaf.table, leaf.column) for leaf in leaves)
    for (table, column), count in dupes.items():
        if count > 1:
            raise SchemaMappingError(f"{table}.{column}: {count} leaves would share this column")
    return leaves


def is_paper_leaf(leaf: Leaf) -> bool:
    """A leaf of a paper block that papers carries (a series has its own table instead)."""
    return (
        leaf.table == "entries" and leaf.path[0] in PAPER_BLOCKS and leaf.path not in PAPER_SERIES
    )


def record_leaves(schema: Mapping[str, Any] | None = None) -> list[Leaf]:
    """Every leaf of the record schema with its table, column name and type."""
    schema = record_schema() if schema is None else schema
    shape = _Walker(schema).shape(schema, ())
    if shape.kind != "object":
        raise SchemaMappingError("<record>: the record is not an object")
    return _name(_flatten(shape, (), "entries", False))


@dataclass(frozen=True)
class Series:
    """One list of a paper block whose items are rows of :data:`PAPER_SERIES`'s table."""

    path: tuple[str, ...]  # (block, list) from the record's root
    table: str
    columns: tuple[tuple[str, tuple[str, ...]], ...]  # (column, path below the item)
    fields: tuple[pa.Field, ...]

    @property
    def block(self) -> str:
        return self.path[0]


def _series_column(table: str, block: str, rel: tuple[str, ...]) -> str:
    """The naming rule below an item (the row): its path joined by "_", with the block in
    front where one table gathers several blocks' series (``hf_upvotes`` beside
    ``openalex_cited_by_count``); the time every series shares keeps its name."""
    blocks = {path[0] for path, t in PAPER_SERIES.items() if t == table}
    name = "_".join(rel)
    return name if len(blocks) == 1 or name == OBSERVED else f"{block}_{name}"


def paper_series(schema: Mapping[str, Any] | None = None) -> tuple[Series, ...]:
    """Every paper series with its columns, typed and described from the schema's items."""
    schema = record_schema() if schema is None else schema
    root = _Walker(schema).shape(schema, ())
    out = []
    for path, table in PAPER_SERIES.items():
        shape = root
        for step in path:
            if step not in shape.props:
                raise SchemaMappingError(f"{_dotted(path)}: not in the record schema")
            shape = shape.props[step][0]
        if shape.kind != "list" or shape.item is None:
            raise SchemaMappingError(f"{_dotted(path)}: a paper series must be an array")
        raws = _flatten(shape.item, (*path, ITEM), table, False)
        columns = tuple(
            (_series_column(table, path[0], raw[len(path) + 1 :]), raw[len(path) + 1 :])
            for raw, *_ in raws
        )
        fields = tuple(
            described(pa.field(name, kind, nullable=nullable), text)
            for (name, _), (_, _, kind, nullable, text) in zip(columns, raws, strict=True)
        )
        out.append(Series(path, table, columns, fields))
    return tuple(out)


def _series_schemas(series: tuple[Series, ...]) -> dict[str, list[pa.Field]]:
    """Each series table's value columns: a column two series share (the time) once; in a
    table gathering several services every value column is null in the others' rows."""
    out: dict[str, dict[str, pa.Field]] = {}
    for one in series:
        several = len({s.block for s in series if s.table == one.table}) > 1
        columns = out.setdefault(one.table, {})
        for f in one.fields:
            known = columns.get(f.name)
            if known is not None and known.type != f.type:
                raise SchemaMappingError(f"{one.table}.{f.name}: typed {known.type} and {f.type}")
            shared = f.name == OBSERVED
            columns.setdefault(f.name, f.with_nullable(True) if several and not shared else f)
    return {table: list(columns.values()) for table, columns in out.items()}


def _column(fields: Mapping[str, pa.Field], name: str, *, nullable: bool | None = None) -> pa.Field:
    f = fields[name]
    return f if nullable is None else f.with_nullable(nullable)


def _count(name: str, text: str) -> pa.Field:
    return described(pa.field(name, INT, nullable=False), text)


def _derived_schemas(leaves: list[Leaf]) -> dict[str, list[pa.Field]]:
    """Tables built from leaves plus derived columns, each declared here once with its meaning
    (computed in crawler/export/dataset.py); copied columns keep their leaf's type."""
    entries = {leaf.column: leaf.field for leaf in leaves if leaf.table == "entries"}
    tweets = {leaf.column: leaf.field for leaf in leaves if leaf.table == "tweets"}
    when = _column(entries, WHEN, nullable=True)
    rank = _column(entries, "rank", nullable=False)
    metadata = [leaf.field.with_nullable(True) for leaf in leaves if is_paper_leaf(leaf)]
    ranks = pa.struct([when.remove_metadata(), rank.remove_metadata()])
    papers = [
        _column(entries, "arxiv_id", nullable=False),
        described(when.with_name("first_seen"), f"Earliest {WHEN} of the digests listing it."),
        described(when.with_name("last_seen"), f"Latest {WHEN} of the digests listing it."),
        _count(
            "digest_count",
            "Distinct digests (posts) listing the paper; a paper listed "
            "twice in one digest counts once.",
        ),
        _count(
            "listing_count",
            "Entries listing the paper (rows of entries with this "
            "arxiv_id); at least digest_count.",
        ),
        described(rank.with_name("best_rank"), "The best (smallest) rank over its listings."),
        described(
            pa.field("ranks", pa.list_(pa.field("item", ranks, nullable=False)), nullable=False),
            f"Every listing as {{{WHEN}, rank}}, oldest first.",
        ),
        described(
            _column(entries, "digest_title", nullable=True),
            "The title the most recent listing's digest gave the paper.",
        ),
        *metadata,
        described(
            _column(entries, "digest_favorites", nullable=True).with_name("max_digest_favorites"),
            "The largest digest_favorites over its listings: the "
            "digest's count of likes, taken when the digest was written (not tweet likes).",
        ),
        described(
            _column(entries, "digest_retweets", nullable=True).with_name("max_digest_retweets"),
            "The largest digest_retweets over its listings.",
        ),
        _count("tweet_count", "Distinct tweets embedded in its listings."),
        described(
            pa.field("linking_tweet_count", INT),
            "Distinct embedded tweets whose links "
            "point at the paper; null when no such tweet's details are known.",
        ),
        described(
            _column(tweets, LIKES, nullable=True).with_name("tweet_like_count_total"),
            f"Sum over its distinct embedded tweets of their latest {LIKES} (tweets "
            "whose details are not ok are left out); null when none is known, or when the "
            "sum is past 2^63-1, which no int64 holds (the dataset step's log names the "
            "paper).",
        ),
        described(
            _column(entries, "code_urls", nullable=False),
            "Code links of all its listings, first seen first.",
        ),
    ]
    posts = [f for leaf, f in ((x, x.field) for x in leaves) if leaf.path[:1] == ("post",)]
    return {
        "papers": papers,
        "posts": [
            *posts,
            _count("entry_count", "Entries read from the digest (0 for a digest without any)."),
            _count("embedded_tweet_count", "Tweets embedded in its entries (with repeats)."),
        ],
        "tweets": [
            described(
                when.with_name("first_seen"), f"Earliest {WHEN} of the digests embedding it."
            ),
            described(when.with_name("last_seen"), f"Latest {WHEN} of the digests embedding it."),
            _count("entry_count", "Entries embedding the tweet."),
        ],
        "entries": [_count("tweet_count", "Tweets embedded in the entry.")],
        "entry_tweets_keys": [
            _column(entries, "entry_id"),
            _count("position", "The tweet's place among the entry's tweets, from 1."),
            _column(tweets, "tweet_id"),
        ],
        "tweet_history_keys": [_column(tweets, "tweet_id")],
        "paper_history_keys": [
            _column(entries, "arxiv_id", nullable=False),
            described(
                pa.field("service", STRING, nullable=False),
                "The record block (and service) the observation is from: hf, openalex or "
                "semantic_scholar; its counts are in the columns named after it.",
            ),
        ],
        "citations_by_year_keys": [_column(entries, "arxiv_id", nullable=False)],
    }


def _check_unique(name: str, fields: list[pa.Field]) -> pa.Schema:
    dupes = [n for n, c in Counter(f.name for f in fields).items() if c > 1]
    if dupes:
        raise SchemaMappingError(f"{name}: columns {dupes} are defined twice")
    return pa.schema(fields)


def table_schemas(schema: Mapping[str, Any] | None = None) -> dict[str, pa.Schema]:
    """The Arrow schema of every table, in :data:`TABLE_NAMES` order."""
    leaves = record_leaves(schema)
    by_table = {t: [leaf.field for leaf in leaves if leaf.table == t] for t in _ROOTS}
    derived = _derived_schemas(leaves)
    series = _series_schemas(paper_series(schema))
    entries = sorted(by_table["entries"], key=lambda f: (f.name not in _KEY_FIRST, _key_pos(f)))
    fields = {
        "entries": [*entries, *derived["entries"]],
        "papers": derived["papers"],
        "tweets": [*by_table["tweets"], *derived["tweets"]],
        "entry_tweets": [*derived["entry_tweets_keys"], *by_table["entry_tweets"]],
        "tweet_history": [*derived["tweet_history_keys"], *by_table["tweet_history"]],
        "paper_history": [*derived["paper_history_keys"], *series["paper_history"]],
        "citations_by_year": [*derived["citations_by_year_keys"], *series["citations_by_year"]],
        "posts": derived["posts"],
    }
    return {
        name: _check_unique(name, fields[name]).with_metadata({DESCRIPTION: TABLE_DOCS[name]})
        for name in TABLE_NAMES
    }


def _key_pos(f: pa.Field) -> int:
    return _KEY_FIRST.index(f.name) if f.name in _KEY_FIRST else 0


class Layout:
    """Leaves and table schemas for one record schema, with the row extraction they imply."""

    def __init__(
        self,
        leaves: tuple[Leaf, ...],
        schemas: Mapping[str, pa.Schema],
        series: tuple[Series, ...] = (),
    ) -> None:
        self.leaves = leaves
        self.schemas = schemas
        self.series = series
        self._by_table = {t: tuple(x for x in leaves if x.table == t) for t in _ROOTS}
        self._paths = {t: [(x.column, x.rel) for x in self._by_table[t]] for t in _ROOTS}

    def leaves_of(self, table: str) -> tuple[Leaf, ...]:
        return self._by_table.get(table, ())

    def extract(self, table: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        """The leaf columns of ``table`` from ``obj``, the object one row of it stands for."""
        return {column: _get(obj, rel) for column, rel in self._paths[table]}

    def series_rows(self, block: Mapping[str, Any], series: Series) -> list[dict[str, Any]]:
        """The value columns of each item of ``series`` in the paper's ``block`` (none unless
        the block is ok): every value column of its table, the other series' ones null."""
        items = block.get(series.path[1]) if block.get("status") == "ok" else None
        if not items:
            return []
        blank = dict.fromkeys(f.name for f in self.schemas[series.table])
        return [
            blank | {column: _get(item, rel) for column, rel in series.columns} for item in items
        ]


def _get(obj: Any, path: tuple[str, ...]) -> Any:
    for step in path:
        if not isinstance(obj, dict):  # dict, not Mapping: this runs a million times a run
            return None
        obj = obj.get(step)
    return obj


def layout(schema: Mapping[str, Any] | None = None) -> Layout:
    if schema is None:
        return LAYOUT
    return Layout(tuple(record_leaves(schema)), table_schemas(schema), paper_series(schema))


def _instant(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)  # "Z" ok


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def _each(convert: Callable[[Any], Any], values: list[Any]) -> list[Any]:
    return [None if v is None else convert(v) for v in values]


def _fields(converts: dict[str, Callable[[Any], Any] | None], value: Mapping[str, Any]) -> Any:
    return {
        k: value.get(k) if c is None or value.get(k) is None else c(value[k])
        for k, c in converts.items()
    }


def _converter(kind: pa.DataType) -> Callable[[Any], Any] | None:
    """How a JSON value becomes what pyarrow takes for ``kind``; None when it already is."""
    if pa.types.is_timestamp(kind):
        return _instant
    if pa.types.is_date32(kind):
        return _day
    if pa.types.is_list(kind):
        inner = _converter(kind.value_type)
        return None if inner is None else partial(_each, inner)
    if pa.types.is_struct(kind):
        converts = {f.name: _converter(f.type) for f in kind}
        return None if not any(converts.values()) else partial(_fields, converts)
    return None


class Rows:
    """Column buffers for one table: dict rows in, typed RecordBatches out.

    Rows must carry exactly the table's columns, so a misspelt derived column fails loudly
    instead of writing a column of nulls.
    """

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self._converts = [(f.name, _converter(f.type)) for f in schema]
        self._columns: dict[str, list[Any]] = {f.name: [] for f in schema}
        self._names = set(self._columns)
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def append(self, row: Mapping[str, Any]) -> None:
        if row.keys() != self._names:
            missing = sorted(self._names - set(row))
            extra = sorted(set(row) - self._names)
            raise ValueError(f"row does not fit the table: missing {missing}, unknown {extra}")
        for name, convert in self._converts:
            value = row[name]
            if convert is not None and value is not None:
                value = convert(value)
            self._columns[name].append(value)
        self._count += 1

    def take(self) -> pa.RecordBatch:
        """The buffered rows as one batch; the buffer starts over."""
        arrays = [pa.array(self._columns[f.name], type=f.type) for f in self.schema]
        batch = pa.RecordBatch.from_arrays(arrays, schema=self.schema)
        self._columns = {f.name: [] for f in self.schema}
        self._count = 0
        return batch


class TableWriter:
    """One table's Parquet file, written a batch (one row group) at a time: memory stays flat.

    Rows become Arrow a chunk of ``CHUNK_ROWS`` at a time, and the chunks of a row group are
    joined only to be written: a row group of Python dicts, strings and datetimes took ~3x the
    memory of its Arrow columns (160 MB for the entries of 4,096 records). The file is the same
    to the byte: each row group is still one contiguous batch of ``batch_rows`` rows.
    """

    CHUNK_ROWS = 256

    def __init__(self, where: Any, schema: pa.Schema, *, batch_rows: int = 4096) -> None:
        self.rows = Rows(schema)
        self.batch_rows = batch_rows
        self.written = 0
        self._chunks: list[pa.RecordBatch] = []
        self._buffered = 0  # rows in the chunks
        self._writer = pq.ParquetWriter(where, schema, compression="zstd")

    def append(self, row: Mapping[str, Any]) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.CHUNK_ROWS:
            self._chunk()
        if self._buffered + len(self.rows) >= self.batch_rows:
            self.flush()

    def _chunk(self) -> None:
        if len(self.rows):
            self._buffered += len(self.rows)
            self._chunks.append(self.rows.take())

    def flush(self) -> None:
        self._chunk()
        if not self._chunks:
            return
        batch = pa.Table.from_batches(self._chunks).combine_chunks().to_batches()[0]
        self._chunks = []
        self.written += self._buffered
        self._buffered = 0
        self._writer.write_batch(batch)

    def close(self) -> None:
        """Write what is buffered and the file's footer; the file is complete afterwards."""
        self.flush()
        self._writer.close()


def entry_row(record: Mapping[str, Any], lay: Layout | None = None) -> dict[str, Any]:
    """One ``entries`` row from one record (shared by the dataset and the Parquet feed)."""
    lay = lay or LAYOUT
    return {**lay.extract("entries", record), "tweet_count": len(record.get("tweets") or ())}


LAYOUT = Layout(tuple(record_leaves()), table_schemas(), paper_series())
SCHEMAS: Mapping[str, pa.Schema] = LAYOUT.schemas
ENTRIES: pa.Schema = SCHEMAS["entries"]
