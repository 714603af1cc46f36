"""Virtual time for simulations and tests: an event loop whose clock jumps instead of waiting.

``run_virtual(main())`` runs a coroutine on an asyncio loop whose ``time()`` is virtual.
Whenever every task is waiting on a timer, the loop jumps straight to the earliest one, so
leases of 30 s lapse, timeouts fire and retries back off in microseconds of real time, in a
reproducible order. Pair it with :class:`LoopClock` so the field's clock is the loop's:

    async def main():
        clock = LoopClock()
        team = Team(agents, clock=clock)
        ...
    report = run_virtual(main())

Real I/O (sockets, subprocesses) still works: the loop polls it without blocking before it
jumps, and only jumps when nothing is ready. ``smesh eval`` runs its simulated suites on it;
tests import it as :mod:`smesh.testing.virtual_time`.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["LoopClock", "VirtualEventLoop", "run_virtual"]

T = TypeVar("T")


class _JumpingSelector(selectors.BaseSelector):
    """Wraps the loop's selector: where the loop would block for ``timeout``, jump instead."""

    def __init__(self, inner: selectors.BaseSelector, loop: VirtualEventLoop) -> None:
        self._inner = inner
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._inner.select(0)
        if ready or timeout is None or timeout <= 0:
            if not ready and timeout is None:
                # nothing scheduled at all: only real I/O can wake us
                return self._inner.select(None)
            return ready
        self._loop.advance(timeout)
        return []

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def close(self) -> None:
        self._inner.close()

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.get_key(fileobj)

    def get_map(self) -> Any:
        return self._inner.get_map()


class VirtualEventLoop(asyncio.SelectorEventLoop):
    """An asyncio loop with a virtual clock that jumps to the next timer when idle.

    Args:
        start: the initial virtual time.
    """

    def __init__(self, start: float = 0.0) -> None:
        super().__init__()
        self._virtual_now = start
        self._selector = _JumpingSelector(self._selector, self)  # type: ignore[has-type]

    def time(self) -> float:
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        """Move virtual time forward."""
        self._virtual_now += seconds


class LoopClock:
    """A :class:`smesh.clock.Clock` that reads the running loop's time.

    On a :class:`VirtualEventLoop` this is virtual time; on a normal loop, monotonic time.

    Args:
        offset: added to the loop time (e.g. a wall-clock epoch).
    """

    __slots__ = ("offset",)

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def now(self) -> float:
        """The loop's current time plus the offset."""
        return asyncio.get_running_loop().time() + self.offset


def run_virtual(main: Coroutine[Any, Any, T], *, start: float = 0.0) -> T:
    """Run ``main`` to completion on a fresh :class:`VirtualEventLoop`."""
    loop = VirtualEventLoop(start)
    try:
        return loop.run_until_complete(main)
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
