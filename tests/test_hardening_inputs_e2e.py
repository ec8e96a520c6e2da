"""Issue 19 (items 2, 7, 8) end to end: source expansion that never ends or never hears a stop,
and input lost under exit 0. Real ``scrapy crawl`` processes, real files, real signals."""

from __future__ import annotations

import base64
import contextlib
import http.server
import os
import re
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLES, run_crawl
from tests.standin import StandIn
from tests.test_invariants import (
    STOP_SAFETY,
    assert_no_traceback,
    error_lines,
    run_report,
    start_crawl,
    wait_for,
)

pytestmark = pytest.mark.e2e
FAST: dict[str, object] = {"ARXIV_DELAY": 0.2, "S2_DELAY": 0.2, "RETRY_BACKOFF_BASE": 0.05}
TWEET = "https://twitter.com/anh_ng8/status/1345396247016976390"


def _entries(path: Path) -> int:
    return len(re.findall(r"^# \d+\.", path.read_text(encoding="utf-8"), re.M))


def test_a_symlink_loop_folder_ends_by_itself_with_every_digest(
    tmp_path: Path, standin: StandIn
) -> None:
    """``a -> .`` and ``b -> .`` made ``**`` expand for ever on the reactor thread."""
    posts = tmp_path / "posts"
    (posts / "2021").mkdir(parents=True)
    (posts / "one.md").write_bytes(SAMPLES[0].read_bytes())
    (posts / "2021" / "two.md").write_bytes(SAMPLES[1].read_bytes())
    (posts / "a").symlink_to(".")
    (posts / "b").symlink_to(".")
    out = tmp_path / "out" / "digests.jsonl"
    out.parent.mkdir()
    done = run_crawl(out, standin, "-a", f"source={posts}/**/*.md", settings=FAST, timeout=120)
    assert done.returncode == 0, done.log[-3000:]
    sources = sorted({r["post"]["source"] for r in done.records})
    assert sources == ["2021/two.md", "one.md"]  # below the pattern's leading folder
    assert len(done.records) == _entries(SAMPLES[0]) + _entries(SAMPLES[1])


HUNG_MOUNT = '''
import os, pathlib
_scandir = os.scandir
def scandir(path="."):
    """A folder on a hung network mount: listing it blocks until someone writes the FIFO."""
    if "hung-mount" in os.fsdecode(os.fspath(path)):
        here = pathlib.Path(os.environ["HUNG_MOUNT_FIFO"])
        here.with_suffix(".entered").touch()
        open(here, "rb").close()
    return _scandir(path)
os.scandir = scandir
'''


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_is_heard_while_the_sources_are_being_expanded(tmp_path: Path, signum: int) -> None:
    """Expansion ran on the reactor thread: a listing that blocks held every signal off."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HUNG_MOUNT)
    fifo = tmp_path / "mount.fifo"
    os.mkfifo(fifo)
    (tmp_path / "hung-mount").mkdir()
    out = tmp_path / "out" / "digests.jsonl"
    out.parent.mkdir()
    env = {"PYTHONPATH": f"{hook}{os.pathsep}{ROOT}", "HUNG_MOUNT_FIFO": str(fifo)}
    source = f"source={tmp_path}/hung-mount/**/*.md"
    running = start_crawl(out, None, "-a", source, env=env)
    try:
        wait_for(lambda: fifo.with_suffix(".entered").exists(), "the expansion to block")
        running.proc.send_signal(signum)
        done = running.wait(STOP_SAFETY)  # a safety net, not a bound
    finally:
        running.kill()
    assert done.returncode == 1, done.log[-3000:]
    assert "Spider closed (shutdown)" in done.log
    assert_no_traceback(done.log)
    report = run_report(out)
    assert (report["exit_status"], report["snapshot_replaced"]) == (1, False)


def _write(folder: Path, text: str, name: str = "digest.md") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.mark.parametrize("case", ["i-web-link", "entry-cap", "dangling-link", "long-status-id"])
def test_lost_input_is_an_exit_status_and_kept_input_is_not(
    tmp_path: Path, standin: StandIn, case: str
) -> None:
    """A tweet linked as i/web/status was dropped; entries past MAX_ENTRIES_PER_DIGEST, a
    dangling digest link and a cut status ID were lost under exit 0."""
    sample = SAMPLES[0].read_text(encoding="utf-8")
    assert TWEET in sample
    posts = tmp_path / "posts"
    settings = dict(FAST)
    if case == "i-web-link":
        _write(posts, sample.replace(TWEET, "https://twitter.com/i/web/status/1345396247016976390"))
    elif case == "entry-cap":
        _write(posts, sample)
        settings["MAX_ENTRIES_PER_DIGEST"] = 5
    elif case == "dangling-link":
        _write(posts, sample)
        (posts / "gone.md").symlink_to(tmp_path / "moved-away.md")
    else:
        _write(posts, sample.replace(TWEET, TWEET + "123"))
    out = tmp_path / "out" / "digests.jsonl"
    out.parent.mkdir()
    done = run_crawl(out, standin, "-a", f"source={posts}", settings=settings)
    assert_no_traceback(done.log)
    errors = error_lines(done.log)
    tweets = {t["id"]: t for r in done.records for t in r["tweets"]}
    if case == "i-web-link":
        assert done.returncode == 0, errors
        tweet = tweets["1345396247016976390"]
        assert tweet["url"] == "https://twitter.com/i/web/status/1345396247016976390"
        assert (tweet["author_handle"], tweet["embed"]["status"]) == ("anh_ng8", "ok")
        return
    assert done.returncode == 2, done.log[-3000:]
    assert run_report(out)["exit_status"] == 2
    if case == "entry-cap":
        assert len(done.records) == 5
        assert any("skipped (MAX_ENTRIES_PER_DIGEST)" in line for line in errors), errors
    elif case == "dangling-link":
        assert len(done.records) == _entries(SAMPLES[0])
        assert any(f"source {posts}/gone.md: dangling symbolic link" in line for line in errors), (
            errors
        )
    else:
        assert "1345396247016976390" not in tweets and "13453962470169763901" not in tweets
        assert any(
            re.search(r"digest\.md:\d+: entry \d+: status link ID 1345396247016976390123 is not", x)
            for x in errors
        ), errors


@contextlib.contextmanager
def _digest_server(body: bytes) -> Iterator[tuple[str, list[str | None]]]:
    """Serves ``body`` on 127.0.0.1; yields its host:port and every Authorization it got."""
    seen: list[str | None] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.send_header("Content-Type", "text/markdown; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_source_url_password_is_sent_but_never_shown(tmp_path: Path, standin: StandIn) -> None:
    """``https://user:secret@host/x.md`` put the password in the error line (and in Scrapy's
    own request lines and the records' post.source)."""
    out = tmp_path / "out" / "digests.jsonl"
    out.parent.mkdir()
    with _digest_server(SAMPLES[0].read_bytes()) as (host, seen):
        good = f"http://reader:s3cr3t-pw@{host}/hot-papers.md"
        missing = "http://reader:s3cr3t-pw@127.0.0.1:9/gone.md"  # discard port: refused
        done = run_crawl(
            out, standin, "-a", f"source={good},{missing}", settings=FAST | {"LOG_LEVEL": "DEBUG"}
        )
    assert done.returncode == 2, done.log[-3000:]
    assert seen == ["Basic " + base64.b64encode(b"reader:s3cr3t-pw").decode()]
    assert {r["post"]["source"] for r in done.records} == {f"http://{host}/hot-papers.md"}
    assert any("http://127.0.0.1:9/gone.md: cannot read" in x for x in error_lines(done.log))
    written = [done.log, out.with_name("digests.run.json").read_text(), done.raw.decode()]
    written += [p.read_text() for p in out.parent.glob("digests.changes/*")]
    assert not [text for text in written if "s3cr3t" in text]
