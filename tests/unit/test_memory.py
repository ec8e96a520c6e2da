"""The crawl's process caps glibc's malloc arenas before any thread starts (issue 21)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from crawler.commands.crawl import M_ARENA_MAX, limit_malloc_arenas
from tests.conftest import ROOT


class _Libc:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return 1


def test_the_arena_cap_is_asked_of_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    libc = _Libc()
    assert limit_malloc_arenas(1, libc) is True
    assert libc.calls == [(M_ARENA_MAX, 1)] == [(-8, 1)]


@pytest.mark.parametrize(("arenas", "env"), [(0, None), (1, "4")])
def test_zero_or_the_environment_leaves_glibc_alone(
    monkeypatch: pytest.MonkeyPatch, arenas: int, env: str | None
) -> None:
    if env is None:
        monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    else:
        monkeypatch.setenv("MALLOC_ARENA_MAX", env)
    libc = _Libc()
    assert limit_malloc_arenas(arenas, libc) is False
    assert libc.calls == []


def test_without_mallopt_nothing_happens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert limit_malloc_arenas(1, object()) is False


def test_a_crawl_command_applies_the_setting() -> None:
    """Through Scrapy's own command line: the setting reaches glibc (here, glibc is real)."""
    probe = (
        "import sys\n"
        "from crawler.commands import crawl\n"
        "seen = []\n"
        "crawl.limit_malloc_arenas = lambda n, libc=None: seen.append(n)\n"
        "from scrapy.cmdline import execute\n"
        "try:\n"
        "    execute(['scrapy', 'crawl', 'nosuchspider', '-s', 'MALLOC_ARENA_MAX=3'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(seen)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    assert done.stdout.strip().splitlines()[-1] == "[3]", done.stderr[-2000:]


_CONSOLES = (
    "import sys\n"
    "from scrapy.utils.reactor import install_reactor\n"
    "install_reactor('twisted.internet.asyncioreactor.AsyncioSelectorReactor')\n"
    "from scrapy.utils.test import get_crawler\n"
    "from scrapy.utils.project import get_project_settings\n"
    "from crawler.consoles import RemoteControl\n"
    "on = sys.argv[1] == 'on'\n"
    "settings = get_project_settings().copy_to_dict() | {'REMOTE_CONTROL_ENABLED': on}\n"
    "crawler = get_crawler(settings_dict=settings)\n"
    "print(sorted(type(x).__module__ for x in crawler.extensions.middlewares\n"
    "             if 'console' in type(x).__module__ or 'remote' in type(x).__module__),\n"
    "      'aiohttp' in sys.modules)\n"
)


@pytest.mark.parametrize(
    ("switch", "expected"),
    [("off", "[] False"), ("on", "['scrapy.extensions.remote_control'] True")],
)
def test_the_remote_control_console_is_imported_only_when_it_is_on(
    tmp_path: Path, switch: str, expected: str
) -> None:
    """The crawl's extensions as Scrapy builds them from the project's settings."""
    env = {**os.environ, "SCRAPY_SETTINGS_MODULE": "crawler.settings", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _CONSOLES, switch],
        capture_output=True, text=True, check=False, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.stdout.strip().splitlines()[-1] == expected, done.stderr[-2000:]


def test_no_console_listens_in_a_crawl_by_default() -> None:
    from scrapy.utils.project import get_project_settings

    settings = get_project_settings()
    assert settings.getbool("REMOTE_CONTROL_ENABLED") is False
    assert settings.getbool("TELNETCONSOLE_ENABLED") is False
    extensions = settings.getwithbase("EXTENSIONS")
    assert "scrapy.extensions.remote_control.RemoteControl" not in extensions
    assert extensions["crawler.consoles.RemoteControl"] == 0
    assert extensions["scrapy.extensions.telnet.TelnetConsole"] == 0  # its own switch


def test_a_local_digest_is_read_without_a_buffer_the_size_of_the_cap(tmp_path: Path) -> None:
    """``read(DOWNLOAD_MAXSIZE + 1)`` allocated 32 MiB before reading each digest (tracemalloc
    of a crawl: the largest block alive at start), four reads at a time."""
    import tracemalloc

    from crawler.downloader.handlers import read_capped

    digest = tmp_path / "d.md"
    digest.write_bytes(b"x" * 50_000)
    tracemalloc.start()
    try:
        assert read_capped(str(digest), 32 * 1024 * 1024) == b"x" * 50_000
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 200_000


def test_a_digest_that_grows_while_read_is_read_to_its_end_or_refused_at_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its size is taken when opened; what it grew by since is read on, up to the cap."""
    from crawler.downloader import handlers
    from crawler.sources import SourceRefused

    digest = tmp_path / "d.md"
    digest.write_bytes(b"0123456789abcdefghij")
    real = os.fstat
    monkeypatch.setattr(handlers, "check_local_source", lambda path, maxsize: None)
    monkeypatch.setattr(
        handlers.os, "fstat", lambda fd: os.stat_result((*real(fd)[:6], 5, *real(fd)[7:]))
    )
    assert handlers.read_capped(str(digest), 0) == b"0123456789abcdefghij"
    assert handlers.read_capped(str(digest), 20) == b"0123456789abcdefghij"
    with pytest.raises(SourceRefused, match=r"file grew over DOWNLOAD_MAXSIZE \(19 bytes\)"):
        handlers.read_capped(str(digest), 19)


def test_the_supervisor_of_the_steps_imports_no_url_or_network_library() -> None:
    """The process the crawl execs into runs under every step: w3lib.url, imported at the top
    of ``crawler.export.files`` for ``file:`` feeds, brought urllib.request, http.client and
    ssl into it and into each step (22.6 MB at import, 14.3 without)."""
    heavy = ("w3lib.url", "urllib.request", "http.client", "ssl", "scrapy", "twisted")
    code = (
        "import sys; import crawler.export.analysis; "
        f"print(','.join(m for m in {heavy!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == ""


def _handed_over(tmp_path: Path, rerun: object) -> Path:
    from crawler.export import analysis

    job = {
        "run_report": {"problems": [], "stats": {}},
        "exit_status": 0,
        "run_report_file": str(tmp_path / "digests.run.json"),
        "rerun": rerun,
    }
    folder = tmp_path / "job"
    folder.mkdir()
    analysis.write_job(folder, job)
    return folder


def test_the_supervisor_reads_the_rerun_key_material_only_once_the_steps_are_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # At 10,000 posts the digests read and their hashes are ~7 MB of objects: held by the
    # supervisor, they were under every step's peak.
    from crawler.export import analysis

    rerun = {"read": [[["file:///d/a.md", "/d/a.md", "a.md"], "0" * 64]], "state_db": "s"}
    folder = _handed_over(tmp_path, rerun)
    assert "rerun" not in json.loads((folder / "job.json").read_text("utf-8"))
    during: list[bool] = []

    def steps(folder: Path, job: dict[str, object], stops: object) -> None:
        during.append("rerun" in job)

    remembered: list[object] = []
    monkeypatch.setattr(analysis, "_steps", steps)
    monkeypatch.setattr(analysis, "_remember_rerun", remembered.append)
    assert analysis.supervise(folder) == 0
    assert (during, remembered) == ([False], [rerun])
    assert not folder.exists()
    report = json.loads((tmp_path / "digests.run.json").read_text("utf-8"))
    assert (report["dataset"], report["exit_status"]) == ("written", 0)


def test_rerun_key_material_that_cannot_be_read_only_means_the_next_run_crawls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crawler.export import analysis

    folder = _handed_over(tmp_path, {"read": []})
    (folder / "rerun.json").write_text('{"read": [', "utf-8")  # cut short
    remembered: list[object] = []
    monkeypatch.setattr(analysis, "_steps", lambda folder, job, stops: None)
    monkeypatch.setattr(analysis, "_remember_rerun", remembered.append)
    assert analysis.supervise(folder) == 0
    assert remembered == [None]
