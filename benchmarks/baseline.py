"""The code a benchmark runs: this checkout, or a baseline revision beside it (issue 21).

``--baseline REV`` measures the same row against REV in the same command, so a table shows
before | after from one machine at one load. REV is exported with ``git archive`` into a folder
of ``--work`` (kept there and reused; nothing is written to the repository, no worktree to
prune), and run by a venv of its own: ``python -m venv --without-pip`` whose ``.pth`` puts the
baseline's checkout first and then this venv's site-packages (the same third-party versions,
no network needed; this venv's editable install of the new code is not on that path). Each
side's ``crawler`` is checked before anything is measured.
"""

from __future__ import annotations

import io
import shutil
import site
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from benchmarks.model import ROOT


@dataclass(frozen=True)
class Code:
    """One side of a comparison: which revision, where its checkout is, which interpreter."""

    label: str  # "after" (this checkout) or "before" (the baseline)
    rev: str  # the commit, "+dirty" when the working tree differs from it
    root: Path
    python: str


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def current() -> Code:
    """This checkout as it is on disk."""
    rev = _git("rev-parse", "--short=12", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return Code("after", rev + ("+dirty" if dirty else ""), ROOT, sys.executable)


def _export(sha: str, root: Path) -> None:
    """``git archive`` of ``sha`` into ``root``; a marker file says the export finished."""
    if (root / ".exported").exists():
        return
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    data = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", sha], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(root, filter="data")
    (root / ".exported").write_text(sha + "\n")


def _venv(root: Path, venv: Path) -> str:
    """A venv whose path is the baseline's checkout, then this venv's third-party packages."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    ours = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (Path(purelib) / "baseline.pth").write_text("\n".join([str(root), *ours]) + "\n")
    return str(python)


def checkout(rev: str, work: Path) -> Code:
    """REV exported into ``work`` with its venv (both reused by a later run with ``--work``)."""
    sha = _git("rev-parse", "--verify", f"{rev}^{{commit}}")
    root = work / f"baseline-{sha[:12]}"
    _export(sha, root)
    python = _venv(root, work / f"baseline-venv-{sha[:12]}")
    return Code("before", sha[:12], root, python)


def check(code: Code, env: dict[str, str]) -> None:
    """Refuse to measure a side that would import the other side's ``crawler``."""
    where = subprocess.run(
        [code.python, "-c", "import crawler; print(crawler.__file__)"],
        cwd=code.root,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not Path(where).resolve().is_relative_to(code.root.resolve()):
        raise SystemExit(f"{code.label} ({code.rev}) imports crawler from {where}, not {code.root}")
