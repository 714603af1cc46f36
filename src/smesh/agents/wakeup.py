"""Waking a few idle workers per opened task, and more only when nobody bids.

Waking every worker of a skill each time one task of it opens costs O(workers) per task:
at 5,000 agents two thirds of the CPU went into agents looking at a board they had no
chance on. :class:`WakePool` keeps, per skill, the workers that sleep with a free slot (in
the order they fell asleep) and wakes ``fanout`` of them per opened task. Correctness does
not rest on the sample: after the woken agents have dispatched (a ``call_soon`` later, so
they have placed their bids), the pool looks again, and while an open task of the skill
has no bid at all and idle workers remain that were not tried since the skill's last bid,
it wakes more. Every agent also polls the board every ``poll_s``.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Protocol

__all__ = ["Listener", "WakePool"]


class Listener(Protocol):
    """What the board needs from an agent: a way to wake it, and whether it is idle."""

    id: str

    def wake(self) -> None:
        """Ask the agent to look at the board again soon."""

    def ready(self) -> bool:
        """Whether it sleeps with a free slot (waking it may get a task claimed)."""


class WakePool:
    """Idle workers per skill, woken a few at a time.

    Args:
        fanout: workers woken per opened task (0: every worker of the skill, the old way).
        unclaimed: ``unclaimed(skill, enough)``: how many open tasks of the skill have no bid
            yet (counting may stop at ``enough``).
    """

    def __init__(self, fanout: int, unclaimed: Callable[[str, int], int]) -> None:
        self.fanout = fanout
        self._unclaimed = unclaimed
        self._workers: dict[str, list[Listener]] = {}
        self._idle: dict[str, OrderedDict[Listener, None]] = {}
        #: wakes per skill since its last bid (the board clears a skill's count on a bid)
        self.tried: dict[str, int] = {}
        self._pending: dict[str, None] = {}  # skills with a look-again scheduled

    def register(self, agent: Listener, skills: Iterable[str]) -> None:
        """Add a worker of ``skills``."""
        for skill in skills:
            self._workers.setdefault(skill, []).append(agent)

    def workers(self, skill: str) -> list[Listener]:
        """Every worker of ``skill``."""
        return self._workers.get(skill, [])

    def idle(self, agent: Listener, skills: Iterable[str]) -> None:
        """``agent`` sleeps with a free slot (called by the agent as it falls asleep)."""
        for skill in skills:
            pool = self._idle.get(skill)
            if pool is None:
                pool = self._idle[skill] = OrderedDict()
            pool[agent] = None

    def wake(self, skill: str, n: int | None = None) -> int:
        """Wake up to ``n`` (default ``fanout``) idle workers of ``skill``; return how many."""
        if self.fanout <= 0:
            workers = self._workers.get(skill, ())
            for agent in workers:
                agent.wake()
            return len(workers)
        pool = self._idle.get(skill)
        if not pool:
            return 0
        want = self.fanout if n is None else n
        woken = 0
        while pool and woken < want:
            agent, _ = pool.popitem(last=False)
            if agent.ready():  # stale entries (woken since by something else) are dropped
                agent.wake()
                woken += 1
        if woken and pool:  # idle workers remain: look again once the woken ones have bid
            self.tried[skill] = self.tried.get(skill, 0) + woken
            if skill not in self._pending:
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:  # a board driven by hand, outside any loop
                    return woken
                self._pending[skill] = None
                loop.call_soon(self._look_again, skill)
        return woken

    def wake_all(self) -> None:
        """Wake every worker (at shutdown)."""
        for workers in self._workers.values():
            for agent in workers:
                agent.wake()

    def _look_again(self, skill: str) -> None:
        self._pending.pop(skill, None)
        if self.tried.get(skill, 0) >= len(self._workers.get(skill, ())):
            return  # everyone was tried since the skill's last bid
        missing = self._unclaimed(skill, self.fanout)
        if missing:  # (else every open task has a bid)
            self.wake(skill, missing)
