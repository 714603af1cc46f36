"""Awaiting what happens on the board: a task's next decision, its end, its settling.

The futures behind :class:`~smesh.agents.handles.TaskHandle` and an agent's wait for the
verdict on its result. A future may be asked for before its task reaches the board (a
dependency or a subtask posted by another process): it waits for it. When the run ends,
:meth:`Waiters.release_waiters` resolves what is left, so no wait outlives the run.
"""

from __future__ import annotations

import asyncio

from smesh.agents.tasks import TaskState
from smesh.errors import UsageError
from smesh.signal import Signal

__all__ = ["Waiters"]


class Waiters:
    """The waiting half of :class:`~smesh.agents.board.TaskBoard` (a mixin)."""

    tasks: dict[str, TaskState]

    def _init_waiters(self) -> None:
        self._early: dict[str, list[asyncio.Future[Signal]]] = {}  # waiters before the task
        self._finals: dict[str, list[asyncio.Future[TaskState]]] = {}
        self._settled: dict[str, list[asyncio.Future[None]]] = {}

    def wait_decision(self, task_id: str) -> asyncio.Future[Signal]:
        """A future resolved with the next decision on ``task_id`` (which may not have
        reached this board yet)."""
        future: asyncio.Future[Signal] = asyncio.get_running_loop().create_future()
        task = self.tasks.get(task_id)
        if task is None:
            self._early.setdefault(task_id, []).append(future)
        else:
            task.watchers.append(future)
        return future

    def wait_final(self, task_id: str) -> asyncio.Future[TaskState]:
        """A future resolved with the task's state once it is accepted, failed or cancelled
        (at once if it already is)."""
        future: asyncio.Future[TaskState] = asyncio.get_running_loop().create_future()
        task = self.tasks.get(task_id)
        if task is not None and task.final:
            future.set_result(task)
        else:
            self._finals.setdefault(task_id, []).append(future)
        return future

    def wait_settled(self, task_id: str) -> asyncio.Future[None]:
        """A future resolved at the next decision on ``task_id`` or request for approval."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._settled.setdefault(task_id, []).append(future)
        return future

    def release_waiters(self) -> None:
        """Resolve every future still waiting for a task to end (the run is over): with the
        task's state as it is, or an error for a task that never reached this board."""
        finals, self._finals = self._finals, {}
        for task_id, futures in finals.items():
            task = self.tasks.get(task_id)
            for future in futures:
                if future.done():
                    continue
                if task is None:
                    future.set_exception(UsageError(f"task {task_id!r} never reached the board"))
                else:
                    future.set_result(task)

    def _resolve_watchers(self, task: TaskState, signal: Signal) -> None:
        if task.watchers:
            watchers, task.watchers = task.watchers, []
            for future in watchers:
                if not future.done():
                    future.set_result(signal)
        if self._settled:
            self._resolve_settled(task)

    def _resolve_settled(self, task: TaskState) -> None:
        if not self._settled:
            return
        for future in self._settled.pop(task.spec.task_id, ()):
            if not future.done():
                future.set_result(None)

    def _resolve_finals(self, task: TaskState) -> None:
        for future in self._finals.pop(task.spec.task_id, ()):
            if not future.done():
                future.set_result(task)
