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
from smesh.agents.scope import WorkScope
from smesh.agents.tasks import CancelHook, TaskState

__all__ = ["Guard", "Stoppable"]


class Guard:
    """Stops one piece of work (an attempt, a verification) when its task is cancelled.

    The board calls :attr:`hook` with the grace period; the work is told at once (its
    scope's ``cancelled``), and its asyncio task is cancelled when the grace runs out.
    """

    __slots__ = ("hook", "scope", "timer", "winding")

    def __init__(self, scope: WorkScope | None) -> None:
        self.scope = scope
        self.hook: CancelHook | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.winding = False


class Stoppable(AgentBase):
    """Guards an agent's work against cancellation and restarts."""

    __slots__ = ()

    # -- stopping work that is no longer wanted --------------------------------------------

    def _guard(self, task: TaskState, attempt: int, *, scoped: bool = True) -> Guard:
        """Watch ``task`` for a cancel (or a restart) while the current asyncio task works
        on it; :meth:`_unguard` when the work ends."""
        rt = self.runtime
        current = asyncio.current_task()
        loop = asyncio.get_running_loop()
        guard = Guard(WorkScope(rt, self.id, task, attempt) if scoped else None)

        def hook(grace_s: float, reason: str) -> None:
            if guard.scope is not None:
                guard.scope.stop(reason)
            if not guard.winding:
                guard.winding = True
                rt.winding(+1)
            detail = Detail(attempt=attempt, reason=reason, grace_s=grace_s)
            rt.record(self.id, "stop", task.spec.task_id, detail)
            if current is None:
                return
            if grace_s <= 0:
                current.cancel()
            else:
                guard.timer = loop.call_later(grace_s, current.cancel)

        guard.hook = hook
        task.add_hook(hook)
        return guard

    def _unguard(self, task: TaskState, guard: Guard) -> None:
        if guard.hook is not None:
            task.remove_hook(guard.hook)
        if guard.timer is not None:
            guard.timer.cancel()
        if guard.winding:
            guard.winding = False
            self.runtime.winding(-1)
