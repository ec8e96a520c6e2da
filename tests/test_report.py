"""NAME.report.html: self-contained, readable, and rendered for real in headless Chromium."""

from __future__ import annotations

import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from matplotlib.image import imread

from crawler.export.dataset import write_dataset
from crawler.export.ownership import REPORT_MARK
from crawler.export.report import render_report, write_report
from tests.records_v2 import LORA, small_corpus, write_snapshot

CHROMIUM = Path("/usr/bin/chromium")
HEADINGS = [
    "Entries per day",
    "Categories over time",
    "Enrichment status",
    "Attention and citations",
    "Top papers",
    "This run",
]
LORA_TITLE = "LoRA: Low-Rank Adaptation of Large Language Models"
RUN = {
    "run_id": "20240101T120000.000000Z",
    "started_at": "2024-01-01T12:00:00+00:00",
    "finished_at": "2024-01-01T12:20:00+00:00",
    "exit_status": 0,
    "records": 6,
    "changed_records": 1,
    "stats": {
        "service/arxiv/requests": 12,
        "retry/arxiv/count": 3,
        "retry/arxiv/max_reached": 1,
        "service/oembed/requests": 40,
        "service/syndication/requests": 30,
        "service/syndication/throttled": 4,
        "records/arxiv/ok": 4,
        "records/arxiv/error": 2,
    },
}
CHANGES = [
    {
        "run_id": RUN["run_id"], "slug": "hot-papers-2021-06-20", "date": "2021-06-21T07:40:00Z",
        "source": "digests/hot-papers-2021-06-20.md", "rank": 2, "arxiv_id": LORA,
        "changes": [{"what": "arxiv", "key": LORA,
                     "fields": {"version": {"before": 1, "after": 2}}}],
    }
]  # fmt: skip


class _Page(HTMLParser):
    """What a reader's browser would fetch, and what the page shows."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.tags: list[str] = []
        self.ids: set[str] = set()
        self.text: list[str] = []
        self.headings: list[str] = []
        self._heading: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "srcset", "poster", "data", "action", "xlink:href"):
                self.refs.append((tag, name, value or ""))
            if name == "id" and value:
                self.ids.add(value)
        if tag in ("h1", "h2"):
            self._heading = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h1", "h2") and self._heading is not None:
            self.headings.append("".join(self._heading).strip())
            self._heading = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._heading is not None:
            self._heading.append(data)


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    snapshot = write_snapshot(folder / "digests.jsonl", small_corpus())
    write_dataset(snapshot, folder / "digests.dataset")
    return folder / "digests.dataset"


@pytest.fixture(scope="module")
def empty_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("empty")
    write_dataset(write_snapshot(folder / "e.jsonl", []), folder / "e.dataset")
    return folder / "e.dataset"


def test_nothing_on_the_page_points_outside_it(dataset: Path) -> None:
    html = render_report(dataset, run_report=RUN, changes=CHANGES)
    page = _parse(html)
    assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
    assert page.refs, "the page has images and in-page links"
    for tag, attribute, value in page.refs:
        if value.startswith("#"):
            assert value[1:] in page.ids, f"<{tag} {attribute}> to a missing anchor {value}"
        else:
            assert value.startswith("data:image/png;base64,"), f"<{tag} {attribute}={value[:40]}>"
    assert not re.search(r"url\(\s*['\"]?(?!data:)", html), "a stylesheet fetches something"
    assert not re.search(r"@import|@font-face", html)


def test_the_page_has_its_plots_table_and_run(dataset: Path) -> None:
    page = _parse(render_report(dataset, run_report=RUN, changes=CHANGES))
    text = " ".join(page.text)
    assert page.headings == ["Hot Papers dataset report", *HEADINGS]
    assert "19 June 2021 – 23 June 2021" in text
    assert page.tags.count("img") == 5  # four dataset plots and the services plot
    assert "No data" not in text
    assert LORA_TITLE in text and f"arXiv:{LORA}" in text and "github.com/microsoft/LoRA" in text
    assert "version: 1 → 2" in text and "All 1 changed records." in text
    assert "Exit status" in text and "gave up" in text


def test_an_empty_dataset_still_renders_with_no_data_notes(empty_dataset: Path) -> None:
    page = _parse(render_report(empty_dataset, run_report=None, changes=None))
    text = " ".join(page.text)
    assert page.headings == ["Hot Papers dataset report", *HEADINGS]
    assert page.tags.count("img") == 0
    assert text.count("No data") == 6  # four plots, the top papers, the run
    assert "no dated digest" in text and "No change feed was given." in text
    quiet = dict(RUN, stats={})  # a run report with no service counts: no plot, a note
    text = " ".join(_parse(render_report(empty_dataset, run_report=quiet, changes=[])).text)
    assert "the run report has no per-service counts" in text
    assert "Nothing changed since the previous run." in text


def test_write_report_replaces_the_file_whole(dataset: Path, tmp_path: Path) -> None:
    target = tmp_path / "digests.report.html"
    target.write_text(f"<!DOCTYPE html>\n{REPORT_MARK}\nold report")
    write_report(target, dataset, run_report=RUN, changes=CHANGES)
    assert target.read_text().startswith("<!DOCTYPE html>")
    with pytest.raises(Exception, match="missing"):
        write_report(target, tmp_path / "missing.dataset", run_report=None, changes=None)
    assert target.read_text().startswith("<!DOCTYPE html>")  # the previous report stays
    assert [p.name for p in tmp_path.iterdir()] == ["digests.report.html"]


# -- in a real browser -----------------------------------------------------------------------

# Injected into a copy only: the report itself has no script. Records what the browser laid out.
PROBE = """<script>
addEventListener("load", () => {
  for (const img of document.querySelectorAll("img")) {
    const box = img.getBoundingClientRect();
    img.dataset.natural = img.naturalWidth + "x" + img.naturalHeight;
    img.dataset.shown = Math.round(box.width) + "x" + Math.round(box.height);
  }
  document.body.dataset.height = document.documentElement.scrollHeight;
});
</script>"""


def _chromium(tmp_path: Path, page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
        "--virtual-time-budget=5000", *args, page.as_uri(),
    ]  # fmt: skip
    # timeout: a guard against a hung browser, not a performance bound
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=True)


def shown_in_chromium(report: Path, tmp_path: Path) -> str:
    """The report's DOM as Chromium laid it out, after checking what a person sees first: every
    heading, and the five plots drawn larger than thumbnails."""
    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    dom = _chromium(tmp_path, probe, "--window-size=1100,900", "--dump-dom").stdout
    page = _parse(dom)
    assert page.headings == ["Hot Papers dataset report", *HEADINGS]
    sizes = re.findall(r'data-natural="(\d+)x(\d+)" data-shown="(\d+)x(\d+)"', dom)
    assert len(sizes) == 5 and all(int(n) > 100 for size in sizes for n in size), sizes
    return dom


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_chromium_shows_headings_plots_and_the_top_paper(dataset: Path, tmp_path: Path) -> None:
    report = tmp_path / "digests.report.html"
    write_report(report, dataset, run_report=RUN, changes=CHANGES)
    dom = shown_in_chromium(report, tmp_path)
    first_row = re.search(r'id="top-papers".*?<tbody><tr>(.*?)</tr>', dom, re.S)
    assert first_row and LORA_TITLE in first_row.group(1)
    height = int(re.search(r'data-height="(\d+)"', dom).group(1))  # type: ignore[union-attr]
    shot = tmp_path / "report.png"
    _chromium(tmp_path, report, f"--window-size=1100,{height}", f"--screenshot={shot}")
    pixels: Any = imread(shot)
    assert pixels.shape[:2] == (height, 1100)
    assert pixels[..., :3].std() > 0.05, "the screenshot is blank"
