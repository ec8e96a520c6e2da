"""NAME.report.html: self-contained, readable, and rendered for real in headless Chromium.

Plots are inline SVG whose text stays text, so their tick labels are read off the page itself
(and off what Chromium laid out), not guessed from pixels."""

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
from tests.records_v2 import LORA, T1, small_corpus, write_snapshot

CHROMIUM = Path("/usr/bin/chromium")
HEADINGS = [
    "Entries per day",
    "Categories over time",
    "Enrichment status",
    "Attention and citations",
    "What mattered since",
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
        self.svg_text: list[list[str]] = []  # per plot, the text drawn in it
        self._in_svg_text = False
        self.links: list[tuple[str, str]] = []  # (href, text) of outbound <a href>
        self._link: tuple[str, list[str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "srcset", "poster", "data", "action", "xlink:href"):
                self.refs.append((tag, name, value or ""))
            if name == "id" and value:
                self.ids.add(value)
        if tag in ("h1", "h2"):
            self._heading = []
        if tag == "svg" and ("class", "plot") in attrs:
            self.svg_text.append([])
        self._in_svg_text = tag == "text" or (self._in_svg_text and tag == "tspan")
        href = dict(attrs).get("href")
        if tag == "a" and href and not href.startswith("#"):
            self._link = (href, [])

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h1", "h2") and self._heading is not None:
            self.headings.append("".join(self._heading).strip())
            self._heading = None
        if tag == "text":
            self._in_svg_text = False
        if tag == "a" and self._link is not None:
            self.links.append((self._link[0], "".join(self._link[1])))
            self._link = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._heading is not None:
            self._heading.append(data)
        if self._in_svg_text and self.svg_text and data.strip():
            self.svg_text[-1].append(data.strip())
        if self._link is not None:
            self._link[1].append(data)


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


NUMBER = re.compile(r"^-?\d{1,3}(,\d{3})*(\.\d+)?%?$")


PLOTS = 8  # four dataset plots, three "what mattered since" plots, the services plot
YEAR = re.compile(r"^(19|20)\d\d$")


def assert_numeric_ticks(page: _Page) -> None:
    """Every plot's axes are labelled with plain numbers (or dates), never raw mathtext: the
    log-scale plots (attention, likes against upvotes and citations, this run) have
    1,000-style labels of their own, citations per year plain years."""
    assert len(page.svg_text) == PLOTS, [t[:5] for t in page.svg_text]
    for texts in page.svg_text:
        assert sum(bool(NUMBER.match(x)) for x in texts) >= 3, texts
        assert not any("$" in x or "mathdefault" in x for x in texts), texts
    attention, by_year, against, code, health = (page.svg_text[i] for i in (3, 4, 5, 6, 7))
    assert {"1", "10", "100"} <= set(attention) and {"1", "10"} <= set(health)
    assert {"0", "1", "10"} <= set(against)
    assert any(re.fullmatch(r"[\d,]+ \(\d+%\)", x) for x in code), code  # share labelled
    assert sum(bool(YEAR.match(x)) for x in by_year) >= 3, by_year
    assert not any("," in x and YEAR.match(x.replace(",", "")) for x in by_year), by_year


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


def test_nothing_on_the_page_loads_from_outside_it(dataset: Path) -> None:
    """Only a click leaves the page: <a href> may point out, nothing else may."""
    _assert_self_contained(render_report(dataset, run_report=RUN, changes=CHANGES))


def test_dense_scatters_are_one_embedded_image_with_text_axes(
    dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past DENSE_DOTS a scatter's dots are one PNG inside its SVG (175,000 vector dots made
    megabytes a plot); the page still loads nothing and its axes still read as text."""
    import crawler.export.report as report_module

    vector = render_report(dataset, run_report=RUN, changes=CHANGES)
    monkeypatch.setattr(report_module, "DENSE_DOTS", 0)
    html = render_report(dataset, run_report=RUN, changes=CHANGES)
    assert "data:image/png;base64," not in vector
    assert html.count("data:image/png;base64,") == 3  # the three scatters, nothing else
    _assert_self_contained(html)
    text = " ".join(_parse(html).text)
    assert "Hugging Face upvotes (symlog)" in text and "citations, OpenAlex (symlog)" in text


def _assert_self_contained(html: str) -> None:
    page = _parse(html)
    assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
    assert "img" not in page.tags and page.tags.count("svg") == PLOTS
    assert page.refs, "the page has in-page links"
    for tag, attribute, value in page.refs:
        if value.startswith("#"):
            assert value[1:] in page.ids, f"<{tag} {attribute}> to a missing anchor {value}"
        elif tag == "image" and value.startswith("data:image/png;base64,"):
            continue  # a rasterized scatter, inside its SVG
        else:
            assert tag == "a" and attribute == "href", f"<{tag} {attribute}={value[:40]}>"
            assert value.startswith("https://"), value
    assert not re.search(r"url\(\s*['\"]?(?!data:|#)", html), "a style fetches something"
    assert not re.search(r"@import|@font-face", html)


def test_the_page_has_its_plots_table_and_run(dataset: Path) -> None:
    page = _parse(render_report(dataset, run_report=RUN, changes=CHANGES))
    text = " ".join(page.text)
    assert page.headings == ["Hot Papers dataset report", *HEADINGS]
    assert "19 June 2021 – 23 June 2021" in text
    assert page.tags.count("svg") == PLOTS
    assert "No data" not in text
    assert LORA_TITLE in text and f"arXiv:{LORA}" in text and "github.com/microsoft/LoRA" in text
    assert "version: 1 → 2" in text and "All 1 changed records." in text
    assert "Exit status" in text and "gave up" in text


def test_an_empty_dataset_still_renders_with_no_data_notes(empty_dataset: Path) -> None:
    page = _parse(render_report(empty_dataset, run_report=None, changes=None))
    text = " ".join(page.text)
    assert page.headings == ["Hot Papers dataset report", *HEADINGS]
    assert page.tags.count("svg") == 0
    assert text.count("No data") == 9  # seven plots, the top papers, the run
    assert "No dated digest" in text and "No change feed was given." in text
    quiet = dict(RUN, stats={})  # a run report with no service counts: no plot, a note
    text = " ".join(_parse(render_report(empty_dataset, run_report=quiet, changes=[])).text)
    assert "the run report has no per-service counts" in text
    assert "Nothing changed since the previous run." in text


def test_axes_are_labelled_with_plain_numbers(dataset: Path) -> None:
    assert_numeric_ticks(_parse(render_report(dataset, run_report=RUN, changes=CHANGES)))


def test_subtitle_shows_the_period_and_run_not_the_folder(dataset: Path) -> None:
    page = _parse(render_report(dataset, run_report=RUN, changes=CHANGES))
    text = " ".join(page.text)
    assert (
        f"Digests published 19 June 2021 – 23 June 2021 · run {RUN['run_id']}, "
        f"finished {RUN['finished_at']}"
    ) in text
    assert dataset.name not in text


def test_top_papers_rank_by_tweet_likes_and_link_the_paper_and_tweet(dataset: Path) -> None:
    """LoRA's tweets have 70 likes; the digest printed 300 favorites for it at most. The table
    says which is which, and links the arXiv page and the most-liked tweet."""
    html = render_report(dataset, run_report=RUN, changes=CHANGES)
    first = re.search(r'id="top-papers".*?<tbody><tr>(.*?)</tr>', html, re.S)
    assert first
    cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", first.group(1))]
    assert cells[5:7] == ["70", "300"]  # tweet likes (sum), digest favorites (max)
    assert "Tweet likes (sum)" in html and "Digest favorites (max)" in html
    links = dict(_parse(html).links)
    assert links[f"https://arxiv.org/abs/{LORA}"] == f"arXiv:{LORA}"
    assert links[f"https://twitter.com/edwardjhu/status/{T1}"] == "tweet (70 likes)"


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
  for (const svg of document.querySelectorAll("svg.plot")) {
    const box = svg.getBoundingClientRect();
    const view = svg.viewBox.baseVal;
    svg.dataset.natural = Math.round(view.width) + "x" + Math.round(view.height);
    svg.dataset.shown = Math.round(box.width) + "x" + Math.round(box.height);
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
    heading, every plot drawn larger than a thumbnail, their axes labelled with numbers, and
    outbound links to arXiv and the tweets."""
    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    dom = _chromium(tmp_path, probe, "--window-size=1100,900", "--dump-dom").stdout
    page = _parse(dom)
    assert page.headings == ["Hot Papers dataset report", *HEADINGS]
    sizes = re.findall(r'data-natural="(\d+)x(\d+)" data-shown="(\d+)x(\d+)"', dom)
    assert len(sizes) == PLOTS and all(int(n) > 100 for size in sizes for n in size), sizes
    assert_numeric_ticks(page)
    hrefs = [href for href, _ in page.links]
    assert any(h.startswith("https://arxiv.org/abs/") for h in hrefs), hrefs
    assert any(re.match(r"https://twitter\.com/[^/]+/status/\d+$", h) for h in hrefs), hrefs
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


def test_what_mattered_since_draws_citations_per_year_upvotes_and_code(dataset: Path) -> None:
    """LoRA's latest OpenAlex block lists 2024, 2023 and 2021 (30, 40, 5): the line runs
    2021-2024 with 2022 at 0 and its last count labelled; one of the two papers has code, and
    its repository's 650 stars fall in the 100–999 bin."""
    html = render_report(dataset, run_report=RUN, changes=CHANGES)
    page = _parse(html)
    section = re.search(r'id="mattered".*?</section>', html, re.S)
    assert section and '<a href="#mattered">What mattered since</a>' in html
    by_year, against, code = page.svg_text[4], page.svg_text[5], page.svg_text[6]
    assert {"2021", "2022", "2023", "2024", "30"} <= set(by_year)
    assert any(f"({LORA}, 70 likes)" in x for x in by_year), by_year
    assert against.count("1 papers") == 2  # LoRA: 70 likes, 12 upvotes, 75 citations
    assert {"1 (50%)", "1,000–9,999", "100–999"} <= set(code), code
    text = " ".join(_parse(section.group(0)).text)
    assert "1 of 2 papers have a code link" in text
    assert "Left: 1 papers' summed tweet likes" in text
    assert "The 1 papers (at most 8) with the most tweet likes" in text


def test_duckdb_spills_into_a_private_folder_that_goes_afterwards(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB's default spill folder is ./.tmp of whoever runs the crawl; the report's is its
    own, removed after a page and after a failure."""
    import crawler.export.report_data as report_module

    made: list[Path] = []
    settings: list[str] = []
    real_mkdtemp, real_connect = report_module.tempfile.mkdtemp, report_module._connect

    def mkdtemp(**kwargs: Any) -> str:
        made.append(Path(real_mkdtemp(dir=tmp_path, **kwargs)))
        return str(made[-1])

    def connect(where: Path, spill: Path) -> Any:
        con = real_connect(where, spill)
        ((setting,),) = con.execute("SELECT current_setting('temp_directory')").fetchall()
        settings.append(setting)
        return con

    monkeypatch.setattr(report_module.tempfile, "mkdtemp", mkdtemp)
    monkeypatch.setattr(report_module, "_connect", connect)
    assert REPORT_MARK in render_report(dataset, run_report=RUN, changes=CHANGES)
    with pytest.raises(Exception, match=r"No files found|does not exist"):
        render_report(tmp_path / "no.dataset", run_report=RUN, changes=CHANGES)
    assert len(made) == 2 and settings == [str(made[0])]
    assert not any(p.exists() for p in made)
