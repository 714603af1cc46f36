"""Subtasks posted by agents and cancellation (issue 13 §2, §4), on virtual time.

The "manager" of the hierarchical pattern is just an agent whose work is to split and merge:
it spawns subtasks inside ``perform`` and awaits their reports while its lease stays alive.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from typing import Any

import pytest
from _agentkit import now, virtual, wait_until

from smesh.agents import Agent, FunctionAgent, Settings, TaskSpec, Team, WorkContext
from smesh.backends.base import Request
from smesh.errors import TaskBudgetExceeded, UsageError
from smesh.testing import FunctionBackend
from smesh.testing.virtual_time import LoopClock


async def _manager(ctx: WorkContext) -> Any:
    parts = ctx.spawn([TaskSpec(task_id=f"part-{i}", skill="part", input=i) for i in range(4)])
    merge = ctx.spawn(
        TaskSpec(task_id="merge", skill="part", depends_on=tuple(f"part-{i}" for i in range(4)))
    )
    reports = await asyncio.gather(*parts, merge)
    return [r.output for r in reports]


def test_a_manager_splits_and_merges_with_subtasks() -> None:
    async def part(ctx: WorkContext) -> Any:
        await asyncio.sleep(1.0)
        if ctx.task.task_id.endswith("merge"):
            return sorted(ctx.inputs)  # the fan-in sees every part's accepted output
        return ctx.task.input * 10

    async def main() -> None:
        agents: list[Agent] = [FunctionAgent("boss", perform=_manager, skills={"plan": 1.0})]
        agents += [FunctionAgent(f"w{i}", perform=part, skills={"part": 1.0}) for i in range(4)]
        team = Team(agents, clock=LoopClock())
        report = await team.run([TaskSpec(task_id="job", skill="plan")])
        got = {t.id: t for t in report.tasks}
        assert got["job"].status == "accepted"
        parts = [f"job/part-{i}" for i in range(4)]
        assert got["job"].output == [0, 10, 20, 30, parts]
        assert {got[p].parent for p in parts} == {"job"}
        assert got["job/merge"].depends_on == parts
        assert now() == 2.0  # four parts in parallel, then the merge

    virtual(main())


def test_killing_the_spawner_lets_another_retake_the_parent_without_redoing_subtasks() -> None:
    performed: Counter[str] = Counter()

    async def part(ctx: WorkContext) -> Any:
        performed[ctx.task.task_id] += 1
        await asyncio.sleep(1.0 + (ctx.task.input or 0))  # parts finish at t = 1, 2, 3, 4
        return ctx.task.input

    async def manage(ctx: WorkContext) -> Any:
        performed[ctx.task.task_id] += 1
        return await _manager(ctx)

    async def main() -> None:
        bosses = [FunctionAgent(f"boss{i}", perform=manage, skills={"plan": 1.0 - i / 10})
                  for i in range(2)]  # fmt: skip
        workers = [FunctionAgent(f"w{i}", perform=part, skills={"part": 1.0}) for i in range(4)]
        team = Team([*bosses, *workers], clock=LoopClock(), settings=Settings(lease_s=10.0))

        async def killer() -> None:
            await asyncio.sleep(2.5)  # parts 0 and 1 are accepted, 2 and 3 still running
            assert team.board.tasks["job"].holder == "boss0"
            team.kill("boss0")

        kill = asyncio.ensure_future(killer())
        report = await team.run([TaskSpec(task_id="job", skill="plan")])
        await kill
        got = {t.id: t for t in report.tasks}
        assert got["job"].status == "accepted" and got["job"].claimed_by == "boss1"
        # the lease lapsed (10 s), boss1 took the job over and spawned the same subtasks:
        # the finished ones (and those still running) were not done again
        assert performed == Counter({"job": 2, **{f"job/part-{i}": 1 for i in range(4)},
                                     "job/merge": 1})  # fmt: skip
        assert got["job"].output[:4] == [0, 1, 2, 3]

    virtual(main())


def test_cancelling_a_run_with_three_levels_of_subtasks_stops_every_llm_call() -> None:
    """pydantic-ai#7199: cancelling a parent leaves sub-agents running and spending."""
    call_starts: list[tuple[float, str]] = []
    cancelled_in_backend: list[str] = []

    def latency(request: Request) -> float:
        call_starts.append((now(), str(request.agent)))
        return 1.0 if "quick" in request.messages[-1].content else 4.0

    async def reply(request: Request) -> str:
        return "leaf result"

    backend = FunctionBackend(reply, latency=latency)
    original = backend.complete

    async def complete(request: Request) -> Any:
        try:
            return await original(request)
        except asyncio.CancelledError:
            cancelled_in_backend.append(str(request.agent))
            raise

    backend.complete = complete  # type: ignore[method-assign]

    class Splitter(Agent):
        async def perform(self, ctx: WorkContext) -> Any:
            depth = ctx.task.input
            if depth == 2:  # a leaf asks the LLM three times in a row
                for _ in range(3):
                    answer = await self.ask(f"leaf {ctx.task.task_id}")
                return answer.text
            kids = ctx.spawn([TaskSpec(task_id=f"k{i}", skill="s", input=depth + 1)
                              for i in range(2)])  # fmt: skip
            return [r.output for r in await asyncio.gather(*kids)]

    async def main() -> None:
        agents = [Splitter(f"a{i}", backend=backend, skills={"s": 1.0}) for i in range(8)]
        settings = Settings(cancel_grace_s=1.0)
        team = Team(agents, clock=LoopClock(), settings=settings)
        # a finished leaf before the cancel: a separate quick branch
        quick = TaskSpec(task_id="quick", skill="s", input=2)

        async def canceller() -> None:
            await asyncio.sleep(6.0)  # the quick leaf is accepted; the tree's leaves are mid-call
            team.cancel(reason="the user changed their mind")

        cancel = asyncio.ensure_future(canceller())
        report = await team.run([TaskSpec(task_id="root", skill="s", input=0), quick])
        await cancel
        assert report.stopped_by == "cancelled"
        assert report.stop_detail == "the user changed their mind"
        late = [(t, a) for t, a in call_starts if t > 6.0 + 1.0]
        assert not late, late  # no LLM call starts after the cancel plus the grace period
        assert cancelled_in_backend  # calls in flight were cancelled down in the backend
        got = {t.id: t for t in report.tasks}
        assert got["quick"].status == "accepted"  # partial results are kept in the report
        assert got["quick"].output == "leaf result"
        tree = [t for t in got if t.startswith("root")]
        assert len(tree) == 7  # root, 2 children, 4 grandchildren
        assert {got[t].status for t in tree} == {"cancelled"}
        assert got["root/k0/k0"].reason == "parent root/k0 was cancelled"
        assert now() <= 6.0 + 1.0 + 0.5  # the run ended promptly

    virtual(main())


def test_cancelling_one_task_cancels_its_subtree_and_lets_work_finish_in_grace() -> None:
    async def main() -> None:
        async def parent(ctx: WorkContext) -> Any:
            kid = ctx.spawn(TaskSpec(task_id="kid", skill="kid"))
            return (await kid).status

        async def kid(ctx: WorkContext) -> Any:
            while not ctx.cancelled:  # cooperative: notices the cancel at once
                await asyncio.sleep(0.5)
            return "half done"

        async def other(ctx: WorkContext) -> Any:
            await asyncio.sleep(3.0)
            return "unrelated"

        agents = [
            FunctionAgent("p", perform=parent, skills={"s": 1.0}),
            FunctionAgent("k", perform=kid, skills={"kid": 1.0}),
            FunctionAgent("o", perform=other, skills={"o": 1.0}),
        ]
        team = Team(agents, clock=LoopClock(), settings=Settings(cancel_grace_s=2.0))
        async with team:
            job = team.submit(TaskSpec(task_id="job", skill="s"))
            unrelated = team.submit(TaskSpec(task_id="u", skill="o"))
            await wait_until(lambda: "job/kid" in team.board.tasks, step=0.1)
            await asyncio.sleep(1.0)
            team.cancel("job", reason="not needed")
            report = await job
            assert report.status == "cancelled" and report.reason == "not needed"
            assert (await unrelated).status == "accepted"  # other work goes on
            await wait_until(lambda: team.runtime.winding_down == 0, step=0.1)
            kid_state = team.board.tasks["job/kid"]
            assert kid_state.cancelled
            assert kid_state.result(1) is not None  # the kid's partial result is kept
            assert kid_state.result(1).output == "half done"  # type: ignore[union-attr]
        final = {t.id: t for t in (await team.stop()).tasks}
        assert final["job/kid"].status == "cancelled" and final["job/kid"].output == "half done"

    virtual(main())


def test_subtasks_are_bounded_by_depth_count_and_the_parents_call_budget() -> None:
    async def main() -> None:
        async def deep(ctx: WorkContext) -> Any:
            kid = ctx.spawn(TaskSpec(task_id="d", skill="s"))
            return (await kid).status

        team = Team([FunctionAgent("a", perform=deep, skills={"s": 1.0}, slots=10)],
                    clock=LoopClock(), settings=Settings(max_depth=3))  # fmt: skip
        report = await team.run([TaskSpec(task_id="top", skill="s", max_attempts=1)])
        got = {t.id: t for t in report.tasks}
        assert len(got) == 4  # top and three levels; the fourth spawn was refused
        assert "nest deeper than max_depth=3" in (got["top/d/d/d"].reason or "")

        async def many(ctx: WorkContext) -> Any:
            ctx.spawn([TaskSpec(task_id=f"x{i}", skill="none") for i in range(5)])
            return "spawned"

        team = Team([FunctionAgent("a", perform=many, skills={"s": 1.0})], clock=LoopClock(),
                    settings=Settings(max_subtasks=4, idle_timeout_s=5.0))  # fmt: skip
        report = await team.run([TaskSpec(task_id="top", skill="s", max_attempts=1)])
        assert "at most 4 subtasks" in (report.tasks[0].reason or "")

        calls: Counter[str] = Counter()

        def reply(request: Request) -> str:
            calls[str(request.agent)] += 1
            return "ok"

        backend = FunctionBackend(reply)

        class Greedy(Agent):
            async def perform(self, ctx: WorkContext) -> Any:
                if ctx.task.parent is None:
                    await self.ask("plan")
                    kids = ctx.spawn([TaskSpec(task_id=f"k{i}", skill="s") for i in range(3)])
                    return [r.status for r in await asyncio.gather(*kids)]
                for _ in range(5):
                    await self.ask("work")
                return "done"

        agents = [Greedy(f"g{i}", backend=backend, skills={"s": 1.0}) for i in range(4)]
        team = Team(agents, clock=LoopClock())
        report = await team.run([TaskSpec(task_id="top", skill="s", max_calls=6)])
        got = {t.id: t for t in report.tasks}
        # the parent's cap bounds its children: one call of its own, and the five left split
        # among the three children as their own caps (2, 2, 1: carried in their specs, so
        # they hold in any process); every further call refused before it started
        assert sum(calls.values()) == 6
        kids = [got[f"top/k{i}"] for i in range(3)]
        assert [k.status for k in kids] == ["failed"] * 3
        for kid, cap in zip(kids, (2, 2, 1), strict=True):
            assert f"task {kid.id}: its budget of {cap} calls ran out" in (kid.reason or "")
        assert {k.parent for k in kids} == {"top"}
        assert report.stopped_by == "quiescent"  # a task's cap is not the run's budget

        calls.clear()

        class Frugal(Agent):
            async def perform(self, ctx: WorkContext) -> Any:
                if ctx.task.parent is not None:
                    return (await self.ask("one call")).text
                await self.ask("plan")
                kids = ctx.spawn([TaskSpec(task_id=f"k{i}", skill="s") for i in range(3)])
                await asyncio.gather(*kids)
                merged = 0
                with contextlib.suppress(TaskBudgetExceeded):
                    while True:
                        await self.ask("merge")
                        merged += 1
                return merged

        agents = [Frugal(f"f{i}", backend=backend, skills={"s": 1.0}) for i in range(4)]
        report = await Team(agents, clock=LoopClock()).run(
            [TaskSpec(task_id="top", skill="s", max_calls=10)]
        )
        got = {t.id: t for t in report.tasks}
        # the children took 3 calls each aside and used one: what they did not use came
        # back to the parent (what their results reported), which merged with 10 - 1 - 3
        assert [got[f"top/k{i}"].status for i in range(3)] == ["accepted"] * 3
        assert got["top"].output == 6
        assert sum(calls.values()) == 10

    virtual(main())


def test_spawn_outside_a_team_is_a_usage_error() -> None:
    ctx = WorkContext(task=TaskSpec(task_id="t", skill="s"), attempt=1)
    with pytest.raises(UsageError, match="inside a running team"):
        ctx.spawn(TaskSpec(task_id="k", skill="s"))
    with pytest.raises(UsageError, match="inside a running team"):
        ctx.hand_off(skill="x")


def test_a_cancel_is_journaled_and_a_resumed_run_does_not_restart_the_work(
    tmp_path: Any,
) -> None:
    from smesh.agents.journal import Journal
    from smesh.agents.story import workflow_summary

    performed: Counter[str] = Counter()

    async def work(ctx: WorkContext) -> Any:
        performed[ctx.task.task_id] += 1
        await asyncio.sleep(10.0 if ctx.task.task_id == "long" else 1.0)
        return "done"

    def team(journal: Journal, resume: bool = False) -> Team:
        agents = [FunctionAgent(f"w{i}", perform=work, skills={"s": 1.0}) for i in range(2)]
        return Team(agents, clock=LoopClock(), journal=journal, run_id="r", resume=resume,
                    settings=Settings(cancel_grace_s=0.5))  # fmt: skip

    async def main() -> None:
        specs = [
            TaskSpec(task_id="long", skill="s"),
            TaskSpec(task_id="after", skill="s", depends_on=("long",)),
            TaskSpec(task_id="short", skill="s"),
        ]
        with Journal(tmp_path / "j.db") as journal:
            first = team(journal)
            asyncio.get_running_loop().call_later(2.0, first.cancel, "long")
            report = await first.run(specs)
            got = {t.id: t.status for t in report.tasks}
            assert got == {"long": "cancelled", "after": "failed", "short": "accepted"}
            summary = workflow_summary(journal.actions("r"))
            assert summary["cancelled"] == ["long"]
        with Journal(tmp_path / "j.db") as journal:
            again = await team(journal, resume=True).run(specs)
        assert {t.id: t.status for t in again.tasks} == got  # nothing restarted
        assert performed == Counter({"long": 1, "short": 1})

    virtual(main())


def test_a_subtask_never_gets_more_tools_than_its_parent() -> None:
    """§2: the parent's allowed tools bound the children, whatever a child asks for."""
    grants: dict[str, list[str] | None] = {}

    async def work(ctx: WorkContext) -> Any:
        grants[ctx.task.task_id] = ctx.grant.names
        if ctx.task.parent is None:
            kids = ctx.spawn([
                TaskSpec(task_id="greedy", skill="s", tools=["sql_query", "run_python"]),
                TaskSpec(task_id="silent", skill="s"),  # asks nothing: inherits the grant
                TaskSpec(task_id="none", skill="s", tools=[]),
            ])  # fmt: skip
            await asyncio.gather(*kids)
        return "ok"

    async def main() -> None:
        team = Team([FunctionAgent("a", perform=work, skills={"s": 1.0}, slots=4)],
                    clock=LoopClock())  # fmt: skip
        report = await team.run([TaskSpec(task_id="top", skill="s", tools=["sql_query"])])
        assert {t.status for t in report.tasks} == {"accepted"}
        assert grants == {"top": ["sql_query"], "top/greedy": ["sql_query"],
                          "top/silent": ["sql_query"], "top/none": []}  # fmt: skip

    virtual(main())


def test_a_task_taken_over_by_another_runtime_starts_from_the_calls_already_reported() -> None:
    """Two teams on one field stand for two processes: each keeps its own task budgets, so
    the second learns what the first used from the first's result (``Result.calls``)."""
    calls: Counter[str] = Counter()

    def reply(request: Request) -> str:
        calls[str(request.agent)] += 1
        return "ok"

    backend = FunctionBackend(reply)

    class First(Agent):
        async def perform(self, ctx: WorkContext) -> Any:
            if ctx.attempt > 1:
                return ctx.hand_off(skill="x", note="over to you")
            for _ in range(3):
                await self.ask("work")
            raise RuntimeError("lost my notes")

    class Second(Agent):
        async def perform(self, ctx: WorkContext) -> Any:
            made = 0
            with contextlib.suppress(TaskBudgetExceeded):
                while True:
                    await self.ask("work")
                    made += 1
            return made

    async def main() -> None:
        clock = LoopClock()
        first = Team([First("first", backend=backend, skills={"s": 1.0})], clock=clock)
        second = Team([Second("second", backend=backend, skills={"x": 1.0})], field=first.field)
        async with first, second:
            report = await first.run_task(TaskSpec(task_id="t", skill="s", max_calls=4))
        assert report.status == "accepted", report
        assert report.output == 1  # 4 - the 3 the first attempt reported
        assert calls == {"first": 3, "second": 1}

    virtual(main())
