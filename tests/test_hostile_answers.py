"""Issue 9: hostile answers from the services, end to end (downloader, services, state).

Every crawl is a real process. The stand-in serves the ordinary faults; what it lacks (bombs,
redirects, answers of the wrong shape, headers on a 200) comes from the small server in
``test_invariants.py``, which answers from the same catalogue.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, SAMPLES, assert_same_values
from tests.helpers import nonnull
from tests.standin import Catalogue, Fault, StandIn
from tests.standin.server import Answer
from tests.test_invariants import (
    ALL_RECORDS,
    FAST,
    SAFETY,
    Baseline,
    Upstream,
    assert_complete,
    assert_no_traceback,
    clean,
    copy_catalogue,
    crawl,
    crawl_command,
    error_lines,
    good_run,
    run_report,
    send,
    standin_for_module,
    start_crawl,
    urls_of,
    wait_for,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def shared_standin(catalogue: Catalogue) -> Iterator[StandIn]:
    yield from standin_for_module(catalogue)


@pytest.fixture
def server(shared_standin: StandIn) -> Iterator[StandIn]:
    yield from clean(shared_standin)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory, shared_standin: StandIn) -> Baseline:
    return good_run(tmp_path_factory.mktemp("baseline"), shared_standin)


def _untimed(block: dict[str, Any]) -> dict[str, Any]:
    """A block without ``fetched_at``: these crawls are compared with another run's."""
    return {k: v for k, v in block.items() if k != "fetched_at"}


def _embeds(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {t["id"]: _untimed(t["embed"]) for r in records for t in r["tweets"]}


def _arxiv(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["arxiv_id"]: _untimed(r["arxiv"]) for r in records if r["arxiv_id"]}


def _tweet_id(params: dict[str, list[str]]) -> str:
    return params["url"][0].rsplit("/", 1)[-1]


def _ok_tweets(baseline: Baseline) -> list[str]:
    return sorted(k for k, e in _embeds(baseline.records).items() if e["status"] == "ok")


def _ok_papers(baseline: Baseline) -> list[str]:
    return sorted(k for k, a in _arxiv(baseline.records).items() if a["status"] == "ok")


def assert_no_internal_error(done: Any) -> None:
    assert "internal error" not in done.log
    assert b"internal error" not in done.raw


# === politeness whatever the endpoints share ====================================================
def test_arxiv_stays_polite_on_a_host_shared_with_oembed_through_503_and_resets(
    tmp_path: Path, server: StandIn
) -> None:
    delay = 0.5
    for kind in ("status:503", "reset", "status:503", "reset"):
        server.faults.add(Fault(kind, service="arxiv"))
    server.latency["oembed"] = 0.05  # oEmbed traffic keeps flowing while arXiv is retried
    out = tmp_path / "snapshot.jsonl"
    settings = FAST | {"ARXIV_DELAY": delay, "ARXIV_BATCH_SIZE": 20, "RETRY_BACKOFF_BASE": 0.01}
    done = crawl(out, urls_of(server), settings=settings)
    assert_complete(done, out)
    arxiv, oembed = server.requests_for("arxiv"), server.requests_for("oembed")
    assert [r.fault for r in arxiv[:4]] == ["status:503", "reset", "status:503", "reset"]
    assert len(arxiv) == 6 + 4  # six batches, four of their tries failed, nothing re-sent
    assert server.arxiv_url.removesuffix("/api/query") == server.oembed_url.removesuffix("/oembed")
    assert any(arxiv[0].start < o.start < arxiv[4].start for o in oembed)  # shared, busy
    assert server.max_concurrency("arxiv") == 1
    assert server.min_start_gap("arxiv") >= delay
    assert {r["arxiv"]["status"] for r in done.records} == {"ok", "not_found"}


def test_arxiv_requests_never_share_a_connection(
    tmp_path: Path, server: StandIn, baseline: Baseline
) -> None:
    # arXiv asks for a fresh connection each time. One pooled afterwards (the server closes it,
    # and its answer need not say so) failed the next oEmbed request on the shared host.
    with Upstream(server) as up:
        out = tmp_path / "snapshot.jsonl"
        done = crawl(out, urls_of(up), settings=FAST | {"ARXIV_BATCH_SIZE": 20})
        seen = list(up.seen)
    assert_complete(done, out)
    retried = [k for k in run_report(out)["stats"] if re.fullmatch(r"retry/\w+/count", k)]
    assert retried == []  # no request failed
    arxiv = [s for s in seen if s.service == "arxiv"]
    assert len(arxiv) == 6
    for request in arxiv:
        on_it = [s for s in seen if s.connection == request.connection]
        assert on_it == [request]  # alone on its own connection
    # Every tweet asked once, and nothing else: a first run has no control to probe with (a
    # value an earlier run stored). One CI run saw 126 oEmbed requests for 125 tweets: a 404
    # judged before any good answer, and a probe that took a tweet this run had just stored for
    # such a control (tests/unit/test_runner.py has it deterministically).
    stats = run_report(out)["stats"]
    oembed = collections.Counter(s.params["url"][0] for s in seen if s.service == "oembed")
    twice = {url: n for url, n in oembed.items() if n > 1}
    assert (len(oembed), sum(oembed.values()), stats.get("oembed/probes")) == (125, 125, None), (
        twice,
        {k: v for k, v in stats.items() if k.startswith(("oembed/", "service/oembed"))},
    )
    assert len(seen) == 6 + sum(oembed.values())


# === a deflate bomb =============================================================================
BOMB_SIZE = 32 * 1024 * 1024


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    payload = b'{"html": "' + b" " * BOMB_SIZE + b'"}'
    deflated = zlib.compress(payload, 9)
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing
    gzipped = packer.compress(payload) + packer.flush()
    return {"deflate": deflated, "gzip": gzipped}


def test_a_deflate_bomb_from_oembed_is_refused_as_oversized(
    tmp_path: Path, server: StandIn, baseline: Baseline, bombs: dict[str, bytes]
) -> None:
    bombed = _ok_tweets(baseline)[:20]
    encodings = {tweet_id: ("deflate", "gzip")[i % 2] for i, tweet_id in enumerate(bombed)}

    def hook(up: Upstream, handler: Any, service: str, params: dict[str, list[str]]) -> Any:
        if service == "oembed" and (encoding := encodings.get(_tweet_id(params))):
            headers = {"Content-Encoding": encoding}
            return Answer(200, "application/json", bombs[encoding], headers)
        return None

    with Upstream(server, hook=hook) as up:
        out = tmp_path / "snapshot.jsonl"
        done = crawl(out, urls_of(up), settings=FAST)
        asked = [_tweet_id(s.params) for s in up.requests_for("oembed")]
    assert max(len(b) for b in bombs.values()) < 64 * 1024  # a few KB on the wire
    assert done.returncode == 4, done.log[-3000:]
    assert len(done.records) == ALL_RECORDS
    embeds = _embeds(done.records)
    for tweet_id in bombed:
        assert embeds[tweet_id]["status"] == "error"
        assert (
            "exceeded DOWNLOAD_MAXSIZE (262144 B) during decompression"
            in (embeds[tweet_id]["error"])
        )
        assert asked.count(tweet_id) == 1  # refused, not retried
    others = {k: v for k, v in embeds.items() if k not in encodings}
    assert others == {k: v for k, v in _embeds(baseline.records).items() if k not in encodings}
    assert_no_traceback(done.log)
    assert_no_internal_error(done)


# === answers that must not poison the state =====================================================
def _refresh(
    tmp_path: Path, baseline: Baseline, urls: tuple[str, str], refresh: str, **settings: object
) -> tuple[Any, Path]:
    out, state = baseline.seed(tmp_path)
    done = crawl(out, urls, "-a", f"refresh={refresh}", settings=FAST | settings, state=state)
    return done, out


def _assert_state_kept(done: Any, out: Path, baseline: Baseline, server: StandIn) -> None:
    """The good values stayed: the records equal the first run's, and the next healthy
    refresh (nothing stale any more) finds the same."""
    assert done.returncode == 4, done.log[-3000:]
    assert_same_values(done.records, baseline.records)  # good values kept, with their times
    assert_no_traceback(done.log)
    assert_no_internal_error(done)
    incomplete = run_report(out)["incomplete_services"]
    assert incomplete
    server.reset_log()
    again = crawl(out, urls_of(server), settings=FAST, state=out.parent / "state.sqlite3")
    assert_complete(again, out)
    assert_same_values(again.records, baseline.records)


def test_a_mistyped_oembed_url_answering_404_keeps_the_good_embeds(
    tmp_path: Path, server: StandIn, baseline: Baseline
) -> None:
    urls = (server.arxiv_url, server.base_url + "/oembedd")  # 404 for everything
    done, out = _refresh(tmp_path, baseline, urls, "tweets")
    warnings = [line for line in done.log.splitlines() if "] WARNING: " in line]
    assert any("while showing no sign of answering correctly" in w for w in warnings), warnings
    statuses = [e["status"] for e in _embeds(baseline.records).values()]
    # Every stored final answer it contradicts is kept: ok and protected (deleted stays deleted).
    assert run_report(out)["incomplete_services"] == {"oembed": 125 - statuses.count("deleted")}
    assert not out.with_name("snapshot.changes").exists()  # nothing changed, nothing reported
    _assert_state_kept(done, out, baseline, server)
    assert len(server.requests_for("oembed")) == 125 - statuses.count("deleted")  # asked again


def test_an_empty_arxiv_feed_on_refresh_keeps_the_good_values(
    tmp_path: Path, server: StandIn, baseline: Baseline
) -> None:
    server.faults.add(Fault("empty", service="arxiv", times=1000))
    done, out = _refresh(tmp_path, baseline, urls_of(server), "arxiv")
    assert run_report(out)["incomplete_services"] == {"arxiv": len(_ok_papers(baseline))}
    server.faults.clear()
    _assert_state_kept(done, out, baseline, server)


def test_a_feed_listing_papers_nobody_asked_for_keeps_the_good_values(
    tmp_path: Path, server: StandIn, baseline: Baseline
) -> None:
    def hook(up: Upstream, handler: Any, service: str, params: dict[str, list[str]]) -> Any:
        if service != "arxiv":
            return None
        asked = params["id_list"][0].split(",")
        stranger = next(p for p in sorted(up.standin.catalogue.papers) if p not in asked)
        return up.normal(service, {**params, "id_list": [",".join([*asked[:-1], stranger])]})

    with Upstream(server, hook=hook) as up:
        done, out = _refresh(tmp_path, baseline, urls_of(up), "arxiv", RETRY_TIMES=1)
        tries = len(up.requests_for("arxiv"))
    assert tries == 2 * 2  # two batches, retried once each
    assert "feed lists papers that were not asked for" in done.log
    _assert_state_kept(done, out, baseline, server)


def _arxiv_entry_rewrite(ids: dict[str, str]) -> Any:
    """A hook rewriting the arXiv feed: ``ids`` maps a paper to what breaks in its entry."""

    def hook(up: Upstream, handler: Any, service: str, params: dict[str, list[str]]) -> Any:
        if service != "arxiv":
            return None
        answer = up.normal(service, params)
        body = answer.body.decode()
        for paper_id, damage in ids.items():
            versioned = re.search(
                rf"<id>http://arxiv.org/abs/{re.escape(paper_id)}v(\d+)</id>", body
            )
            if versioned is None:
                continue
            entry_start = body.rindex("<entry>", 0, versioned.start())
            entry_end = body.index("</entry>", versioned.end())
            entry = body[entry_start:entry_end]
            if damage == "no-version":
                entry = entry.replace(
                    versioned.group(0), f"<id>http://arxiv.org/abs/{paper_id}</id>"
                )
            elif damage == "v0":
                entry = entry.replace(
                    versioned.group(0), f"<id>http://arxiv.org/abs/{paper_id}v0</id>"
                )
            elif damage == "year-0999":
                entry = re.sub(r"<published>\d{4}", "<published>0999", entry)
            body = body[:entry_start] + entry + body[entry_end:]
        return Answer(answer.status, answer.content_type, body.encode(), answer.headers)

    return hook


def test_arxiv_entries_of_the_wrong_shape_never_replace_good_values(
    tmp_path: Path, server: StandIn, baseline: Baseline
) -> None:
    papers = _ok_papers(baseline)
    damaged = dict(zip(papers[:3], ("no-version", "v0", "year-0999"), strict=True))
    with Upstream(server, hook=_arxiv_entry_rewrite(damaged)) as up:
        done, out = _refresh(tmp_path, baseline, urls_of(up), "arxiv", RETRY_TIMES=1)
        batches = [set(r.params["id_list"][0].split(",")) for r in up.requests_for("arxiv")]
    # A feed with entries that cannot be read cannot prove the absent papers absent either:
    # the damaged entries and the stored "not found" of their batch are all kept.
    absent = {k for k, a in _arxiv(baseline.records).items() if a["status"] == "not_found"}
    in_damaged = set().union(*(b for b in batches if b & set(damaged)))
    expected = len(damaged) + len(absent & in_damaged)
    assert run_report(out)["incomplete_services"] == {"arxiv": expected}
    _assert_state_kept(done, out, baseline, server)


def test_an_oembed_author_name_that_is_a_number_never_replaces_a_good_value(
    tmp_path: Path, server: StandIn, baseline: Baseline
) -> None:
    damaged = set(_ok_tweets(baseline)[:5])

    def hook(up: Upstream, handler: Any, service: str, params: dict[str, list[str]]) -> Any:
        answer = up.normal(service, params)
        if service == "oembed" and _tweet_id(params) in damaged:
            data = json.loads(answer.body)
            data["author_name"] = 12345
            return Answer(200, answer.content_type, json.dumps(data).encode())
        return answer

    with Upstream(server, hook=hook) as up:
        done, out = _refresh(tmp_path, baseline, urls_of(up), "tweets", RETRY_TIMES=1)
    assert run_report(out)["incomplete_services"] == {"oembed": 5}
    assert "oEmbed answer of the wrong shape" in done.log
    _assert_state_kept(done, out, baseline, server)


def test_one_genuinely_deleted_tweet_among_good_ones_is_accepted(
    tmp_path: Path, catalogue: Catalogue, baseline: Baseline
) -> None:
    cat = copy_catalogue(catalogue)
    gone = _ok_tweets(baseline)[7]
    cat.tweets[gone] = dataclasses.replace(cat.tweets[gone], status="deleted")
    with StandIn(cat) as server:
        done, out = _refresh(tmp_path, baseline, urls_of(server), "tweets")
    assert_complete(done, out)
    embeds = _embeds(done.records)
    assert nonnull(embeds[gone]) == {"status": "deleted", "error": "oEmbed answered HTTP 404"}
    expected = _embeds(baseline.records)
    assert {k: v for k, v in embeds.items() if k != gone} == {
        k: v for k, v in expected.items() if k != gone
    }
    changes = Path(run_report(out)["changes_file"]).read_text().splitlines()
    found = [c for line in changes for c in json.loads(line)["changes"]]
    assert {c["key"] for c in found} == {gone}
    assert found[0]["fields"]["status"] == {"before": "ok", "after": "deleted"}


# === Retry-After ================================================================================
def test_retry_after_on_a_200_answer_is_ignored(
    tmp_path: Path, server: StandIn, baseline: Baseline
) -> None:
    def hook(up: Upstream, handler: Any, service: str, params: dict[str, list[str]]) -> Any:
        answer = up.normal(service, params)
        return Answer(answer.status, answer.content_type, answer.body, {"Retry-After": "300"})

    with Upstream(server, hook=hook) as up:
        out = tmp_path / "snapshot.jsonl"
        done = crawl(out, urls_of(up), settings=FAST)
    assert_complete(done, out)
    assert_same_values(done.records, baseline.records)
    stats = run_report(out)["stats"]
    assert "retry/oembed/gated" not in stats  # no oEmbed request waited for anything
    assert "waiting" not in done.log  # (arXiv waits ARXIV_DELAY, never the 300 s asked for)


def test_retry_after_on_429_and_503_is_honoured(tmp_path: Path, server: StandIn) -> None:
    server.faults.add(Fault("status:429", service="oembed", times=2, retry_after=2))
    server.faults.add(Fault("status:503", service="arxiv", times=1, retry_after=3))
    out = tmp_path / "snapshot.jsonl"
    done = crawl(out, urls_of(server), settings=FAST)
    assert_complete(done, out)
    log = server.log
    faulted = [r for r in log if r.fault]
    assert sorted(r.fault for r in log if r.fault) == ["status:429", "status:429", "status:503"]
    for f in faulted:
        wait = 3.0 if f.service == "arxiv" else 2.0
        retry = [r for r in log if r.key == f.key and r.start > f.end]
        assert retry, f"{f.key} never retried"
        assert min(r.start for r in retry) >= f.end + wait  # no retry earlier than asked


def test_a_long_retry_after_wait_is_logged(
    tmp_path: Path, server: StandIn, baseline: Baseline
) -> None:
    server.faults.add(Fault("status:503", service="oembed", times=1000, retry_after=45))
    out, state = baseline.seed(tmp_path)
    running = start_crawl(out, urls_of(server), "-a", "refresh=tweets", settings=FAST, state=state)
    try:
        wait_for(lambda: "oembed: waiting 45 s before the next try" in running.log(), "the log")
        running.proc.send_signal(signal.SIGTERM)
        done = running.wait(SAFETY)
    finally:
        running.kill()
    assert done.returncode == 1 and out.read_bytes() == baseline.raw
    lines = [x for x in done.log.splitlines() if "waiting 45 s" in x]
    assert lines and all("] WARNING: oembed: waiting 45 s before the next try" in x for x in lines)
    assert_no_traceback(done.log)


# === redirects ==================================================================================
def test_service_redirects_are_followed_on_the_same_host_only(
    tmp_path: Path, server: StandIn, baseline: Baseline
) -> None:
    tweets = _ok_tweets(baseline)
    away, moved = set(tweets[:3]), set(tweets[3:6])

    def hook(up: Upstream, handler: Any, service: str, params: dict[str, list[str]]) -> Any:
        query = handler.path.split("?", 1)[1]
        if handler.path.startswith(("/moved/", "/elsewhere/")):
            return None
        if service == "arxiv" and len(up.requests_for("arxiv")) == 1:
            return Answer(307, "text/plain", b"", {"Location": f"/moved/api/query?{query}"})
        if service == "oembed" and _tweet_id(params) in moved:
            return Answer(301, "text/plain", b"", {"Location": f"/moved/oembed?{query}"})
        if service == "oembed" and _tweet_id(params) in away:
            port = up.base_url.rsplit(":", 1)[1]
            target = f"http://localhost:{port}/elsewhere/oembed?{query}"
            return Answer(302, "text/plain", b"", {"Location": target})
        return None

    with Upstream(server, hook=hook) as up:
        out = tmp_path / "snapshot.jsonl"
        done = crawl(out, urls_of(up), settings=FAST)
        paths = [s.path for s in up.seen]
    assert done.returncode == 4, done.log[-3000:]
    assert len(done.records) == ALL_RECORDS
    assert "/moved/api/query" in paths and paths.count("/moved/oembed") == 3
    assert not [p for p in paths if p.startswith("/elsewhere")]  # never sent to the other host
    embeds, expected = _embeds(done.records), _embeds(baseline.records)
    for tweet_id in moved:
        assert embeds[tweet_id] == expected[tweet_id]
    for tweet_id in away:
        error = embeds[tweet_id]["error"]
        assert embeds[tweet_id]["status"] == "error"
        assert error.startswith(
            "oEmbed request dropped: HTTP 302 redirect to another host refused: http://localhost:"
        )
    assert _arxiv(done.records) == _arxiv(baseline.records)
    assert_no_traceback(done.log)


# === messages that must not mislead =============================================================
@pytest.fixture
def digest_server() -> Iterator[str]:
    """Digest URLs: one answering 404, one redirecting to a local file."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if self.path == "/to-file.md":
                send(self, Answer(302, "text/plain", b"", {"Location": "file:///etc/passwd"}))
            else:
                send(self, Answer(404, "text/plain", b"not found\n"))

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_sources_that_cannot_be_read_say_exactly_why(
    tmp_path: Path, server: StandIn, digest_server: str
) -> None:
    fifo = tmp_path / "pipe.md"
    os.mkfifo(fifo)
    good = tmp_path / SAMPLES[1].name
    shutil.copy(SAMPLES[1], good)
    sources = ["/dev/zero", str(fifo), f"{digest_server}/to-file.md", f"{digest_server}/gone.md"]
    out = tmp_path / "out" / "snapshot.jsonl"
    done = crawl(
        out, urls_of(server), "-a", "source=" + ",".join([*sources, str(good)]), settings=FAST
    )
    assert done.returncode == 2, done.log[-3000:]
    assert len(done.records) == 16
    errors = error_lines(done.log)
    assert len(errors) == 4, errors
    assert any("source /dev/zero: is a device or socket, not a regular file" in e for e in errors)
    assert any(f"source {fifo}: is a FIFO, not a regular file" in e for e in errors)
    assert any(
        f"{digest_server}/to-file.md: cannot read: HTTP 302 redirect to file:///etc/passwd" in e
        for e in errors
    ), errors
    assert any(f"{digest_server}/gone.md: cannot read: HTTP 404" in e for e in errors), errors
    assert not any("no such file" in e for e in errors)
    assert_no_traceback(done.log)


def test_give_up_lines_shorten_long_urls(tmp_path: Path, server: StandIn) -> None:
    server.faults.add(Fault("status:503", service="arxiv", times=1000))
    out = tmp_path / "snapshot.jsonl"
    done = crawl(out, urls_of(server), settings=FAST | {"RETRY_TIMES": 1})
    assert done.returncode == 4 and len(done.records) == ALL_RECORDS
    gave_up = [line for line in done.log.splitlines() if "Gave up retrying" in line]
    assert len(gave_up) == 2
    assert re.search(r"…\(1\d{3} chars\)> \(failed 2 times\): HTTP 503", gave_up[0]), gave_up[0]
    assert max(len(line) for line in done.log.splitlines()) < 400


# === a local source over DOWNLOAD_MAXSIZE =======================================================
def test_a_local_source_over_download_maxsize_is_refused_before_it_is_read(
    tmp_path: Path, server: StandIn
) -> None:
    folder = tmp_path / "digests"
    folder.mkdir()
    huge = folder / "huge.md"
    with huge.open("wb") as f:  # sparse: 1 GiB that costs no disk
        f.truncate(1024**3)
    shutil.copy(SAMPLES[1], folder / SAMPLES[1].name)
    out = tmp_path / "out" / "snapshot.jsonl"
    cmd = crawl_command(out, urls_of(server), "-a", f"source={folder}", settings=FAST)
    log_path = tmp_path / "crawl.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stderr=log,
            stdout=subprocess.DEVNULL,
        )
    try:
        _, status, usage = os.wait4(proc.pid, 0)  # this crawl's own peak RSS
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    returncode = os.waitstatus_to_exitcode(status)
    peak_mib = usage.ru_maxrss / 1024
    print(f"\npeak RSS of the crawl beside a 1 GiB source: {peak_mib:.0f} MiB")
    text = log_path.read_text()
    assert returncode == 2, text[-3000:]
    errors = error_lines(text)
    assert len(errors) == 1, errors
    assert "huge.md: cannot read: file is 1,073,741,824 bytes, over DOWNLOAD_MAXSIZE" in errors[0]
    records = [json.loads(line) for line in out.read_bytes().splitlines()]
    assert len(records) == 16  # the rest was crawled
    assert peak_mib < 512  # never read: reading it would take 1 GiB (32 MiB up to the cap)
