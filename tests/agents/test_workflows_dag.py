"""Task dependencies (issue 13 §1), on virtual time: no barrier, each dependent wakes on its
own inputs; failed inputs fail dependents with the cause; cycles and unknown ids refused."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from _agentkit import now, virtual

from smesh.agents import FunctionAgent, TaskSpec, Team, WorkContext
from smesh.agents.board import TaskState
from smesh.agents.handles import order_specs
from smesh.errors import InvalidDependency, InvalidSignal, UsageError
from smesh.testing.virtual_time import LoopClock


def _random_dag(n: int, seed: int) -> tuple[list[TaskSpec], dict[str, float]]:
    rng = random.Random(seed)
    specs, durations = [], {}
    for i in range(n):
        deps = tuple(sorted({f"t{j}" for j in rng.sample(range(i), min(i, rng.randint(0, 3)))}))
        specs.append(TaskSpec(task_id=f"t{i}", skill="s", depends_on=deps))
        durations[f"t{i}"] = rng.choice([1.0, 2.0, 3.0, 5.0, 8.0])
    rng.shuffle(specs)  # posted in any order: the batch is checked and ordered
    return specs, durations


def test_a_50_task_dag_runs_in_topological_order_with_maximal_parallelism() -> None:
    specs, durations = _random_dag(50, seed=7)
    started: dict[str, float] = {}
    accepted: dict[str, float] = {}
    seen_inputs: dict[str, dict[str, Any]] = {}

    async def work(ctx: WorkContext) -> str:
        task_id = ctx.task.task_id
        started[task_id] = now()
        seen_inputs[task_id] = dict(ctx.inputs)
        await asyncio.sleep(durations[task_id])
        return f"out:{task_id}"

    def on_change(task: TaskState, what: str) -> None:
        if what == "decision" and task.outcome == "accepted":
            accepted[task.spec.task_id] = now()

    async def main() -> None:
        # more workers than tasks: any wait is the protocol's, never a lack of hands
        agents = [FunctionAgent(f"w{i:02d}", perform=work, skills={"s": 1.0}) for i in range(60)]
        team = Team(agents, clock=LoopClock())
        report = await team.run(specs, on_change=on_change)
        assert report.stopped_by == "quiescent"
        assert all(t.status == "accepted" for t in report.tasks)
        by_id = {s.task_id: s for s in specs}
        finish: dict[str, float] = {}
        for task_id in sorted(by_id, key=lambda t: int(t[1:])):
            spec = by_id[task_id]
            ready = max((finish[d] for d in spec.depends_on), default=0.0)
            finish[task_id] = ready + durations[task_id]
            # topological: it starts after its inputs, with their accepted outputs
            assert all(started[task_id] >= accepted[d] for d in spec.depends_on)
            assert seen_inputs[task_id] == {d: f"out:{d}" for d in spec.depends_on}
            # no barrier: it starts the moment its last input is accepted (zero lag on the
            # virtual clock: the same event-loop instant), whatever other branches do
            lag = started[task_id] - max((accepted[d] for d in spec.depends_on), default=0.0)
            assert lag == 0.0, (task_id, lag)
            assert started[task_id] == ready
        # maximal parallelism: the run takes exactly the critical path
        assert max(accepted.values()) == max(finish.values())
        assert [t.depends_on for t in report.tasks] == [
            list(by_id[t.id].depends_on) for t in report.tasks
        ]

    virtual(main())


def test_a_slow_branch_does_not_hold_back_the_other_branches_dependents() -> None:
    """langgraph#6320: a slow sibling blocks unrelated branches under superstep barriers."""
    durations = {"plan": 1.0, "b1": 100.0, "b2": 2.0, "b3": 3.0, "b4": 4.0}
    finished: dict[str, float] = {}

    async def work(ctx: WorkContext) -> str:
        task_id = ctx.task.task_id
        await asyncio.sleep(durations.get(task_id, 1.0))
        finished[task_id] = now()
        return task_id

    async def main() -> None:
        agents = [FunctionAgent(f"w{i}", perform=work, skills={"s": 1.0}) for i in range(10)]
        specs = [TaskSpec(task_id="plan", skill="s")]
        for i in range(1, 5):
            specs.append(TaskSpec(task_id=f"b{i}", skill="s", depends_on=("plan",)))
            specs.append(TaskSpec(task_id=f"c{i}", skill="s", depends_on=(f"b{i}",)))
        specs.append(TaskSpec(task_id="merge", skill="s", depends_on=("c1", "c2", "c3", "c4")))
        report = await Team(agents, clock=LoopClock()).run(specs)
        assert report.stopped_by == "quiescent"
        for i in (2, 3, 4):  # each finishes at its own pace: plan + b_i + c_i
            assert finished[f"c{i}"] == 1.0 + durations[f"b{i}"] + 1.0
            assert finished[f"c{i}"] < finished["b1"]
        assert finished["c1"] == 102.0 and finished["merge"] == 103.0  # the join waits, once

    virtual(main())


def test_a_failed_dependency_fails_its_dependents_with_the_cause_or_lets_them_run() -> None:
    ran: list[str] = []

    async def work(ctx: WorkContext) -> Any:
        ran.append(ctx.task.task_id)
        if ctx.task.task_id == "bad":
            raise RuntimeError("the source is down")
        return {"inputs": sorted(ctx.inputs), "failed": sorted(ctx.failed_inputs)}

    async def main() -> None:
        agents = [FunctionAgent(f"w{i}", perform=work, skills={"s": 1.0}) for i in range(3)]
        specs = [
            TaskSpec(task_id="good", skill="s"),
            TaskSpec(task_id="bad", skill="s", max_attempts=1),
            TaskSpec(task_id="strict", skill="s", depends_on=("good", "bad")),
            TaskSpec(task_id="after-strict", skill="s", depends_on=("strict",)),
            TaskSpec(
                task_id="lenient", skill="s", depends_on=("good", "bad"), on_failed_dependency="run"
            ),
        ]
        report = await Team(agents, clock=LoopClock()).run(specs)
        got = {t.id: t for t in report.tasks}
        assert got["bad"].status == "failed"
        assert got["strict"].status == "failed"
        assert got["strict"].reason is not None
        assert got["strict"].reason.startswith("dependency bad failed: RuntimeError")
        assert "the source is down" in got["strict"].reason
        assert got["after-strict"].status == "failed"  # the failure travels down the graph
        assert got["after-strict"].reason.startswith("dependency strict failed")  # type: ignore[union-attr]
        assert "strict" not in ran and "after-strict" not in ran
        assert got["lenient"].status == "accepted"
        assert got["lenient"].output == {"inputs": ["good"], "failed": ["bad"]}

    virtual(main())


def test_cycles_unknown_ids_and_self_dependencies_are_refused_when_posted() -> None:
    async def main() -> None:
        team = Team([], clock=LoopClock())
        with pytest.raises(InvalidDependency, match="nobody posted"):
            team.submit(TaskSpec(task_id="x", skill="s", depends_on=("ghost",)))
        cycle = [
            TaskSpec(task_id="a", skill="s", depends_on=("c",)),
            TaskSpec(task_id="b", skill="s", depends_on=("a",)),
            TaskSpec(task_id="c", skill="s", depends_on=("b",)),
        ]
        with pytest.raises(InvalidDependency, match=r"dependency cycle: (\w -> ){3}\w"):
            team.submit_all(cycle)
        assert team.board.tasks == {}  # nothing of a refused batch was posted
        with pytest.raises(InvalidSignal, match="depends on itself"):
            TaskSpec(task_id="a", skill="s", depends_on=("a",))
        with pytest.raises(UsageError, match="twice in one batch"):
            team.submit_all([TaskSpec(task_id="a", skill="s"), TaskSpec(task_id="a", skill="s")])
        team.submit(TaskSpec(task_id="a", skill="s"))
        with pytest.raises(UsageError, match="taken by another task"):
            team.submit(TaskSpec(task_id="a", skill="other"))
        team.submit(TaskSpec(task_id="a", skill="s"))  # the same task again: fine (resume)

    virtual(main())


def test_a_cycle_through_tasks_already_on_the_board_is_refused() -> None:
    # a task from another process may already wait for an id nobody posted yet
    async def main() -> None:
        team = Team([], clock=LoopClock())
        team.field.emit(
            "task",
            TaskSpec(task_id="remote", skill="s", depends_on=("later",)).payload(),
            origin="peer",
        )
        assert team.board.tasks["remote"].waiting == 1  # dormant on an unknown input
        with pytest.raises(InvalidDependency, match="later -> remote -> later"):
            team.submit(TaskSpec(task_id="later", skill="s", depends_on=("remote",)))

    virtual(main())


def test_order_specs_puts_inputs_first_and_handles_deep_chains() -> None:
    chain = [TaskSpec(task_id=f"n{i}", skill="s", depends_on=(f"n{i - 1}",) if i else ())
             for i in range(3000)]  # fmt: skip
    ordered = order_specs(list(reversed(chain)), {})
    assert [s.task_id for s in ordered] == [s.task_id for s in chain]
