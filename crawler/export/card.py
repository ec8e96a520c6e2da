"""What makes ``NAME.dataset/`` publishable: a Hugging Face dataset card and Croissant metadata.

Both are generated from the table schemas (whose column descriptions come from the record
schema), so the data dictionary, ``croissant.json``, the Parquet field metadata and DuckDB's
comments say the same thing. The card's YAML ``configs`` name one config per table, so
``datasets.load_dataset(FOLDER, "papers")`` loads exactly ``papers.parquet`` (without them the
loader reads every file of the folder as one table). The record's JSON Schema ships beside them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow as pa

from crawler.export.contract import SCHEMA_VERSION
from crawler.export.tables import (
    FOREIGN_KEYS,
    PRIMARY_KEYS,
    SCHEMAS,
    TABLE_DOCS,
    TABLE_NAMES,
    description,
)

CARD_FILE = "README.md"
CROISSANT_FILE = "croissant.json"
SCHEMA_FILE = "record.schema.json"
_PARQUET = "application/x-parquet"
_RUN_FACTS = (("run_id", "Run"), ("started_at", "Started"), ("finished_at", "Finished"),
              ("exit_status", "Exit status"), ("records", "Records"))  # fmt: skip

# Who holds what, and on which terms: the dataset is a compilation of these.
SOURCES = (
    ("Hot Papers digests", "the posts listing each day's papers (titles, authors, digest "
     "counts, embedded tweets)", "the digests' authors; the posts state no license"),
    ("arXiv export API", "paper metadata (`arxiv_*`)", "arXiv API Terms of Use "
     "(https://info.arxiv.org/help/api/tou.html); arXiv's metadata is offered under CC0 1.0, "
     "each paper under the license its authors chose"),
    ("Semantic Scholar Academic Graph API", "citation counts, venue, TLDR "
     "(`semantic_scholar_*`)", "Semantic Scholar API License Agreement "
     "(https://www.semanticscholar.org/product/api/license)"),
    ("Hugging Face papers API", "upvotes, comments, code and project links, AI summaries "
     "(`hf_*`, `paper_history`)", "Hugging Face Terms of Service "
     "(https://huggingface.co/terms-of-service)"),
    ("OpenAlex API", "citations and citations per year, published versions, topics "
     "(`openalex_*`, `paper_history`, `citations_by_year`)", "OpenAlex data is CC0 1.0 "
     "(https://openalex.org/about)"),
    ("Twitter/X oEmbed and syndication endpoints", "tweet embeds, likes, replies, "
     "availability (`embed_*`, `details_*`, `tweet_history`)", "X's Developer Agreement and "
     "Policy; tweets remain their authors' content; the syndication endpoint is unofficial"),
)  # fmt: skip

_SCALARS = (
    (pa.types.is_boolean, "sc:Boolean"),
    (pa.types.is_integer, "sc:Integer"),
    (pa.types.is_floating, "sc:Float"),
    (pa.types.is_timestamp, "sc:DateTime"),
    (pa.types.is_date, "sc:Date"),
)


def write_card(
    folder: Path,
    *,
    rows: Mapping[str, int],
    period: tuple[str | None, str | None],
    run_report: Mapping[str, Any] | None,
) -> None:
    """README.md (the card), croissant.json and record.schema.json, into ``folder``."""
    schema_text = resources.files("crawler.record").joinpath(SCHEMA_FILE).read_bytes()
    (folder / SCHEMA_FILE).write_bytes(schema_text)
    card = render_card(rows=rows, period=period, run_report=run_report)
    (folder / CARD_FILE).write_text(card, encoding="utf-8")
    croissant = render_croissant(folder, period=period, run_report=run_report)
    text = json.dumps(croissant, indent=2, ensure_ascii=False) + "\n"
    (folder / CROISSANT_FILE).write_text(text, encoding="utf-8")


# -- the card --------------------------------------------------------------------------------


def _front_matter() -> str:
    configs = "".join(
        f"- config_name: {name}\n  data_files:\n  - split: train\n    path: {name}.parquet\n"
        + ("  default: true\n" if name == "papers" else "")
        for name in TABLE_NAMES
    )
    return (
        "---\npretty_name: Hot Papers\nlicense: other\nlicense_name: upstream-terms\n"
        "language:\n- en\ntags:\n- arxiv\n- twitter\n- citations\n- scientometrics\n"
        f"configs:\n{configs}---\n"
    )


def _run_lines(run_report: Mapping[str, Any] | None) -> str:
    if not run_report:
        return "- Run: not recorded (the tables were written outside a crawl).\n"
    return "".join(f"- {label}: `{run_report.get(key)}`\n" for key, label in _RUN_FACTS)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _dictionary(name: str, rows: Mapping[str, int]) -> str:
    schema = SCHEMAS[name]
    keys = ", ".join(f"`{k}`" for k in PRIMARY_KEYS[name])
    refs = "".join(
        f"; `{', '.join(cols)}` references `{target}`"
        for table, cols, target in FOREIGN_KEYS
        if table == name
    )
    head = (
        f"### `{name}` ({rows.get(name, 0):,} rows)\n\n{TABLE_DOCS[name]}\n\n"
        f"Primary key: {keys}{refs}.\n\n| column | type | null | description |\n|---|---|---|---|\n"
    )
    body = "".join(
        f"| `{f.name}` | `{f.type}` | {'yes' if f.nullable else 'no'} | {_cell(description(f))} |\n"
        for f in schema
    )
    return head + body + "\n"


def _sources() -> str:
    return "".join(f"- **{who}**: {what}. Terms: {terms}.\n" for who, what, terms in SOURCES)


_COLLECTED = """\
## How the numbers were collected

- `digest_retweets`, `digest_favorites` (and `papers.max_digest_favorites`) are the counts the
  digest printed for the paper, taken at `digest_counts_at`. They are not the tweets' likes.
- `details_like_count`, `details_reply_count` (and `papers.tweet_like_count_total`) are what
  Twitter's syndication endpoint answered at `details_fetched_at`. A run reuses a stored value
  until it is stale, so every enrichment block carries its `*_fetched_at`: the time it was
  fetched upstream, not the time the table was written.
- `tweet_history` grows by one observation per successful details fetch: one run gives one
  point per tweet, so questions about growth need several runs (`-a refresh=details` daily).
- `semantic_scholar_citation_count` is Semantic Scholar's count at `semantic_scholar_fetched_at`,
  `openalex_cited_by_count` OpenAlex's at `openalex_fetched_at`, `hf_upvotes` and
  `hf_github_stars` Hugging Face's at `hf_fetched_at`. `paper_history` keeps one observation per
  successful fetch of each of them (column `service`), so it too grows by one row per refresh.
- `citations_by_year` is OpenAlex's `counts_by_year` with the years between the first and last
  listed year that it leaves out (no citation) filled with 0.
- An entry whose enrichment failed keeps its row, with the block's `*_status` saying why.
"""


def render_card(
    *,
    rows: Mapping[str, int],
    period: tuple[str | None, str | None],
    run_report: Mapping[str, Any] | None,
) -> str:
    """The dataset card: YAML front matter, provenance, terms, method, the data dictionary."""
    first, last = period
    files = "".join(f"- `{n}.parquet`: {TABLE_DOCS[n]}\n" for n in TABLE_NAMES)
    dictionary = "".join(_dictionary(name, rows) for name in TABLE_NAMES)
    return (
        f"{_front_matter()}\n# Hot Papers\n\nThe arXiv papers that Hot Papers digests listed as "
        "popular on Twitter, one row per digest entry, enriched with arXiv metadata, Semantic "
        "Scholar and OpenAlex citations, Hugging Face paper signals and the embedded tweets' "
        "details.\n\n"
        f"Digests published from `{first}` to `{last}`; record schema {SCHEMA_VERSION} "
        f"(`{SCHEMA_FILE}`).\n\n## Provenance\n\n{_run_lines(run_report)}\n"
        f"## License and terms\n\nThis is a compilation; no single license covers it (hence "
        f"`license: other`). Each part stays under its source's terms:\n\n{_sources()}\n"
        f"{_COLLECTED}\n## Files\n\n{files}- `hot_papers.duckdb`: the same tables with keys "
        "and comments.\n- `croissant.json`: Croissant 1.0 metadata.\n- `dataset.json`: row "
        'counts and column types.\n\nLoad a table: `datasets.load_dataset(FOLDER, "papers")`.'
        f"\n\n## Data dictionary\n\n{dictionary}"
    )


# -- Croissant -------------------------------------------------------------------------------


def _croissant_type(kind: pa.DataType) -> str:
    for test, name in _SCALARS:
        if test(kind):
            return name
    return "sc:Text"


def _field(table: str, f: pa.Field, source: dict[str, Any]) -> dict[str, Any]:
    """One Croissant field; a list is ``repeated``, a struct's members are sub-fields."""
    kind, repeated = f.type, False
    if pa.types.is_list(kind):
        kind, repeated = kind.value_type, True
    out: dict[str, Any] = {
        "@type": "cr:Field",
        "@id": f"{table}/{f.name}",
        "name": f.name,
        "description": description(f) or f.name,
        "dataType": _croissant_type(kind),
        "source": source,
    }
    if repeated:
        out["repeated"] = True
    if pa.types.is_struct(kind):
        del out["dataType"]
        out["subField"] = [
            _field(f"{table}/{f.name}", member, {**source, "transform": {"jsonPath": member.name}})
            for member in kind
        ]
    return out


def _references(table: str) -> Iterator[tuple[str, str]]:
    for name, columns, target in FOREIGN_KEYS:
        if name == table and len(columns) == 1:
            yield columns[0], f"{target}/{PRIMARY_KEYS[target][0]}"


def _record_set(table: str) -> dict[str, Any]:
    refs = dict(_references(table))
    fields = []
    for f in SCHEMAS[table]:
        source = {"fileObject": {"@id": f"{table}.parquet"}, "extract": {"column": f.name}}
        node = _field(table, f, source)
        if f.name in refs:
            node["references"] = {"field": {"@id": refs[f.name]}}
        fields.append(node)
    return {
        "@type": "cr:RecordSet",
        "@id": table,
        "name": table,
        "description": TABLE_DOCS[table],
        "key": [{"@id": f"{table}/{k}"} for k in PRIMARY_KEYS[table]],
        "field": fields,
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_CONTEXT = {
    "@language": "en", "@vocab": "https://schema.org/", "sc": "https://schema.org/",
    "cr": "http://mlcommons.org/croissant/", "rai": "http://mlcommons.org/croissant/RAI/",
    "dct": "http://purl.org/dc/terms/", "citeAs": "cr:citeAs", "column": "cr:column",
    "conformsTo": "dct:conformsTo", "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "equivalentProperty": "cr:equivalentProperty", "samplingRate": "cr:samplingRate", "examples":
    {"@id": "cr:examples", "@type": "@json"}, "extract": "cr:extract", "field": "cr:field",
    "fileProperty": "cr:fileProperty", "fileObject": "cr:fileObject", "fileSet": "cr:fileSet",
    "format": "cr:format", "includes": "cr:includes", "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath", "key": "cr:key", "md5": "cr:md5", "parentField": "cr:parentField",
    "path": "cr:path", "recordSet": "cr:recordSet", "references": "cr:references",
    "regex": "cr:regex", "repeated": "cr:repeated", "replace": "cr:replace",
    "separator": "cr:separator", "source": "cr:source", "subField": "cr:subField",
    "transform": "cr:transform",
}  # fmt: skip


def render_croissant(
    folder: Path,
    *,
    period: tuple[str | None, str | None],
    run_report: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Croissant 1.0 JSON-LD: one FileObject (with its SHA-256) and one RecordSet per table."""
    files = [
        {
            "@type": "cr:FileObject",
            "@id": f"{name}.parquet",
            "name": f"{name}.parquet",
            "contentUrl": f"{name}.parquet",
            "encodingFormat": _PARQUET,
            "sha256": _sha256(folder / f"{name}.parquet"),
        }
        for name in TABLE_NAMES
    ]
    run = run_report or {}
    terms = " ".join(f"{who}: {terms}." for who, _, terms in SOURCES)
    published = run.get("finished_at") or period[1]
    when = f"; digests {period[0]} to {period[1]}" if period[0] else ""
    return {
        "@context": _CONTEXT,
        "@type": "sc:Dataset",
        "conformsTo": "http://mlcommons.org/croissant/1.0",
        "name": "hot-papers",
        "description": "arXiv papers that Hot Papers digests listed as popular on Twitter, "
        f"enriched with arXiv, Semantic Scholar, OpenAlex, Hugging Face and tweet details{when}.",
        "license": "other: no single license; each part stays under its source's terms "
        "(see usageInfo and README.md)",
        "usageInfo": terms,
        "url": CARD_FILE,
        "version": f"{SCHEMA_VERSION}.0.0",
        **({"datePublished": published} if published else {}),
        "citeAs": "Hot Papers dataset, compiled by the hot-papers crawler.",
        "distribution": files,
        "recordSet": [_record_set(name) for name in TABLE_NAMES],
    }
