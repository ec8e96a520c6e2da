"""Hugging Face paper pages end to end: real crawls against the stand-in's /api/papers with a
small fixed window, compared with what it served (issue 22)."""

from __future__ import annotations

import collections
import itertools
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SAMPLES, run_crawl
from tests.standin import Catalogue, StandIn
from tests.standin.requestlog import max_concurrency, min_start_gap

pytestmark = pytest.mark.e2e

FAST: dict[str, object] = {"ARXIV_DELAY": 0.2, "RETRY_BACKOFF_BASE": 0.05, "S2_DELAY": 0.2}
WINDOW = (20, 2.0)  # 20 requests per 2 s: the samples' ~100 papers need five windows
BLOCK_ONLY = ("error", "fetched_at", "history")  # the crawler's own, not served fields


def _served(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record["hf"].items() if k not in BLOCK_ONLY}


def _expected(catalogue: Catalogue, arxiv_id: str) -> dict[str, Any]:
    page = catalogue.hf_pages.get(arxiv_id)
    if page is not None:
        return page.expected()
    empty = dict.fromkeys(next(iter(catalogue.hf_pages.values())).expected())
    return empty | {"status": "not_indexed"}


def _server(catalogue: Catalogue) -> StandIn:
    return StandIn(catalogue, min_interval={"semantic_scholar": 0.2}, windows={"hf_papers": WINDOW})


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory, catalogue: Catalogue) -> Any:
    """A first crawl under a small window, then a refresh of HF only a "day" later."""
    cat = catalogue.copy()
    out = tmp_path_factory.mktemp("hf") / "out.jsonl"
    with _server(cat) as server:
        first = run_crawl(out, server, settings=FAST)
        first_log = server.log
        served = {aid: _expected(cat, aid) for aid in {r["arxiv_id"] for r in first.records}}
        server.reset_log()
        cat.advance_day(1)
        second = run_crawl(out, server, "-a", "refresh=hf", settings=FAST)
        second_log = server.log
    return cat, first, first_log, served, second, second_log, out


def test_every_paper_has_its_hf_block_as_served(clean: Any) -> None:
    _, crawl, _, served, _, _, _ = clean
    assert crawl.returncode == 0, crawl.log[-3000:]
    assert [_served(r) for r in crawl.records] == [served[r["arxiv_id"]] for r in crawl.records]
    statuses = {r["hf"]["status"] for r in crawl.records}
    assert statuses == {"ok", "not_indexed"}
    for record in crawl.records:
        hf = record["hf"]
        if hf["status"] == "not_indexed":
            assert (
                hf["error"]
                == f"Hugging Face answered HTTP 404: no page for arXiv:{record['arxiv_id']}"
            )
            assert hf["history"] is None
        else:
            assert hf["history"] == [
                {"observed_at": hf["fetched_at"], "upvotes": hf["upvotes"],
                 "github_stars": hf["github_stars"]}
            ]  # fmt: skip


def test_one_request_per_paper_and_never_a_429_under_the_window(clean: Any) -> None:
    _, crawl, log, _, _, _, _ = clean
    hf = [r for r in log if r.service == "hf_papers"]
    papers = {r["arxiv_id"] for r in crawl.records}
    asked = collections.Counter(r.ids[0] for r in hf)
    # Once each, nothing else. A CI run asked for 2106.09647 twice: a probe took a page this
    # run had stored for a control an earlier run stored (test_runner has the deterministic case).
    assert sorted(asked.elements()) == sorted(papers), (
        {aid: n for aid, n in asked.items() if n > 1}, set(asked) ^ papers,
    )  # fmt: skip
    assert len(hf) > 3 * WINDOW[0]  # the crawl really spanned several windows
    assert [r for r in hf if r.status == 429 or r.refused] == []
    assert all(r.authorization is None for r in hf)  # anonymous without HF_TOKEN
    # arXiv's rule holds with HF on the same host and port: one at a time, ARXIV_DELAY apart.
    arxiv = sorted((r for r in log if r.service == "arxiv"), key=lambda r: r.start)
    assert min_start_gap(arxiv) >= 0.2 and max_concurrency(arxiv) == 1  # FAST ARXIV_DELAY
    summary = next(line for line in crawl.log.splitlines() if line.startswith("  Hugging Face:"))
    assert f"; {len(hf)} requests (0 throttled), 0 retries" in summary, summary


def test_code_urls_merge_hf_github_repo_with_its_source(clean: Any) -> None:
    _, crawl, _, _, _, _, _ = clean
    with_repo = [r for r in crawl.records if r["hf"]["github_repo"]]
    assert with_repo
    for record in with_repo:
        repo = record["hf"]["github_repo"]
        links = {link["url"]: link["sources"] for link in record["code_urls"]}
        assert links[repo][-1] == "hf", record["code_urls"]
    for record in crawl.records:
        for link in record["code_urls"]:
            assert link["sources"] and set(link["sources"]) <= {
                "arxiv_abstract", "arxiv_comment", "digest_abstract", "tweet", "hf",
            }  # fmt: skip


def test_refresh_hf_asks_only_hf_and_adds_an_observation(clean: Any) -> None:
    cat, first, _, _, second, log, _ = clean
    assert second.returncode == 0, second.log[-3000:]
    assert {r.service for r in log} == {"hf_papers"}
    assert [r for r in log if r.status == 429 or r.refused] == []
    for before, after in zip(first.records, second.records, strict=True):
        if after["hf"]["status"] != "ok":
            continue
        page = cat.hf_pages[after["arxiv_id"]]
        assert (
            after["hf"]["upvotes"] == page.upvotes == before["hf"]["upvotes"] + page.upvotes_per_day
        )
        points = after["hf"]["history"]
        assert [p["upvotes"] for p in points] == [before["hf"]["upvotes"], page.upvotes]
        assert points[0]["observed_at"] < points[1]["observed_at"] == after["hf"]["fetched_at"]


def test_upvotes_and_stars_are_not_changes(clean: Any) -> None:
    *_, out = clean
    report = json.loads(out.with_name("out.run.json").read_text())
    assert report["exit_status"] == 0
    assert (report["changed_records"], report["changes_file"]) == (0, None)  # only counts moved


def test_a_probe_never_asks_again_for_a_paper_of_the_crawl(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    """A refresh whose first answer is a 404 for a page stored as ok: before believing it the
    crawler probes with a page an earlier run stored. It took the first one stored, 2012.14668,
    a paper of this very digest, and asked for it twice. Every Hugging Face request is held
    until all the digest's papers are on their way; then only the 404 comes out, so the probe
    has to choose while all of them are in flight."""
    cat = catalogue.copy()
    digest = SAMPLES[0]  # 30 papers, 2012.14668 (the smallest ID with a page) among them
    out = tmp_path / "out.jsonl"
    with StandIn(cat) as server:
        first = run_crawl(out, server, settings=FAST)
        papers = [r["arxiv_id"] for r in first.records if r["post"]["source"] == digest.name]
        gone = papers[0]
        del cat.hf_pages[gone]  # its page vanished since the first crawl
        server.reset_log()
        server.hold("hf_papers")
        only_gone = server.hold("hf_papers", key=f"hf_papers:{gone}")
        args = ("-a", f"source={digest}", "-a", "refresh=hf")
        with ThreadPoolExecutor(1) as pool:
            second = pool.submit(
                run_crawl, out, server, *args, settings=FAST | {"HF_CONCURRENCY": 40}
            )
            try:
                assert server.wait_for(lambda: server.in_flight("hf_papers") == 30, 120)
                only_gone.set()  # the 404 is the first answer the crawler sees
                probed = server.wait_for(
                    lambda: server.in_flight("hf_papers") == 30
                    and any(r.ids == (gone,) for r in server.log),
                    120,
                )  # fmt: skip
            finally:
                server.release()
            again = second.result()
        asked = collections.Counter(r.ids[0] for r in server.log if r.service == "hf_papers")
    assert first.returncode == 0 and again.returncode == 0, again.log[-3000:]
    assert probed and len(papers) == 30
    assert {aid: asked[aid] for aid in papers} == dict.fromkeys(papers, 1)
    stored = {r["arxiv_id"] for r in first.records if r["hf"]["status"] == "ok"}
    (control,) = set(asked) - set(papers)  # the probe: a page stored before, of no paper here
    assert control in stored and asked[control] == 1
    record = next(r for r in again.records if r["arxiv_id"] == gone)
    assert record["hf"]["status"] == "not_indexed"  # believed: the control still has its page


def test_refresh_details_sends_no_hf_request(tmp_path: Path, catalogue: Catalogue) -> None:
    out = tmp_path / "out.jsonl"
    with _server(catalogue) as server:
        first = run_crawl(out, server, settings=FAST)
        server.reset_log()
        again = run_crawl(out, server, "-a", "refresh=details", settings=FAST)
        log = server.log
    assert first.returncode == 0 and again.returncode == 0, again.log[-3000:]
    assert {r.service for r in log} == {"syndication"}
    assert [r["hf"] for r in again.records] == [r["hf"] for r in first.records]


def test_a_429_waits_out_the_window_and_ends_ok(tmp_path: Path, catalogue: Catalogue) -> None:
    out = tmp_path / "out.jsonl"
    with _server(catalogue) as server:
        target = sorted(catalogue.hf_pages)[0]
        server.faults.script("hf_papers", ["status:429", "status:429", "ok"], match=target)
        crawl = run_crawl(out, server, settings=FAST)
        asked = [r for r in server.log if r.service == "hf_papers" and r.ids == (target,)]
    assert crawl.returncode == 0, crawl.log[-3000:]
    assert [r.status for r in sorted(asked, key=lambda r: r.start)] == [429, 429, 200]
    waits = [b.start - a.end for a, b in itertools.pairwise(asked)]
    resets = [r.told[1] for r in asked[:2] if r.told is not None]  # the t each 429 named
    assert len(resets) == 2, asked
    assert all(w >= t - 0.05 for w, t in zip(waits, resets, strict=True)), (waits, resets)
    record = next(r for r in crawl.records if r["arxiv_id"] == target)
    assert _served(record) == catalogue.hf_pages[target].expected()


def test_unreachable_hf_is_an_error_exit_4_and_keeps_stored_values(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    out = tmp_path / "out.jsonl"
    with _server(catalogue) as server:
        good = run_crawl(out, server, settings=FAST)
        closed = {"HF_PAPERS_URL": "http://127.0.0.1:9/api/papers"}
        again = run_crawl(out, server, "-a", "refresh=hf", settings=FAST | closed)
        fresh = run_crawl(tmp_path / "new" / "out.jsonl", server, settings=FAST | closed)
    assert good.returncode == 0, good.log[-3000:]
    assert again.returncode == 4, again.log[-3000:]
    assert "INCOMPLETE Hugging Face" in again.log
    assert [r["hf"] for r in again.records] == [r["hf"] for r in good.records]
    report = json.loads((tmp_path / "out.run.json").read_text())
    assert report["exit_status"] == 4 and set(report["incomplete_services"]) == {"hf_papers"}
    assert fresh.returncode == 4
    blocks = [r["hf"] for r in fresh.records]
    assert {b["status"] for b in blocks} == {"error"}
    assert all(b["error"].startswith("Hugging Face request failed: ") for b in blocks), blocks[0]
    assert all(b["upvotes"] is None and b["history"] is None for b in blocks)


def test_a_404_for_everything_is_not_believed_over_stored_pages(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    """A mistyped URL answers 404 for every paper: no page stored as ok becomes not_indexed."""
    out = tmp_path / "out.jsonl"
    with _server(catalogue) as server:
        good = run_crawl(out, server, settings=FAST)
        wrong = {"HF_PAPERS_URL": server.base_url + "/api/paperz"}
        again = run_crawl(out, server, "-a", "refresh=hf", settings=FAST | wrong)
    assert again.returncode == 4, again.log[-3000:]
    stored_ok = [r["hf"] for r in good.records if r["hf"]["status"] == "ok"]
    assert stored_ok
    assert [r["hf"] for r in again.records if r["hf"]["status"] == "ok"] == stored_ok
    assert "INCOMPLETE Hugging Face" in again.log


def test_the_token_is_sent_as_bearer_and_never_logged(
    tmp_path: Path, catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(os.environ, "HF_TOKEN", "hf_secret_from_env_42")
    with _server(catalogue) as server:
        by_env = run_crawl(tmp_path / "a" / "out.jsonl", server, settings=FAST)
        env_auth = {r.authorization for r in server.log if r.service == "hf_papers"}
        server.reset_log()
        by_setting = run_crawl(
            tmp_path / "b" / "out.jsonl", server,
            settings=FAST | {"HF_TOKEN": "hf_secret_setting_43"},
        )  # fmt: skip
        setting_auth = {r.authorization for r in server.log if r.service == "hf_papers"}
    assert by_env.returncode == 0 and by_setting.returncode == 0, by_setting.log[-3000:]
    assert env_auth == {"Bearer hf_secret_from_env_42"}
    assert setting_auth == {"Bearer hf_secret_setting_43"}
    assert "hf_secret" not in by_env.log and "hf_secret" not in by_setting.log


def test_hf_papers_false_sends_nothing_and_says_disabled(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    with _server(catalogue) as server:
        crawl = run_crawl(tmp_path / "out.jsonl", server, settings=FAST | {"HF_PAPERS": "False"})
        log = server.log
    assert crawl.returncode == 0, crawl.log[-3000:]
    assert [r for r in log if r.service == "hf_papers"] == []
    blocks = [r["hf"] for r in crawl.records]
    assert all(b == {"status": "disabled", **dict.fromkeys(list(b)[1:])} for b in blocks)


def test_a_new_code_repository_is_a_change_but_moving_counts_and_ai_summaries_are_not(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    cat = catalogue.copy()
    out = tmp_path / "out.jsonl"
    aid = min(a for a, p in cat.hf_pages.items() if p.github_repo is None)
    with _server(cat) as server:
        first = run_crawl(out, server, settings=FAST)
        cat.advance_day(1)  # every page's upvotes (and stars) move
        cat.hf_pages[aid].github_repo = "https://github.com/ada/new-repo"
        for page in cat.hf_pages.values():  # the model rewrites every summary: not a change
            page.ai_summary = f"{page.ai_summary or ''} (regenerated)"
            page.ai_keywords = [*(page.ai_keywords or []), "regenerated"]
        again = run_crawl(out, server, "-a", "refresh=hf", settings=FAST)
    assert first.returncode == again.returncode == 0, again.log[-3000:]
    report = json.loads(out.with_name("out.run.json").read_text())
    lines = [json.loads(line) for line in Path(report["changes_file"]).read_text().splitlines()]
    changes = [c for line in lines for c in line["changes"]]
    assert {c["key"] for c in changes} == {aid} and {c["what"] for c in changes} == {"hf"}
    assert changes[0]["fields"] == {
        "github_repo": {"before": None, "after": "https://github.com/ada/new-repo"}
    }
    record = next(r for r in again.records if r["arxiv_id"] == aid)
    assert {"url": "https://github.com/ada/new-repo", "sources": ["hf"]} in record["code_urls"]
