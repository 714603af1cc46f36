"""A team that lives as long as the application (issue 13 §0), and the runtime asks of the
``smesh eval`` work: a bid that expires before it resolves, a stop that ends the run and
cancels work in flight, a budget stop, bounded wakes. Virtual time throughout."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from _agentkit import now, virtual, wait_until

from smesh.agents import Agent, Budget, FunctionAgent, Settings, TaskSpec, Team, WorkContext
from smesh.backends.base import Request
from smesh.errors import UsageError
from smesh.testing import FunctionBackend, ScriptedBackend
from smesh.testing.virtual_time import LoopClock


async def _echo(ctx: WorkContext) -> str:
    await asyncio.sleep(1.0)
    return f"did {ctx.task.task_id}"


def test_a_long_lived_team_takes_tasks_at_any_time_and_stops_promptly() -> None:
    async def main() -> None:
        agents = [FunctionAgent(f"w{i}", perform=_echo, skills={"s": 1.0}) for i in range(2)]
        settings = Settings(idle_timeout_s=5.0, poll_s=1.0)  # idle time must not end it
        async with Team(agents, clock=LoopClock(), settings=settings) as team:
            first = await team.run_task(TaskSpec(task_id="a", skill="s"))
            assert (first.status, first.output, first.claimed_by) == ("accepted", "did a", "w0")
            await asyncio.sleep(60.0)  # quiet for far longer than idle_timeout_s
            assert team.running
            handles = [team.submit(TaskSpec(task_id=f"b{i}", skill="s")) for i in range(3)]
            reports = await asyncio.gather(*handles)
            assert [r.output for r in reports] == ["did b0", "did b1", "did b2"]
            assert handles[0].done() and handles[0].report() == reports[0]
            late = team.submit(TaskSpec(task_id="late", skill="s", depends_on=("a",)))
            started = now()
        assert now() - started < 1.0  # the end of the block stops it without waiting
        report = await team.stop()  # a second caller gets the same report
        assert report.stopped_by == "closed"
        assert {t.id: t.status for t in report.tasks} == {
            "a": "accepted", "b0": "accepted", "b1": "accepted", "b2": "accepted",
            "late": "failed",
        }  # fmt: skip
        assert (await late).reason == "unfinished when the run stopped"
        assert not team.running

    virtual(main())


def test_stop_cancels_the_backend_call_in_flight_and_every_caller_gets_the_report() -> None:
    cancelled: list[str] = []

    async def slow(request: Request) -> str:
        try:
            await asyncio.sleep(1000.0)
        except asyncio.CancelledError:
            cancelled.append(str(request.agent))
            raise
        return "never"

    async def main() -> None:
        backend = FunctionBackend(slow)
        team = Team([Agent("w", backend=backend, skills={"s": 1.0})], clock=LoopClock())
        run = asyncio.ensure_future(team.run([TaskSpec(task_id="t", skill="s")]))
        await asyncio.sleep(5.0)
        first, second = await asyncio.gather(team.stop("user asked"), team.stop())
        report = await run
        assert first == second == report  # the same report for every caller
        assert report.stopped_by == "user asked"
        assert cancelled == ["w"]  # the cancellation reached the backend call
        assert now() == 5.0
        assert report.tasks[0].reason == "unfinished when the run stopped (user asked)"

    virtual(main())


def test_runtime_stop_ends_a_run_at_once() -> None:
    """Regression: ``Runtime.stop()`` set a flag the team's wait loop never looked at."""

    async def main() -> None:
        agents = [FunctionAgent("w", perform=_echo, skills={"s": 1.0})]
        team = Team(agents, clock=LoopClock(), settings=Settings(poll_s=100.0))
        asyncio.get_running_loop().call_later(2.5, team.runtime.stop)
        specs = [TaskSpec(task_id=f"t{i}", skill="s") for i in range(10)]
        report = await team.run(specs)
        assert report.stopped_by == "stopped" and now() == 2.5
        assert [t.status for t in report.tasks].count("accepted") == 2

    virtual(main())


def test_a_wall_time_budget_stops_in_flight_work_at_once_and_says_why() -> None:
    calls_cancelled: list[float] = []

    async def slow(request: Request) -> str:
        try:
            await asyncio.sleep(100.0)
        except asyncio.CancelledError:
            calls_cancelled.append(now())
            raise
        return "x"

    async def main() -> None:
        team = Team(
            [Agent("w", backend=FunctionBackend(slow), skills={"s": 1.0})],
            clock=LoopClock(),
            budget=Budget(wall_s=10.0),
        )
        report = await team.run([TaskSpec(task_id="t", skill="s")])
        assert report.stopped_by == "budget"
        assert report.stop_detail == "wall_s budget of 10 reached"
        assert calls_cancelled and calls_cancelled[0] <= 10.25  # within one tick
        assert now() <= 10.25

    virtual(main())


def test_a_bid_that_expires_before_it_resolves_does_not_crash_the_team() -> None:
    """Regression (smesh eval): with ``lease_s < claim_settle_s`` the bid lapsed while its
    agent waited to resolve it, and withdrawing it raised SignalNotFound in every agent."""

    async def main() -> None:
        agents = [FunctionAgent(f"w{i}", perform=_echo, skills={"s": 1.0}) for i in range(3)]
        team = Team(agents, clock=LoopClock(), settings=Settings(lease_s=1, claim_settle_s=2))
        report = await team.run([TaskSpec(task_id=f"t{i}", skill="s") for i in range(5)])
        assert report.stopped_by == "quiescent"
        assert [t.status for t in report.tasks] == ["accepted"] * 5

    virtual(main())


def test_a_team_runs_again_and_its_agents_join_another_team() -> None:
    async def main() -> None:
        agents = [FunctionAgent(f"w{i}", perform=_echo, skills={"s": 1.0}) for i in range(2)]
        settings = Settings(idle_timeout_s=600.0)
        team = Team(agents, clock=LoopClock(), settings=settings)
        one = await team.run([TaskSpec(task_id="t", skill="s")])
        started = now()
        two = await team.run([TaskSpec(task_id="u", skill="s")])
        assert (one.stopped_by, two.stopped_by) == ("quiescent", "quiescent")
        assert [t.id for t in two.tasks] == ["u"]  # each run reports its own tasks
        assert now() - started == 1.0  # not 600 s of idle time
        # the same agents, the same task id, a new team: nothing stale holds them back
        other = Team(agents, clock=LoopClock(), settings=settings)
        started = now()
        three = await other.run([TaskSpec(task_id="t", skill="s")])
        assert three.tasks[0].status == "accepted" and now() - started == 1.0

    virtual(main())


def test_misuse_is_refused_clearly() -> None:
    async def main() -> None:
        team = Team([FunctionAgent("w", perform=_echo, skills={"s": 1.0})], clock=LoopClock())
        with pytest.raises(UsageError, match="not running"):
            await team.run_task(TaskSpec(task_id="t", skill="s"))
        with pytest.raises(UsageError, match="never started"):
            await team.stop()
        with pytest.raises(UsageError, match="no task 'nope'"):
            team.cancel("nope")
        async with team:
            with pytest.raises(UsageError, match="already running"):
                await team.run([])
            with pytest.raises(UsageError, match="already running"):
                await team.start()

    virtual(main())


def test_waiting_for_a_task_that_is_not_posted_yet_is_no_error() -> None:
    async def main() -> None:
        team = Team([FunctionAgent("w", perform=_echo, skills={"s": 1.0})], clock=LoopClock())
        decision = team.board.wait_decision("later")  # used to raise KeyError
        final = team.board.wait_final("later")
        async with team:
            await asyncio.sleep(3.0)
            team.submit(TaskSpec(task_id="later", skill="s"))
            assert (await final).outcome == "accepted"
            assert (await decision).payload["verdict"] == "accepted"
            ghost = team.board.wait_final("ghost")
        with pytest.raises(UsageError, match="never reached the board"):
            await ghost  # released when the team stopped: no wait without end

    virtual(main())


def test_an_agent_that_fails_ends_the_team_and_stop_raises_it() -> None:
    class Broken(Agent):
        def _dispatch(self, loop: asyncio.AbstractEventLoop) -> list[asyncio.Task[None]]:
            raise RuntimeError("a bug in the agent")

    async def main() -> None:
        team = Team([Broken("b", skills={"s": 1.0})], clock=LoopClock())
        async with team:
            handle = team.submit(TaskSpec(task_id="t", skill="s"))
            report = await handle  # resolved when the team went down
            assert report.status == "failed"
            assert not team.running
        with pytest.raises(BaseExceptionGroup):
            await team.stop()

    with pytest.raises(BaseExceptionGroup):
        virtual(main())


def test_test_doubles_keep_bounded_memory() -> None:
    async def main() -> None:
        function = FunctionBackend(lambda r: "ok", keep=10)
        scripted = ScriptedBackend(["x"] * 50, keep=10)
        for _ in range(50):
            await function.complete(Request.of("hi"))
            await scripted.complete(Request.of("hi"))
        assert (len(function.calls), function.call_count) == (10, 50)
        assert (len(scripted.calls), scripted.call_count) == (10, 50)

    virtual(main())


def test_an_opened_task_wakes_a_few_idle_agents_not_all() -> None:
    woken: list[str] = []

    class Counting(FunctionAgent):
        def wake(self) -> None:
            if self.ready():
                woken.append(self.id)
            super().wake()

    async def main() -> None:
        agents = [Counting(f"a{i:03d}", perform=_echo, skills={"s": 1.0}) for i in range(300)]
        settings = Settings(poll_s=1000.0, wake_fanout=4)
        async with Team(agents, clock=LoopClock(), settings=settings) as team:
            await asyncio.sleep(0.1)  # every agent asleep
            woken.clear()
            report = await team.run_task(TaskSpec(task_id="t", skill="s"))
            assert report.status == "accepted"
            assert 1 <= len(woken) <= 8  # not 300

    virtual(main())


def test_a_task_is_never_left_unclaimed_while_a_capable_idle_agent_exists() -> None:
    """The woken sample may all be unable to bid; then more are woken at once (not at the
    next poll): here only one agent of 300 may claim the task."""

    async def main() -> None:
        agents = [FunctionAgent(f"a{i:03d}", perform=_echo, skills={"s": 1.0}) for i in range(300)]
        for agent in agents[:-1]:
            agent.node.sense_threshold = 2.0  # scores are <= 1: these never bid
        settings = Settings(poll_s=1000.0, wake_fanout=3)
        async with Team(agents, clock=LoopClock(), settings=settings) as team:
            await asyncio.sleep(0.1)
            start = now()
            report = await team.run_task(TaskSpec(task_id="t", skill="s"))
            assert report.claimed_by == "a299"
            assert now() - start == 1.0  # claimed at once: 1.0 is the work itself

    virtual(main())


def test_cancelling_a_run_from_a_signal_handler_style_callback_ends_it() -> None:
    async def main() -> None:
        async def endless(ctx: WorkContext) -> Any:
            while True:
                await asyncio.sleep(1.0)

        team = Team([FunctionAgent("w", perform=endless, skills={"s": 1.0})], clock=LoopClock(),
                    settings=Settings(cancel_grace_s=2.0))  # fmt: skip
        loop = asyncio.get_running_loop()
        loop.call_later(3.0, lambda: team.cancel(reason="Ctrl-C"))  # sync, like a handler
        report = await team.run([TaskSpec(task_id="t", skill="s")])
        assert report.stopped_by == "cancelled" and report.stop_detail == "Ctrl-C"
        assert report.tasks[0].status == "cancelled"
        assert now() == 5.0  # the grace period, then the work was cancelled outright
        await wait_until(lambda: team.runtime.winding_down == 0)

    virtual(main())
