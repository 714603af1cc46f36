"""Humans in the loop (issue 13 §5): approval gates, parallel approvals that never mix,
a human as a backend. Virtual time; the cross-process path is in test_workflows_approve.py."""

from __future__ import annotations

import asyncio
import io
from typing import Any

from _agentkit import approve_all, virtual, wait_until

from smesh.agents import Agent, FunctionAgent, TaskSpec, Team, VerifySpec, WorkContext
from smesh.agents.human import (
    HumanAgent,
    HumanAnswer,
    HumanBackend,
    HumanPrompt,
    QueueChannel,
    TerminalChannel,
)
from smesh.agents.protocol import Approval, ApprovalSpec, encode
from smesh.decay import Step
from smesh.testing.virtual_time import LoopClock

GATED = ApprovalSpec(prompt="ship it?")


def test_two_pending_approvals_answered_in_reverse_order_land_on_their_own_tasks() -> None:
    """langgraph PR#6542: parallel interrupts got the same id; resume values were misrouted."""
    feedback_seen: dict[tuple[str, int], tuple[str, ...]] = {}

    async def work(ctx: WorkContext) -> str:
        feedback_seen[(ctx.task.task_id, ctx.attempt)] = ctx.feedback
        await asyncio.sleep(1.0)
        return f"{ctx.task.task_id} draft {ctx.attempt}"

    async def main() -> None:
        desk = QueueChannel()
        agents: list[Agent] = [
            FunctionAgent(f"w{i}", perform=work, skills={"s": 1.0}) for i in range(2)
        ]
        agents.append(HumanAgent("alice", desk))
        async with Team(agents, clock=LoopClock()) as team:
            left = team.submit(TaskSpec(task_id="left", skill="s", approval=GATED))
            right = team.submit(TaskSpec(task_id="right", skill="s", approval=GATED))
            await wait_until(lambda: len(desk.pending()) == 2, step=0.1)
            ids = sorted(p.id for p in desk.pending())
            assert ids == ["approve:left#1", "approve:right#1"]  # unique per task and attempt
            shown = {p.id: p.output for p in desk.pending()}
            assert shown == {"approve:left#1": "left draft 1", "approve:right#1": "right draft 1"}
            # answered in reverse order: right first, then left
            desk.approve("approve:right#1", "good")
            desk.reject("approve:left#1", "cite your sources")
            done = await right
            assert (done.status, done.output) == ("accepted", "right draft 1")
            await wait_until(lambda: [p.id for p in desk.pending()] == ["approve:left#2"])
            assert feedback_seen[("left", 2)] == ("cite your sources",)  # the comment is feedback
            desk.approve("approve:left#2")
            finished = await left
            assert (finished.status, finished.output, finished.attempts) == (
                "accepted", "left draft 2", 2,
            )  # fmt: skip
            board = team.board.tasks
            assert {a: s.origin for a, s in (board["left"].approvals or {}).items()} == {
                1: "alice", 2: "alice",
            }  # fmt: skip
            assert list(board["right"].approvals or {}) == [1]
            assert board["right"].decision(1).basis == "approval"  # type: ignore[union-attr]

    virtual(main())


def test_an_approval_comes_after_verification_and_only_from_the_named_approver() -> None:
    async def main() -> None:
        async def work(ctx: WorkContext) -> str:
            return "answer"

        desk = QueueChannel()
        agents: list[Agent] = [
            FunctionAgent("w", perform=work, skills={"s": 1.0}),
            FunctionAgent("v", judge=approve_all, verifies={"s": 1.0}),
            HumanAgent("boss", desk),
        ]
        spec = TaskSpec(
            task_id="t",
            skill="s",
            verify=VerifySpec(quorum=0.4, margin=0.1),
            approval=ApprovalSpec(by="boss"),
        )
        async with Team(agents, clock=LoopClock()) as team:
            handle = team.submit(spec)
            await wait_until(lambda: bool(desk.pending()), step=0.1)
            task = team.board.tasks["t"]
            assert task.voters(1) == {"v"}  # the votes were in before a human was asked
            assert not handle.done()
            # forged or misdirected answers change nothing
            assert task.requests is not None
            request_result = task.requests[1].payload["result"]
            fake = Approval("t", 1, "approve", "lgtm", "mallory", request_result)
            team.field.emit("approval", encode(fake), origin="mallory", scope="origin",
                            decay=Step(), ttl=3600.0)  # fmt: skip
            wrong = Approval("t", 1, "approve", "", "boss", "not-the-result")
            team.field.emit("approval", encode(wrong), origin="boss", scope="origin",
                            decay=Step(), ttl=3600.0)  # fmt: skip
            await asyncio.sleep(1.0)
            assert not handle.done() and task.awaiting_approval
            desk.approve(desk.pending()[0].id)
            assert (await handle).status == "accepted"

    virtual(main())


def test_a_rejection_on_the_last_attempt_fails_the_task_with_the_comment() -> None:
    async def main() -> None:
        async def work(ctx: WorkContext) -> str:
            return "v1"

        desk = QueueChannel()
        agents = [FunctionAgent("w", perform=work, skills={"s": 1.0}), HumanAgent("h", desk)]
        async with Team(agents, clock=LoopClock()) as team:
            handle = team.submit(TaskSpec(task_id="t", skill="s", approval=GATED, max_attempts=1))
            prompt = await desk.next(timeout=10.0)
            desk.reject(prompt.id, "not this way")
            report = await handle
            assert (report.status, report.reason) == ("failed", "not this way")

    virtual(main())


def test_a_human_backend_answers_work_questions() -> None:
    async def main() -> None:
        desk = QueueChannel()
        person = Agent("carol", backend=HumanBackend(desk), skills={"s": 1.0})

        async def answer() -> None:
            prompt = await desk.next(timeout=10.0)
            assert prompt.kind == "work" and "What is the capital" in prompt.text
            desk.answer(prompt.id, "Paris")

        helper = asyncio.ensure_future(answer())
        report = await Team([person], clock=LoopClock()).run(
            [TaskSpec(task_id="q", skill="s", description="What is the capital of France?")]
        )
        await helper
        assert report.tasks[0].output == "Paris"

    virtual(main())


def test_the_terminal_channel_shows_the_question_and_reads_the_answer() -> None:
    async def main() -> None:
        out = io.StringIO()
        channel = TerminalChannel(io.StringIO("y\nn too vague\nmaybe later\n"), out)
        prompt = HumanPrompt(id="approve:t#1", kind="approval", text="ship?", output="v1")
        answers: list[HumanAnswer] = [await channel.ask(prompt) for _ in range(3)]
        assert [(a.verdict, a.reason) for a in answers] == [
            ("approve", ""), ("reject", "too vague"), ("reject", "maybe later"),
        ]  # fmt: skip
        assert "[approve:t#1] ship?" in out.getvalue() and "'v1'" in out.getvalue()

    virtual(main())


def test_a_cancelled_task_withdraws_its_question() -> None:
    async def main() -> None:
        async def work(ctx: WorkContext) -> Any:
            return "x"

        desk = QueueChannel()
        agents = [FunctionAgent("w", perform=work, skills={"s": 1.0}), HumanAgent("h", desk)]
        async with Team(agents, clock=LoopClock()) as team:
            handle = team.submit(TaskSpec(task_id="t", skill="s", approval=GATED))
            await desk.next(timeout=10.0)
            team.cancel("t", grace_s=0.0)
            assert (await handle).status == "cancelled"
            await wait_until(lambda: not desk.pending(), step=0.1)

    virtual(main())
