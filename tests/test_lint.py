"""The code base stays ruff-clean and type-checks: run here so the test command enforces both."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.e2e  # subprocesses; mypy needs seconds even with its cache


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[test]'")
    return path


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)


def test_ruff_is_clean() -> None:
    ruff = _tool("ruff")
    result = _run(ruff, "check", "crawler", "spiders", "tests", "benchmarks")
    assert result.returncode == 0, result.stdout + result.stderr
    result = _run(ruff, "format", "--check", "crawler", "spiders", "tests", "benchmarks")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean() -> None:
    """Files and options come from ``[tool.mypy]`` in pyproject.toml."""
    result = _run(_tool("mypy"))
    assert result.returncode == 0, result.stdout + result.stderr
