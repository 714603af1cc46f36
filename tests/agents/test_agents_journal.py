"""The run journal: events and actions with their triggers, replay, and resuming a run."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from _agentkit import approve_all, counting, virtual, wait_until

from smesh.agents import (
    Agent,
    Budget,
    FunctionAgent,
    Settings,
    TaskSpec,
    Team,
    VerifySpec,
    WorkContext,
)
from smesh.agents.journal import Journal
from smesh.agents.protocol import task_intensity
from smesh.errors import UsageError
from smesh.testing import FunctionBackend
from smesh.testing.virtual_time import LoopClock

REPLAYED = {"task", "result", "vote", "feedback", "decision"}
REVIEWED = VerifySpec(quorum=0.9, margin=0.3)


def _tasks(n: int, *, verify: VerifySpec | None = REVIEWED) -> list[TaskSpec]:
    return [
        TaskSpec(task_id=f"t{i}", skill="s", priority=i / max(n - 1, 1), verify=verify)
        for i in range(n)
    ]


def _team(
    journal: Journal,
    performs: Counter[str],
    *,
    run_id: str = "run-1",
    work_s: float = 1.0,
    judge_s: float = 0.0,
    budget: Budget | None = None,
    resume: bool = False,
) -> Team:
    async def work(ctx: WorkContext) -> str:
        await asyncio.sleep(work_s)
        return f"result of {ctx.task.task_id}"

    async def judge(task: TaskSpec, output: Any) -> Any:
        await asyncio.sleep(judge_s)
        return await approve_all(task, output)

    agents = [
        FunctionAgent("w1", perform=counting(work, performs), skills={"s": 0.8}),
        FunctionAgent("w2", perform=counting(work, performs), skills={"s": 0.7}),
        FunctionAgent("v1", judge=judge, verifies={"s": 1.0}),
        FunctionAgent("v2", judge=judge, verifies={"s": 1.0}),
    ]
    return Team(
        agents,
        clock=LoopClock(),
        settings=Settings(lease_s=30.0),
        journal=journal,
        run_id=run_id,
        budget=budget,
        resume=resume,
    )


# -- what is recorded --------------------------------------------------------------------------


def test_the_journal_records_events_and_actions_with_their_triggers(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"

    async def main() -> Team:
        with Journal(path) as journal:
            team = _team(journal, Counter(), work_s=15.0)  # > lease_s / 3: leases get renewed
            report = await team.run(_tasks(3))
            assert report.accepted == 3
            return team

    team = virtual(main())
    board = team.board
    with Journal(path) as journal:  # a fresh connection reads what was committed
        (run,) = journal.runs()
        assert run["run_id"] == "run-1"
        assert run["finished"] is not None
        assert [t["status"] for t in run["report"]["tasks"]] == ["accepted"] * 3

        events = list(journal.events("run-1"))
        assert {e.kind for e in events} >= {"task", "claim", "result", "vote", "decision"}
        assert {e.type for e in events} >= {"emit", "withdraw", "renew", "reinforce"}
        assert [e.seq for e in events] == sorted(e.seq for e in events)
        emitted_claims = {e.address for e in events if e.kind == "claim" and e.type == "emit"}

        actions = journal.actions("run-1")
        by_kind = Counter(a.action for a in actions)
        assert by_kind["claim"] == 3
        assert by_kind["result"] == 3
        assert by_kind["vote"] == 6
        assert by_kind["decide"] == 3
        assert by_kind["trust"] == 9  # per decision: the worker and both voters

        for claim in (a for a in actions if a.action == "claim"):
            task = board.tasks[str(claim.task_id)]
            (trigger,) = claim.detail["triggers"]
            assert trigger["address"] == task.signal.address
            assert trigger["kind"] == "task"
            assert trigger["intensity"] == pytest.approx(task_intensity(task.spec.priority))
            assert trigger["trust_origin"] == 0.5  # trust in the poster
            affinity = {"w1": 0.8, "w2": 0.7}[claim.agent]
            assert claim.detail["score"] == pytest.approx(affinity * trigger["intensity"] * 0.5)
            assert claim.detail["bid"] >= affinity  # affinity × (0.5 + trust), trust >= 0.5 here
        firsts: dict[str, float] = {}
        for claim in (a for a in actions if a.action == "claim"):
            firsts.setdefault(claim.agent, claim.detail["bid"])
        assert firsts == {"w1": 0.8, "w2": 0.7}  # a newcomer bids its affinity
        for result in (a for a in actions if a.action == "result"):
            (lease,) = result.detail["triggers"]
            assert lease["kind"] == "claim"
            assert lease["address"] in emitted_claims
        for vote in (a for a in actions if a.action == "vote"):
            task = board.tasks[str(vote.task_id)]
            posted = task.results[vote.detail["attempt"]]
            assert vote.detail["triggers"][0]["address"] == posted.address
            assert vote.detail["triggers"][0]["worker"] == posted.origin
            assert vote.detail["verdict"] == "approve"
        for decide in (a for a in actions if a.action == "decide"):
            assert decide.detail["basis"] == "votes"
            assert decide.detail["approve"] >= 0.9

        one = journal.actions("run-1", "t1")
        assert one and {a.task_id for a in one} == {"t1"}


def test_live_signals_are_the_durable_facts_at_the_end(tmp_path: Path) -> None:
    async def main() -> None:
        with Journal(tmp_path / "j.db") as journal:
            team = _team(journal, Counter())
            await team.run(_tasks(4))
            live = journal.live_signals("run-1")
            expected = [s for s in team.field.signals() if s.kind in REPLAYED]
            assert {s.address for s in live} == {s.address for s in expected}
            assert not [s for s in live if s.kind == "claim"]  # leases are never replayed
            assert Counter(s.kind for s in live) == Counter(
                {"task": 4, "result": 4, "vote": 4, "decision": 4}
            )
            # decoded signals are the signals: same decay, reinforcers and times
            by_address = {s.address: s for s in team.field.signals()}
            for signal in live:
                assert signal == by_address[signal.address]

    virtual(main())


def test_resuming_needs_a_journal_and_a_known_run(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="journal"):
        Team([], resume=True, run_id="x")
    with Journal(tmp_path / "j.db") as journal:
        with pytest.raises(UsageError, match="journal"):
            Team([], resume=True, journal=journal)  # no run id
        with pytest.raises(UsageError, match="no run 'nope'"):
            Team([], resume=True, journal=journal, run_id="nope")


# -- resume ------------------------------------------------------------------------------------


def test_resume_after_a_budget_stop_finishes_without_redoing_accepted_work(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    performs: Counter[str] = Counter()

    def backend_team(journal: Journal, **options: Any) -> Team:
        backend = FunctionBackend(lambda r: "ok", latency=1.0)

        class Counted(Agent):
            async def perform(self, ctx: WorkContext) -> Any:
                performs[ctx.task.task_id] += 1
                return await super().perform(ctx)

        return Team(
            [Counted("a", backend=backend, skills={"s": 0.8})],
            clock=LoopClock(),
            journal=journal,
            run_id="r",
            **options,
        )

    async def main() -> None:
        tasks = _tasks(6, verify=None)
        with Journal(path) as journal:
            first = await backend_team(journal, budget=Budget(calls=3)).run(tasks)
        assert first.stopped_by == "budget"
        done = {t.id for t in first.tasks if t.status == "accepted"}
        assert len(done) == 3
        assert sum(performs.values()) == 3

        with Journal(path) as journal:
            team = backend_team(journal, resume=True)
            assert team.resumed > 0
            # the replayed board already knows which tasks are accepted
            assert {t for t, s in team.board.tasks.items() if s.outcome == "accepted"} == done
            second = await team.run()
        assert second.stopped_by == "quiescent"
        assert [t.status for t in second.tasks] == ["accepted"] * 6
        assert second.llm_calls == 3  # only the three unfinished tasks
        assert performs == Counter({t.task_id: 1 for t in tasks})

    virtual(main())


def test_resume_after_a_crash_redoes_only_unfinished_work(tmp_path: Path) -> None:
    """Kill the whole process mid-run (no report, leases held), then resume from the
    journal: accepted tasks stay accepted, a posted result is verified rather than redone,
    and the task whose worker died mid-work is done again."""
    path = tmp_path / "j.db"

    async def main() -> None:
        before: Counter[str] = Counter()
        journal = Journal(path)
        team = _team(journal, before, work_s=2.0, judge_s=3.0)
        run = asyncio.create_task(team.run(_tasks(5)))
        await wait_until(lambda: sum(t.final for t in team.board.tasks.values()) >= 2)
        await asyncio.sleep(0.5)  # a tick commits the journal
        state = {tid: t for tid, t in team.board.tasks.items()}
        accepted = {tid for tid, t in state.items() if t.outcome == "accepted"}
        awaiting = {tid for tid, t in state.items() if not t.final and t.attempt in t.results}
        working = {tid for tid, t in state.items() if not t.final and t.holder is not None}
        assert accepted and awaiting and working  # a crash in the middle of everything
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
        journal.close()
        with Journal(path) as check:
            assert check.runs()[0]["finished"] is None  # it never finished

        after: Counter[str] = Counter()
        with Journal(path) as journal:
            resumed = _team(journal, after, work_s=2.0, judge_s=3.0, resume=True)
            report = await resumed.run()
        assert report.stopped_by == "quiescent"
        assert [t.status for t in report.tasks] == ["accepted"] * 5
        assert not set(after) & accepted  # accepted work is not redone
        assert not set(after) & awaiting  # a posted result is verified, not redone
        assert working <= set(after)  # the interrupted work is done again
        assert all(n == 1 for n in after.values())
        # reputation is relearned from the replayed decisions
        assert resumed.board.trust.get("v1", 0.0) > 0.5

    virtual(main())
