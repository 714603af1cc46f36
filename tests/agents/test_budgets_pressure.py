"""Hard budgets end a run with a report; pressure from a rate limit slows a shared backend."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from _agentkit import DecisionLog, now, virtual

from smesh.agents import Agent, Budget, Settings, TaskSpec, Team, WorkContext
from smesh.agents.journal import Journal
from smesh.backends.accounting import Price, PriceTable
from smesh.backends.base import Request
from smesh.errors import RateLimited
from smesh.testing import FunctionBackend
from smesh.testing.virtual_time import LoopClock

# -- budgets -----------------------------------------------------------------------------------


def _assert_budget_report(team: Team, report: object, *, accepted_max: int) -> None:
    from smesh.agents import RunReport

    assert isinstance(report, RunReport)
    assert report.stopped_by == "budget"
    statuses = Counter(t.status for t in report.tasks)
    assert set(statuses) <= {"accepted", "failed"}
    assert statuses["failed"] > 0
    assert statuses["accepted"] <= accepted_max
    for task in report.tasks:
        if task.status == "failed":
            assert task.reason == "unfinished when the run stopped (budget)"
    # nothing is left open on the board either: the poster gave its tasks up explicitly
    assert team.board.all_final()


@pytest.mark.parametrize("agents", [1, 8])
def test_a_call_budget_ends_the_run_and_is_never_exceeded(agents: int) -> None:
    async def main() -> None:
        backend = FunctionBackend(lambda r: "done", latency=1.0)
        team = Team(
            [Agent(f"a{i}", backend=backend, skills={"s": 0.8}) for i in range(agents)],
            clock=LoopClock(),
            budget=Budget(calls=3),
        )
        log = DecisionLog(team.field)
        report = await asyncio.wait_for(
            team.run([TaskSpec(task_id=f"t{i}", skill="s") for i in range(10)]), 3600
        )
        assert len(backend.calls) == 3  # a hard limit, even with 8 agents calling at once
        assert report.llm_calls == 3
        _assert_budget_report(team, report, accepted_max=3)
        given_up = [r for r in log.rows if r[4] == "give-up"]
        assert len(given_up) == sum(t.status == "failed" for t in report.tasks)

    virtual(main())


def test_a_token_budget_ends_the_run() -> None:
    async def main() -> None:
        backend = FunctionBackend(lambda r: "word " * 40)  # ~40+ tokens per call
        team = Team(
            [Agent("a", backend=backend, skills={"s": 0.8})],
            clock=LoopClock(),
            budget=Budget(tokens=100),
        )
        report = await team.run([TaskSpec(task_id=f"t{i}", skill="s") for i in range(10)])
        assert report.tokens >= 100
        # the call that crossed the limit is the last one made
        assert len(backend.calls) == report.llm_calls < 10
        _assert_budget_report(team, report, accepted_max=report.llm_calls)

    virtual(main())


def test_a_wall_time_budget_ends_a_run_whose_work_never_finishes() -> None:
    """Real time, a real event loop: a backend that never answers cannot hold the run."""

    async def never(request: Request) -> str:
        await asyncio.sleep(3600)
        return "too late"

    async def main() -> None:
        team = Team(
            [Agent("a", backend=FunctionBackend(never), skills={"s": 0.8})],
            settings=Settings(poll_s=0.05),
            budget=Budget(wall_s=0.3),
        )
        started = time.monotonic()
        report = await team.run(
            [TaskSpec(task_id="t0", skill="s"), TaskSpec(task_id="t1", skill="s")]
        )
        elapsed = time.monotonic() - started
        assert 0.3 <= elapsed < 2.0
        _assert_budget_report(team, report, accepted_max=0)

    asyncio.run(main())


def test_a_wall_time_budget_runs_on_the_loop_clock() -> None:
    """On virtual time the same budget is exact: a run whose work hangs stops at wall_s
    (noticed within one poll), with no real waiting."""

    async def never(request: Request) -> str:
        await asyncio.sleep(10**6)
        return "too late"

    async def main() -> None:
        team = Team(
            [Agent("a", backend=FunctionBackend(never), skills={"s": 0.8})],
            clock=LoopClock(),
            settings=Settings(poll_s=5.0, work_timeout_s=10**5),
            budget=Budget(wall_s=100.0),
        )
        report = await team.run([TaskSpec(task_id="t0", skill="s")])
        assert 100.0 <= report.duration_s <= 105.0
        _assert_budget_report(team, report, accepted_max=0)

    started = time.monotonic()
    virtual(main())
    assert time.monotonic() - started < 2.0


def test_a_cost_budget_ends_the_run_with_a_priced_backend() -> None:
    async def main() -> None:
        # $1 per token: each call costs its prompt plus reply tokens
        prices = PriceTable({"paid*": Price(input_per_mtok=1e6, output_per_mtok=1e6)})
        paid = FunctionBackend(lambda r: "a fairly long answer " * 5, name="paid-llm")
        free = FunctionBackend(lambda r: "ok", name="function")
        team = Team(
            [
                Agent("spender", backend=paid, skills={"s": 0.9}),
                Agent("saver", backend=free, skills={"free": 0.9}),
            ],
            clock=LoopClock(),
            budget=Budget(cost=100.0, prices=prices),
        )
        tasks = [TaskSpec(task_id=f"t{i}", skill="s") for i in range(10)]
        report = await team.run([*tasks, TaskSpec(task_id="f", skill="free")])
        assert report.cost >= 100.0
        assert len(paid.calls) < 10
        _assert_budget_report(team, report, accepted_max=len(paid.calls) + 1)
        ledger = team.budget.ledger.by_agent()
        assert ledger["spender"].cost_usd == pytest.approx(report.cost)
        assert ledger["spender"].calls == len(paid.calls)
        assert ledger["saver"].cost_usd == 0.0

    virtual(main())


def test_the_budget_stop_is_journaled_as_give_ups(tmp_path: object) -> None:
    async def main(path: str) -> None:
        with Journal(path) as journal:
            team = Team(
                [Agent("a", backend=FunctionBackend(lambda r: "ok"), skills={"s": 0.8})],
                clock=LoopClock(),
                budget=Budget(calls=1),
                journal=journal,
                run_id="r",
            )
            report = await team.run([TaskSpec(task_id=f"t{i}", skill="s") for i in range(3)])
            gave_up = {a.task_id for a in journal.actions("r") if a.action == "give-up"}
            assert gave_up == {t.id for t in report.tasks if t.status == "failed"}
            assert len(gave_up) == 2
            (run,) = journal.runs()
            assert run["report"]["stopped_by"] == "budget"

    virtual(main(str(tmp_path) + "/j.db"))


def test_an_idle_team_ends_the_run_and_reports_unclaimable_tasks() -> None:
    async def main() -> None:
        # the agent has the skill, but too faintly to ever sense the task (0.05 x 0.75 x
        # 0.5 is below its 0.1 threshold): nothing happens until the idle timeout
        team = Team(
            [Agent("a", backend=FunctionBackend(lambda r: "ok"), skills={"s": 0.05})],
            clock=LoopClock(),
            settings=Settings(idle_timeout_s=60.0),
        )
        report = await team.run([TaskSpec(task_id="orphan", skill="s")])
        assert report.stopped_by == "idle"
        assert report.duration_s == pytest.approx(60.0, abs=1.0)
        assert report.tasks[0].status == "failed"
        assert report.tasks[0].reason == "unfinished when the run stopped (idle)"
        assert report.tasks[0].claimed_by is None
        assert report.tasks[0].attempts == 0

    virtual(main())


# -- pressure ----------------------------------------------------------------------------------


class _Late(Agent):
    """Starts its call one second into the task, after the rate limit was signalled."""

    async def perform(self, ctx: WorkContext) -> object:
        await asyncio.sleep(1.0)
        return await super().perform(ctx)


@pytest.mark.parametrize(("retry_after", "hold"), [(10.0, 10.0), (None, 7.0)])
def test_a_rate_limit_slows_every_agent_sharing_the_backend(
    retry_after: float | None, hold: float
) -> None:
    calls: dict[str, list[float]] = {"a": [], "b": [], "c": []}

    def backend(agent: str, name: str, *, limited: bool = False) -> FunctionBackend:
        state = {"first": limited}

        def start(request: Request) -> float:
            calls[agent].append(now())
            return 0.0

        def reply(request: Request) -> str:
            if state["first"]:
                state["first"] = False
                raise RateLimited("429 slow down", retry_after=retry_after, backend=name)
            return "ok"

        return FunctionBackend(reply, name=name, latency=start)

    async def main() -> None:
        with Journal(":memory:") as journal:
            team = Team(
                [
                    Agent("a", backend=backend("a", "shared", limited=True), skills={"x": 1.0}),
                    _Late("b", backend=backend("b", "shared"), skills={"y": 1.0}),
                    _Late("c", backend=backend("c", "other"), skills={"z": 1.0}),
                ],
                clock=LoopClock(),
                settings=Settings(pressure_hold_s=7.0),
                journal=journal,
                run_id="r",
            )
            report = await team.run(
                [TaskSpec(task_id=t, skill=s) for t, s in (("ta", "x"), ("tb", "y"), ("tc", "z"))]
            )
            assert [t.status for t in report.tasks] == ["accepted"] * 3
            # a was told to slow down at t=0 and retried after the hold
            assert calls["a"] == [0.0, hold]
            # b shares the backend's name: its call at t=1 waited for the hold too
            assert calls["b"] == [hold]
            # c uses another backend and went ahead
            assert calls["c"] == [1.0]
            pressure = [a for a in journal.actions("r") if a.action == "pressure"]
            assert [(p.agent, p.detail) for p in pressure] == [
                ("a", {"backend": "shared", "hold_s": hold})
            ]
            assert report.llm_calls == 4

    virtual(main())
