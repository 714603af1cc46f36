"""Posting tasks and awaiting them: :class:`TaskHandle`, :class:`TaskReport`, and the checks
a batch of tasks passes before it is posted (no unknown dependency, no cycle).

``handle = team.submit(spec)`` (or ``ctx.spawn(spec)`` inside an agent's work) returns a
:class:`TaskHandle`; ``await handle`` gives the task's :class:`TaskReport` once it is
accepted, failed or cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any

import msgspec

from smesh.agents.protocol import TaskSpec
from smesh.agents.tasks import TaskState, failure_reason
from smesh.errors import InvalidDependency, UsageError

__all__ = ["TaskHandle", "TaskReport", "order_specs", "task_report"]


class TaskReport(msgspec.Struct, frozen=True, kw_only=True):
    """How one task ended.

    Attributes:
        id: the task id.
        skill: the skill it needed.
        status: ``accepted``, ``failed`` or ``cancelled``.
        claimed_by: who posted its last result.
        attempts: attempts that produced a result.
        reason: why it failed or was cancelled.
        output: the accepted output (for a cancelled or failed task, the last one posted:
            its partial result).
        depends_on: the tasks it waited for.
        parent: the task that spawned it, if any.
    """

    id: str
    skill: str
    status: str
    claimed_by: str | None
    attempts: int
    reason: str | None = None
    output: Any = None
    depends_on: list[str] = []
    parent: str | None = None


def task_report(task: TaskState, *, stopped_by: str | None = None) -> TaskReport:
    """The report of ``task`` as it stands (unfinished: failed, because the run stopped)."""
    spec = task.spec
    if task.outcome == "accepted":
        accepted = [a for a, d in task.decisions.items() if d.payload.get("verdict") == "accepted"]
        last: int | None = max(accepted) if accepted else None
    else:
        last = max(task.results) if task.results else None
    signal = task.results.get(last) if last is not None else None
    result = task.result(last) if last is not None else None
    status = task.outcome if task.outcome in ("accepted", "cancelled") else "failed"
    reason: str | None = None
    if task.outcome is None:
        reason = f"unfinished when the run stopped ({stopped_by or 'not finished'})"
    elif task.outcome != "accepted":
        reason = failure_reason(task)
    return TaskReport(
        id=spec.task_id,
        skill=spec.skill,
        status=status,
        claimed_by=signal.origin if signal is not None else None,
        attempts=len(task.results) or (1 if task.claims else 0),
        reason=reason,
        output=result.output if result is not None else None,
        depends_on=list(spec.depends_on),
        parent=spec.parent,
    )


class TaskHandle:
    """A posted task: ``await handle`` returns its :class:`TaskReport` once it ends.

    Args:
        wait_final: ``wait_final(task_id)``: a future of the task's final state.
        tasks: the board's tasks (to read the state now).
        task_id: the task.
        address: its task signal's address.
    """

    __slots__ = ("_tasks", "_wait_final", "address", "task_id")

    def __init__(
        self,
        wait_final: Callable[[str], asyncio.Future[TaskState]],
        tasks: Mapping[str, TaskState],
        task_id: str,
        address: str,
    ) -> None:
        self._wait_final = wait_final
        self._tasks = tasks
        self.task_id = task_id
        self.address = address

    def __await__(self) -> Generator[Any, None, TaskReport]:
        return self.wait().__await__()

    async def wait(self, timeout: float | None = None) -> TaskReport:
        """The task's report once it is final (TimeoutError after ``timeout`` seconds)."""
        future = self._wait_final(self.task_id)
        if timeout is None:
            task = await future
        else:
            async with asyncio.timeout(timeout):
                task = await future
        return task_report(task)

    @property
    def state(self) -> TaskState | None:
        """The board's view of the task now (None until it reaches the board)."""
        return self._tasks.get(self.task_id)

    def done(self) -> bool:
        """Whether the task is accepted, failed or cancelled."""
        state = self.state
        return state is not None and state.final

    def report(self) -> TaskReport | None:
        """The task's report if it is final, else None."""
        state = self.state
        return task_report(state) if state is not None and state.final else None

    def __repr__(self) -> str:
        state = self.state
        status = "unknown" if state is None else (state.outcome or "running")
        return f"TaskHandle({self.task_id!r}, {status})"


def order_specs(specs: Sequence[TaskSpec], known: Mapping[str, TaskState]) -> list[TaskSpec]:
    """``specs`` in an order where each comes after its dependencies, checked.

    Raises:
        UsageError: two specs of the batch share an id.
        InvalidDependency: a dependency is neither in the batch nor on the board, or the
            dependencies (the board's included) form a cycle.
    """
    if len(specs) == 1 and not specs[0].depends_on:
        return list(specs)  # the common case: one task, nothing to check
    batch: dict[str, TaskSpec] = {}
    for spec in specs:
        if spec.task_id in batch:
            raise UsageError(f"task id {spec.task_id!r} appears twice in one batch")
        batch[spec.task_id] = spec
    if not any(spec.depends_on for spec in specs):
        return list(specs)  # nothing to order (the common case: no search)
    for spec in specs:
        for dep in spec.depends_on:
            if dep not in batch and dep not in known:
                raise InvalidDependency(
                    f"task {spec.task_id!r} depends on {dep!r}, which nobody posted"
                )

    def deps(task_id: str) -> tuple[str, ...]:
        spec = batch.get(task_id)
        if spec is None:
            state = known.get(task_id)
            return () if state is None else state.spec.depends_on
        return spec.depends_on

    order: list[TaskSpec] = []
    done: set[str] = set()
    for root in batch:
        if root in done:
            continue
        path: list[str] = []
        on_path: set[str] = set()
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:  # iterative depth-first search: deep chains do not hit the recursion cap
            node, i = stack.pop()
            if i == 0:
                path.append(node)
                on_path.add(node)
            children = deps(node)
            if i < len(children):
                stack.append((node, i + 1))
                child = children[i]
                if child in on_path:
                    cycle = [*path[path.index(child) :], child]
                    raise InvalidDependency("dependency cycle: " + " -> ".join(cycle))
                if child not in done:
                    stack.append((child, 0))
                continue
            path.pop()
            on_path.discard(node)
            done.add(node)
            if node in batch:
                order.append(batch[node])
    return order
