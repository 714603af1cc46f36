"""What an attempt can do besides answering: spawn subtasks, hand its task on, notice that
it was cancelled. Reached through the :class:`~smesh.agents.base.WorkContext` that
``perform`` receives (``ctx.spawn``, ``ctx.handoff``, ``ctx.cancelled``).

Subtasks are tasks like any other, posted by the working agent with ``parent`` set to its
task: their ids are the parent's id plus ``/`` plus the id given, so a parent re-taken by
another agent (its first worker died) that spawns the same subtasks finds them on the board
and does not redo the finished ones. Give subtasks stable ids for that. The parent bounds
its children: cancelling it cancels them, its ``max_calls`` caps theirs, and subtasks nest
at most ``Settings.max_depth`` deep, ``Settings.max_subtasks`` per task.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, overload

import msgspec

from smesh.agents.handles import TaskHandle
from smesh.agents.protocol import TaskSpec
from smesh.errors import TaskBudgetExceeded, UsageError
from smesh.tools.toolset import ToolGrant

if TYPE_CHECKING:
    from smesh.agents.runtime import Runtime
    from smesh.agents.tasks import TaskState

__all__ = ["HandoffContext", "HandoffRequest", "WorkScope"]


class HandoffRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Returned by ``perform`` to hand the task on (build it with ``ctx.handoff(...)``).

    Attributes:
        to: the agent that must take it over (None: anyone with ``skill``).
        skill: the skill it needs from now on (None: unchanged).
        context: what the receiver continues from (JSON).
        note: a line for the receiver and the trace.
    """

    to: str | None = None
    skill: str | None = None
    context: Any = None
    note: str = ""


class HandoffContext(msgspec.Struct, frozen=True, kw_only=True):
    """What a receiver of a handoff gets in ``ctx.handoff``.

    Attributes:
        by: who handed the task on.
        context: the context it passed.
        note: its note.
    """

    by: str
    context: Any = None
    note: str = ""


class WorkScope:
    """The running attempt of one agent on one task.

    Args:
        runtime: the run.
        agent: the working agent's id.
        task: the board's state of the task.
        attempt: the attempt.
    """

    __slots__ = ("agent", "attempt", "cancelled", "reason", "runtime", "task")

    def __init__(self, runtime: Runtime, agent: str, task: TaskState, attempt: int) -> None:
        self.runtime = runtime
        self.agent = agent
        self.task = task
        self.attempt = attempt
        #: set when the task was cancelled (or superseded): finish up within the grace
        #: period; after it the work is cancelled outright
        self.cancelled = False
        self.reason = ""

    def stop(self, reason: str) -> None:
        """Mark the work as told to stop."""
        self.cancelled = True
        self.reason = reason

    @overload
    def spawn(self, specs: TaskSpec) -> TaskHandle: ...

    @overload
    def spawn(self, specs: Iterable[TaskSpec]) -> list[TaskHandle]: ...

    def spawn(self, specs: TaskSpec | Iterable[TaskSpec]) -> TaskHandle | list[TaskHandle]:
        """Post subtasks of this task; ``await`` the handles for their reports.

        Ids become ``<parent id>/<id>``; a dependency on a sibling may use the sibling's
        short id. A subtask already on the board (posted by an earlier holder of this task)
        is not posted again: its handle is returned.

        Raises:
            UsageError: too deep, or too many subtasks.
            InvalidDependency: an unknown dependency or a cycle.
            TaskBudgetExceeded: this task's call budget has not one call left for each new
                subtask (a capped task's calls left are split among the new subtasks).
        """
        one = isinstance(specs, TaskSpec)
        batch = [specs] if isinstance(specs, TaskSpec) else list(specs)
        rt = self.runtime
        settings = rt.settings
        parent = self.task.spec
        board = rt.board
        if board.depth(parent.task_id) + 1 > settings.max_depth:
            raise UsageError(
                f"subtasks of {parent.task_id!r} would nest deeper than "
                f"max_depth={settings.max_depth}"
            )
        known_children = set(self.task.children or ())
        prefix = parent.task_id + "/"
        local = {s.task_id for s in batch}

        def full(task_id: str) -> str:
            return task_id if task_id.startswith(prefix) else prefix + task_id

        fresh = {full(s.task_id) for s in batch} - known_children
        if len(known_children) + len(fresh) > settings.max_subtasks:
            raise UsageError(
                f"{parent.task_id!r} may spawn at most {settings.max_subtasks} subtasks"
            )
        budget = rt.task_budget(parent)
        # a capped parent's calls left are split among its new subtasks: each carries its
        # share as its own cap, which holds in whatever process does the subtask
        new = sum(full(s.task_id) not in board.tasks for s in batch)
        shares: list[int] = []
        if budget is not None and new:
            left = budget.remaining
            if left < new:
                raise TaskBudgetExceeded(
                    f"task {parent.task_id}: {left} calls left, not one for each of {new} subtasks"
                )
            base, extra = divmod(left, new)
            shares = [base + (i < extra) for i in range(new)]
        grant = ToolGrant.of(parent.tools)  # a child never gets more tools than its parent
        children = []
        for spec in batch:
            deps = tuple(
                full(d) if d in local or full(d) in board.tasks else d for d in spec.depends_on
            )
            cap = spec.max_calls
            if shares and full(spec.task_id) not in board.tasks:
                share = shares.pop(0)
                cap = share if cap is None else min(cap, share)
            children.append(
                msgspec.structs.replace(
                    spec,
                    task_id=full(spec.task_id),
                    parent=parent.task_id,
                    depends_on=deps,
                    max_calls=cap,
                    tools=grant.narrow(spec.tools).names,
                )
            )
        handles = rt.post(children, origin=self.agent, adopt=True)
        if budget is not None:
            for handle in handles:  # (an adopted subtask keeps the cap it was posted with)
                known = board.tasks.get(handle.task_id)
                calls = known.spec.max_calls if known is not None else None
                if calls is not None:
                    budget.reserve(handle.task_id, calls)
        return handles[0] if one else handles

    def handoff(
        self,
        *,
        to: str | None = None,
        skill: str | None = None,
        context: Any = None,
        note: str = "",
    ) -> HandoffRequest:
        """A handoff for ``perform`` to return: the task goes to agent ``to`` and/or to
        agents of ``skill``, who continue from ``context``."""
        if to is None and skill is None:
            raise UsageError("a handoff needs an agent (to=) or a skill (skill=)")
        if to == self.agent:
            raise UsageError(f"agent {self.agent} cannot hand a task to itself")
        return HandoffRequest(to=to, skill=skill, context=context, note=note)
