"""A Byzantine minority on a shared field: valid-looking agents vote and decide falsely, and
the honest majority's outcome stands on every honest team (issue 10, found-2).

Three teams share one field, each with its own board and trust table (a "node"): team A
posts the tasks and hosts the worker and two honest verifiers, team B a third honest
verifier, team C the minority: ``liar`` votes against the truth and decides at once on its
own vote, ``forger`` claims to be an authoritative checker (its own team believes it) and
decides on its check, then also cites the honest voters on its side, which they never were.
The liars are fast and the honest verifiers slow, so every false decision lands first.
"""

from __future__ import annotations

import asyncio
from typing import Any

from _agentkit import DecisionLog, virtual

from smesh.agents import (
    FunctionAgent,
    Judgement,
    Settings,
    TaskSpec,
    Team,
    VerifySpec,
    WorkContext,
)
from smesh.agents.board import TaskState
from smesh.agents.protocol import Check, Ruling, Verdict, Vote, encode
from smesh.field import Field
from smesh.signal import compute_address
from smesh.testing.virtual_time import LoopClock

# three honest voters (1.5 at 0.5 each) decide; the liar alone (0.5) cannot
VERIFY = VerifySpec(quorum=1.2, margin=0.3, timeout_s=60.0)
HONEST = ("h1", "h2", "h3")
SETTINGS = Settings(poll_s=1.0, idle_timeout_s=300.0)


async def _work(ctx: WorkContext) -> str:
    return "good" if ctx.task.task_id == "good" else "bad"


async def _honest(task: TaskSpec, output: Any) -> Judgement:
    await asyncio.sleep(2.0)  # careful, hence slow
    return Judgement("approve" if output == "good" else "reject", "checked")


async def _lie(task: TaskSpec, output: Any) -> Judgement:
    return Judgement("reject" if output == "good" else "approve", "trust me")


class Liar(FunctionAgent):
    """Decides at once, on its own side's evidence, by emitting decisions itself: one citing
    the liars' votes, one citing the honest voters as on its side too, one citing the
    forger's check. (Its acceptance rule never settles: it does not wait for anyone.)"""

    def settle(self, task: TaskState, attempt: int) -> Ruling | None:
        result, posted = task.results.get(attempt), task.result(attempt)
        if result is None or posted is None:
            return None
        lie_good = posted.output == "good"
        verdict: Verdict = "reject" if lie_good else "approve"
        ours = task.votes.get(attempt, {}).get(verdict)
        checkers = [c for c, v in task.checks.get(attempt, {}).items() if v == verdict]
        lied: set[tuple[str, int, str]] = self.__dict__.setdefault("lied", set())
        base = {"task_id": task.spec.task_id, "attempt": attempt, "result": result.address}
        base["verdict"] = "failed" if lie_good else "accepted"
        citations: list[tuple[str, dict[str, list[str]]]] = []
        if ours is not None and (task.spec.task_id, attempt, "votes") not in lied:
            lied.add((task.spec.task_id, attempt, "votes"))
            vote = Vote(task.spec.task_id, attempt, result.address, verdict)
            where = compute_address("vote", encode(vote), "")
            citations.append(("votes", {ours.address: [ours.origin, *ours.reinforcers]}))
            # and the honest voters as on its side too: they never voted so
            citations.append(("votes", {where: [ours.origin, *HONEST]}))
        if checkers and (task.spec.task_id, attempt, "checks") not in lied:
            lied.add((task.spec.task_id, attempt, "checks"))
            for checker in checkers:
                check = Check(task.spec.task_id, attempt, result.address, verdict)
                address = compute_address("check", encode(check), checker, "origin")
                citations.append(("checks", {address: []}))
        for basis, cites in citations:
            decision = {**base, "basis": basis, "cites": cites}
            self.runtime.field.emit("decision", decision, origin=self.id, ttl=3600.0)
        return None


def test_a_lying_minority_does_not_overturn_the_honest_majority() -> None:
    async def main() -> None:
        field = Field(LoopClock())
        log = DecisionLog(field)
        team_a = Team(
            [
                FunctionAgent("w", perform=_work, skills={"s": 1.0}),
                FunctionAgent("h1", judge=_honest, verifies={"s": 1.0}),
                FunctionAgent("h2", judge=_honest, verifies={"s": 1.0}),
            ],
            field=field,
            settings=SETTINGS,
            poster="poster-a",
        )
        team_b = Team(
            [FunctionAgent("h3", judge=_honest, verifies={"s": 1.0})],
            field=field,
            settings=SETTINGS,
            poster="poster-b",
        )
        team_c = Team(
            [
                Liar("liar", judge=_lie, verifies={"s": 1.0}),
                Liar("forger", judge=_lie, verifies={"s": 1.0}, authoritative=True),
            ],
            field=field,
            settings=SETTINGS,
            poster="poster-c",
        )
        tasks = [
            TaskSpec(task_id=task_id, skill="s", verify=VERIFY, max_attempts=1)
            for task_id in ("good", "bad")
        ]
        async with asyncio.timeout(600):
            reports = await asyncio.gather(team_a.run(tasks), team_b.run(), team_c.run())
        honest = {"good": "accepted", "bad": "failed"}
        for team, report in zip((team_a, team_b), reports[:2], strict=True):
            assert {t.id: t.status for t in report.tasks} == honest, report
            assert report.stopped_by == "quiescent"
            outcomes = {tid: task.outcome for tid, task in team.board.tasks.items()}
            assert outcomes == honest
            dropped = {k: v for k, v in report.decisions.items() if k.startswith("dropped_")}
            # the liar's and the forger's decisions, on both tasks, were all refused
            assert dropped.get("dropped_insufficient_votes", 0) >= 2, report.decisions
            assert dropped.get("dropped_checker_not_allowed", 0) >= 2, report.decisions
            assert report.decisions["accepted"] == 2
        # the false decisions were there, and first
        first: dict[str, str] = {}
        for _, task_id, _, verdict, _ in log.rows:
            first.setdefault(task_id, verdict)
        assert first == {"good": "failed", "bad": "accepted"}
        # and the honest teams learned who lied
        now = field.clock.now()
        for team in (team_a, team_b):
            assert team.board.trust.get("liar", now) < 0.5 < team.board.trust.get("h1", now)

    virtual(main())


def test_a_decision_whose_evidence_never_comes_is_dropped_on_time() -> None:
    """Held decisions are bounded in time by the run's own ticks, not only by later events:
    a forged decision citing voters who never vote is dropped after ``hold_s`` although
    nothing else happens in the field meanwhile."""

    async def slow(task: TaskSpec, output: Any) -> Judgement:
        await asyncio.sleep(100.0)
        return Judgement("approve", "late but fine")

    async def main() -> None:
        field = Field(LoopClock())
        team = Team(
            [
                FunctionAgent("w", perform=_work, skills={"s": 1.0}),
                FunctionAgent("v1", judge=slow, verifies={"s": 1.0}),
                FunctionAgent("v2", judge=slow, verifies={"s": 1.0}),
            ],
            field=field,
            settings=Settings(poll_s=1.0, idle_timeout_s=300.0),
        )
        spec = TaskSpec(task_id="good", skill="s", verify=VerifySpec(timeout_s=600.0))
        justifier = team.board.justifier

        async def forge() -> None:
            while not field.signals("result"):
                await asyncio.sleep(0.1)
            (result,) = field.signals("result")
            vote = Vote("good", 1, result.address, "approve")
            where = compute_address("vote", encode(vote), "")
            forged = {"task_id": "good", "attempt": 1, "verdict": "accepted"}
            forged |= {"basis": "votes", "result": result.address, "cites": {where: ["x", "y"]}}
            field.emit("decision", forged, origin="x", ttl=3600.0)
            assert justifier.stats()["waiting"] == 1
            await asyncio.sleep(justifier.hold_s + 1.0)  # nothing else happens meanwhile
            assert justifier.stats()["dropped_hold_timeout"] == 1
            assert justifier.stats()["waiting"] == 0
            assert not team.board.tasks["good"].final

        async with asyncio.timeout(1000):
            report, _ = await asyncio.gather(team.run([spec]), forge())
        assert [t.status for t in report.tasks] == ["accepted"]  # by v1 and v2, at last

    virtual(main())
