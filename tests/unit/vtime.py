"""An event loop on virtual time: the clock jumps to the next timer whenever nothing can run.

Every wait in the code under test (``asyncio.sleep``, ``asyncio.wait_for``, ``call_later``) runs
on the loop's timers, so a test of a 60 s backoff takes no real time, and what it asserts is the
loop's clock (``loop.time()``): exact, whatever the machine's load. Components that read a clock
themselves offer a seam (``clock``) that tests point at ``loop.time``.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

# Only for threads (asyncio.to_thread) finishing while the loop has nothing else to do: their
# results arrive through the loop's self-pipe. Not a limit on what is tested, a hang guard.
THREAD_WAIT = 5.0


class Deadlock(RuntimeError):
    """Nothing can run and nothing is scheduled: the scenario would wait forever."""


class _VirtualSelector(selectors.DefaultSelector):
    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        ready: list[tuple[Any, int]] = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            ready = super().select(THREAD_WAIT)
            if not ready:
                raise Deadlock("every task waits and no timer is scheduled")
            return ready
        self._loop.advance(timeout)
        return ready


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self._now = 0.0
        super().__init__(_VirtualSelector(self))

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on a fresh virtual-time loop (starting at 0.0)."""
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(main)


async def ticks(n: int = 10) -> None:
    """Let every task that can run, run (no virtual time passes)."""
    for _ in range(n):
        await asyncio.sleep(0)
