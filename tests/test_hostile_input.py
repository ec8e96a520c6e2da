"""A folder of hostile files beside good ones: the good posts come out complete, the rest as far
as they can be read, every problem as one line naming the file, and no traceback."""

from __future__ import annotations

import codecs
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import SAMPLES, Crawl, run_crawl
from tests.helpers import nonnull
from tests.standin import Author, Catalogue, Paper, StandIn
from tests.test_digest import FRONT, entry

pytestmark = pytest.mark.e2e  # real crawls in a subprocess

EXTRA_PAPERS = ("hep-th/9901001", "2106.99999", "2107.00001", "2107.00002", "2107.00003")


def _paper(arxiv_id: str) -> Paper:
    return Paper(
        arxiv_id=arxiv_id,
        latest_version=3,
        title=f"Paper {arxiv_id}",
        summary="An abstract.",
        authors=(Author("Ada Lovelace", ("Analytical Engine Society",)),),
        published=datetime(2021, 7, 1, tzinfo=UTC),
        primary_category="cs.LG",
        categories=("cs.LG",),
    )


def _write_hostile(folder: Path) -> dict[str, str]:
    """Files and the one-line message each must produce."""
    no_links = entry(2, "2107.00002").replace(
        "- links: [abs](https://arxiv.org/abs/2107.00002) | [pdf](https://arxiv.org/pdf/2107.00002)\n",
        "",
    )
    no_status = entry(2, "2107.00003").replace("/ada/status/1410000000000000002", "/ada")
    full = FRONT + entry(1, "2107.00001") + entry(2, "2107.00002") + entry(3, "2107.00003")
    cut_at = full.index("<blockquote", full.index("# 3."))
    files = {
        "empty.md": (b"", "unreadable digest: file is empty"),
        "garbage.md": (bytes(range(256)) * 40, "unreadable digest: binary data"),
        "no-front-matter.md": (entry(1, "2107.00001").encode(), ":1: no YAML front matter"),
        "bad-yaml.md": (
            ("---\ntitle: [unclosed\n---\n\n" + entry(1, "2107.00001")).encode(),
            "invalid YAML front matter",
        ),
        "cut.md": (
            (full[:cut_at] + '<blockquote class="twitter-tweet"><p>Tru').encode(),
            "tweet blockquote is cut off",
        ),
        "utf16.md": (
            codecs.BOM_UTF16_LE
            + (FRONT.replace("2021-07-01", "2021-07-16") + entry(1, "hep-th/9901001")).encode(
                "utf-16-le"
            ),
            "",
        ),
        "legacy.md": (
            (FRONT.replace("2021-07-01", "2021-07-17") + entry(1, "2106.99999v2", title="Léon’s"))
            .encode("cp1252"),
            "not UTF-8; decoded as cp1252",
        ),
        "links.md": (
            (FRONT + entry(1, "abc") + no_links + entry(3, "2107.00001", host="x.com")).encode(),
            ":9: entry 1: malformed arXiv ID 'abc'",
        ),
        "status.md": (
            (FRONT + entry(1, "2107.00001") + no_status + entry(3, "2107.00001")).encode(),
            "tweet blockquote without a status link",
        ),
    }  # fmt: skip
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    return {name: message for name, (_, message) in files.items()}


@pytest.fixture(scope="module")
def hostile_crawl(
    tmp_path_factory: pytest.TempPathFactory, catalogue: Catalogue
) -> tuple[Crawl, dict[str, str], Path]:
    folder = tmp_path_factory.mktemp("hostile")
    for sample in SAMPLES[:2]:
        shutil.copy(sample, folder / sample.name)
    messages = _write_hostile(folder)
    cat = catalogue.copy()
    for arxiv_id in EXTRA_PAPERS:
        cat.add_paper(_paper(arxiv_id))
    with StandIn(cat) as server:
        crawl = run_crawl(
            tmp_path_factory.mktemp("out") / "out.jsonl",
            server,
            "-a",
            f"source={folder},{folder}/missing.md",
            settings={"ARXIV_DELAY": 0.1, "RETRY_BACKOFF_BASE": 0.05},
        )
    return crawl, messages, folder


def _records(crawl: Crawl, name: str) -> list[dict]:
    """A post's records by rank (records stream out in completion order)."""
    found = [r for r in crawl.records if r["post"]["source"] == name]  # relative to the folder
    return sorted(found, key=lambda r: r["rank"])


def test_good_posts_are_complete(hostile_crawl: tuple[Crawl, dict[str, str], Path]) -> None:
    crawl, _, _ = hostile_crawl
    for sample, count in ((SAMPLES[0], 30), (SAMPLES[1], 16)):
        records = _records(crawl, sample.name)
        assert [r["rank"] for r in records] == list(range(1, count + 1))
        assert all(r["arxiv"]["status"] in ("ok", "not_found") for r in records)


def test_every_problem_is_one_line_naming_the_file(
    hostile_crawl: tuple[Crawl, dict[str, str], Path],
) -> None:
    crawl, messages, _folder = hostile_crawl
    assert "Traceback" not in crawl.log
    lines = crawl.log.splitlines()
    for name, message in messages.items():
        if message:
            assert any(f"{name}" in line and message in line for line in lines), name
    assert any("missing.md: no such file or folder" in line for line in lines)
    assert crawl.returncode == 2  # some sources could not be read at all


def test_whatever_can_be_read_is_read(hostile_crawl: tuple[Crawl, dict[str, str], Path]) -> None:
    crawl, _, _ = hostile_crawl
    assert _records(crawl, "empty.md") == [] and _records(crawl, "garbage.md") == []
    (nofm,) = _records(crawl, "no-front-matter.md")
    assert nofm["post"]["slug"] == "no-front-matter" and nofm["arxiv"]["status"] == "ok"
    assert len(_records(crawl, "bad-yaml.md")) == 1
    cut = _records(crawl, "cut.md")
    assert [r["rank"] for r in cut] == [1, 2, 3] and [len(r["tweets"]) for r in cut] == [1, 1, 0]
    (u16,) = _records(crawl, "utf16.md")
    assert (
        u16["arxiv_id"] == "hep-th/9901001" and u16["arxiv"]["versioned_id"] == "hep-th/9901001v3"
    )
    (legacy,) = _records(crawl, "legacy.md")
    assert legacy["digest"]["title"] == "Léon’s"
    assert (legacy["arxiv_id"], legacy["digest"]["linked_version"]) == ("2106.99999", 2)
    assert legacy["arxiv"]["versioned_id"] == "2106.99999v2" and legacy["arxiv"]["version"] == 2
    malformed, no_links, xcom = _records(crawl, "links.md")
    assert nonnull(malformed["arxiv"]) == {"status": "error", "error": "malformed arXiv ID 'abc'"}
    assert nonnull(no_links["arxiv"]) == {"status": "error", "error": "entry has no links line"}
    assert xcom["tweets"][0]["url"].startswith("https://x.com/")
    assert xcom["tweets"][0]["embed"]["status"] in ("ok", "deleted", "protected")
    dup = _records(crawl, "status.md")
    assert [r["rank"] for r in dup] == [1, 2, 3] and dup[1]["tweets"] == []
    assert dup[0]["arxiv"] == dup[2]["arxiv"] and dup[0]["arxiv"]["status"] == "ok"
