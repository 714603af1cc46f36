"""Trust is used in claims and in votes, and learned from verified outcomes."""

from __future__ import annotations

from typing import Any

from _agentkit import DecisionLog, now, virtual

from smesh.agents import (
    FunctionAgent,
    Judgement,
    Settings,
    TaskSpec,
    Team,
    VerifySpec,
    WorkContext,
)
from smesh.agents.journal import Journal
from smesh.agents.protocol import ClaimView, claim_winner
from smesh.testing.virtual_time import LoopClock
from smesh.trust import TrustTable


async def _good(ctx: WorkContext) -> str:
    return "correct"


async def _bad(ctx: WorkContext) -> str:
    return "wrong"


async def _check(task: TaskSpec, output: Any) -> Judgement:
    if output == "correct":
        return Judgement("approve", "as expected")
    return Judgement("reject", f"expected 'correct', got {output!r}")


# one trusted tool decides alone (its seeded trust relaxes toward 0.5 as time passes)
TOOL_QUORUM = VerifySpec(quorum=0.8, margin=0.3)


def _tool_trust() -> TrustTable:
    trust = TrustTable()
    trust.set("tester", 0.9, 0.0)  # a deterministic tool starts trusted
    return trust


def test_a_low_reputation_bids_less_and_loses_the_claim_to_an_equal_peer() -> None:
    async def main() -> None:
        trust = TrustTable()
        trust.set("a", 0.2, 0.0)  # a's earlier work was rejected
        a = FunctionAgent("a", perform=_good, skills={"s": 0.8})
        b = FunctionAgent("b", perform=_good, skills={"s": 0.8})
        team = Team([a, b], clock=LoopClock(), trust=trust)
        report = await team.run([TaskSpec(task_id="t", skill="s")])
        task = team.board.tasks["t"]
        assert a.bid(task, now()) < b.bid(task, now())
        # equal affinity and a lower id, but b wins on reputation
        assert report.tasks[0].claimed_by == "b"

        # control: with equal reputations the lower id wins
        a2 = FunctionAgent("a", perform=_good, skills={"s": 0.8})
        b2 = FunctionAgent("b", perform=_good, skills={"s": 0.8})
        team = Team([a2, b2], clock=LoopClock())
        report = await team.run([TaskSpec(task_id="t", skill="s")])
        assert report.tasks[0].claimed_by == "a"

    virtual(main())


def test_rejected_work_costs_trust_and_the_next_claim() -> None:
    async def main() -> None:
        with Journal(":memory:") as journal:
            trust = _tool_trust()
            a = FunctionAgent("a", perform=_bad, skills={"s": 0.8})
            b = FunctionAgent("b", perform=_good, skills={"s": 0.8})
            tester = FunctionAgent("tester", judge=_check, verifies={"s": 1.0})
            team = Team(
                [a, b, tester],
                clock=LoopClock(),
                trust=trust,
                settings=Settings(claim_settle_s=0.5),
                journal=journal,
                run_id="r",
            )
            log = DecisionLog(team.field)
            report = await team.run([TaskSpec(task_id="t", skill="s", verify=TOOL_QUORUM)])
            actions = journal.actions("r", "t")
            claims = [
                (x.detail["attempt"], x.agent, x.detail["bid"])
                for x in actions
                if x.action == "claim"
            ]
            # attempt 1: equal bids, a wins on its id; the tool rejects its work
            # attempt 2: a's reputation fell, so its bid did, and b wins the claim
            assert claims == [(1, "a", 0.8), (2, "b", 0.8)]
            assert [r[2:5] for r in log.rows] == [
                (1, "rejected", "votes"),
                (2, "accepted", "votes"),
            ]
            task = team.board.tasks["t"]
            t = now()
            assert a.bid(task, t) < 0.8 < b.bid(task, t)  # 0.8 × (0.5 + trust)
            views = [ClaimView("a", a.bid(task, t), False), ClaimView("b", b.bid(task, t), False)]
            assert claim_winner(views) == "b"
            assert report.tasks[0].claimed_by == "b"
            assert report.tasks[0].attempts == 2
            assert trust.get("a", t) < 0.5 < trust.get("b", t)
            # every trust move is journaled with its cause
            moves = [(x.agent, x.detail["cause"]) for x in actions if x.action == "trust"]
            assert moves == [
                ("a", "attempt 1: work rejected"),
                ("tester", "attempt 1: voted reject, decision rejected"),
                ("b", "attempt 2: work accepted"),
                ("tester", "attempt 2: voted approve, decision accepted"),
            ]

    virtual(main())


def test_feedback_from_a_rejection_reaches_the_next_attempt() -> None:
    seen: list[tuple[int, tuple[str, ...]]] = []

    async def learner(ctx: WorkContext) -> str:
        seen.append((ctx.attempt, ctx.feedback))
        return "correct" if ctx.feedback else "wrong"

    async def main() -> None:
        agents = [
            FunctionAgent("w", perform=learner, skills={"s": 1.0}),
            FunctionAgent("tester", judge=_check, verifies={"s": 1.0}),
        ]
        team = Team(agents, clock=LoopClock(), trust=_tool_trust())
        report = await team.run([TaskSpec(task_id="t", skill="s", verify=TOOL_QUORUM)])
        assert seen == [(1, ()), (2, ("expected 'correct', got 'wrong'",))]
        assert report.tasks[0].status == "accepted"
        assert report.tasks[0].attempts == 2

    virtual(main())


def test_retries_are_bounded_and_the_failure_says_why() -> None:
    async def main() -> None:
        agents = [
            FunctionAgent("w", perform=_bad, skills={"s": 1.0}),
            FunctionAgent("tester", judge=_check, verifies={"s": 1.0}),
        ]
        team = Team(agents, clock=LoopClock(), trust=_tool_trust())
        log = DecisionLog(team.field)
        report = await team.run(
            [TaskSpec(task_id="t", skill="s", verify=TOOL_QUORUM, max_attempts=3)]
        )
        assert [r[2:4] for r in log.rows] == [(1, "rejected"), (2, "rejected"), (3, "failed")]
        (task,) = report.tasks
        assert (task.status, task.attempts) == ("failed", 3)
        assert task.reason == "expected 'correct', got 'wrong'"
        assert report.stopped_by == "quiescent"

    virtual(main())


def test_votes_for_the_same_verdict_reinforce_one_signal() -> None:
    async def approve(task: TaskSpec, output: Any) -> Judgement:
        return Judgement("approve", "fine")

    async def main() -> None:
        agents = [
            FunctionAgent("w", perform=_good, skills={"s": 1.0}),
            FunctionAgent("v1", judge=approve, verifies={"s": 1.0}),
            FunctionAgent("v2", judge=approve, verifies={"s": 1.0}),
        ]
        team = Team(agents, clock=LoopClock())
        report = await team.run(
            [TaskSpec(task_id="t", skill="s", verify=VerifySpec(quorum=0.9, margin=0.3))]
        )
        assert report.tasks[0].status == "accepted"
        (vote,) = team.field.signals("vote")  # one signal: v1's vote, reinforced by v2
        assert sorted([vote.origin, *vote.reinforcers]) == ["v1", "v2"]
        assert sorted(team.board.tasks["t"].ballots(1)["approve"]) == ["v1", "v2"]

    virtual(main())
