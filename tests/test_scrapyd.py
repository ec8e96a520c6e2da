"""The Scrapyd path, for real: a Scrapyd on 127.0.0.1, `scrapyd-deploy`, `schedule.json`.

What docs/scheduling.md tells a user to do, done here against the local stand-in:

1. start Scrapyd (its own config file in a temp dir, a free port);
2. deploy with ``scrapyd-deploy local -p hot_papers`` from a copy of the project, whose
   ``[deploy:local]`` target is pointed at that port (scrapyd-deploy writes ``setup.py``,
   ``build/`` and ``*.egg-info`` where it runs, so it never runs in the working tree);
3. schedule crawls through the HTTP API and poll ``listjobs.json`` until they finish;
4. check the feed file, the stand-in's request log and the exit status Scrapyd logged.

Scrapyd runs spiders in its own working directory, so every path given to a job is absolute.
Missing Scrapyd packages fail the test instead of skipping it: `pip install -e '.[test]'`.
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from crawler.record import schema_errors
from tests.conftest import ROOT, SAMPLES
from tests.helpers import wait_until
from tests.standin import StandIn

pytestmark = pytest.mark.e2e  # a real Scrapyd, scrapyd-deploy and crawls

PROJECT = "hot_papers"
TARGET = "local"  # the scrapy.cfg target the docs use
START_TIMEOUT = 30.0
JOB_TIMEOUT = 120.0
# Left out of the copy that gets deployed: VCS data, caches, local output, build leftovers.
NOT_DEPLOYED = shutil.ignore_patterns(
    ".git", ".venv", "output", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
    ".ruff_cache", ".hypothesis", ".mypy_cache",
)  # fmt: skip


def _require(module: str, package: str) -> None:
    if find_spec(module) is None:
        pytest.fail(f"{package} is not installed, so the Scrapyd path cannot be tested: "
                    "pip install -e '.[test]'")  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Scrapyd:
    url: str  # ends with "/"
    home: Path  # its working directory: config, eggs, logs, dbs
    log: Path  # its own stdout/stderr (launcher lines, with each job's exit status)
    proc: subprocess.Popen[bytes]

    def get(self, endpoint: str, **params: str) -> dict[str, Any]:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(self.url + endpoint + query, timeout=10) as answer:
            data: dict[str, Any] = json.load(answer)
        return data

    def post(self, endpoint: str, fields: list[tuple[str, str]]) -> dict[str, Any]:
        body = urllib.parse.urlencode(fields).encode()
        with urllib.request.urlopen(self.url + endpoint, data=body, timeout=10) as answer:
            data: dict[str, Any] = json.load(answer)
        return data

    def daemon_log(self) -> str:
        return self.log.read_text("utf-8", "replace")

    def job_log(self, job: str, spider: str = "digests") -> str:
        path = self.home / "logs" / PROJECT / spider / f"{job}.log"
        return path.read_text("utf-8", "replace") if path.exists() else f"(no log at {path})"


@pytest.fixture(scope="module")
def scrapyd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scrapyd]:
    _require("scrapyd", "scrapyd")
    home = tmp_path_factory.mktemp("scrapyd")
    port = _free_port()
    # Scrapyd reads ./scrapyd.conf from its working directory (after /etc/scrapyd/...).
    (home / "scrapyd.conf").write_text(
        "[scrapyd]\n"
        "bind_address = 127.0.0.1\n"
        f"http_port = {port}\n"
        f"eggs_dir = {home / 'eggs'}\n"
        f"logs_dir = {home / 'logs'}\n"
        "items_dir =\n"  # else Scrapyd sets FEEDS itself and our DEFAULT_FEED is not used
        "jobs_dir =\n"
        f"dbs_dir = {home / 'dbs'}\n"
        "jobs_to_keep = 5\n"
        "finished_to_keep = 100\n"
        "max_proc = 2\n"
        "poll_interval = 0.2\n"  # default 5 s: fine in production, slow for a test
        "username =\n"
        "password =\n",
        encoding="utf-8",
    )
    log = home / "scrapyd.out"
    # Nothing from this test process leaks into the jobs: they must run the deployed egg.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCRAPY") and k != "PYTHONPATH"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "scrapyd"],
            cwd=home, stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    server = Scrapyd(f"http://127.0.0.1:{port}/", home, log, proc)

    def answering() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"Scrapyd exited with {proc.returncode}:\n{server.daemon_log()}")
        try:
            return bool(server.get("daemonstatus.json").get("status") == "ok")
        except OSError:
            return False

    try:
        wait_until(answering, "Scrapyd to answer", START_TIMEOUT, server.daemon_log)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def deployed(scrapyd: Scrapyd, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Deploy as the docs say; returns the version Scrapyd stored."""
    _require("scrapyd_client", "scrapyd-client")
    project = tmp_path_factory.mktemp("deploy") / "hot-papers"
    shutil.copytree(ROOT, project, ignore=NOT_DEPLOYED)
    cfg = configparser.ConfigParser()
    cfg.read(project / "scrapy.cfg", encoding="utf-8")
    section = f"deploy:{TARGET}"
    assert cfg.has_section(section), f"scrapy.cfg has no [{section}] target"
    assert cfg.get(section, "project") == PROJECT
    assert cfg.get("settings", "default") == "crawler.settings"
    cfg.set(section, "url", scrapyd.url)
    with (project / "scrapy.cfg").open("w", encoding="utf-8") as f:
        cfg.write(f)

    script = Path(sys.executable).parent / "scrapyd-deploy"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "scrapyd_client.deploy"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCRAPY")}
    proc = subprocess.run(
        [*cmd, TARGET, "-p", PROJECT],
        cwd=project, capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip
    output = f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, output
    # scrapyd-deploy exits 0 even when Scrapyd refuses the egg (for example when the egg cannot
    # list its spiders): the verdict is the JSON it prints.
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    assert answer["status"] == "ok", output
    assert answer["spiders"] == 1, output
    assert scrapyd.get("listprojects.json")["projects"] == [PROJECT]
    assert scrapyd.get("listspiders.json", project=PROJECT)["spiders"] == ["digests"]
    return str(answer["version"])


def schedule(
    scrapyd: Scrapyd,
    standin: StandIn,
    out: Path,
    *,
    args: dict[str, str] | None = None,
) -> str:
    """Schedule a crawl against the stand-in with its feed at ``out``; wait; return the job id."""
    settings = {
        **standin.settings,
        "ARXIV_DELAY": "0.1",
        "S2_DELAY": "0.1",
        "DEFAULT_FEED": str(out),
        "STATE_DB": str(out.parent / "state.sqlite3"),  # a fresh state: every ID is fetched
        "PROGRESS_INTERVAL": "0",
    }
    fields = [("project", PROJECT), ("spider", "digests")]
    fields += [("setting", f"{name}={value}") for name, value in settings.items()]
    fields += list((args or {}).items())
    answer = scrapyd.post("schedule.json", fields)
    assert answer["status"] == "ok", answer
    job = str(answer["jobid"])

    def finished() -> bool:
        jobs = scrapyd.get("listjobs.json", project=PROJECT)
        return any(j["id"] == job for j in jobs["finished"])

    wait_until(finished, f"job {job} to finish", JOB_TIMEOUT, lambda: scrapyd.job_log(job)[-4000:])
    return job


def exit_status(scrapyd: Scrapyd, job: str) -> int:
    """Scrapyd's API does not report it; its launcher logs `Process died: exitstatus=N`."""
    for line in scrapyd.daemon_log().splitlines():
        if f"job='{job}'" not in line:
            continue
        if "Process finished:" in line:
            return 0
        if "Process died: exitstatus=" in line:
            return int(line.split("exitstatus=", 1)[1].split()[0])
    pytest.fail(f"Scrapyd logged no end for job {job}:\n{scrapyd.daemon_log()[-4000:]}")


def read_records(out: Path, scrapyd: Scrapyd, job: str) -> list[dict[str, Any]]:
    assert out.exists(), f"no feed at {out}; job log:\n{scrapyd.job_log(job)[-4000:]}"
    return [json.loads(line) for line in out.read_bytes().splitlines()]


def check_crawl(records: list[dict[str, Any]], standin: StandIn, log: str) -> None:
    assert len(records) == 103, log[-4000:]
    statuses = Counter(r["arxiv"]["status"] for r in records)
    assert set(statuses) <= {"ok", "not_found"}, statuses
    assert statuses["not_found"] == len(standin.catalogue.absent)
    assert all(schema_errors(r) == [] for r in records)
    assert len(standin.requests_for("arxiv")) == 2  # 103 IDs, 100 per request
    assert "Traceback" not in log
    assert "ERROR" not in log


def test_deploy_then_schedule_over_http(
    scrapyd: Scrapyd, deployed: str, standin: StandIn, tmp_path: Path
) -> None:
    """The deployed egg crawls the digests named by the `source` spider argument."""
    out = tmp_path / "snapshot.jsonl"
    job = schedule(scrapyd, standin, out, args={"source": str(SAMPLES[0].parent)})
    log = scrapyd.job_log(job)
    assert exit_status(scrapyd, job) == 0, log[-4000:]
    records = read_records(out, scrapyd, job)
    check_crawl(records, standin, log)
    assert {r["post"]["source"] for r in records} == {p.name for p in SAMPLES}  # below the folder
    job_info = next(j for j in scrapyd.get("listjobs.json", project=PROJECT)["finished"]
                    if j["id"] == job)  # fmt: skip
    assert job_info["spider"] == "digests"
    assert job_info["items_url"] is None  # items_dir is off: records go only to our feed


def test_bundled_samples_from_the_egg(
    scrapyd: Scrapyd, deployed: str, standin: StandIn, tmp_path: Path
) -> None:
    """Without `source`, the crawl reads the five samples packaged inside the egg (a zip file)."""
    out = tmp_path / "snapshot.jsonl"
    job = schedule(scrapyd, standin, out)
    log = scrapyd.job_log(job)
    assert exit_status(scrapyd, job) == 0, log[-4000:]
    records = read_records(out, scrapyd, job)
    check_crawl(records, standin, log)
    names = {Path(r["post"]["source"]).name for r in records}
    assert names == {p.name for p in SAMPLES}


def test_exit_status_reaches_scrapyd_log(
    scrapyd: Scrapyd, deployed: str, standin: StandIn, tmp_path: Path
) -> None:
    """A source that cannot be read ends the job with status 2, which Scrapyd logs."""
    out = tmp_path / "snapshot.jsonl"
    job = schedule(scrapyd, standin, out, args={"source": str(tmp_path / "missing.md")})
    assert exit_status(scrapyd, job) == 2, scrapyd.job_log(job)[-4000:]
    assert standin.log == []
