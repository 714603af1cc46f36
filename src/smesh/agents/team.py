"""Running a team: start the agents, post tasks, stop when the work is done or when asked.

:class:`Team` is plumbing, not a manager. It holds the shared field, starts every agent's
own loop in one task group, expires due signals on a timer, reads the run's inbox, and
watches for the end. Who does what is decided by the agents alone. Two ways to use it:

- ``report = await team.run(tasks)`` posts ``tasks`` and runs until every task is accepted,
  failed or cancelled (quiescence), a budget is spent, nothing happens for
  ``idle_timeout_s``, or someone calls :meth:`Team.stop` / :meth:`Team.cancel`.
- ``async with Team(...) as team:`` keeps the agents running as long as the application:
  ``handle = team.submit(spec)`` at any time, ``report = await handle`` (or ``await
  team.run_task(spec)``), and the block's end (or ``await team.stop()``) stops it.

The team posts tasks as their owner; when a run stops it gives up its own unfinished tasks,
so every task ends accepted, failed or cancelled. A team can run again, and its agents can
join another team.
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
from smesh.agents.handles import TaskHandle, TaskReport, task_report
from smesh.agents.justify import team_checkers
from smesh.agents.preflight import check_run
from smesh.agents.protocol import KIND_DECISION, Decision, TaskSpec
from smesh.agents.records import Detail
from smesh.agents.runtime import Budget, Runtime, Settings
from smesh.agents.teamlog import ChangeLog, learned_trust, pump_inbox
from smesh.clock import Clock, SystemClock
from smesh.errors import UsageError
from smesh.field import Field, FieldStats
from smesh.trust import TrustTable

__all__ = ["RunReport", "TaskHandle", "TaskReport", "Team"]


class RunReport(msgspec.Struct, frozen=True, kw_only=True):
    """How a run ended; the first keys are the stable ``smesh agents --json`` contract.

    ``stopped_by`` is ``quiescent``, ``budget``, ``idle``, ``cancelled``, or the reason
    given to :meth:`Team.stop` (``stopped`` by default, ``closed`` at the end of an
    ``async with`` block); ``stop_detail`` says more (which budget, why cancelled).
    """

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
    stop_detail: str | None = None
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
        resume: continue ``run_id`` from ``journal``: replay its tasks, results, votes,
            decisions and workflow signals, so accepted work is not redone, cancelled work
            is not restarted and pending approvals still wait.
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
        self.settings = settings = settings or Settings()
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
                if decision.origin == poster and decision.payload.get("basis") == "give-up":
                    self.field.withdraw(decision.address, by=poster)
            # with the trust it had learned: replayed decisions are re-derived as weighed then
            trust = learned_trust(journal, run_id, trust)
        self.board = TaskBoard(
            self.field,
            trust=trust,
            task_kinds=frozenset(task_kinds),
            wake_fanout=settings.wake_fanout,
            address_fallback_s=settings.address_fallback_s,
            cancel_grace_s=settings.cancel_grace_s,
            checkers=team_checkers(self.agents, checkers),
        )
        self.runtime = Runtime(
            self.field,
            self.board,
            settings=settings,
            budget=self.budget,
            journal=journal,
            seed=seed,
        )
        self._agent_tasks: dict[str, asyncio.Task[None]] = {}
        self._helpers: list[asyncio.Task[None]] = []
        self._changed = asyncio.Event()
        self._changes = 0  # changes on the board (idle time is measured between them)
        self._started = 0.0
        self._runner: asyncio.Task[None] | None = None
        self._stopper: asyncio.Task[RunReport] | None = None
        self._reported: set[str] = set()  # reported by an earlier run of this team
        self._aborting = False
        self.board.on_change(self._note_change)
        self.runtime.on_stop(self._on_stop)
        self.runtime.on_quiet(self._changed.set)
        for agent in self.agents:
            agent.attach(self.runtime)
        self.board.justifier.follow_agents(self.agents, self.board.tasks, Agent.settle)
        self._log: ChangeLog | None = None
        if journal is not None:
            journal.attach(self.field, self.run_id)
            self.board.on_trust(self._record_trust)
            self._log = ChangeLog(self.runtime, poster)

    # -- posting ---------------------------------------------------------------------------

    def submit(self, spec: TaskSpec) -> TaskHandle:
        """Post a task (at any time, also before the team starts); ``await`` the returned
        handle for its :class:`TaskReport`.

        Raises:
            InvalidDependency: it depends on a task nobody posted.
            UsageError: its id is taken by a different task.
        """
        return self.runtime.post_one(spec, origin=self.poster)

    def submit_all(self, specs: Iterable[TaskSpec]) -> list[TaskHandle]:
        """Post a batch of tasks that may depend on each other (in any order); cycles and
        unknown dependencies are refused before anything is posted."""
        return self.runtime.post(list(specs), origin=self.poster)

    async def run_task(self, spec: TaskSpec, *, timeout: float | None = None) -> TaskReport:
        """Post ``spec`` to the running team and return its report once it ends."""
        if not self.running:
            raise UsageError("the team is not running: use `async with Team(...) as team`")
        return await self.submit(spec).wait(timeout)

    def cancel(
        self,
        task_id: str | None = None,
        *,
        reason: str = "",
        grace_s: float | None = None,
        by: str | None = None,
    ) -> None:
        """Cancel a task and its subtasks, or (no ``task_id``) the whole run.

        Emits a durable ``cancel`` signal (journaled: a resumed run does not restart the
        work). Workers see ``ctx.cancelled`` at once and are cancelled outright after
        ``grace_s`` (default ``Settings.cancel_grace_s``); what they finish within it is
        kept in the report. Cancelling the run then stops the team (``cancelled``) once
        the work in flight has ended. Safe to call from a signal handler.
        """
        if task_id is not None and task_id not in self.board.tasks:
            raise UsageError(f"no task {task_id!r} on the board")
        self.runtime.cancel(task_id, reason=reason, by=by or self.poster, grace_s=grace_s)
        if task_id is None and self.running and not self.runtime.stopping:
            grace = self.settings.cancel_grace_s if grace_s is None else grace_s
            self._helpers.append(asyncio.get_running_loop().create_task(self._wind_down(grace)))

    def reopen(self, task_id: str, *, reason: str, context: Any = None) -> None:
        """Post new information about ``task_id``: a started or finished task runs again
        with its previous answer and ``context`` (within its ``max_restarts`` and
        ``restart_cooldown_s``)."""
        if task_id not in self.board.tasks:
            raise UsageError(f"no task {task_id!r} on the board")
        self.runtime.reopen(task_id, reason=reason, context=context, by=self.poster)

    def kill(self, agent_id: str) -> None:
        """Crash an agent mid-run: it stops at once and cleans nothing up."""
        agent = next(a for a in self.agents if a.id == agent_id)
        agent.crash()
        task = self._agent_tasks.get(agent_id)
        if task is not None:
            task.cancel()

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the agents are running (started and not stopped)."""
        return self._runner is not None and self._stopper is None and not self._runner.done()

    async def __aenter__(self) -> Team:
        await self.start()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            reason = "closed"
        elif issubclass(kind, asyncio.CancelledError | KeyboardInterrupt):
            reason = "interrupted"
        else:
            reason = "error"
        await self.stop(reason)

    async def start(self) -> None:
        """Start the agents (``async with`` does it); tasks may be submitted any time."""
        if self.running:
            raise UsageError("the team is already running")
        loop = asyncio.get_running_loop()
        self._started = loop.time()
        self._stopper = None
        self.runtime.restart()
        self.budget.start()
        for agent in self.agents:
            if agent.runtime is not self.runtime:  # it joined another team meanwhile
                agent.attach(self.runtime)
        self._runner = loop.create_task(self._serve(), name=f"team:{self.run_id}")
        self._runner.add_done_callback(self._runner_done)

    def _runner_done(self, runner: asyncio.Task[None]) -> None:
        self._changed.set()
        if not runner.cancelled() and runner.exception() is not None:
            self.runtime.stop("error")  # an agent failed: finish the run, raise on stop()

    async def _serve(self) -> None:
        rt = self.runtime
        async with asyncio.TaskGroup() as group:
            for agent in self.agents:
                # a killed agent's task ends cancelled, which a task group ignores
                self._agent_tasks[agent.id] = group.create_task(
                    agent.run(rt), name=f"agent:{agent.id}"
                )
            self._helpers = [group.create_task(self._tick(), name="ticker")]
            # a record sink without an inbox (a tee into a live feed) takes no signals from
            # outside the run; a Journal does (smesh approve, smesh cancel)
            if callable(getattr(self.journal, "inbox", None)):
                pump = pump_inbox(self.journal, self.run_id, self.field, rt)
                self._helpers.append(group.create_task(pump, name="inbox"))

    async def _tick(self) -> None:
        rt = self.runtime
        while not rt.stopping:
            await asyncio.sleep(self.settings.tick_s)
            self.field.tick()
            now = self.field.clock.now()
            self.board.tick(now)
            self.board.justifier.expire(now)  # held too long: dropped (on a quiet field too)
            if rt.budget_spent():
                rt.stop("budget")
            if self.journal is not None:
                self.journal.flush()

    async def _wind_down(self, grace_s: float) -> None:
        """After a run-wide cancel: stop once the work told to stop has ended."""
        rt = self.runtime
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace_s + self.settings.stop_timeout_s):
                while rt.winding_down > 0 and not rt.stopping:
                    self._changed.clear()
                    await self._changed.wait()
        rt.stop("cancelled")

    def stop_soon(self, reason: str = "stopped") -> None:
        """Ask the team to stop (synchronous: for signal handlers); :meth:`stop` awaits it."""
        self.runtime.stop(reason)

    async def stop(self, reason: str = "stopped") -> RunReport:
        """Stop now: in-flight work is cancelled (down to the backend calls), unfinished
        tasks are given up, and the report comes back. Every caller gets the same report;
        a stop already under way (a budget, a cancel) keeps its reason."""
        if self._runner is None:
            raise UsageError("the team was never started")
        self.runtime.stop(reason)
        self._begin_stop()  # (it may have been aborted before: a report all the same)
        assert self._stopper is not None
        return await asyncio.shield(self._stopper)

    def _on_stop(self, reason: str) -> None:
        self._changed.set()
        if not self._aborting:
            self._begin_stop()

    def _begin_stop(self) -> None:
        if self._runner is not None and self._stopper is None:
            loop = asyncio.get_running_loop()
            self._stopper = loop.create_task(self._stop_sequence(), name="team-stop")
            # its outcome goes to whoever awaits stop(); nobody may (a budget stop of a
            # team nobody stops): that is not an unretrieved error
            self._stopper.add_done_callback(_retrieved)

    async def _stop_sequence(self) -> RunReport:
        runner = self._runner
        assert runner is not None
        for helper in self._helpers:
            helper.cancel()
        timeout = self.settings.stop_timeout_s
        done, _ = await asyncio.wait({runner}, timeout=timeout)
        if not done:  # something ignores cancellation: cancel everything outright
            runner.cancel()
            await asyncio.wait({runner}, timeout=timeout)
        loop = asyncio.get_running_loop()
        report = self._finish(self.runtime.stop_reason or "stopped", loop.time() - self._started)
        self.board.release_waiters()
        if runner.done() and not runner.cancelled() and runner.exception() is not None:
            raise runner.exception()  # type: ignore[misc]
        return report

    async def run(
        self,
        tasks: Iterable[TaskSpec] = (),
        *,
        on_change: Callable[[TaskState, str], None] | None = None,
    ) -> RunReport:
        """Post ``tasks``, let the agents work, and return the report when the run ends
        (quiescence, a budget, idle time, a cancel or a stop)."""
        if self.running:
            raise UsageError("the team is already running: submit tasks to it instead")
        specs = list(tasks)
        await check_run(self.agents, specs, field=self.field)  # ConfigurationError: no run
        if on_change is not None:
            self.board.on_change(on_change)
        try:
            await self.start()
            try:
                self.submit_all(specs)
                reason = await self._until_done()
            except BaseException:
                # cancelled (a crash, Ctrl-C) or refused tasks: the agents go down with
                # the caller, as if the process died; no report, nothing given up
                await self._abort()
                raise
            return await self.stop(reason)
        finally:
            if on_change is not None:
                self.board.off_change(on_change)

    async def _abort(self) -> None:
        runner = self._runner
        self._aborting = True
        try:
            self.runtime.stop("aborted")
        finally:
            self._aborting = False
        if runner is None or runner.done():
            return
        for helper in self._helpers:
            helper.cancel()
        runner.cancel()
        await asyncio.wait({runner}, timeout=self.settings.stop_timeout_s)

    async def _until_done(self) -> str:
        settings = self.settings
        rt = self.runtime
        board = self.board
        runner = self._runner
        assert runner is not None
        loop = asyncio.get_running_loop()
        seen, last = self._changes, loop.time()
        while True:
            now = loop.time()
            if self._changes != seen:  # (counted, not timed, on every change: it is hot)
                seen, last = self._changes, now
            if rt.stopping:
                return rt.stop_reason or "stopped"
            if runner.done():
                return "error"
            quiet = rt.winding_down == 0 and not board.run_cancelled
            if quiet and board.tasks and board.all_final():
                return "quiescent"
            if board.run_cancelled and rt.winding_down == 0 and board.all_final():
                return "cancelled"  # a run-wide cancel from outside (smesh cancel, a peer)
            if rt.budget_spent():
                return "budget"
            idle = now - last
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

    # -- bookkeeping -----------------------------------------------------------------------

    def _record_trust(self, when: float, peer: str, task_id: str, cause: str, value: float) -> None:
        detail = Detail(cause=cause, value=round(value, 6))
        self.runtime.record(peer, "trust", task_id, detail, when=when)

    def _note_change(self, task: TaskState, what: str) -> None:
        self._changes += 1
        if task.outcome is not None:
            self._changed.set()  # only a task ending can end the run
        if self._log is not None:
            self._log.note(task, what)

    def _finish(self, stopped_by: str, duration: float) -> RunReport:
        now = self.field.clock.now()
        reports: list[TaskReport] = []
        for task in list(self.board.tasks.values()):
            task_id = task.spec.task_id
            if task_id in self._reported:
                continue
            self._reported.add(task_id)
            unfinished = not task.final
            reason = f"unfinished when the run stopped ({stopped_by})"
            if unfinished and task.signal.origin == self.poster:
                # the poster gives up on its own unfinished task: an explicit failure (a
                # task another process posted, over a mesh, is that process's to give up)
                give_up = Decision(task_id, task.attempt, "failed", "give-up")
                ttl = self.settings.decision_ttl_s
                self.runtime.emit(give_up, origin=self.poster, ttl=ttl, scope="origin")
                self.runtime.record(
                    self.poster, "give-up", task_id, Detail(reason=reason), when=now
                )
            one = task_report(task, stopped_by=stopped_by)
            if unfinished:
                one = msgspec.structs.replace(one, status="failed", reason=reason)
            reports.append(one)
        usage = self.budget.usage()
        detail = self.budget.exceeded if stopped_by == "budget" else None
        if stopped_by == "cancelled":
            detail = self.board.run_cancel_reason
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
            stop_detail=detail,
            decisions=self.board.justifier.stats(),
        )
        if self.journal is not None:
            self.journal.finish(self.run_id, report)
        return report


def _retrieved(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()
