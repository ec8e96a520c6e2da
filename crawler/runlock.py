"""One run at a time per state database and per snapshot.

Two overlapping runs (cron overlap, a manual run during a scheduled one) on the same
``STATE_DB`` or output would delete each other's temporary files and interleave their state
writes. Each run takes an exclusive ``flock`` on a lock file beside each of them; the kernel
drops it when the process ends, however it ends (kill -9 included), so a stale lock never blocks
the next run. The lock file says who holds it, for the message the second run prints.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType


class RunLocked(Exception):
    """Another run holds a lock this run needs; the message names it."""


def lock_path_for(path: Path) -> Path:
    """``output/digests.jsonl`` -> ``output/.digests.jsonl.lock``."""
    return path.with_name(f".{path.name}.lock")


class RunLock:
    def __init__(self, paths: list[Path]) -> None:
        # The folder resolved, not the name: a dataset's name is a link swapped every run.
        self.paths = sorted({lock_path_for(p.parent.resolve() / p.name) for p in paths})
        self._fds: list[int] = []

    def acquire(self) -> RunLock:
        try:
            for path in self.paths:
                self._fds.append(self._take(path))
        except BaseException:
            self.release()
            raise
        return self

    @staticmethod
    def _take(path: Path) -> int:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Never through a symlink, never into a file that is not a lock of ours: the lock
            # file is truncated and rewritten below.
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise RunLocked(f"cannot take the run lock {path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode("utf-8", "replace")
            os.close(fd)
            raise RunLocked(f"{path.name[1:-5]} is in use by another run ({_describe(holder)}); "
                            "not starting") from None  # fmt: skip
        if not _is_our_lock(fd):
            os.close(fd)
            raise RunLocked(f"{path} is not a run lock this crawler wrote; not starting")
        # Who holds it, for the second run's message. Not the command line: it may carry a key.
        me = {"pid": os.getpid(), "started_at": datetime.now(UTC).isoformat(timespec="seconds")}
        with contextlib.suppress(OSError):  # who holds it only informs; a full disk is fine
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(me).encode(), 0)
        return fd

    def held(self) -> list[int]:
        """The locks' descriptors: kept open across ``exec`` by the dataset step."""
        return list(self._fds)

    def release(self) -> None:
        while self._fds:
            fd = self._fds.pop()
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        self.release()


def _is_our_lock(fd: int) -> bool:
    """A regular file, empty or holding who held it (``{"pid": …, "started_at": …}``)."""
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        return False
    held = os.pread(fd, 4097, 0)
    if not held.strip():
        return True
    try:
        info = json.loads(held)
    except ValueError:
        return False
    return isinstance(info, dict) and set(info) == {"pid", "started_at"}


def _describe(holder: str) -> str:
    try:
        info = json.loads(holder)
        return f"pid {info['pid']}, started {info['started_at']}"
    except (ValueError, KeyError, TypeError):
        return "holder unknown"
