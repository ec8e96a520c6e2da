"""Record schema 3 as an analyst meets it, end to end: dense records that default readers see
whole, one tweet availability, and a state written by schema 2 that keeps working."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pytest

from crawler.record import schema
from crawler.state.store import utc_ms_text
from tests.conftest import SAMPLES, Crawl, run_crawl, unobserved
from tests.standin import Catalogue, StandIn
from tests.standin.details import AGE_RESTRICTED, PROTECTED, VIOLATED
from tests.test_state import schema2_state

pytestmark = pytest.mark.e2e

FAST: dict[str, object] = {"ARXIV_DELAY": 0.2, "S2_DELAY": 0.2, "RETRY_BACKOFF_BASE": 0.05}


@pytest.fixture(scope="module")
def sample_crawl(tmp_path_factory: pytest.TempPathFactory, catalogue: Catalogue) -> Crawl:
    out = tmp_path_factory.mktemp("schema3") / "out.jsonl"
    with StandIn(catalogue) as server:
        crawl = run_crawl(out, server, settings=FAST)
    assert crawl.returncode == 0, crawl.log[-3000:]
    return crawl


def _schema_fields(node: dict[str, Any], defs: dict[str, Any], path: str = "") -> set[str]:
    """Every field path of the schema; ``[]`` steps into the items of an array of objects."""
    if "$ref" in node:
        return _schema_fields(defs[node["$ref"].rsplit("/", 1)[1]], defs, path)
    objects = [b for b in node.get("oneOf", ()) if "properties" in b or "$ref" in b]
    if objects:
        return set().union(*(_schema_fields(b, defs, path) for b in objects))
    if isinstance(node.get("items"), dict):
        return _schema_fields(node["items"], defs, f"{path}[]")
    found: set[str] = set()
    for name, sub in node.get("properties", {}).items():
        child = f"{path}.{name}".lstrip(".")
        found |= {child} | _schema_fields(sub, defs, child)
    return found


def _polars_fields(dtype: Any, path: str = "") -> set[str]:
    if isinstance(dtype, pl.List):
        return _polars_fields(dtype.inner, f"{path}[]")
    if isinstance(dtype, pl.Struct):
        found: set[str] = set()
        for field in dtype.fields:
            child = f"{path}.{field.name}".lstrip(".")
            found |= {child} | _polars_fields(field.dtype, child)
        return found
    return set()


def test_polars_with_default_options_sees_every_field(sample_crawl: Crawl, tmp_path: Path) -> None:
    snapshot = tmp_path / "out.jsonl"
    snapshot.write_bytes(sample_crawl.raw)
    frame = pl.read_ndjson(snapshot)
    seen = set().union(*(_polars_fields(t, n) | {n} for n, t in frame.schema.items()))
    expected = _schema_fields(schema(), schema()["definitions"])
    assert {"arxiv.error", "semantic_scholar.fetched_at", "tweets[].details.history[].like_count",
            "tweets[].availability", "post.digest_date"} <= expected  # fmt: skip
    assert expected - seen == set()
    assert frame.height == len(sample_crawl.records) == 103
    errors = frame.select(pl.col("arxiv").struct.field("error")).to_series().to_list()
    assert errors == [r["arxiv"]["error"] for r in sample_crawl.records]


def test_pandas_keeps_arxiv_ids_as_strings_with_the_documented_dtype(
    sample_crawl: Crawl, tmp_path: Path
) -> None:
    snapshot = tmp_path / "out.jsonl"
    snapshot.write_bytes(sample_crawl.raw)
    frame = pd.read_json(snapshot, lines=True, dtype={"arxiv_id": str, "entry_id": str})
    ids = [r["arxiv_id"] for r in sample_crawl.records]
    assert any(i.endswith("0") for i in ids)  # the IDs a float would have lost a digit of
    assert frame["arxiv_id"].tolist() == ids
    assert frame["entry_id"].tolist() == [r["entry_id"] for r in sample_crawl.records]
    assert frame["entry_id"].is_unique


def test_one_availability_per_tweet_as_served(sample_crawl: Crawl, catalogue: Catalogue) -> None:
    meaning = {PROTECTED: "protected", VIOLATED: "removed", AGE_RESTRICTED: "available"}
    seen = set()
    for tweet in (t for r in sample_crawl.records for t in r["tweets"]):
        served, details = catalogue.tweets[tweet["id"]], catalogue.details[tweet["id"]]
        expected: tuple[str, str | None]
        if details.outcome == "tombstone":
            text = details.tombstone_text or ""
            expected = (meaning[text], text)
        elif served.status == "protected":
            expected = ("protected", "oEmbed answered HTTP 403")
        elif served.status == "deleted" and details.outcome != "tweet":
            expected = ("deleted", "oEmbed answered HTTP 404")
        else:
            expected = ("available", None)
        assert (tweet["availability"], tweet["availability_reason"]) == expected, tweet["id"]
        seen.add(expected[0])
    assert seen == {"available", "deleted", "protected", "removed"}


def test_a_schema_2_state_is_upgraded_and_reused(
    tmp_path: Path, catalogue: Catalogue, sample_crawl: Crawl
) -> None:
    """The fixture is a state main's crawler (schema 2) wrote for the sample 001: its values
    are reused as they are (original fetch times), and refetching them reports no change."""
    stored_at = round(time.time() - 3600, 3)
    state = schema2_state(tmp_path / "state.sqlite3", stored_at)
    out = tmp_path / "out.jsonl"
    one = SAMPLES[1]
    args = ("-a", f"source={one}")
    with StandIn(catalogue) as server:
        reused = run_crawl(out, server, *args, settings=FAST | {"STATE_DB": state})
        asked = list(server.log)
        server.reset_log()
        refreshed = run_crawl(out, server, *args, "-a", "refresh=all",
                              settings=FAST | {"STATE_DB": state})  # fmt: skip
        refetched = list(server.log)
    assert reused.returncode == 0, reused.log[-3000:]
    upgrades = [line for line in reused.log.splitlines() if "upgraded from format 2 to 3" in line]
    assert len(upgrades) == 1 and str(state) in upgrades[0]
    # Every stored value was fresh: nothing fetched again for the upgrade. Only the services a
    # schema-2 state never held (Hugging Face, OpenAlex) are asked.
    assert asked and {r.service for r in asked} == {"hf_papers", "openalex"}
    blocks = [b for r in reused.records for b in _blocks(r)]
    assert blocks and {b["fetched_at"] for b in blocks} == {utc_ms_text(stored_at)}
    # the same records as a crawl from scratch, but for when things were fetched
    fresh = [r for r in sample_crawl.records if r["post"]["source"] == one.name]
    # (Schema 2 kept no Semantic Scholar history: the upgraded value starts without one.)
    assert all(not r["semantic_scholar"]["history"] for r in reused.records)  # [] or null
    assert _without_s2_history(unobserved(reused.records)) == _without_s2_history(unobserved(fresh))
    assert refreshed.returncode == 0 and len(refetched) > 0
    assert "upgraded from format" not in refreshed.log
    report = json.loads((tmp_path / "out.run.json").read_text())
    assert report["changes_file"] is None  # renamed fields are not changes
    assert not (tmp_path / "out.changes").exists()
    after = [b for r in refreshed.records for b in _blocks(r)]
    assert all(b["fetched_at"] > utc_ms_text(stored_at) for b in after)


def _without_s2_history(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for record in records:
        record["semantic_scholar"].pop("history")
    return records


def _blocks(record: dict[str, Any]) -> list[dict[str, Any]]:
    tweets = [t[k] for t in record["tweets"] for k in ("embed", "details")]
    return [record["arxiv"], record["semantic_scholar"], *tweets]
