"""Stopping work that is no longer wanted: a task cancelled, or superseded by a restart.

Work on a task (an attempt, a verification) runs as its own asyncio task under a
:class:`Guard`. When the board learns that the task was cancelled or restarted it calls the
guard's hook with a grace period: the work is told at once (``ctx.cancelled``), and its
asyncio task is cancelled when the grace runs out, which reaches the backend call in flight
(backends stop generating, HTTP requests close). The runtime counts work that is winding
down, so a run can wait for it before it reports.
"""

from __future__ import annotations

import asyncio

from smesh.agents.base import AgentBase
from smesh.agents.records import Detail
from smesh.agents.runtime import Runtime
from smesh.agents.scope import WorkScope
from smesh.agents.tasks import TaskState

__all__ = ["Guard", "Stoppable"]


class Guard(WorkScope):
    """The scope of one piece of work (an attempt, a verification), and what stops it when
    its task is cancelled or superseded.

    The board calls it (a :data:`~smesh.agents.tasks.CancelHook`) with the grace period; the
    work is told at once (``cancelled``), and its asyncio task is cancelled when the grace
    runs out. One object per attempt: an attempt's scope and its guard are the same.
    """

    __slots__ = ("current", "timer", "winding")

    def __init__(self, runtime: Runtime, agent: str, task: TaskState, attempt: int) -> None:
        super().__init__(runtime, agent, task, attempt)
        self.current = asyncio.current_task()
        self.timer: asyncio.TimerHandle | None = None
        self.winding = False

    def __call__(self, grace_s: float, reason: str) -> None:
        rt = self.runtime
        self.stop(reason)
        if not self.winding:
            self.winding = True
            rt.winding(+1)
        detail = Detail(attempt=self.attempt, reason=reason, grace_s=grace_s)
        rt.record(self.agent, "stop", self.task.spec.task_id, detail)
        current = self.current
        if current is None:
            return
        if grace_s <= 0:
            current.cancel()
        else:
            self.timer = asyncio.get_running_loop().call_later(grace_s, current.cancel)


class Stoppable(AgentBase):
    """Guards an agent's work against cancellation and restarts."""

    __slots__ = ()

    def _guard(self, task: TaskState, attempt: int, rt: Runtime | None = None) -> Guard:
        """Watch ``task`` for a cancel (or a restart) while the current asyncio task works
        on it; :meth:`_unguard` when the work ends."""
        guard = Guard(rt or self.runtime, self.id, task, attempt)
        task.add_hook(guard)
        return guard

    def _unguard(self, task: TaskState, guard: Guard) -> None:
        task.remove_hook(guard)
        if guard.timer is not None:
            guard.timer.cancel()
        if guard.winding:
            guard.winding = False
            guard.runtime.winding(-1)
