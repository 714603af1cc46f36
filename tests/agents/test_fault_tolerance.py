"""Fault tolerance (issue §5), on virtual time with scripted and function backends.

Each scenario runs a real team: agents with their own loops, leases that lapse on the
field's clock, blind votes and trust-weighted decisions. Virtual time makes a 30 s lease
lapse in microseconds and every timing assertion exact.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from typing import Any

import pytest
from _agentkit import DecisionLog, accepted_once, approve_all, counting, now, virtual

from smesh.agents import (
    Agent,
    FunctionAgent,
    Judgement,
    RunReport,
    Settings,
    TaskSpec,
    Team,
    VerifySpec,
    WorkContext,
)
from smesh.agents.journal import Journal
from smesh.agents.protocol import tally
from smesh.backends.base import Request
from smesh.errors import BackendTimeout, BackendUnavailable
from smesh.testing import FunctionBackend, ScriptedBackend
from smesh.testing.virtual_time import LoopClock
from smesh.trust import TrustTable

REVIEWED = VerifySpec(quorum=0.9, margin=0.3, timeout_s=60.0)


# -- kill half the agents mid-task -------------------------------------------------------------


def test_killing_half_the_agents_mid_task_loses_no_task_and_accepts_none_twice() -> None:
    calls: list[tuple[float, str, str, str]] = []  # (start time, agent, work|judge, task)

    def parse(request: Request) -> tuple[str, str]:
        prompt = request.messages[-1].content
        task = re.search(r"work on (t\d+)", prompt).group(1)  # type: ignore[union-attr]
        return ("judge" if prompt.startswith("Task:") else "work"), task

    def start(request: Request) -> float:
        calls.append((now(), str(request.agent), *parse(request)))
        return 5.0  # every call takes 5 virtual seconds: agents are killed in the middle

    def reply(request: Request) -> str:
        kind, task = parse(request)
        if kind == "judge":
            return json.dumps({"reason": "done", "correct": True})
        return f"result of {task}"

    async def main() -> None:
        backend = FunctionBackend(reply, latency=start)
        workers = [Agent(f"w{i}", backend=backend, skills={"s": 0.8}) for i in range(6)]
        verifiers = [Agent(f"v{i}", backend=backend, verifies={"s": 1.0}) for i in range(4)]
        team = Team([*workers, *verifiers], clock=LoopClock(), settings=Settings(lease_s=30.0))
        log = DecisionLog(team.field)
        killed_holding: set[str] = set()

        async def killer() -> None:
            await asyncio.sleep(2.0)  # workers are mid-call
            holders = {t.holder for t in team.board.tasks.values()}
            for agent_id in ("w0", "w1", "w2"):
                if agent_id in holders:
                    killed_holding.add(agent_id)
                team.kill(agent_id)
            await asyncio.sleep(5.0)  # t=7: the first results are being judged
            for agent_id in ("v0", "v1"):
                team.kill(agent_id)

        tasks = [
            TaskSpec(task_id=f"t{i}", skill="s", description=f"work on t{i}", verify=REVIEWED)
            for i in range(12)
        ]
        kill = asyncio.create_task(killer())
        report = await team.run(tasks)
        await kill

        assert report.stopped_by == "quiescent"
        assert [t.status for t in report.tasks] == ["accepted"] * 12
        accepted_once(team, log)
        # the kills really interrupted work: three leases held and two verdicts pending
        assert killed_holding == {"w0", "w1", "w2"}
        judging_at_kill = {a for t, a, k, _ in calls if k == "judge" and 2.0 < t <= 7.0}
        assert {"v0", "v1"} <= judging_at_kill
        # nothing the dead started was credited; their tasks were redone by survivors
        survivors = {"w3", "w4", "w5"}
        assert {t.claimed_by for t in report.tasks} <= survivors
        redone = {task for _, a, k, task in calls if k == "work" and a in killed_holding}
        assert len(redone) == 3
        retakes = []
        for task in redone:
            workers_of = [(t, a) for t, a, k, x in calls if k == "work" and x == task]
            assert len(workers_of) == 2  # the dead agent's try, then one survivor's
            assert workers_of[1][1] in survivors
            retakes.append(workers_of[1][0])
        # nobody touches a dead agent's task before its 30 s lease has lapsed
        assert min(retakes) >= 30.0
        assert min(retakes) < 31.0
        late = {agent for t, agent, _, _ in calls if t > 7.0}
        assert not late & {"w0", "w1", "w2", "v0", "v1"}  # the dead stay dead

    virtual(main())


# -- hung and frozen agents --------------------------------------------------------------------


def test_a_hung_backend_times_out_and_the_task_is_taken_over() -> None:
    """A call that never returns: the attempt is bounded by ``work_timeout_s``; the lease is
    renewed until then (nobody else may take the task), and then the task is re-offered."""
    hung_calls: list[float] = []
    ok_calls: list[float] = []

    async def never(request: Request) -> str:
        hung_calls.append(now())
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    def fine_start(request: Request) -> float:
        ok_calls.append(now())
        return 1.0

    async def main() -> None:
        hung = Agent("a-hung", backend=FunctionBackend(never), skills={"s": 0.8}, call_retries=0)
        ok = Agent(
            "b-ok", backend=FunctionBackend(lambda r: "done", latency=fine_start), skills={"s": 0.8}
        )
        settings = Settings(lease_s=30.0, work_timeout_s=100.0, idle_timeout_s=1000.0)
        team = Team([hung, ok], clock=LoopClock(), settings=settings)
        holders: dict[float, str | None] = {}

        async def probe() -> None:
            for t in (1.0, 50.0, 99.0):
                await asyncio.sleep(t - now())
                holders[t] = team.board.tasks["t"].holder

        watch = asyncio.create_task(probe())
        report = await team.run([TaskSpec(task_id="t", skill="s")])
        await watch

        # the lower id wins the tie and hangs; it renews its lease way past lease_s
        assert holders == {1.0: "a-hung", 50.0: "a-hung", 99.0: "a-hung"}
        assert hung_calls == [0.0]
        task = team.board.tasks["t"]
        assert task.results[1].origin == "a-hung"
        assert task.results[1].payload["error"] == "no result within 100 s"
        # re-offered at the deadline; the hung agent's lost trust loses it the next claim
        assert ok_calls == [100.0]
        assert report.tasks[0].status == "accepted"
        assert report.tasks[0].claimed_by == "b-ok"
        assert report.tasks[0].attempts == 2
        assert report.stopped_by == "quiescent"

    virtual(main())


@pytest.mark.parametrize(("crash_at", "lapse_at"), [(5.0, 30.0), (15.0, 40.0)])
def test_a_frozen_agent_loses_its_lease_after_lease_s(crash_at: float, lapse_at: float) -> None:
    """An agent that freezes mid-task stops renewing; its lease lapses ``lease_s`` after its
    last renewal (every ``lease_s / 3``) and not before; then another agent takes over."""
    started: list[tuple[float, str]] = []

    def worker(agent_id: str, seconds: float) -> Any:
        async def perform(ctx: WorkContext) -> str:
            started.append((now(), agent_id))
            await asyncio.sleep(seconds)
            return f"done by {agent_id}"

        return perform

    async def main() -> None:
        frozen = FunctionAgent("a", perform=worker("a", 1000.0), skills={"s": 0.9})
        backup = FunctionAgent("b", perform=worker("b", 2.0), skills={"s": 0.8})
        team = Team([frozen, backup], clock=LoopClock(), settings=Settings(lease_s=30.0))
        holder_before: list[str | None] = []

        async def freeze() -> None:
            await asyncio.sleep(crash_at)
            frozen.crash()
            await asyncio.sleep(lapse_at - crash_at - 0.5)
            holder_before.append(team.board.tasks["t"].holder)

        chaos = asyncio.create_task(freeze())
        report = await team.run([TaskSpec(task_id="t", skill="s")])
        await chaos

        assert holder_before == ["a"]  # still leased half a second before the lapse
        assert started[0] == (0.0, "a")
        assert len(started) == 2
        taken_at, by = started[1]
        assert by == "b"
        assert lapse_at <= taken_at <= lapse_at + 0.5  # within a tick of the ttl
        assert report.tasks[0].status == "accepted"
        assert report.tasks[0].claimed_by == "b"
        assert report.tasks[0].output == "done by b"
        assert report.duration_s == pytest.approx(taken_at + 2.0)

    virtual(main())


def test_a_crashed_agent_takes_on_nothing_new() -> None:
    """After ``crash()`` an agent is dead: it must not bid for (and then sit on) new work,
    even when it would win every claim."""
    performed: list[tuple[float, str, str]] = []

    def worker(agent_id: str) -> Any:
        async def perform(ctx: WorkContext) -> str:
            performed.append((now(), agent_id, ctx.task.task_id))
            await asyncio.sleep(1.0)
            return "done"

        return perform

    async def main() -> None:
        strong = FunctionAgent("a", perform=worker("a"), skills={"s": 0.9})
        weak = FunctionAgent("b", perform=worker("b"), skills={"s": 0.5})
        team = Team([strong, weak], clock=LoopClock())

        async def crash_between_tasks() -> None:
            await asyncio.sleep(1.5)  # a has finished one task and holds another
            strong.crash()

        chaos = asyncio.create_task(crash_between_tasks())
        report = await asyncio.wait_for(
            team.run([TaskSpec(task_id=f"t{i}", skill="s") for i in range(6)]), 3600
        )
        await chaos
        assert report.stopped_by == "quiescent"
        assert [t.status for t in report.tasks] == ["accepted"] * 6
        assert [p for p in performed if p[1] == "a" and p[0] > 1.5] == []
        assert len([p for p in performed if p[1] == "a"]) == 2  # one done, one frozen
        assert sum(t.claimed_by == "a" for t in report.tasks) == 1

    virtual(main())


# -- malformed output and backend errors -------------------------------------------------------

ANSWER = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ("the answer is four", "BadResponse"),
        ('{"n": "four"}', "BadResponse"),
        (BackendTimeout("no answer", backend="scripted"), "BackendTimeout"),
        (BackendUnavailable("connection refused", backend="scripted"), "BackendUnavailable"),
    ],
)
def test_a_failing_backend_is_retried_then_the_task_fails_visibly(bad: Any, error: str) -> None:
    async def main() -> None:
        # 3 tries per call (call_retries=2) × 2 attempts: exactly 6 calls, no more
        backend = ScriptedBackend([bad] * 6)
        agent = Agent("w", backend=backend, skills={"math": 0.9}, call_retries=2)
        # a checker that could accept a good answer (without one the team is refused before
        # the run: nobody could ever decide the task); it never sees a result here
        checker = FunctionAgent("c", judge=approve_all, verifies={"math": 1.0}, authoritative=True)
        team = Team([agent, checker], clock=LoopClock())
        spec = TaskSpec(
            task_id="four",
            skill="math",
            description="What is 2+2?",
            verify=VerifySpec(schema=ANSWER),
            max_attempts=2,
        )
        report = await asyncio.wait_for(team.run([spec]), timeout=3600)
        backend.assert_all_consumed()
        assert len(backend.calls) == 6
        assert report.stopped_by == "quiescent"
        (task,) = report.tasks
        assert task.status == "failed"
        assert task.attempts == 2
        assert task.reason is not None and error in task.reason
        assert report.llm_calls == 6
        # the second attempt was told why the first one failed
        assert "previous attempt failed" in backend.calls[3].messages[-1].content
        assert "previous attempt failed" not in backend.calls[2].messages[-1].content

    virtual(main())


def test_a_malformed_reply_is_retried_within_the_call() -> None:
    async def main() -> None:
        backend = ScriptedBackend(["not json", {"n": 4}])
        agent = Agent("w", backend=backend, skills={"math": 0.9}, call_retries=1)
        checker = FunctionAgent("checker", judge=approve_all, verifies={"math": 1.0})
        team = Team([agent, checker], clock=LoopClock())
        spec = TaskSpec(task_id="four", skill="math", verify=VerifySpec(schema=ANSWER, quorum=0.5))
        report = await team.run([spec])
        backend.assert_all_consumed()
        assert report.tasks[0].status == "accepted"
        assert report.tasks[0].attempts == 1
        assert report.tasks[0].output == {"n": 4}

    virtual(main())


def test_a_perform_that_raises_a_foreign_exception_fails_its_task_not_the_run() -> None:
    """A bug in user code (not a backend error) fails that attempt visibly; the run ends."""

    async def broken(ctx: WorkContext) -> Any:
        raise RuntimeError("boom")

    async def main() -> RunReport:
        team = Team([FunctionAgent("w", perform=broken, skills={"s": 1.0})], clock=LoopClock())
        return await team.run([TaskSpec(task_id="t", skill="s", max_attempts=2)])

    report = virtual(asyncio.wait_for(main(), timeout=3600))
    assert report.stopped_by == "quiescent"
    (task,) = report.tasks
    assert task.status == "failed"
    assert task.attempts == 2
    assert task.reason is not None and "RuntimeError" in task.reason and "boom" in task.reason


# -- a verifier that approves everything -------------------------------------------------------


def _sum_task(i: int, *, bad: bool, skill: str = "sum") -> TaskSpec:
    return TaskSpec(
        task_id=f"sum-{i}",
        skill=skill,
        description="add a and b",
        input={"a": i, "b": 10, "bad": bad},
        verify=VerifySpec(quorum=0.9, margin=0.3, timeout_s=30.0),
        max_attempts=1,
    )


async def _adder(ctx: WorkContext) -> int:
    spec = ctx.task.input
    return int(spec["a"] + spec["b"] + (1 if spec["bad"] else 0))


async def _ground_truth(task: TaskSpec, output: Any) -> Judgement:
    await asyncio.sleep(1.0)  # a tool check takes a moment; the rubber stamp is instant
    expected = task.input["a"] + task.input["b"]
    if output == expected:
        return Judgement("approve", "matches the ground truth")
    return Judgement("reject", f"expected {expected}, got {output}")


def _sum_team(trust: TrustTable, *, honest: tuple[str, ...], skill: str = "sum") -> Team:
    agents: list[Agent] = [
        FunctionAgent("worker", perform=_adder, skills={skill: 1.0}),
        FunctionAgent("yes-man", judge=approve_all, verifies={skill: 1.0}),
        *(FunctionAgent(h, judge=_ground_truth, verifies={skill: 1.0}) for h in honest),
    ]
    return Team(agents, clock=LoopClock(), trust=trust)


def test_an_always_approve_verifier_loses_trust_and_stops_swinging_decisions() -> None:
    async def main() -> None:
        # Before any history, the rubber stamp and one honest checker cancel out.
        fresh = _sum_team(TrustTable(), honest=("honest-1",))
        log = DecisionLog(fresh.field)
        await fresh.run([_sum_task(99, bad=True)])
        assert [(v, b) for _, _, _, v, b in log.rows] == [("failed", "timeout")]

        # Rounds of alternating good and bad results, judged by two ground-truth tools.
        trust = TrustTable()
        team = _sum_team(trust, honest=("honest-1", "honest-2"))
        report = await team.run([_sum_task(i, bad=i % 2 == 1) for i in range(10)])
        statuses = {t.id: t.status for t in report.tasks}
        assert statuses == {f"sum-{i}": "failed" if i % 2 else "accepted" for i in range(10)}
        t = now()
        yes, h1, h2 = (trust.get(p, t) for p in ("yes-man", "honest-1", "honest-2"))
        assert yes <= 0.55
        assert min(h1, h2) >= 0.85
        assert yes < min(h1, h2) - 0.3

        # Now the stamp and one honest checker disagree: the decision goes the honest way,
        # on the votes (not for lack of consensus).
        later = _sum_team(trust, honest=("honest-1",), skill="sum")
        log = DecisionLog(later.field)
        report = await later.run([_sum_task(100, bad=True)])
        assert report.tasks[0].status == "failed"
        assert [(v, b) for _, _, _, v, b in log.rows] == [("failed", "votes")]
        ballots = later.board.tasks["sum-100"].ballots(1)
        assert ballots == {"approve": ["yes-man"], "reject": ["honest-1"]}
        weigh = tally(ballots, lambda v: trust.get(v, now()), quorum=0.9, margin=0.3)
        assert weigh.reject > weigh.approve

    virtual(main())


# -- equal affinity: never two executions of one task ------------------------------------------


def test_agents_with_equal_affinity_contend_and_one_performs() -> None:
    async def main() -> None:
        performs: Counter[str] = Counter()
        by: list[str] = []

        async def work(ctx: WorkContext) -> str:
            await asyncio.sleep(1.0)
            return "done"

        agents = []
        for i in (3, 1, 4, 0, 2):  # registration order must not matter
            perform = counting(work, performs)

            async def tracked(ctx: WorkContext, _p: Any = perform, _id: str = f"a{i}") -> Any:
                by.append(_id)
                return await _p(ctx)

            agents.append(FunctionAgent(f"a{i}", perform=tracked, skills={"s": 0.7}))
        journal = Journal(":memory:")
        team = Team(agents, clock=LoopClock(), journal=journal, run_id="r")
        report = await team.run([TaskSpec(task_id="t", skill="s")])
        assert performs == Counter({"t": 1})
        assert by == ["a0"]  # equal bids: the lowest id, as every agent computes
        assert report.tasks[0].claimed_by == "a0"
        actions = journal.actions("r", "t")
        # they really did contend: rivals bid, then conceded to the same winner
        conceded = {a.agent for a in actions if a.action == "concede"}
        assert conceded and conceded <= {"a1", "a2", "a3", "a4"}
        assert [a.agent for a in actions if a.action == "claim"] == ["a0"]
        journal.close()

    virtual(main())


@pytest.mark.parametrize(("slots", "settle"), [(1, 0.0), (3, 0.0), (2, 0.5)])
def test_equal_affinity_agents_never_execute_a_task_twice(slots: int, settle: float) -> None:
    async def main() -> None:
        performs: Counter[str] = Counter()
        workers: Counter[str] = Counter()

        def agent(i: int) -> Agent:
            async def work(ctx: WorkContext) -> str:
                workers[f"a{i}"] += 1
                await asyncio.sleep(1.0 + (i % 3) * 0.25)
                return f"{ctx.task.task_id} by a{i}"

            return FunctionAgent(
                f"a{i}",
                perform=counting(work, performs),
                skills={"s": 0.6},
                slots=slots,
            )

        team = Team(
            [agent(i) for i in range(6)],
            clock=LoopClock(),
            settings=Settings(claim_settle_s=settle),
            seed=7,
        )
        log = DecisionLog(team.field)
        tasks = [TaskSpec(task_id=f"t{i:02}", skill="s") for i in range(60)]
        report = await team.run(tasks)
        assert report.stopped_by == "quiescent"
        assert performs == Counter({t.task_id: 1 for t in tasks})
        accepted_once(team, log)
        assert len(workers) >= 4  # the work was shared, not serialized on one agent
        for t in report.tasks:
            assert t.output == f"{t.id} by {t.claimed_by}"

    virtual(main())
