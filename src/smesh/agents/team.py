"""Running a team: start the agents, post the tasks, stop when the work is done.

:class:`Team` is plumbing, not a manager. It holds the shared field, starts every agent's
own loop in one task group, expires due signals on a timer, and watches for the end of the
run: every task accepted or failed (quiescence), a budget spent, or nothing happening for
too long. Who does what is decided by the agents alone. The team also posts the tasks, as
their owner; at the end of a run it gives up its own unfinished tasks, so every task ends
accepted or explicitly failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import msgspec

from smesh.agents.agent import Agent
from smesh.agents.board import TaskBoard, TaskState
from smesh.agents.preflight import check_run
from smesh.agents.protocol import KIND_DECISION, Decision, TaskSpec, task_intensity
from smesh.agents.records import Detail
from smesh.agents.runtime import Budget, Runtime, Settings
from smesh.clock import Clock, SystemClock
from smesh.decay import Step
from smesh.errors import BudgetExceeded, UsageError
from smesh.field import Field, FieldStats
from smesh.trust import TrustTable

__all__ = ["RunReport", "TaskReport", "Team"]

_STEP = Step()
_SETTLE = Agent.settle


class TaskReport(msgspec.Struct, frozen=True, kw_only=True):
    """How one task ended."""

    id: str
    skill: str
    status: str  # "accepted" or "failed"
    claimed_by: str | None
    attempts: int
    reason: str | None = None
    output: Any = None


class RunReport(msgspec.Struct, frozen=True, kw_only=True):
    """How a run ended; the first keys are the stable ``smesh agents --json`` contract."""

    run_id: str
    duration_s: float
    llm_calls: int
    tokens: int
    tasks: list[TaskReport]
    stopped_by: str
    cost: float = 0.0
    trust: dict[str, float] = {}
    signals: FieldStats | None = None
    accounting: dict[str, Any] = {}  # tokens and cost per agent and per backend
    #: decisions re-derived and acted on, held for evidence, dropped (``dropped_<reason>``)
    decisions: dict[str, int] = {}

    @property
    def accepted(self) -> int:
        """Number of accepted tasks."""
        return sum(t.status == "accepted" for t in self.tasks)


class Team:
    """Agents sharing one field.

    Args:
        agents: the participants.
        field: the shared field (default: a fresh in-process field on ``clock``).
        clock: the clock for a fresh field (default: the system clock).
        settings: protocol timing.
        budget: hard limits for the run.
        journal: an open :class:`smesh.agents.journal.Journal` to record the run in.
        seed: base seed of every agent's RNG.
        run_id: id of the run (default: random).
        poster: node id under which the team posts tasks.
        task_kinds: signal kinds that carry tasks.
        trust: the shared reputation table (default: fresh).
        resume: continue ``run_id`` from ``journal``: replay its tasks, results, votes and
            decisions, so accepted work is not redone.
        checkers: skill -> names whose checks of that skill are authoritative, besides this
            team's own authoritative agents (``*/tester``: the ``tester`` of any node).
    """

    def __init__(
        self,
        agents: Sequence[Agent],
        *,
        field: Field | None = None,
        clock: Clock | None = None,
        settings: Settings | None = None,
        budget: Budget | None = None,
        journal: Any = None,
        seed: int = 0,
        run_id: str | None = None,
        poster: str = "team",
        task_kinds: Iterable[str] = ("task",),
        trust: TrustTable | None = None,
        resume: bool = False,
        checkers: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        ids = [a.id for a in agents]
        if len(set(ids)) != len(ids):
            raise UsageError("agent ids must be unique")
        if poster in ids:
            raise UsageError(f"the poster id {poster!r} clashes with an agent id")
        self.agents = list(agents)
        self.field = field if field is not None else Field(clock or SystemClock())
        self.settings = settings or Settings()
        self.budget = budget or Budget()
        self.journal = journal
        self.seed = seed
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.poster = poster
        self.resumed = 0
        if resume:
            if journal is None or run_id is None:
                raise UsageError("resuming needs a journal and the run_id to resume")
            self.resumed = journal.replay(run_id, self.field)
            # the poster gave up its unfinished tasks when that run stopped (budget, idle):
            # a verdict on the run, not on the work, so the resumed run takes them up again
            for decision in self.field.signals(KIND_DECISION):
                if decision.origin == poster:
                    self.field.withdraw(decision.address, by=poster)
            # and it goes on with the trust it had learned: its board re-derives the replayed
            # decisions from their votes, weighed as they were (not as a stranger's)
            trust = trust if trust is not None else TrustTable()
            for action in journal.actions(run_id):
                value = action.detail.get("value") if action.action == "trust" else None
                if isinstance(value, int | float) and 0.0 <= value <= 1.0:
                    trust.set(action.agent, float(value), action.time)
        allowed = {skill: set(names) for skill, names in (checkers or {}).items()}
        for agent in self.agents:  # this team's own authoritative verifiers
            if agent.authoritative:
                for skill, affinity in agent.verifies.items():
                    if affinity > 0:
                        allowed.setdefault(skill, set()).add(agent.id)
        self.board = TaskBoard(
            self.field, trust=trust, task_kinds=frozenset(task_kinds), checkers=allowed
        )
        self.runtime = Runtime(
            self.field,
            self.board,
            settings=self.settings,
            budget=self.budget,
            journal=journal,
            seed=seed,
        )
        self._agent_tasks: dict[str, asyncio.Task[None]] = {}
        self._changed = asyncio.Event()
        self._last_change = 0.0
        self.board.on_change(self._note_change)
        for agent in self.agents:
            agent.attach(self.runtime)
        # a team that decides by its own acceptance rule judges decisions by it too
        custom = {type(a).settle: a.settle for a in self.agents if type(a).settle is not _SETTLE}
        if custom:
            self.board.justifier.follow(list(custom.values()), self.board.tasks)
        if journal is not None:
            journal.attach(self.field, self.run_id)
            self.board.on_trust(self._record_trust)

    def _record_trust(self, when: float, peer: str, task_id: str, cause: str, value: float) -> None:
        detail = Detail(cause=cause, value=round(value, 6))
        self.runtime.record(peer, "trust", task_id, detail, when=when)

    def _note_change(self, task: TaskState, what: str) -> None:
        self._last_change = _loop_time()
        if task.final:
            self._changed.set()  # only a task ending can end the run

    def submit(self, spec: TaskSpec) -> str:
        """Post a task into the field; returns its signal address."""
        signal = self.field.emit(
            spec.kind,
            spec.payload(),
            origin=self.poster,
            intensity=task_intensity(spec.priority),
            decay=_STEP,
            ttl=self.settings.task_ttl_s,
        )
        return signal.address

    def kill(self, agent_id: str) -> None:
        """Crash an agent mid-run: it stops at once and cleans nothing up."""
        agent = next(a for a in self.agents if a.id == agent_id)
        agent.crash()
        task = self._agent_tasks.get(agent_id)
        if task is not None:
            task.cancel()

    async def run(
        self,
        tasks: Iterable[TaskSpec] = (),
        *,
        on_change: Callable[[TaskState, str], None] | None = None,
    ) -> RunReport:
        """Post ``tasks``, let the agents work, and return the report when the run ends."""
        if on_change is not None:
            self.board.on_change(on_change)
        specs = list(tasks)
        await check_run(self.agents, specs, field=self.field)  # ConfigurationError: no run
        loop = asyncio.get_running_loop()
        started = loop.time()
        self._last_change = started
        self.budget.start()
        for spec in specs:
            self.submit(spec)
        rt = self.runtime
        async with asyncio.TaskGroup() as group:
            for agent in self.agents:
                # a killed agent's task ends cancelled, which a task group ignores
                self._agent_tasks[agent.id] = group.create_task(
                    agent.run(rt), name=f"agent:{agent.id}"
                )
            ticker = group.create_task(self._tick(), name="ticker")
            stopped_by = await self._until_done()
            rt.stop()
            ticker.cancel()
        duration = loop.time() - started
        return self._finish(stopped_by, duration)

    async def _tick(self) -> None:
        while not self.runtime.stopping:
            await asyncio.sleep(self.settings.tick_s)
            self.field.tick()
            # a decision still waiting for its evidence past its hold is dropped (and
            # counted) on time, even when nothing else happens in the field
            self.board.justifier.expire(self.field.clock.now())
            if self.journal is not None:
                self.journal.flush()

    async def _until_done(self) -> str:
        settings = self.settings
        while True:
            if self.board.tasks and self.board.all_final():
                return "quiescent"
            try:
                self.budget.check()
            except BudgetExceeded:
                return "budget"
            idle = _loop_time() - self._last_change
            if idle >= settings.idle_timeout_s:
                return "idle"
            self._changed.clear()
            wait = min(settings.poll_s, settings.idle_timeout_s - idle)
            wall = self.budget.limits.get("wall_s")
            if wall is not None:  # notice a spent time budget when it runs out, not a poll later
                wait = min(wait, wall - self.budget.elapsed_s)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(wait, 1e-3)):
                    await self._changed.wait()

    def _finish(self, stopped_by: str, duration: float) -> RunReport:
        now = self.field.clock.now()
        reports: list[TaskReport] = []
        for task in self.board.tasks.values():
            reason: str | None = None
            if not task.final:
                reason = f"unfinished when the run stopped ({stopped_by})"
            if reason is not None and task.signal.origin == self.poster:
                # the poster gives up on its own unfinished task: an explicit failure (a
                # task another process posted, over a mesh, is that process's to give up)
                give_up = Decision(task.spec.task_id, task.attempt, "failed", "give-up")
                ttl = self.settings.decision_ttl_s
                self.runtime.emit(give_up, origin=self.poster, ttl=ttl, scope="origin")
                self.runtime.record(
                    self.poster, "give-up", task.spec.task_id, Detail(reason=reason), when=now
                )
            accepted = task.outcome == "accepted"
            last = max(task.decisions) if task.decisions else task.attempt
            signal = task.results.get(last)
            result = task.result(last)
            if not accepted and reason is None:
                reason = _failure_reason(task)
            reports.append(
                TaskReport(
                    id=task.spec.task_id,
                    skill=task.spec.skill,
                    status="accepted" if accepted else "failed",
                    claimed_by=signal.origin if signal is not None else None,
                    attempts=len(task.results) or (1 if task.claims else 0),
                    reason=reason,
                    output=result.output if result is not None else None,
                )
            )
        usage = self.budget.usage()
        report = RunReport(
            run_id=self.run_id,
            duration_s=round(duration, 3),
            llm_calls=usage["calls"],
            tokens=usage["tokens"],
            cost=usage["cost"],
            tasks=reports,
            stopped_by=stopped_by,
            trust={peer: round(v, 4) for peer, v in sorted(self.board.trust.snapshot(now).items())},
            signals=self.field.stats(),
            accounting=self.budget.ledger.to_dict(),
            decisions=self.board.justifier.stats(),
        )
        if self.journal is not None:
            self.journal.finish(self.run_id, report)
        return report


def _failure_reason(task: TaskState) -> str:
    last = max(task.decisions) if task.decisions else None
    if last is None:
        return "failed"
    result = task.result(last)
    if result is not None and result.error:
        return result.error
    reasons = task.feedback.get(last, {})
    if reasons:
        return "; ".join(reasons[v] for v in sorted(reasons))
    return f"rejected on attempt {last} of {task.spec.max_attempts}"


def _loop_time() -> float:
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return 0.0
