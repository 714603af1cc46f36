"""Shared helpers for the agent tests: virtual time, decision counting, small agents."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from smesh.agents import Judgement, TaskSpec, Team, WorkContext
from smesh.field import Field, FieldEvent
from smesh.testing.virtual_time import run_virtual

T = TypeVar("T")

__all__ = [
    "DecisionLog",
    "approve_all",
    "now",
    "run_virtual",
    "virtual",
    "wait_until",
]


def virtual(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on virtual time (leases of 30 s lapse in microseconds)."""
    return run_virtual(main)


def now() -> float:
    """The running loop's clock (virtual under :func:`virtual`)."""
    return asyncio.get_running_loop().time()


class DecisionLog:
    """Every decision signal emitted into a field, as (time, task_id, attempt, verdict, basis).

    Content-scoped: the same decision emitted twice reinforces one signal; a second *emit*
    for a task is a second, different decision.
    """

    def __init__(self, field: Field) -> None:
        self.rows: list[tuple[float, str, int, str, str | None]] = []
        self._sub = field.subscribe(self._on, kinds=["decision"])

    def _on(self, event: FieldEvent) -> None:
        if event.type != "emit":
            return
        p = event.signal.payload
        self.rows.append(
            (event.time, p["task_id"], int(p["attempt"]), p["verdict"], p.get("basis"))
        )

    def count(self, verdict: str) -> Counter[str]:
        """Decisions with ``verdict`` per task id."""
        return Counter(task for _, task, _, v, _ in self.rows if v == verdict)

    def of(self, task_id: str) -> list[tuple[float, str, int, str, str | None]]:
        return [r for r in self.rows if r[1] == task_id]


async def approve_all(task: TaskSpec, output: Any) -> Judgement:
    """A verifier that approves everything."""
    return Judgement("approve", "looks fine to me")


async def wait_until(
    predicate: Callable[[], bool], *, step: float = 0.25, limit: float = 1e4
) -> None:
    """Sleep in virtual ``step``s until ``predicate()`` holds."""
    waited = 0.0
    while not predicate():
        await asyncio.sleep(step)
        waited += step
        if waited > limit:
            raise AssertionError("condition never held")


def counting(
    perform: Callable[[WorkContext], Awaitable[Any]], counter: Counter[str]
) -> Callable[[WorkContext], Awaitable[Any]]:
    """Wrap ``perform`` so each invocation counts against its task id."""

    async def wrapped(ctx: WorkContext) -> Any:
        counter[ctx.task.task_id] += 1
        return await perform(ctx)

    return wrapped


def accepted_once(team: Team, log: DecisionLog) -> None:
    """Assert every task is accepted by exactly one decision, in the field and on the board."""
    accepted = log.count("accepted")
    for task_id, task in team.board.tasks.items():
        assert task.outcome == "accepted", task_id
        assert accepted[task_id] == 1, (task_id, log.of(task_id))
        on_board = [d for d in task.decisions.values() if d.payload["verdict"] == "accepted"]
        assert len(on_board) == 1, task_id
