"""The task board: a read model of the coordination signals in one field.

Agents could rediscover everything by sensing the field, but a thousand agents re-scanning
thousands of signals on every change would spend their time searching. The board follows
the field's events once per process and keeps, per task, the live claims, results, votes
and decisions, plus an index of *open* tasks by skill. It also learns reputation from
decisions: every agent in a process would compute the same trust from the same public
outcomes, so they share one table.

The board decides nothing. It wakes the agents a change concerns (a few idle workers of an
opened task's skill, see :mod:`smesh.agents.wakeup`; verifiers of a result's skill;
approvers of a request); each agent then applies the protocol itself. The workflow signals
(dependencies, cancellation, approvals, handoffs, restarts) are followed by the rules of
:class:`~smesh.agents.workflow.WorkflowRules`, which this class inherits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgspec

from smesh.agents.justify import Justifier
from smesh.agents.protocol import (
    FINAL,
    KIND_APPROVAL,
    KIND_APPROVAL_REQUEST,
    KIND_CANCEL,
    KIND_CHECK,
    KIND_CLAIM,
    KIND_DECISION,
    KIND_FEEDBACK,
    KIND_HANDOFF,
    KIND_REOPEN,
    KIND_RESULT,
    KIND_TASK,
    KIND_VOTE,
    Check,
    Claim,
    ClaimView,
    Decision,
    Feedback,
    Result,
    TaskSpec,
    Vote,
    decode,
)
from smesh.agents.tasks import OpenSet, TaskState
from smesh.agents.waiting import Waiters
from smesh.agents.wakeup import Listener, WakePool
from smesh.agents.workflow import WorkflowRules
from smesh.field import Field, FieldEvent
from smesh.signal import Signal
from smesh.trust import TrustTable

__all__ = ["Listener", "TaskBoard", "TaskState"]

_NONE = OpenSet()


class TaskBoard(Waiters, WorkflowRules):
    """Follows one field's coordination signals and wakes the agents they concern.

    Args:
        field: the field to follow.
        trust: the shared reputation table (learned from decisions).
        task_kinds: signal kinds that carry tasks.
        wake_fanout: idle workers woken per opened task (more only if nobody bids; 0 wakes
            every worker of the skill).
        address_fallback_s: how long an addressed task waits for its addressee by default.
        cancel_grace_s: how long cancelled work may take to stop by default.
        checkers: skill -> names whose checks of it are authoritative (see
            :class:`~smesh.agents.justify.Justifier`).
    """

    def __init__(
        self,
        field: Field,
        *,
        trust: TrustTable | None = None,
        task_kinds: frozenset[str] = frozenset({KIND_TASK}),
        wake_fanout: int = 4,
        address_fallback_s: float = 30.0,
        cancel_grace_s: float = 5.0,
        checkers: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.field = field
        self.trust = trust if trust is not None else TrustTable()
        #: re-derives every decision from the evidence it cites before the board acts on it
        self.justifier = Justifier(self.trust, checkers=checkers)
        self.task_kinds = task_kinds
        self.address_fallback_s = address_fallback_s
        self.cancel_grace_s = cancel_grace_s
        self.tasks: dict[str, TaskState] = {}
        self._unfinished = 0
        self._open: dict[str, OpenSet] = {}
        #: the open tasks (of a skill) with no claim at all, that anyone may claim: where an
        #: idle agent looks first, and what the wake pool looks at
        self._free: dict[str, OpenSet] = {}
        self._awaiting: dict[str, dict[str, None]] = {}  # skill -> tasks awaiting a verdict
        self._pool = WakePool(wake_fanout, lambda skill, _: len(self._free.get(skill, _NONE)))
        self._tried = self._pool.tried
        #: ``idle(agent, skills)``: the agent falls asleep with a free slot; it may be woken
        #: for a task of ``skills`` (the wake pool's own method: it is on every sleep)
        self.idle = self._pool.idle
        self._verifiers: dict[str, list[Listener]] = {}
        self._by_id: dict[str, Listener] = {}
        self._all: list[Listener] = []
        self._on_change: list[Callable[[TaskState, str], None]] = []
        self._on_trust: list[Callable[[float, str, str, str, float], None]] = []
        self._init_waiters()
        self._init_workflows()
        handlers: dict[str, Callable[[FieldEvent], None]] = {
            KIND_CLAIM: self._claim_event,
            KIND_RESULT: self._result_event,
            KIND_VOTE: self._vote_event,
            KIND_CHECK: self._check_event,
            KIND_FEEDBACK: self._feedback_event,
            KIND_DECISION: self._decision_event,
            KIND_CANCEL: self._cancel_event,
            KIND_APPROVAL_REQUEST: self._request_event,
            KIND_APPROVAL: self._approval_event,
            KIND_HANDOFF: self._handoff_event,
            KIND_REOPEN: self._reopen_event,
        }
        for kind in task_kinds:
            handlers[kind] = self._on_task
        self._handlers = handlers
        self._subscription = field.subscribe(self._apply, kinds=set(handlers))
        for signal in field.signals():  # adopt what the field already holds
            if signal.kind in handlers:
                self._apply(FieldEvent(type="emit", signal=signal, by=signal.origin, time=0.0))

    def close(self) -> None:
        """Stop following the field."""
        self._subscription.cancel()

    # -- registration ----------------------------------------------------------------------

    def register(
        self, agent: Listener, *, skills: Any = (), verifies: Any = (), approves: bool = False
    ) -> None:
        """Wake ``agent`` on open tasks of ``skills``, on results of ``verifies`` and, if it
        ``approves``, on approval requests."""
        self._all.append(agent)
        self._by_id[agent.id] = agent
        self._pool.register(agent, skills)
        for skill in verifies:
            self._verifiers.setdefault(skill, []).append(agent)
        if approves:
            self._approvers.append(agent)

    def on_change(self, callback: Callable[[TaskState, str], None]) -> None:
        """Call ``callback(task, what)`` after every change to a task (for views, journals)."""
        self._on_change.append(callback)

    def off_change(self, callback: Callable[[TaskState, str], None]) -> None:
        """Stop calling ``callback``."""
        if callback in self._on_change:
            self._on_change.remove(callback)

    def on_trust(self, callback: Callable[[float, str, str, str, float], None]) -> None:
        """Call ``callback(time, peer, task_id, cause, value)`` after every trust update."""
        self._on_trust.append(callback)

    def wake_all(self) -> None:
        """Wake every registered agent (used at shutdown)."""
        for agent in self._all:
            agent.wake()

    # -- queries ---------------------------------------------------------------------------

    def open_tasks(self, skill: str) -> OpenSet:
        """Open tasks needing ``skill``."""
        return self._open.get(skill) or _NONE

    def unclaimed_tasks(self, skill: str) -> OpenSet:
        """Open tasks needing ``skill`` that nobody has bid on and anyone may claim."""
        return self._free.get(skill) or _NONE

    def awaiting(self, skill: str) -> list[str]:
        """Tasks of ``skill`` whose current attempt has a result and no decision yet."""
        return list(self._awaiting.get(skill, ()))

    def all_final(self) -> bool:
        """Whether every task on the board is accepted, failed or cancelled."""
        return self._unfinished == 0

    @property
    def unfinished(self) -> int:
        """How many tasks are not final yet."""
        return self._unfinished

    # -- event handling --------------------------------------------------------------------

    def _apply(self, event: FieldEvent) -> None:
        # Payloads are decoded at the edge, in the handlers: a malformed one (a buggy or
        # hostile peer's) is ignored, and everything past them reads typed attributes.
        self._handlers[event.signal.kind](event)
        if self.justifier.holding:
            self._recheck(event.signal)

    # -- justified decisions (see smesh.agents.justify) ---------------------------------------

    def _admit(self, task: TaskState, decision: Decision, signal: Signal) -> None:
        """Act on ``decision`` only once its cited evidence re-derives it here."""
        if decision.attempt in task.decisions:
            return  # decided already: a second decision changes nothing
        lookup, now, poster = self.field.get, self.field.clock.now, task.signal.origin
        if self.justifier.admit(task.spec, poster, decision, signal, lookup, now, first=task.base):
            self._on_decision(task, decision, signal)

    def _recheck(self, signal: Signal) -> None:
        """Evidence may have arrived for a held decision (over a mesh, in any order)."""
        payload = signal.payload
        task_id = payload.get("task_id") if isinstance(payload, dict) else None
        now = self.field.clock.now()
        for decision, held in self.justifier.recheck(signal.kind, task_id, self.field.get, now):
            task = self.tasks.get(decision.task_id)
            if task is not None and decision.attempt not in task.decisions:
                self._on_decision(task, decision, held)

    def _on_task(self, event: FieldEvent) -> None:
        signal = event.signal
        payload = signal.payload
        task_id = payload.get("task_id") if isinstance(payload, dict) else None
        if not isinstance(task_id, str):
            return
        task = self.tasks.get(task_id)
        if event.type == "emit" and task is None:
            try:
                spec = TaskSpec.from_payload(payload, signal.kind)
            except (msgspec.ValidationError, ValueError, TypeError):
                return  # a malformed task is nobody's work
            task = self.tasks[task_id] = TaskState(spec, signal)
            self._unfinished += 1
            if self._early:
                early = self._early.pop(task_id, None)
                if early:
                    task.watchers.extend(early)
            spec = task.spec
            linked = spec.depends_on or spec.parent is not None or spec.to is not None
            if linked or self._orphans:
                self._link(task)
            self._refresh(task)
            self._changed(task, "task")
            if linked or self._early_cancel or self._run_cancel is not None:
                self._settle_birth(task)  # born cancelled or blocked (a parent, an input)
        elif task is not None and event.type in ("expire", "withdraw") and not task.final:
            # the task faded away or was withdrawn by its poster before it was done
            cause = "the task signal expired or was withdrawn"
            self._finalize(task, "failed", signal, cause, what="task-gone")
        elif task is not None and event.type in ("reinforce", "renew"):
            task.signal = signal

    def _task_of(self, payload: Any, cls: type[Any]) -> tuple[Any, TaskState | None]:
        item = decode(cls, payload)
        return item, (None if item is None else self.tasks.get(item.task_id))

    def _claim_event(self, event: FieldEvent) -> None:
        claim = decode(Claim, event.signal.payload)
        task = None if claim is None else self.tasks.get(claim.task_id)
        if task is not None:
            self._on_claim(task, claim, event)  # type: ignore[arg-type]

    def _result_event(self, event: FieldEvent) -> None:
        if event.type == "emit":
            result = decode(Result, event.signal.payload)
            task = None if result is None else self.tasks.get(result.task_id)
            if task is not None:
                self._on_result(task, result.attempt, event.signal)  # type: ignore[union-attr]

    def _vote_event(self, event: FieldEvent) -> None:
        if event.type in ("emit", "reinforce"):
            vote, task = self._task_of(event.signal.payload, Vote)
            if task is not None:
                task.votes.setdefault(vote.attempt, {})[vote.verdict] = event.signal
                self._changed(task, "vote")

    def _check_event(self, event: FieldEvent) -> None:
        if event.type == "emit":
            check, task = self._task_of(event.signal.payload, Check)
            if task is not None:
                task.checks.setdefault(check.attempt, {})[event.signal.origin] = check.verdict
                self._changed(task, "check")

    def _feedback_event(self, event: FieldEvent) -> None:
        if event.type == "emit":
            feedback, task = self._task_of(event.signal.payload, Feedback)
            if task is not None:
                by_attempt = task.feedback.setdefault(feedback.attempt, {})
                by_attempt[event.signal.origin] = feedback.reason

    def _decision_event(self, event: FieldEvent) -> None:
        if event.type == "emit":
            decision = decode(Decision, event.signal.payload)
            task = None if decision is None else self.tasks.get(decision.task_id)
            if task is not None:
                self._admit(task, decision, event.signal)  # type: ignore[arg-type]

    def _on_result(self, task: TaskState, attempt: int, signal: Signal) -> None:
        task.results.setdefault(attempt, signal)
        self._refresh(task)
        if attempt == task.attempt and not task.final:
            for agent in self._verifiers.get(task.spec.skill, ()):
                agent.wake()
        self._changed(task, "result")

    def _on_claim(self, task: TaskState, claim: Claim, event: FieldEvent) -> None:
        if claim.attempt != task.attempt:
            return
        signal = event.signal
        agent = signal.origin
        if event.type in ("emit", "renew", "reinforce"):
            if task.spec.to is not None or task.handoff is not None:
                to = task.addressee(signal.created_at)
                if to is not None and agent != to:
                    return  # only the addressee may claim an addressed task
            if event.type == "emit" and self._tried:
                self._tried.pop(task.skill, None)  # progress: the wake pool may look again
            if not task.claims and task.listed:
                self._free.get(task.skill, _NONE).discard(task.spec.task_id)
            task.claims[agent] = signal
            task.leases[agent] = ClaimView(agent, claim.bid, claim.state == "held")
        elif task.claims.get(agent) is not None and task.claims[agent].address == signal.address:
            del task.claims[agent]  # withdrawn, or a lease that lapsed
            del task.leases[agent]
            if claim.state == "held" and task.attempt not in task.results:
                task.offer += 1  # the holder is gone without a result: offer it again
                if agent == task.addressee(self.field.clock.now()):
                    task.fallback = True  # the addressee is gone: open it to everyone
            if not task.claims and task.listed and task.addressee(self.field.clock.now()) is None:
                self._free_add(task)  # every bid withdrawn: it is anyone's again
                self._pool.wake(task.skill)
        self._refresh(task)
        self._changed(task, "claim-" + event.type)

    def _on_decision(self, task: TaskState, decision: Decision, signal: Signal) -> None:
        attempt = decision.attempt
        if attempt in task.decisions:
            return  # the same decision emitted again by another agent reinforces, not repeats
        task.decisions[attempt] = signal
        verdict = decision.verdict
        self._learn(task, attempt, verdict, decision.basis, signal.created_at)
        if task.final or attempt < task.base:
            pass  # too late (cancelled, given up) or about an attempt before a restart
        elif verdict in FINAL:
            self._finalize(task, verdict, signal)
            return
        elif attempt >= task.attempt:
            task.attempt = attempt + 1
            task.claims.clear()
            task.leases.clear()
            task.offer += 1
            self._refresh(task)
        self._changed(task, "decision")
        self._resolve_watchers(task, signal)

    def _finalize(
        self,
        task: TaskState,
        outcome: str,
        signal: Signal | None = None,
        cause: str | None = None,
        *,
        what: str = "decision",
    ) -> None:
        """Make ``task`` final: accepted or failed (by a decision or a rule) or cancelled;
        ``what`` is the change the ``on_change`` callbacks see."""
        task.outcome = outcome
        task.cause = cause
        self._unfinished -= 1
        if self._pending_approval:
            self._pending_approval.pop(task.spec.task_id, None)
        self._refresh(task)
        self._changed(task, what)
        if signal is not None:
            self._resolve_watchers(task, signal)
        if self._finals:
            self._resolve_finals(task)
        if self._dependents:
            when = self.field.clock.now() if signal is None else signal.created_at
            self._after_final(task, when)

    def _learn(self, task: TaskState, attempt: int, verdict: str, basis: str, when: float) -> None:
        """Update reputation from a verified outcome: the worker, and every voter.

        A quorum of votes or an authoritative check verifies a result (voters are then judged
        against it: this is how a rubber stamp loses trust to ground truth); a human's answer
        verifies it too; an attempt that failed outright (``error``) counts against its
        worker. Timeouts and unverified acceptances teach nothing.
        """
        task_id = task.spec.task_id
        result = task.results.get(attempt)
        updates: list[tuple[str, bool, str]] = []
        if result is not None and basis in ("votes", "checks", "error", "approval"):
            updates.append((result.origin, verdict == "accepted", f"work {verdict}"))
        if basis in ("votes", "checks"):
            winning = "approve" if verdict == "accepted" else "reject"
            for ballot, voters in task.ballots(attempt).items():
                for voter in voters:
                    cause = f"voted {ballot}, decision {verdict}"
                    updates.append((voter, ballot == winning, cause))
        for peer, success, cause in updates:
            value = self.trust.record(peer, success, when)
            for callback in self._on_trust:
                callback(when, peer, task_id, f"attempt {attempt}: {cause}", value)

    def _refresh(self, task: TaskState) -> None:
        if task.is_open:
            if not task.listed:
                task.listed = True
                skill = task.skill
                open_set = self._open.get(skill)
                if open_set is None:
                    open_set = self._open[skill] = OpenSet()
                open_set.add(task.spec.task_id)
                to = None
                if task.spec.to is not None or task.handoff is not None:
                    to = task.addressee(self.field.clock.now())
                if to is None:
                    if not task.claims:
                        self._free_add(task)
                    self._pool.wake(skill)
                elif to in self._by_id:
                    self._by_id[to].wake()
        elif task.listed:
            self._unlist(task)
        task_id = task.spec.task_id
        if task.outcome is None and task.attempt in task.results:
            waiting = self._awaiting.get(task.spec.skill)
            if waiting is None:
                waiting = self._awaiting[task.spec.skill] = {}
            parked = task.requests is not None and task.attempt in task.requests
            if task.attempt not in task.decisions and not parked:
                waiting[task_id] = None
            else:
                waiting.pop(task_id, None)
        elif task.spec.skill in self._awaiting:
            self._awaiting[task.spec.skill].pop(task_id, None)

    def _unlist(self, task: TaskState) -> None:
        """Take ``task`` out of the open index of its current skill (before it changes)."""
        task.listed = False
        self._open.get(task.skill, _NONE).discard(task.spec.task_id)
        self._free.get(task.skill, _NONE).discard(task.spec.task_id)

    def _free_add(self, task: TaskState) -> None:
        free = self._free.get(task.skill)
        if free is None:
            free = self._free[task.skill] = OpenSet()
        free.add(task.spec.task_id)

    def _changed(self, task: TaskState, what: str) -> None:
        for callback in self._on_change:
            callback(task, what)
