"""Issue 8: invariants of a run, end to end with real processes, files and mounts.

Records written = entries parsed, or the run says otherwise (exit status, previous snapshot
kept, ``NAME.run.json``); exit statuses a scheduler can trust; operator slips never replace a
snapshot; one run at a time; the change feed survives kill -9; stops are prompt; state errors
are one line naming ``STATE_DB``.

The helpers here (a crawl as a process, waiting on events, tiny tmpfs mounts, a server of our
own for answers the stand-in cannot give) are shared with ``test_hostile_answers.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import ROOT, SAMPLES, Crawl, assert_same_values
from tests.standin import Catalogue, Fault, StandIn
from tests.standin.handler import normal_answer
from tests.standin.server import Answer

pytestmark = pytest.mark.e2e

FAST = {"ARXIV_DELAY": 0.2, "RETRY_BACKOFF_BASE": 0.05}
SAFETY = 120.0  # seconds: a safety net for waits on events, never a measured bound
ALL_RECORDS = 103  # entries in the five bundled samples


# --- a crawl as a process ----------------------------------------------------------------------
def crawl_command(
    out: Path | str | None,
    urls: tuple[str, str] | None,
    *args: str | bytes,
    settings: Mapping[str, object] | None = None,
    state: Path | str | None = None,
) -> list[str | bytes]:
    """``python -m scrapy crawl digests -O out`` with the test settings (as a user runs it)."""
    cmd: list[str | bytes] = [sys.executable, "-m", "scrapy", "crawl", "digests"]
    if out is not None:
        cmd += ["-O", str(out)]
    # These invariants are about arXiv and oEmbed: the other services are off, and so are the
    # dataset and report (2 s per crawl); tests/test_details_impact.py covers them.
    merged: dict[str, object] = {
        "LOG_LEVEL": "INFO", "TWEET_DETAILS": False, "SEMANTIC_SCHOLAR": False,
        "HF_PAPERS": False, "OPENALEX": False, "DATASET_DIR": "", "REPORT_FILE": "",
    }  # fmt: skip
    if state is not None:
        merged["STATE_DB"] = state
    elif out is not None:
        merged["STATE_DB"] = Path(out).parent / "state.sqlite3"
    if urls is not None:
        merged |= {"ARXIV_API_URL": urls[0], "OEMBED_URL": urls[1]}
    merged |= settings or {}
    for name, value in merged.items():
        cmd += ["-s", f"{name}={value}"]
    return cmd + list(args)


def urls_of(server: StandIn | Upstream) -> tuple[str, str]:
    return server.arxiv_url, server.oembed_url


@dataclass
class Running:
    """A crawl started in the background; its log goes to a file we can watch."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    out: Path | None

    def log(self) -> str:
        return self.log_path.read_bytes().decode("utf-8", "replace")

    def wait(self, timeout: float = 300) -> Crawl:
        self.proc.wait(timeout=timeout)
        return self.result()

    def result(self) -> Crawl:
        raw = self.out.read_bytes() if self.out is not None and self.out.is_file() else b""
        records = [json.loads(line) for line in raw.splitlines()]
        return Crawl(records, raw, self.log(), self.proc.returncode)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def start_crawl(
    out: Path | None,
    urls: tuple[str, str] | None,
    *args: str | bytes,
    settings: Mapping[str, object] | None = None,
    state: Path | str | None = None,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
) -> Running:
    cmd = crawl_command(out, urls, *args, settings=settings, state=state)
    if log_path is None:
        folder = Path(out).parent if out is not None else Path.cwd()
        log_path = folder.parent / f"{folder.name}-{time.monotonic_ns()}.log"
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONFAULTHANDLER": "1"} | (env or {})
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=subprocess.DEVNULL, stderr=log)
    return Running(proc, log_path, Path(out) if out is not None else None)


def crawl(
    out: Path | None,
    urls: tuple[str, str] | None,
    *args: str | bytes,
    settings: Mapping[str, object] | None = None,
    state: Path | str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> Crawl:
    """A crawl run to its end; its log is kept out of the folders the tests inspect."""
    log_path = Path(tempfile.gettempdir()) / f"hot-papers-crawl-{time.monotonic_ns()}.log"
    running = start_crawl(
        out, urls, *args, settings=settings, state=state, env=env, log_path=log_path
    )
    try:
        return running.wait(timeout)
    except subprocess.TimeoutExpired:
        running.proc.send_signal(signal.SIGABRT)  # faulthandler: every thread's stack, logged
        running.proc.wait()
        raise AssertionError(f"the crawl did not end:\n{running.log()[-12000:]}") from None
    finally:
        running.kill()
        log_path.unlink(missing_ok=True)


def wait_for(condition: Callable[[], Any], what: str, timeout: float = SAFETY) -> Any:
    """Poll ``condition`` until it is truthy (an event), with a generous safety net."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def error_lines(log: str) -> list[str]:
    """Lines a person or scheduler reads as errors: ``error:`` lines and ERROR log lines."""
    return [line for line in log.splitlines() if line.startswith("error:") or "] ERROR: " in line]


def assert_no_traceback(log: str) -> None:
    assert "Traceback" not in log, log[-4000:]
    assert "Task exception was never retrieved" not in log
    assert "Unhandled error in Deferred" not in log


def assert_refused(crawl_: Crawl, status: int, pattern: str) -> None:
    """Refused before anything started: one ``error:`` line (Scrapy's banner aside), the
    crawl never opened."""
    assert crawl_.returncode == status, crawl_.log[-3000:]
    lines = error_lines(crawl_.log)
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: "), lines
    assert re.search(pattern, lines[0]), lines[0]
    assert "Spider opened" not in crawl_.log
    assert_no_traceback(crawl_.log)


def run_report(out: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(out.with_name(f"{out.stem}.run.json").read_text())
    return report


def stray_files(folder: Path) -> list[str]:
    """Temporary files a run must not leave behind."""
    return sorted(
        p.name
        for p in folder.iterdir()
        if p.name.endswith(".tmp") or p.name.startswith(".hot-papers-sort-")
    )


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every file under ``folder`` with its content (directories: None)."""
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(folder.rglob("*"))
    }


# --- tiny filesystems (root can mount; chmod does not stop root) --------------------------------
@contextlib.contextmanager
def tmpfs(path: Path, size: str = "64k") -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip() or done}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def remount_read_only(path: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True, capture_output=True)


def fill(folder: Path, leave: int = 0) -> None:
    """Fill the filesystem holding ``folder``, leaving about ``leave`` bytes free."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
        if leave:
            os.ftruncate(fd, max(0, os.fstat(fd).st_size - leave))
    finally:
        os.close(fd)


# --- a server of our own: the stand-in's answers, with behaviours it lacks ----------------------
@dataclass
class Seen:
    service: str
    method: str
    path: str
    params: dict[str, list[str]]
    start: float
    end: float = math.nan
    status: int | None = None
    concurrent: int = 1
    connection: int = 0  # which TCP connection carried it (numbered as accepted)
    nth: int = 0  # its place among that connection's requests (0: the first)


Hook = Callable[["Upstream", BaseHTTPRequestHandler, str, dict[str, list[str]]], Any]


@dataclass
class Upstream:
    """arXiv and oEmbed on one 127.0.0.1 port, answering from a stand-in's catalogue (its
    answer functions, called in-process) unless ``hook`` returns an ``Answer`` first.
    ``hold[service]``, an unset event, keeps that service's answers waiting until it is set."""

    standin: StandIn
    hook: Hook | None = None
    hold: dict[str, threading.Event] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _in_flight: dict[str, int] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None

    def __enter__(self) -> Upstream:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _upstream_handler(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        for event in self.hold.values():
            event.set()
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def arxiv_url(self) -> str:
        return self.base_url + "/api/query"

    @property
    def oembed_url(self) -> str:
        return self.base_url + "/oembed"

    def requests_for(self, service: str) -> list[Seen]:
        with self._lock:
            return sorted((s for s in self.seen if s.service == service), key=lambda s: s.start)

    def normal(self, service: str, params: dict[str, list[str]]) -> Answer:
        return normal_answer(self.standin.catalogue, service, "GET", params, b"")


def send(handler: BaseHTTPRequestHandler, answer: Answer) -> None:
    handler.send_response(answer.status)
    handler.send_header("Content-Type", answer.content_type)
    handler.send_header("Content-Length", str(len(answer.body)))
    for name, value in answer.headers.items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(answer.body)


def _upstream_handler(upstream: Upstream) -> type[BaseHTTPRequestHandler]:
    connections = itertools.count(1)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def setup(self) -> None:
            super().setup()
            self.number, self.served = next(connections), 0

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._serve(b"")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self._serve(self.rfile.read(length) if length else b"")

        def _serve(self, body: bytes) -> None:
            parts = urlsplit(self.path)
            params = parse_qs(parts.query, keep_blank_values=True)
            for k, v in parse_qs(body.decode("utf-8", "replace")).items():
                params.setdefault(k, []).extend(v)
            path = parts.path.rstrip("/")
            service = (
                "arxiv"
                if path.endswith("/api/query")
                else "oembed"
                if path.endswith("/oembed")
                else "other"
            )
            with upstream._lock:
                upstream._in_flight[service] = upstream._in_flight.get(service, 0) + 1
                seen = Seen(
                    service,
                    self.command,
                    parts.path,
                    params,
                    time.monotonic(),
                    concurrent=upstream._in_flight[service],
                    connection=self.number,
                    nth=self.served,
                )
                self.served += 1
                upstream.seen.append(seen)
            try:
                if (event := upstream.hold.get(service)) is not None:
                    event.wait(SAFETY * 2)
                answer = upstream.hook(upstream, self, service, params) if upstream.hook else None
                if answer is None:
                    answer = upstream.normal(service, params)
                seen.status = answer.status
                send(self, answer)
            except OSError:
                self.close_connection = True
            finally:
                with upstream._lock:
                    upstream._in_flight[service] -= 1
                    seen.end = time.monotonic()

    return Handler


# --- fixtures ------------------------------------------------------------------------------------
def copy_catalogue(catalogue: Catalogue) -> Catalogue:
    return catalogue.copy()


def standin_for_module(catalogue: Catalogue) -> Iterator[StandIn]:
    """One stand-in per test module, on its own copy of the catalogue."""
    with StandIn(copy_catalogue(catalogue)) as server:
        yield server


def clean(server: StandIn) -> Iterator[StandIn]:
    """The module's stand-in without the faults, latency and log of the previous test."""

    def reset() -> None:
        server.faults.clear()
        server.latency.update({"arxiv": 0.0, "oembed": 0.0})
        server.reset_log()

    reset()
    yield server
    reset()


@dataclass(frozen=True)
class Baseline:
    """A good run over the samples: its snapshot, state database and records."""

    raw: bytes
    state: bytes
    records: list[dict[str, Any]]

    def seed(self, folder: Path, name: str = "snapshot.jsonl") -> tuple[Path, Path]:
        """Put this run's snapshot and state into ``folder``, as a previous run left them."""
        folder.mkdir(parents=True, exist_ok=True)
        out, state = folder / name, folder / "state.sqlite3"
        out.write_bytes(self.raw)
        state.write_bytes(self.state)
        return out, state


def good_run(folder: Path, server: StandIn) -> Baseline:
    out = folder / "snapshot.jsonl"
    done = crawl(out, urls_of(server), settings=FAST)
    assert done.returncode == 0 and len(done.records) == ALL_RECORDS, done.log[-3000:]
    state = folder / "state.sqlite3"
    assert not state.with_name("state.sqlite3-wal").exists()  # checkpointed on close
    return Baseline(done.raw, state.read_bytes(), done.records)


@pytest.fixture(scope="module")
def shared_standin(catalogue: Catalogue) -> Iterator[StandIn]:
    yield from standin_for_module(catalogue)


@pytest.fixture
def server(shared_standin: StandIn) -> Iterator[StandIn]:
    yield from clean(shared_standin)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory, shared_standin: StandIn) -> Baseline:
    return good_run(tmp_path_factory.mktemp("baseline"), shared_standin)


def assert_complete(done: Crawl, out: Path, records: int = ALL_RECORDS) -> dict[str, Any]:
    """Exit 0, every entry parsed is a record in the file, and the run report agrees."""
    assert done.returncode == 0, done.log[-4000:]
    assert len(done.records) == records
    report = run_report(out)
    stats = report["stats"]
    assert report["exit_status"] == 0 and report["snapshot_replaced"] is True
    assert stats["entries/parsed"] == stats["records/written"] == records
    assert stats["output/records_stored"] == records
    assert_no_traceback(done.log)
    return report


# === 1. records written = entries parsed, or the run says otherwise =============================
def test_a_file_name_that_is_not_utf8_loses_no_record(tmp_path: Path, server: StandIn) -> None:
    folder = tmp_path / "digests"
    folder.mkdir()
    name = b"hot-\xff\xfe-papers.md"
    Path(os.fsdecode(os.path.join(os.fsencode(folder), name))).write_bytes(SAMPLES[0].read_bytes())
    shutil.copy(SAMPLES[1], folder / SAMPLES[1].name)
    out = tmp_path / "out" / "snapshot.jsonl"
    done = crawl(out, urls_of(server), "-a", f"source={folder}", settings=FAST)
    assert_complete(done, out, records=30 + 16)
    sources = {r["post"]["source"] for r in done.records}
    assert "hot-\\xff\\xfe-papers.md" in sources  # the bytes, shown as escapes, below the folder
    assert sum(r["post"]["source"].endswith("\\xfe-papers.md") for r in done.records) == 30


def _surrogate_hook(tweet_ids: set[str]) -> Hook:
    """oEmbed answers whose JSON carries a lone surrogate escape (``\\ud800``)."""

    def hook(up: Upstream, handler: Any, service: str, params: dict[str, list[str]]) -> Any:
        if service != "oembed":
            return None
        answer = up.normal(service, params)
        tweet_id = params["url"][0].rsplit("/", 1)[-1]
        if answer.status != 200 or tweet_id not in tweet_ids:
            return answer
        data = json.loads(answer.body)
        data["author_name"] = "Ada \ud800 Lovelace"
        data["html"] = data["html"].replace('dir="ltr">', 'dir="ltr">\ud800 ', 1)
        return Answer(200, answer.content_type, json.dumps(data).encode("ascii"))

    return hook


def test_a_lone_surrogate_in_an_oembed_answer_loses_no_record(
    tmp_path: Path, server: StandIn, baseline: Baseline
) -> None:
    ok = [t["id"] for r in baseline.records for t in r["tweets"] if t["embed"]["status"] == "ok"]
    chosen = set(ok[:5])
    with Upstream(server, hook=_surrogate_hook(chosen)) as up:
        out = tmp_path / "snapshot.jsonl"
        done = crawl(out, urls_of(up), settings=FAST)
    assert_complete(done, out)
    assert b"\\ud800" not in done.raw and "\ud800".encode("utf-8", "surrogatepass") not in done.raw
    embeds = {t["id"]: t["embed"] for r in done.records for t in r["tweets"]}
    for tweet_id in chosen:
        assert embeds[tweet_id]["status"] == "ok"
        assert embeds[tweet_id]["author_name"] == "Ada \ufffd Lovelace"
        assert "\ufffd" in embeds[tweet_id]["html"] and "\ufffd" in embeds[tweet_id]["text"]


def _corrupt_pages(path: Path, pages: int = 4) -> None:
    data = bytearray(path.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    count = len(data) // page_size
    assert count > 3 * pages, "state file too small to corrupt in the middle"
    junk = random.Random(8).randbytes(page_size * pages)
    start = (count // 2) * page_size
    data[start : start + len(junk)] = junk
    path.write_bytes(bytes(data))


def test_a_state_db_with_corrupted_pages_is_refused_and_the_snapshot_kept(
    tmp_path: Path, server: StandIn, baseline: Baseline
) -> None:
    out, state = baseline.seed(tmp_path)
    _corrupt_pages(state)
    done = crawl(out, urls_of(server), settings=FAST)
    assert_refused(done, 1, rf"^error: STATE_DB {re.escape(str(state))} is corrupt")
    assert out.read_bytes() == baseline.raw and len(baseline.records) == ALL_RECORDS
    assert server.log == []


def test_a_stored_value_that_is_not_json_stops_the_run_with_one_line(
    tmp_path: Path, server: StandIn, baseline: Baseline
) -> None:
    out, state = baseline.seed(tmp_path)
    with contextlib.closing(sqlite3.connect(state)) as db, db:
        db.execute("UPDATE fetched SET value = '{\"status\": \"ok\", ' WHERE kind = 'embed'")
    done = crawl(out, urls_of(server), settings=FAST)
    assert done.returncode == 1, done.log[-3000:]
    assert_no_traceback(done.log)
    (error,) = error_lines(done.log)
    assert f"STATE_DB {state}: stored value for embed " in error and "is not JSON" in error
    assert out.read_bytes() == baseline.raw
    report = run_report(out)
    assert report["exit_status"] == 1 and report["snapshot_replaced"] is False
    assert report["problems"] and "is not JSON" in report["problems"][0]


def test_state_written_by_a_newer_version(
    tmp_path: Path, server: StandIn, baseline: Baseline
) -> None:
    # Unknown fields in stored values: those values are fetched again, nothing is lost.
    out, state = baseline.seed(tmp_path / "fields")
    with contextlib.closing(sqlite3.connect(state)) as db, db:
        db.execute(
            "UPDATE fetched SET value = json_set(value, '$.added_later', json('[1, 2]')) "
            "WHERE kind = 'embed'"
        )
    done = crawl(out, urls_of(server), settings=FAST)
    assert_complete(done, out)
    assert_same_values(done.records, baseline.records)  # values refetched: new times
    assert len(server.requests_for("oembed")) == 125 and server.requests_for("arxiv") == []
    server.reset_log()
    # A newer file format: refused with one line, the snapshot kept.
    out, state = baseline.seed(tmp_path / "format")
    with contextlib.closing(sqlite3.connect(state)) as db:
        (version,) = db.execute("PRAGMA user_version").fetchone()
        db.execute(f"PRAGMA user_version = {version + 1}")
    done = crawl(out, urls_of(server), settings=FAST)
    assert_refused(done, 1, rf"^error: STATE_DB {re.escape(str(state))} was written by a newer")
    assert out.read_bytes() == baseline.raw and server.log == []


def test_concurrent_items_zero_is_refused(tmp_path: Path, baseline: Baseline) -> None:
    out, _ = baseline.seed(tmp_path)
    done = crawl(out, None, settings={"CONCURRENT_ITEMS": 0})
    assert_refused(done, 1, r"^error: CONCURRENT_ITEMS must be at least 1, not 0$")
    assert out.read_bytes() == baseline.raw


# -- output that cannot be written: exit 5, one line, previous snapshot untouched -----------------
def assert_output_failed(done: Crawl, out: Path, before: bytes) -> None:
    """Exit 5, one error line, the previous snapshot as it was, no temporary file left."""
    assert done.returncode == 5, done.log[-4000:]
    assert_no_traceback(done.log)
    errors = error_lines(done.log)
    assert len(errors) == 1, errors
    assert out.read_bytes() == before
    assert stray_files(out.parent) == []
    report = out.with_name(f"{out.stem}.run.json")
    if report.exists():  # written when the folder can still take it: it says why
        assert run_report(out)["exit_status"] == 5
        assert run_report(out)["snapshot_replaced"] is False


def test_output_into_a_read_only_folder(tmp_path: Path, server: StandIn) -> None:
    with tmpfs(tmp_path / "ro") as folder:
        out = folder / "snapshot.jsonl"
        out.write_bytes(b'{"schema_version": 2, "post": {}, "rank": 1, "previous": true}\n')
        remount_read_only(folder)
        before = tree(folder)
        done = crawl(out, urls_of(server), state=tmp_path / "s.sqlite3")
        assert_output_failed(
            done, out, b'{"schema_version": 2, "post": {}, "rank": 1, "previous": true}\n'
        )
        assert tree(folder) == before
        assert re.search(
            r"^error: output folder .* is not writable \(Read-only file system\)$", done.log, re.M
        )
    assert server.log == []


def test_output_into_a_full_filesystem(tmp_path: Path, server: StandIn) -> None:
    with tmpfs(tmp_path / "full") as folder:
        out = folder / "snapshot.jsonl"
        out.write_bytes(b'{"schema_version": 2, "post": {}, "rank": 1, "previous": true}\n')
        fill(folder)
        before = tree(folder)
        done = crawl(out, urls_of(server), settings=FAST, state=tmp_path / "s.sqlite3")
        assert_output_failed(
            done, out, b'{"schema_version": 2, "post": {}, "rank": 1, "previous": true}\n'
        )
        assert tree(folder) == before
        assert re.search(
            r"^error: output folder .* is not writable \(No space left on device\)$", done.log, re.M
        )
    assert server.log == []  # refused before hours of crawling


def test_output_into_a_filesystem_that_fills_up(tmp_path: Path, server: StandIn) -> None:
    # Room to start, not for the snapshot: found while writing, after the crawl.
    with tmpfs(tmp_path / "full", size="256k") as folder:
        out = folder / "snapshot.jsonl"
        out.write_bytes(b'{"schema_version": 2, "post": {}, "rank": 1, "previous": true}\n')
        fill(folder, leave=16 * 1024)
        done = crawl(out, urls_of(server), settings=FAST, state=tmp_path / "s.sqlite3")
        assert_output_failed(
            done, out, b'{"schema_version": 2, "post": {}, "rank": 1, "previous": true}\n'
        )
        (error,) = error_lines(done.log)
        assert f"{out} not replaced: " in error and "the previous file stays as it was" in error
        assert "disk is full" in error or "No space left on device" in error
    assert len(server.requests_for("oembed")) == 125  # the crawl itself ran


def test_output_onto_an_existing_folder(tmp_path: Path, server: StandIn) -> None:
    target = tmp_path / "snapshot.jsonl"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    before = tree(tmp_path)
    done = crawl(target, urls_of(server), state=tmp_path.parent / f"{tmp_path.name}-s.sqlite3")
    assert_refused(done, 5, rf"^error: output {re.escape(str(target))} is a folder$")
    assert tree(tmp_path) == before and server.log == []


def test_a_full_tmpdir_changes_nothing(tmp_path: Path, server: StandIn, baseline: Baseline) -> None:
    out, _ = baseline.seed(tmp_path / "out")
    with tmpfs(tmp_path / "tmp") as tmpdir:
        fill(tmpdir)
        done = crawl(
            out, urls_of(server), "-a", "refresh=all", settings=FAST, env={"TMPDIR": str(tmpdir)}
        )
        assert sorted(p.name for p in tmpdir.iterdir()) == ["filler"]
    assert_complete(done, out)
    assert_same_values(done.records, baseline.records)  # values refetched: new times
    assert stray_files(out.parent) == []


# === 2. exit statuses ===========================================================================
@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections (bound, never listening)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def test_no_network_at_all_is_exit_4_with_an_incomplete_line_per_service(
    tmp_path: Path, closed_port: int
) -> None:
    base = f"http://127.0.0.1:{closed_port}"
    out = tmp_path / "snapshot.jsonl"
    done = crawl(out, (f"{base}/api/query", f"{base}/oembed"), settings=FAST)
    assert done.returncode == 4, done.log[-3000:]
    assert len(done.records) == ALL_RECORDS  # every entry, each saying why it is bare
    assert {r["arxiv"]["status"] for r in done.records} == {"error"}
    assert {t["embed"]["status"] for r in done.records for t in r["tweets"]} == {"error"}
    incomplete = sorted(line.strip() for line in done.log.splitlines() if "INCOMPLETE" in line)
    assert len(incomplete) == 2, incomplete
    assert incomplete[0].startswith("INCOMPLETE arXiv: 103 values could not be fetched")
    assert incomplete[1].startswith("INCOMPLETE oEmbed: 125 values could not be fetched")
    report = run_report(out)
    assert report["exit_status"] == 4
    assert report["incomplete_services"] == {"arxiv": 103, "oembed": 125}
    assert_no_traceback(done.log)


class BreakOneRecord:
    """An item pipeline standing in for a bug of ours (loaded into the crawl by a setting):
    entry 3 of the first sample gets a rank the schema refuses (the record's own part), or an
    arXiv block of the wrong shape (an enrichment block, which can be repaired)."""

    def __init__(self, what: str) -> None:
        self.what = what

    @classmethod
    def from_crawler(cls, crawler: Any) -> BreakOneRecord:
        return cls(crawler.settings.get("BREAK_RECORD"))

    def process_item(self, item: Any) -> Any:
        if item.rank == 3 and item.post.source.endswith(SAMPLES[0].name):
            if self.what == "rank":
                item.rank = -1
            else:
                item.arxiv = dataclasses.replace(item.arxiv, version="two")
        return item


@pytest.mark.parametrize(
    ("what", "status"), [("rank", 3), ("arxiv", 4)], ids=["own-part", "enrichment-block"]
)
def test_a_record_that_breaks_the_schema(
    tmp_path: Path, server: StandIn, baseline: Baseline, what: str, status: int
) -> None:
    out, _ = baseline.seed(tmp_path)
    pipelines = {
        "crawler.enrich.pipeline.EnrichmentPipeline": 100,
        f"{__name__}.BreakOneRecord": 500,
        "crawler.record.pipeline.RecordPipeline": 900,
    }
    settings = FAST | {"ITEM_PIPELINES": json.dumps(pipelines), "BREAK_RECORD": what}
    done = crawl(out, urls_of(server), "-a", "refresh=all", settings=settings)
    assert done.returncode == status, done.log[-3000:]
    assert_no_traceback(done.log)
    report = run_report(out)
    assert report["exit_status"] == status
    where = f"crawler/samples/{SAMPLES[0].name}:"
    if what == "rank":  # dropped, and the snapshot that lost it does not replace the last one
        assert "BUG: 1 records broke the schema and were dropped" in done.log
        (drop,) = [e for e in done.log.splitlines() if "record breaks the schema" in e]
        assert where in drop and "rank: -1 is less than the minimum of 0" in drop
        assert out.read_bytes() == baseline.raw and report["snapshot_replaced"] is False
        assert report["stats"]["records/invalid"] == 1
    else:  # kept, its block replaced by an error saying why
        assert len(done.records) == ALL_RECORDS and report["snapshot_replaced"] is True
        (broken,) = [r for r in done.records if r["arxiv"]["status"] == "error"]
        assert broken["rank"] == 3 and broken["post"]["source"] == SAMPLES[0].name
        assert broken["arxiv"]["error"].startswith("answer broke the output schema: ")
        assert report["incomplete_services"] == {"arxiv": 1}


# === 4. operator slips never replace a snapshot =================================================
@pytest.mark.parametrize(
    ("args", "settings", "message"),
    [
        (("-a", "sorce=x"), {}, r"unknown spider argument 'sorce'"),
        (("-a", "refreshh=all"), {}, r"unknown spider argument 'refreshh'"),
        (("-a", "source="), {}, r"source='' names no file, folder, pattern or URL"),
        (("-a", "source=,,,"), {}, r"source=',,,' names no file, folder, pattern or URL"),
        ((), {"ARXIV_DELAY": "nan"}, r"^error: ARXIV_DELAY must be a finite number, not 'nan'$"),
        ((), {"ARXIV_DELAY": "inf"}, r"^error: ARXIV_DELAY must be a finite number, not 'inf'$"),
        ((), {"OEMBED_DELAY": "inf"}, r"^error: OEMBED_DELAY must be a finite number"),
        ((), {"ARXIV_BATCH_WAIT": "nan"}, r"^error: ARXIV_BATCH_WAIT must be a finite number"),
    ],
    ids=[
        "sorce",
        "refreshh",
        "source-empty",
        "source-commas",
        "delay-nan",
        "delay-inf",
        "oembed-delay-inf",
        "batch-wait-nan",
    ],
)
def test_operator_slips_are_refused_before_anything_starts(
    tmp_path: Path,
    server: StandIn,
    baseline: Baseline,
    args: tuple[str, ...],
    settings: dict[str, object],
    message: str,
) -> None:
    out, _ = baseline.seed(tmp_path)
    before = tree(tmp_path)
    done = crawl(out, urls_of(server), *args, settings=FAST | settings)
    assert_refused(done, 1, message)
    assert tree(tmp_path) == before  # not even a lock file or a run report
    assert server.log == []


# === 8. state errors are one line naming STATE_DB ===============================================
def assert_state_refused(done: Crawl, state: Path, out: Path, before: bytes) -> None:
    assert_refused(done, 1, rf"^error: STATE_DB {re.escape(str(state))} ")
    assert out.read_bytes() == before


def test_state_db_that_is_a_folder(tmp_path: Path, baseline: Baseline) -> None:
    out, state = baseline.seed(tmp_path)
    state.unlink()
    state.mkdir()
    done = crawl(out, None, state=state)
    assert_state_refused(done, state, out, baseline.raw)
    assert "is a folder" in done.log


def test_state_db_on_a_read_only_filesystem(tmp_path: Path, baseline: Baseline) -> None:
    out, _ = baseline.seed(tmp_path / "out")
    with tmpfs(tmp_path / "ro", size="4m") as folder:
        shutil.copy(tmp_path / "out" / "state.sqlite3", folder / "state.sqlite3")
        remount_read_only(folder)
        for state in (folder / "state.sqlite3", folder / "new.sqlite3"):
            done = crawl(out, None, state=state)
            assert_state_refused(done, state, out, baseline.raw)


def test_state_db_on_a_full_filesystem(tmp_path: Path, server: StandIn) -> None:
    out = tmp_path / "out" / "snapshot.jsonl"
    out.parent.mkdir()
    out.write_bytes(b'{"schema_version": 2, "post": {}, "rank": 1, "previous": true}\n')
    with tmpfs(tmp_path / "full", size="1m") as folder:
        state = folder / "state.sqlite3"
        fill(folder)  # no room to create the database: refused before the crawl
        done = crawl(out, urls_of(server), settings=FAST, state=state)
        assert_state_refused(
            done, state, out, b'{"schema_version": 2, "post": {}, "rank": 1, "previous": true}\n'
        )
        assert server.log == []
        (folder / "filler").unlink()
        fill(folder, leave=160 * 1024)  # room to open it, not for a crawl's values
        done = crawl(out, urls_of(server), settings=FAST, state=state)
    assert done.returncode == 1, done.log[-3000:]
    assert_no_traceback(done.log)
    (error,) = error_lines(done.log)
    assert f"STATE_DB {state} cannot be written: database or disk is full" in error
    assert out.read_bytes() == b'{"schema_version": 2, "post": {}, "rank": 1, "previous": true}\n'
    report = run_report(out)
    assert report["exit_status"] == 1 and report["snapshot_replaced"] is False
    assert report["problems"] == [f"STATE_DB {state} cannot be written: database or disk is full"]


def test_a_truncated_state_db(tmp_path: Path, baseline: Baseline) -> None:
    out, state = baseline.seed(tmp_path)
    with state.open("r+b") as f:
        f.truncate(len(baseline.state) // 2)
    done = crawl(out, None, state=state)
    assert_state_refused(done, state, out, baseline.raw)


def test_a_state_db_locked_by_another_program(tmp_path: Path, baseline: Baseline) -> None:
    out, state = baseline.seed(tmp_path)
    holder = sqlite3.connect(state, isolation_level=None)
    try:
        holder.execute("PRAGMA locking_mode=EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        done = crawl(out, None, state=state)
    finally:
        holder.close()
    assert_state_refused(done, state, out, baseline.raw)
    assert "locked" in done.log


# === 3. an empty digest is a warning, counts as read ===========================================
EMPTY_DIGEST = """---
title: Hot Papers 2021-07-02
date: 2021-07-03T08:00:00.Z
slug: "hot-papers-2021-07-02"
tags: [arXiv]
---

Nothing was hot today.
"""


def test_an_empty_digest_is_a_warning_and_counts_as_read(tmp_path: Path, server: StandIn) -> None:
    folder = tmp_path / "digests"
    folder.mkdir()
    shutil.copy(SAMPLES[1], folder / SAMPLES[1].name)
    (folder / "quiet-day.md").write_text(EMPTY_DIGEST)
    out = tmp_path / "out" / "snapshot.jsonl"
    done = crawl(out, urls_of(server), "-a", f"source={folder}", settings=FAST)
    warnings = [line for line in done.log.splitlines() if "] WARNING: " in line]
    assert any("quiet-day.md" in line for line in warnings), warnings
    assert_complete(done, out, records=16)
    stats = run_report(out)["stats"]
    assert (stats["digests/read"], stats["digests/empty"]) == (2, 1)
    assert "digests/unreadable" not in stats


# === 5. one run at a time per state and snapshot ================================================
def _holder(lock: Path) -> dict[str, Any] | None:
    try:
        return json.loads(lock.read_text()) or None
    except (OSError, ValueError):
        return None


def _feed_temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob(".snapshot.jsonl.*.tmp"))


def _hold_from(service: str, nth: int, release: threading.Event) -> Hook:
    """A hook that keeps the ``nth`` and later requests of ``service`` waiting for ``release``."""

    def hook(up: Upstream, handler: Any, svc: str, params: dict[str, list[str]]) -> Any:
        if svc == service and len(up.requests_for(service)) >= nth:
            release.wait(SAFETY * 2)
        return None

    return hook


def test_a_second_run_on_the_same_state_or_snapshot_is_refused(
    tmp_path: Path, server: StandIn, baseline: Baseline
) -> None:
    out, state = baseline.seed(tmp_path)
    release = threading.Event()
    # The first run writes records of the first arXiv batch, then waits for the second.
    with Upstream(server, hook=_hold_from("arxiv", 2, release)) as up:
        # the first run's own dataset folder
        shared: dict[str, object] = {"DATASET_DIR": str(tmp_path / "snapshot.dataset")}
        first = start_crawl(
            out, urls_of(up), "-a", "refresh=arxiv", settings=FAST | shared, state=state
        )
        try:
            holder = wait_for(lambda: _holder(tmp_path / ".snapshot.jsonl.lock"), "the lock")
            wait_for(lambda: len(up.requests_for("arxiv")) == 2, "the second arXiv request")
            temp = wait_for(lambda: _feed_temp_files(tmp_path), "the first run's feed file")
            assert holder["pid"] == first.proc.pid
            names = ("snapshot.jsonl", "state.sqlite3", "state.sqlite3-wal")
            files = {name: (tmp_path / name).read_bytes() for name in names}
            other = tmp_path / "other"
            for second_out, second_state, second_settings in (
                (out, state, FAST),
                (other / "o.jsonl", state, FAST),
                (out, other / "s.sqlite3", FAST),
                (other / "o.jsonl", other / "s.sqlite3", FAST | shared),
            ):
                done = crawl(second_out, urls_of(up), settings=second_settings, state=second_state)
                assert done.returncode == 1, done.log[-3000:]
                (line,) = error_lines(done.log)
                assert "is in use by another run" in line and line.endswith("; not starting")
                assert f"(pid {first.proc.pid}, started {holder['started_at']})" in line
                assert "Spider opened" not in done.log
            assert _feed_temp_files(tmp_path) == temp  # the first run's file survived
            assert {name: (tmp_path / name).read_bytes() for name in names} == files
            assert not (other / "o.jsonl").exists()  # (its own new STATE_DB was checked)
            assert len(up.requests_for("arxiv")) == 2 and up.requests_for("oembed") == []
            assert first.proc.poll() is None
        finally:
            release.set()
        done = first.wait()
    assert_complete(done, out)
    assert_same_values(done.records, baseline.records)  # values refetched: new times


def test_the_run_lock_on_a_full_or_read_only_filesystem(tmp_path: Path) -> None:
    # In-process: a crawl's pre-flight check refuses a full or read-only output folder before
    # the lock is taken, so these paths of the lock itself are not reachable end to end.
    from crawler.runlock import RunLock, RunLocked

    with tmpfs(tmp_path / "full") as folder:
        fill(folder)
        target = folder / "snapshot.jsonl"
        busy = r"is in use by another run \(holder unknown\)"
        # No room to note who holds it: the lock holds all the same.
        with RunLock([target]), pytest.raises(RunLocked, match=busy):
            RunLock([target]).acquire()
    with tmpfs(tmp_path / "ro") as folder:
        remount_read_only(folder)
        with pytest.raises(RunLocked) as refused:
            RunLock([folder / "snapshot.jsonl"]).acquire()
        assert str(refused.value) == (
            f"cannot take the run lock {folder}/.snapshot.jsonl.lock: Read-only file system"
        )


# === 6. the change feed survives kill -9 ========================================================
def _pending_changes(state: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{state}?mode=ro", uri=True)) as db:
        try:
            return int(db.execute("SELECT COUNT(*) FROM changes").fetchone()[0])
        except sqlite3.OperationalError:  # busy for a moment
            return 0


def _version_changes(out: Path) -> dict[str, list[dict[str, Any]]]:
    """arXiv version changes found in every change file beside ``out``, by paper."""
    found: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(out.with_name(f"{out.stem}.changes").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            for change in json.loads(line)["changes"]:
                if change["what"] == "arxiv" and "version" in change["fields"]:
                    found.setdefault(change["key"], []).append(change["fields"]["version"])
    return found


def test_the_change_feed_survives_kill_9_and_a_stopped_run_writes_none(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    cat = copy_catalogue(catalogue)
    out, state = tmp_path / "snapshot.jsonl", tmp_path / "state.sqlite3"
    changes = tmp_path / "snapshot.changes"
    settings = FAST | {"ARXIV_BATCH_SIZE": 10}
    with StandIn(cat) as server:
        first = crawl(out, urls_of(server), settings=FAST)
        assert_complete(first, out)
        bumped = sorted(cat.papers)[::2]
        for paper_id in bumped:  # the catalogue changes: a new version of half the papers
            paper = cat.papers[paper_id]
            cat.papers[paper_id] = dataclasses.replace(
                paper, latest_version=paper.latest_version + 1
            )
        # Killed (SIGKILL) once its first arXiv batch with a change is stored.
        killed = start_crawl(out, urls_of(server), "-a", "refresh=arxiv", settings=settings)
        try:
            wait_for(lambda: _pending_changes(state), "a stored version change")
        finally:
            killed.proc.send_signal(signal.SIGKILL)
            killed.proc.wait()
        assert killed.proc.returncode == -signal.SIGKILL
        after_kill = _pending_changes(state)
        assert 0 < after_kill < len(bumped)  # killed mid-run, some changes stored
        assert out.read_bytes() == first.raw and not changes.exists()
        # Stopped (SIGINT) once it stored more: no change file for a snapshot it did not write.
        stopped = start_crawl(out, urls_of(server), "-a", "refresh=arxiv", settings=settings)
        try:
            wait_for(lambda: _pending_changes(state) > after_kill, "more stored changes")
            stopped.proc.send_signal(signal.SIGINT)
            stop = stopped.wait(SAFETY)
        finally:
            stopped.kill()
        assert stop.returncode == 1
        assert out.read_bytes() == first.raw and not changes.exists()
        assert run_report(out)["changes_file"] is None
        assert _pending_changes(state) < len(bumped)  # stopped mid-run
        # A complete run carries every change, including those the earlier runs stored.
        last = crawl(out, urls_of(server), "-a", "refresh=arxiv", settings=settings)
    assert_complete(last, out)
    versions = _version_changes(out)
    assert sorted(versions) == bumped  # every version change, none lost
    for paper_id, seen in versions.items():
        old = catalogue.papers[paper_id].latest_version
        assert seen == [{"before": old, "after": old + 1}]  # once, in one change file
    assert len(list(changes.iterdir())) == 1
    assert _pending_changes(state) == 0
    report = run_report(out)
    assert report["changes_file"] and report["changed_records"] >= len(bumped)


# === 7. stops are prompt ========================================================================
STOP_SAFETY = 60.0  # seconds: a safety net for a stop to end, never a measured bound
STOP_SECONDS: dict[str, float] = {}  # how long each stop took, for the report (not asserted)


def _slow_digest(folder: Path) -> Path:
    """A digest that takes a long time to parse (many entries with long abstracts)."""
    entry = (
        "# {n}. Paper {n}\n\nAda Lovelace\n\n- retweets: 1, favorites: 1 (07/01/2021 08:00:00)\n\n"
        "- links: [abs](https://arxiv.org/abs/2107.{n:05d}) | [pdf](https://arxiv.org/pdf/2107.{n:05d})\n\n"
        + "Caf\u00c3\u00a9 na\u00c3\u00afve \u00e2\u20ac\u0153quoted\u00e2\u20ac\u009d text. " * 120
        + "\n\n"
    )
    path = folder / "slow.md"
    with path.open("w", encoding="utf-8") as f:
        f.write("---\ntitle: Slow\ndate: 2021-07-01T00:00:00.Z\nslug: slow\n---\n\n")
        for n in range(1, 8001):  # ~44 MB: parsing takes minutes, far past STOP_SAFETY
            f.write(entry.format(n=n))
    return path


def _stop_promptly(running: Running, signum: int, name: str) -> Crawl:
    started = time.monotonic()
    running.proc.send_signal(signum)
    try:
        done = running.wait(STOP_SAFETY)  # a safety net, not a bound
    finally:
        running.kill()
    STOP_SECONDS[name] = round(time.monotonic() - started, 2)
    print(f"\n{name}: stopped {STOP_SECONDS[name]} s after one signal")
    return done


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _answered(up: Upstream, service: str) -> bool:
    seen = up.requests_for(service)
    return bool(seen) and all(not math.isnan(s.end) for s in seen)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("waiting_on", ["retry-after", "slow-answer", "locked-state", "parsing"])
def test_a_stop_is_prompt_whatever_the_run_waits_on(
    tmp_path: Path, server: StandIn, baseline: Baseline, signum: int, waiting_on: str
) -> None:
    out, state = baseline.seed(tmp_path / "out")
    held = {"arxiv": threading.Event(), "oembed": threading.Event()}
    args: list[str] = ["-a", "refresh=all"]
    settings: dict[str, object] = dict(FAST)
    with contextlib.ExitStack() as stack:
        up = stack.enter_context(Upstream(server))
        urls = urls_of(up)
        if waiting_on == "retry-after":
            urls = urls_of(server)
            server.faults.add(Fault("status:503", service="arxiv", times=1000, retry_after=300))
        elif waiting_on == "slow-answer":
            up.hold = {"arxiv": held["arxiv"]}
        elif waiting_on == "locked-state":
            up.hold = held
        else:
            digests = tmp_path / "digests"
            digests.mkdir()
            args = ["-a", f"source={_slow_digest(digests)}"]
            settings["DOWNLOAD_MAXSIZE"] = 128 * 1024 * 1024
        running = start_crawl(out, urls, *args, settings=settings, state=state)
        stack.callback(running.kill)
        if waiting_on == "retry-after":
            wait_for(
                lambda: "arxiv: waiting 300 s before the next try" in running.log(),
                "the long Retry-After wait",
            )
        elif waiting_on == "slow-answer":
            wait_for(lambda: up.requests_for("arxiv"), "the arXiv request")
        elif waiting_on == "locked-state":
            wait_for(lambda: up.requests_for("arxiv") and up.requests_for("oembed"), "requests")
            locker = sqlite3.connect(state, isolation_level=None, timeout=SAFETY)
            stack.callback(locker.close)
            locker.execute("BEGIN EXCLUSIVE")  # another program holds the database
            for event in held.values():
                event.set()  # answers arrive; storing them now waits on the lock
            wait_for(lambda: _answered(up, "arxiv") and _answered(up, "oembed"), "answers")
        else:
            wait_for(lambda: "Spider opened" in running.log(), "the crawl")
            cpu = _cpu_seconds(running.proc.pid)
            wait_for(lambda: _cpu_seconds(running.proc.pid) > cpu + 2, "parsing under way")
        done = _stop_promptly(running, signum, f"{waiting_on}/{signal.Signals(signum).name}")
    assert done.returncode == 1, done.log[-3000:]
    assert out.read_bytes() == baseline.raw
    assert_no_traceback(done.log)
    report = run_report(out)
    assert report["exit_status"] == 1 and report["snapshot_replaced"] is False
    if waiting_on == "locked-state":
        state_errors = [line for line in error_lines(done.log) if "STATE_DB" in line]
        assert len(state_errors) <= 1, state_errors  # one line, if it came to that
