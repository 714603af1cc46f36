"""Workflows on the board: dependencies, subtasks, cancellation, approvals, handoffs, restarts.

These are rules the board applies to the workflow signals (SPEC §2.7), identically in every
process that sees them, so there is still no orchestrator:

- **Dependencies.** A task is dormant while a task it ``depends_on`` is not accepted; the
  dependency's acceptance wakes it directly (no barrier: each dependent wakes on its own
  inputs). A failed or cancelled dependency fails it with the cause, or, with
  ``on_failed_dependency="run"``, lets it run with the inputs that succeeded.
- **Subtasks.** A task names its ``parent``; cancelling a task cancels everything below it,
  and a subtask of a cancelled parent is born cancelled.
- **Cancellation.** A ``cancel`` signal makes its task (or, without a task id, every task of
  the run posted before it) final as ``cancelled`` at once, and tells the work in flight to
  stop within the grace period (see :meth:`TaskState.add_hook
  <smesh.agents.tasks.TaskState.add_hook>`).
- **Approvals.** An ``approval-request`` parks an attempt that passed verification; the
  human's ``approval`` then decides it (a rejection's reason is the next attempt's
  feedback). The answer must name the attempt (and result) it answers, and come from the
  approver asked, so parallel approvals never mix.
- **Handoffs and addresses.** An addressed task (``to``, or a handoff to a named agent) may
  only be claimed by its addressee, until the addressee's lease lapses or ``fallback_s``
  passes; then it is open to everyone with the skill.
- **Restarts.** A ``reopen`` (or a dependency accepted again after its own restart) runs a
  started or finished task again with its previous answer, within ``max_restarts`` and
  ``restart_cooldown_s``.
"""

from __future__ import annotations

import heapq
from typing import Any

from smesh.agents.protocol import (
    KIND_DECISION,
    Approval,
    ApprovalRequest,
    Cancel,
    Decision,
    Handoff,
    Outcome,
    Reopen,
    decode,
    encode,
)
from smesh.agents.tasks import TaskState, failure_reason
from smesh.agents.wakeup import Listener, WakePool
from smesh.decay import Step
from smesh.events import FieldEvent
from smesh.field import Field
from smesh.signal import Signal

__all__ = ["WorkflowRules"]

_STEP = Step()


class WorkflowRules:
    """The workflow half of :class:`~smesh.agents.board.TaskBoard` (a mixin: it reads and
    updates the board's own state)."""

    # the board's state and hooks, as the rules use them (defined by TaskBoard)
    field: Field
    tasks: dict[str, TaskState]
    address_fallback_s: float
    cancel_grace_s: float
    _unfinished: int
    _pool: WakePool

    def _refresh(self, task: TaskState) -> None:
        raise NotImplementedError

    def _changed(self, task: TaskState, what: str) -> None:
        raise NotImplementedError

    def _finalize(
        self,
        task: TaskState,
        outcome: str,
        signal: Signal | None = None,
        cause: str | None = None,
        *,
        what: str = "decision",
    ) -> None:
        raise NotImplementedError

    def _on_decision(self, task: TaskState, decision: Decision, signal: Signal) -> None:
        raise NotImplementedError

    def _resolve_settled(self, task: TaskState) -> None:
        raise NotImplementedError

    def _unlist(self, task: TaskState) -> None:
        raise NotImplementedError

    def _free_add(self, task: TaskState) -> None:
        raise NotImplementedError

    def _task_of(self, payload: Any, cls: type[Any]) -> tuple[Any, TaskState | None]:
        raise NotImplementedError

    def _init_workflows(self) -> None:
        self._dependents: dict[str, list[str]] = {}  # task -> tasks that depend on it
        self._orphans: dict[str, list[str]] = {}  # parent id -> subtasks seen before it
        self._early_cancel: dict[str, tuple[float, str]] = {}  # cancels of unseen tasks
        self._run_cancel: tuple[float, float, str] | None = None  # (time, grace, reason)
        self._deadlines: list[tuple[float, str]] = []  # when addressed tasks open up
        self._approvers: list[Listener] = []
        self._pending_approval: dict[str, None] = {}
        self._early_answers: dict[tuple[str, int], tuple[Approval, Signal]] = {}

    # -- queries ---------------------------------------------------------------------------

    def pending_approvals(self, approver: str | None = None) -> list[TaskState]:
        """Tasks whose current attempt waits for ``approver`` (None: for anyone)."""
        out = []
        for task_id in self._pending_approval:
            task = self.tasks[task_id]
            assert task.requests is not None
            by = task.requests[task.attempt].payload.get("by")
            if approver is None or by is None or by == approver:
                out.append(task)
        return out

    def depth(self, task_id: str) -> int:
        """How many parents the task has above it (0 for a task posted by the team)."""
        depth = 0
        task = self.tasks.get(task_id)
        while task is not None and task.spec.parent is not None and depth < 1000:
            depth += 1
            task = self.tasks.get(task.spec.parent)
        return depth

    @property
    def run_cancelled(self) -> bool:
        """Whether the whole run was cancelled."""
        return self._run_cancel is not None

    @property
    def run_cancel_reason(self) -> str | None:
        """Why the whole run was cancelled (None: it was not)."""
        return None if self._run_cancel is None else self._run_cancel[2]

    def tick(self, now: float) -> None:
        """Open addressed tasks whose addressee did not come in time (called by the run's
        timer)."""
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            when, task_id = heapq.heappop(deadlines)
            task = self.tasks.get(task_id)
            if task is None or task.deadline != when or not task.is_open:
                continue
            if task.listed and not task.claims:
                self._free_add(task)
            self._pool.wake(task.skill)

    # -- a task arrives --------------------------------------------------------------------

    def _link(self, task: TaskState) -> None:
        """Wire a new task into the graph: count its open inputs, find its parent."""
        spec = task.spec
        task_id = spec.task_id
        for dep in spec.depends_on:
            self._dependents.setdefault(dep, []).append(task_id)
            other = self.tasks.get(dep)
            if other is None or other.outcome is None:
                task.waiting += 1
        if spec.parent is not None:
            parent = self.tasks.get(spec.parent)
            if parent is None:
                self._orphans.setdefault(spec.parent, []).append(task_id)
            else:
                parent.children = [*(parent.children or ()), task_id]
        if self._orphans:
            orphans = self._orphans.pop(task_id, None)
            if orphans:
                task.children = orphans
        if spec.to is not None:
            self._set_deadline(task, task.signal.created_at, spec.fallback_s)

    def _settle_birth(self, task: TaskState) -> None:
        """A task may be born cancelled (its parent or its run was) or blocked (an input
        had already failed)."""
        spec = task.spec
        parent = self.tasks.get(spec.parent) if spec.parent is not None else None
        early = self._early_cancel.pop(spec.task_id, None) if self._early_cancel else None
        if parent is not None and parent.cancelled:
            self._cancel(task, 0.0, f"parent {parent.spec.task_id} was cancelled")
        elif early is not None:
            self._cancel(task, *early)
        elif self._run_cancel is not None and task.signal.created_at <= self._run_cancel[0]:
            self._cancel(task, self._run_cancel[1], self._run_cancel[2])
        elif spec.depends_on:
            for dep in spec.depends_on:
                other = self.tasks.get(dep)
                if other is not None and other.outcome in ("failed", "cancelled"):
                    self._input_ended(task, other)
                    if task.final:
                        break

    # -- a task ends -----------------------------------------------------------------------

    def _after_final(self, task: TaskState, when: float) -> None:
        """Wake (or fail, or restart) the tasks that depend on ``task``."""
        task_id = task.spec.task_id
        if not self._dependents:
            return
        for dependent_id in self._dependents.get(task_id, ()):
            other = self.tasks.get(dependent_id)
            stale = other is not None and other.stale is not None and task_id in other.stale
            if other is None or (other.final and not stale):
                continue
            if stale:
                assert other.stale is not None
                other.stale.discard(task_id)
                if task.outcome == "accepted":
                    why = Reopen(dependent_id, f"input {task_id} was superseded", by=task_id)
                    self._restart(other, why, when)
                continue
            other.waiting -= 1
            if task.outcome == "accepted":
                self._refresh(other)  # the dependency wake: claimable in this same turn
            else:
                self._input_ended(other, task)

    def _input_ended(self, task: TaskState, failed: TaskState) -> None:
        cause = f"dependency {failed.spec.task_id} {failed.outcome}: {failure_reason(failed)}"
        if task.spec.on_failed_dependency == "run":
            if task.failed_inputs is None:
                task.failed_inputs = {}
            task.failed_inputs[failed.spec.task_id] = cause
            self._refresh(task)
        else:
            self._finalize(task, "failed", None, cause, what="blocked")

    # -- cancellation ----------------------------------------------------------------------

    def _cancel_event(self, event: FieldEvent) -> None:
        if event.type != "emit":
            return
        signal = event.signal
        cancel = decode(Cancel, signal.payload)
        if cancel is None:
            return
        grace = self.cancel_grace_s if cancel.grace_s is None else max(cancel.grace_s, 0.0)
        reason = cancel.reason or f"cancelled by {cancel.by or signal.origin}"
        if cancel.task_id is None:
            self._run_cancel = (signal.created_at, grace, reason)
            for each in list(self.tasks.values()):
                if each.signal.created_at <= signal.created_at:
                    self._cancel(each, grace, reason)
            return
        task = self.tasks.get(cancel.task_id)
        if task is None:
            self._early_cancel[cancel.task_id] = (grace, reason)
        else:
            self._cancel(task, grace, reason)

    def _cancel(self, task: TaskState, grace_s: float, reason: str) -> None:
        """Cancel ``task`` and every subtask below it."""
        if not task.final:
            task.fire_hooks(grace_s, reason)
            self._finalize(task, "cancelled", None, reason, what="cancelled")
        why = f"parent {task.spec.task_id} was cancelled"
        for child_id in task.children or ():
            child = self.tasks.get(child_id)
            if child is not None and not child.final:
                self._cancel(child, grace_s, why)

    # -- approvals -------------------------------------------------------------------------

    def _request_event(self, event: FieldEvent) -> None:
        if event.type != "emit":
            return
        request, task = self._task_of(event.signal.payload, ApprovalRequest)
        if task is None or task.final or request.attempt != task.attempt:
            return
        if task.requests is None:
            task.requests = {}
        if request.attempt in task.decisions or request.attempt in task.requests:
            return
        task.requests[request.attempt] = event.signal
        task_id = task.spec.task_id
        self._pending_approval[task_id] = None
        self._refresh(task)
        self._changed(task, "approval-request")
        self._resolve_settled(task)
        for approver in self._approvers:
            approver.wake()
        early = self._early_answers.pop((task_id, request.attempt), None)
        if early is not None:
            self._answer(task, request.attempt, *early)

    def _approval_event(self, event: FieldEvent) -> None:
        if event.type != "emit":
            return
        answer, task = self._task_of(event.signal.payload, Approval)
        if task is None:
            return
        attempt = task.attempt if answer.attempt is None else answer.attempt
        if task.requests is None or attempt not in task.requests:
            if not task.final and attempt >= task.attempt:  # ahead of its request (a mesh)
                self._early_answers[(task.spec.task_id, attempt)] = (answer, event.signal)
            return
        self._answer(task, attempt, answer, event.signal)

    def _answer(self, task: TaskState, attempt: int, answer: Approval, signal: Signal) -> None:
        """Decide an attempt from a human's answer to its approval request."""
        if task.final or attempt != task.attempt or attempt in task.decisions:
            return  # late: the attempt was decided, cancelled or restarted meanwhile
        assert task.requests is not None
        request = decode(ApprovalRequest, task.requests[attempt].payload)
        if request is None or (answer.result is not None and answer.result != request.result):
            return  # an answer about another result: never let it land here
        if request.by is not None and signal.origin != request.by:
            return  # only the approver asked may answer
        if task.approvals is None:
            task.approvals = {}
        task.approvals[attempt] = signal
        outcome: Outcome = "accepted"
        if answer.verdict != "approve":
            outcome = "failed" if task.tries >= task.spec.max_attempts else "rejected"
            reason = answer.reason or f"rejected by {signal.origin}"
            task.feedback.setdefault(attempt, {})[signal.origin] = reason
        self._pending_approval.pop(task.spec.task_id, None)
        self._changed(task, "approval")
        # the answer is the decision: every observer derives the same one from it
        decision = Decision(task.spec.task_id, attempt, outcome, "approval")
        derived = Signal.create(
            KIND_DECISION,
            encode(decision),
            origin=signal.origin,
            created_at=signal.created_at,
            decay=_STEP,
            ttl=signal.ttl,
        )
        self._on_decision(task, decision, derived)

    # -- handoffs and addresses ------------------------------------------------------------

    def _set_deadline(self, task: TaskState, start: float, fallback_s: float | None) -> None:
        wait = self.address_fallback_s if fallback_s is None else fallback_s
        task.deadline = start + wait
        heapq.heappush(self._deadlines, (task.deadline, task.spec.task_id))

    def _handoff_event(self, event: FieldEvent) -> None:
        if event.type != "emit":
            return
        signal = event.signal
        handoff, task = self._task_of(signal.payload, Handoff)
        if task is None or task.final or handoff.attempt != task.attempt:
            return
        if handoff.seq <= task.handoffs:
            return  # an old handoff (replayed, or late over a mesh)
        holder = task.holder
        if holder is not None and holder != signal.origin:
            return  # only the holder may hand its task on
        self._unlist(task)  # its skill may change
        task.handoff = signal
        if handoff.skill:
            task.skill = handoff.skill
        task.handoffs = handoff.seq
        task.fallback = False
        task.deadline = None
        if handoff.to is not None:
            self._set_deadline(task, signal.created_at, task.spec.fallback_s)
        task.claims.clear()
        task.leases.clear()
        task.offer += 1
        self._refresh(task)
        self._changed(task, "handoff")

    # -- restarts --------------------------------------------------------------------------

    def _reopen_event(self, event: FieldEvent) -> None:
        if event.type != "emit":
            return
        reopen, task = self._task_of(event.signal.payload, Reopen)
        if task is not None:
            self._restart(task, reopen, event.signal.created_at)

    def _restart(self, task: TaskState, why: Reopen, when: float) -> bool:
        """Run ``task`` again with its previous answer and ``why`` (within its limits)."""
        if task.cancelled:
            return False
        started = task.final or bool(task.results) or task.holder is not None
        if not started:  # nothing to redo: the first attempt will see the context
            task.restart = why
            self._changed(task, "reopen")
            return True
        spec = task.spec
        if task.restarts >= spec.max_restarts or when - task.restarted_at < spec.restart_cooldown_s:
            self._changed(task, "reopen-refused")
            return False
        was = task.outcome
        task.restarts += 1
        task.restarted_at = when
        task.restart = why
        task.stale = None
        task.attempt = task.base = max([task.attempt, *task.results, *task.decisions]) + 1
        task.claims.clear()
        task.leases.clear()
        task.offer += 1
        task.fire_hooks(0.0, f"superseded: {why.reason}")
        if was is not None:
            task.outcome = None
            task.cause = None
            self._unfinished += 1
        self._refresh(task)
        self._changed(task, "reopen")
        if was is not None:
            self._input_reopened(task)
        return True

    def _input_reopened(self, task: TaskState) -> None:
        """``task`` had ended and runs again: its dependents wait for the new answer (or, if
        they already ran without it, run again once it is accepted)."""
        task_id = task.spec.task_id
        for dependent_id in self._dependents.get(task_id, ()):
            other = self.tasks.get(dependent_id)
            if other is None or other.outcome in ("failed", "cancelled"):
                continue
            if other.final or other.results or other.holder is not None:
                if other.stale is None:
                    other.stale = set()
                other.stale.add(task_id)
            else:
                other.waiting += 1
                if other.failed_inputs:
                    other.failed_inputs.pop(task_id, None)
                self._refresh(other)
