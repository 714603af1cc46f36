"""Handoffs, addressed tasks and restarts on new context (issue 13 §3, §6), virtual time."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from _agentkit import now, virtual

from smesh.agents import FunctionAgent, Settings, TaskSpec, Team, WorkContext
from smesh.agents.protocol import Claim, encode
from smesh.decay import Step
from smesh.testing.virtual_time import LoopClock


def test_a_handoff_passes_the_task_and_its_context_to_another_skill() -> None:
    seen: list[Any] = []

    async def triage(ctx: WorkContext) -> Any:
        return ctx.hand_off(skill="billing", context={"customer": 42}, note="a refund")

    async def billing(ctx: WorkContext) -> Any:
        assert ctx.handoff is not None
        seen.append((ctx.handoff.by, ctx.handoff.context, ctx.handoff.note, ctx.attempt))
        return f"refunded customer {ctx.handoff.context['customer']}"

    async def main() -> None:
        agents = [
            FunctionAgent("front", perform=triage, skills={"support": 1.0}),
            FunctionAgent("money", perform=billing, skills={"billing": 1.0}),
        ]
        report = await Team(agents, clock=LoopClock()).run(
            [TaskSpec(task_id="ticket", skill="support")]
        )
        [task] = report.tasks
        assert (task.status, task.claimed_by) == ("accepted", "money")
        assert task.output == "refunded customer 42"
        assert seen == [("front", {"customer": 42}, "a refund", 1)]  # same attempt, continued

    virtual(main())


def test_only_the_addressee_may_claim_and_a_forged_claim_is_ignored() -> None:
    async def main() -> None:
        async def work(ctx: WorkContext) -> str:
            await asyncio.sleep(1.0)
            return "done"

        agents = [
            FunctionAgent("eager", perform=work, skills={"s": 1.0}),
            FunctionAgent("named", perform=work, skills={"s": 0.3}),
        ]
        team = Team(agents, clock=LoopClock())
        # a hostile node claims the addressed task first: the board does not count it
        team.submit(TaskSpec(task_id="t", skill="s", to="named"))
        forged = Claim("t", 1, 9.0, "held")
        team.field.emit("claim", encode(forged), origin="mallory", scope="origin", decay=Step())
        assert team.board.tasks["t"].holder is None
        report = await team.run()
        assert report.tasks[0].claimed_by == "named"  # not the agent with more affinity

    virtual(main())


def test_an_addressed_task_falls_back_to_open_bidding_when_its_addressee_is_gone() -> None:
    async def main() -> None:
        started: dict[str, float] = {}

        async def work(ctx: WorkContext) -> str:
            started[ctx.task.task_id] = now()
            await asyncio.sleep(1.0)
            return "done"

        agents = [FunctionAgent("other", perform=work, skills={"s": 1.0})]
        settings = Settings(address_fallback_s=20.0, poll_s=1000.0)
        team = Team(agents, clock=LoopClock(), settings=settings)
        # "absent" never shows up; "quick" is a short fallback of its own
        report = await team.run([
            TaskSpec(task_id="slow", skill="s", to="absent"),
            TaskSpec(task_id="quick", skill="s", to="absent", fallback_s=5.0),
        ])  # fmt: skip
        assert [t.claimed_by for t in report.tasks] == ["other", "other"]
        assert started == {"quick": 5.0, "slow": 20.0}  # woken right at the deadline

    virtual(main())


def test_a_handed_task_whose_addressee_dies_opens_to_everyone_at_once() -> None:
    async def main() -> None:
        async def first(ctx: WorkContext) -> Any:
            return ctx.hand_off(to="expert", skill="deep", note="you know this")

        async def expert(ctx: WorkContext) -> Any:
            await asyncio.sleep(100.0)
            return "expert answer"

        async def backup(ctx: WorkContext) -> Any:
            await asyncio.sleep(1.0)
            return f"backup answer ({ctx.handoff.note if ctx.handoff else ''})"

        agents = [
            FunctionAgent("first", perform=first, skills={"s": 1.0}),
            FunctionAgent("expert", perform=expert, skills={"deep": 0.9}),
            FunctionAgent("backup", perform=backup, skills={"deep": 0.5}),
        ]
        team = Team(agents, clock=LoopClock(), settings=Settings(lease_s=6.0))
        asyncio.get_running_loop().call_later(2.0, team.kill, "expert")
        report = await team.run([TaskSpec(task_id="t", skill="s")])
        [task] = report.tasks
        assert (task.status, task.claimed_by) == ("accepted", "backup")
        assert task.output == "backup answer (you know this)"
        # the expert's lease lapsed at t = 6 and the task opened at once (not after the
        # 30 s address fallback): the backup finished it a second later
        assert now() == 7.0

    virtual(main())


def test_reopening_an_accepted_task_reruns_it_and_its_dependents_within_limits() -> None:
    runs: Counter[str] = Counter()
    contexts: dict[str, list[Any]] = {}

    async def work(ctx: WorkContext) -> Any:
        task_id = ctx.task.task_id
        runs[task_id] += 1
        contexts.setdefault(task_id, []).append(
            (ctx.previous, ctx.restart.reason if ctx.restart else None, dict(ctx.inputs))
        )
        await asyncio.sleep(1.0)
        return f"{task_id} v{runs[task_id]}"

    async def main() -> None:
        agents = [FunctionAgent(f"w{i}", perform=work, skills={"s": 1.0}) for i in range(2)]
        async with Team(agents, clock=LoopClock()) as team:
            research = team.submit(TaskSpec(task_id="research", skill="s", max_restarts=1,
                                            restart_cooldown_s=10.0))  # fmt: skip
            summary = team.submit(TaskSpec(task_id="summary", skill="s", depends_on=("research",)))
            await summary
            team.reopen("research", reason="a newer source came out", context={"url": "x"})
            await asyncio.sleep(0)
            assert not research.done()  # it runs again
            assert (await research).output == "research v2"
            await asyncio.sleep(0)
            assert (await summary).output == "summary v2"  # its input was superseded
            assert contexts["research"][1][:2] == ("research v1", "a newer source came out")
            assert contexts["summary"][1][2] == {"research": "research v2"}
            assert contexts["summary"][1][1] == "input research was superseded"
            # over the limit: refused, nothing runs again
            team.reopen("research", reason="yet another source")
            await asyncio.sleep(5.0)
            assert runs == Counter({"research": 2, "summary": 2})
            assert team.board.tasks["research"].outcome == "accepted"

    virtual(main())


def test_a_reopen_within_the_cooldown_is_refused() -> None:
    async def main() -> None:
        async def work(ctx: WorkContext) -> str:
            return "ok"

        agents = [FunctionAgent("w", perform=work, skills={"s": 1.0})]
        async with Team(agents, clock=LoopClock()) as team:
            await team.run_task(TaskSpec(task_id="t", skill="s", restart_cooldown_s=30.0))
            team.reopen("t", reason="first")
            await asyncio.sleep(1.0)
            team.reopen("t", reason="too soon")
            await asyncio.sleep(1.0)
            state = team.board.tasks["t"]
            assert state.restarts == 1 and state.outcome == "accepted"
            await asyncio.sleep(30.0)
            team.reopen("t", reason="later")
            await asyncio.sleep(1.0)
            assert state.restarts == 2

    virtual(main())
