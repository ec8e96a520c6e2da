"""The crawl's process caps glibc's malloc arenas before any thread starts (issue 21)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from crawler.commands.crawl import M_ARENA_MAX, limit_malloc_arenas


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
