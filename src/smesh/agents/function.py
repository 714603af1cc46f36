"""An agent whose work and judgement are plain async functions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from smesh.agents.agent import Agent
from smesh.agents.base import Judgement, WorkContext
from smesh.agents.protocol import TaskSpec

__all__ = ["FunctionAgent", "Judge", "Perform"]

Perform = Callable[[WorkContext], Awaitable[Any]]
Judge = Callable[[TaskSpec, Any], Awaitable[Judgement]]


class FunctionAgent(Agent):
    """An agent whose work and judgement are plain async functions (a tool, a test run,
    a schema check, a human prompt...).

    Args:
        id: node id.
        perform: ``async (WorkContext) -> output``; None if it does no tasks.
        judge: ``async (TaskSpec, output) -> Judgement``; None if it verifies nothing.
        **options: as for :class:`~smesh.agents.Agent` (skills, verifies, slots, backend,
            role ...).
    """

    def __init__(
        self,
        id: str,
        *,
        perform: Perform | None = None,
        judge: Judge | None = None,
        **options: Any,
    ) -> None:
        super().__init__(id, **options)
        self._perform_fn = perform
        self._judge_fn = judge

    async def perform(self, ctx: WorkContext) -> Any:
        if self._perform_fn is None:
            return await super().perform(ctx)
        return await self._perform_fn(ctx)

    async def judge(self, task: TaskSpec, output: Any) -> Judgement:
        if self._judge_fn is None:
            return await super().judge(task, output)
        return await self._judge_fn(task, output)
