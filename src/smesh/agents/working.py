"""The working half of an agent: do one attempt at a claimed task while holding its lease.

:class:`Working` builds the :class:`~smesh.agents.base.WorkContext` (feedback, the previous
answer, the dependencies' outputs, a handoff's context, a restart's reason), runs
:meth:`~smesh.agents.base.AgentBase.perform` under the lease, the work timeout and the
task's own call budget, and posts what came of it: a result (then waits for its verdict),
a handoff, or, if the task was cancelled meanwhile, the partial result. A cancelled or
superseded attempt is told so at once (``ctx.cancelled``) and cancelled outright after the
grace period, its backend call included.
"""

from __future__ import annotations

import asyncio
from typing import Any

from smesh.agents.base import WorkContext
from smesh.agents.guard import Guard
from smesh.agents.protocol import KIND_CLAIM, Handoff, Result, claim_winner
from smesh.agents.records import Detail, Trigger, preview
from smesh.agents.runtime import Runtime
from smesh.agents.scope import HandoffContext, HandoffRequest, WorkScope
from smesh.agents.tasks import TaskState
from smesh.agents.verifying import Verifying
from smesh.errors import (
    BackendError,
    BudgetExceeded,
    InvalidSignal,
    SignalNotFound,
    TaskBudgetExceeded,
    UsageError,
)

__all__ = ["Working"]


class Working(Verifying):
    """Working on a claimed task: context, perform, result, handoff, partial results."""

    __slots__ = ()

    # -- the attempt -----------------------------------------------------------------------

    def _context(
        self, rt: Runtime, task: TaskState, attempt: int, scope: WorkScope | None
    ) -> WorkContext:
        """What the worker knows: feedback, the previous answer, inputs, handoff, restart."""
        board = rt.board
        spec = task.spec
        previous = task.feedback.get(attempt - 1, {})
        earlier = task.result(attempt - 1)
        feedback = [previous[v] for v in sorted(previous)]
        if earlier is not None and earlier.error:
            feedback.append(f"the previous attempt failed: {earlier.error}")
        inputs: dict[str, Any] = {}
        if spec.depends_on:
            for dep in spec.depends_on:
                other = board.tasks.get(dep)
                if other is not None and other.outcome == "accepted":
                    inputs[dep] = other.accepted_output()
        handoff = None
        if task.handoff is not None:
            passed = task.handoff.payload
            handoff = HandoffContext(
                by=task.handoff.origin, context=passed.get("context"), note=passed.get("note", "")
            )
        return WorkContext(
            task=spec,
            attempt=attempt,
            feedback=tuple(feedback),
            previous=earlier.output if earlier is not None else None,
            inputs=inputs,
            failed_inputs=dict(task.failed_inputs) if task.failed_inputs else {},
            handoff=handoff,
            restart=task.restart if attempt == task.base else None,
            scope=scope,
        )

    def _renew(self, address: str, deadline: float) -> _Renewal:
        """Renew the lease every ``lease_s / 3`` until ``deadline``; cancel the returned
        renewal when the work ends. A timer, not a task: renewing is one field call."""
        rt = self.runtime
        interval = rt.settings.lease_s / 3
        loop = asyncio.get_running_loop()
        renewal = _Renewal()

        def tick() -> None:
            if self._crashed or rt.stopping or rt.now() >= deadline:
                return  # a crashed or hung worker stops renewing; its lease will lapse
            try:
                rt.field.renew(address, by=self.id)
            except SignalNotFound:
                return
            renewal.handle = loop.call_later(interval, tick)

        renewal.handle = loop.call_later(interval, tick)
        return renewal

    async def _work(self, task: TaskState, attempt: int, lease: str, guard: Guard) -> None:
        rt = guard.runtime
        spec = task.spec
        settings = rt.settings
        ctx = self._context(rt, task, attempt, guard)
        deadline = rt.now() + settings.work_timeout_s
        output: Any = None
        error: str | None = None
        renewal = self._renew(lease, deadline)
        token = None
        budget = rt.task_budget(spec) if spec.max_calls is not None else None
        if budget is not None:
            token = rt.charge_to(budget)
        try:
            async with asyncio.timeout(settings.work_timeout_s):
                output = await self.perform(ctx)
        except TaskBudgetExceeded as exc:
            error = str(exc)  # this task's cap, not the run's: the run goes on
        except BudgetExceeded:
            raise
        except (BackendError, InvalidSignal, UsageError) as exc:
            # before TimeoutError: a backend's own BackendTimeout is one too
            error = f"{type(exc).__name__}: {exc}"
        except TimeoutError:
            error = f"no result within {settings.work_timeout_s:g} s"
        except Exception as exc:
            error = f"{type(exc).__name__} in {type(self).__name__}.perform: {exc}"
        finally:
            renewal.cancel()
            if token is not None:
                rt.uncharge(token)
        if self._crashed:
            return
        calls = None if budget is None else budget.used  # for a parent elsewhere to see
        outcome = task.outcome
        if outcome == "cancelled" and task.attempt == attempt:
            self._post_partial(task, attempt, output, error, calls)
            return
        if (
            task.attempt != attempt
            or outcome is not None
            or claim_winner(task.claim_views()) != self.id
        ):
            rt.record(self.id, "lost-lease", spec.task_id, Detail(attempt=attempt))
            return
        if isinstance(output, HandoffRequest):
            error = self._hand_off(task, attempt, output)
            if error is None:
                return
            output = None
        error = self._post_result(task, attempt, output, error, lease, calls)
        if error is not None:
            self._decide(task, attempt, "rejected", basis="error")
            return
        if spec.verify is None:
            self._decide(task, attempt, "accepted", basis="unverified")
            return
        # Wait for the verifiers (without holding the lease: the result is posted).
        if rt.field.get(lease) is not None:
            rt.field.withdraw(lease, by=self.id)
        rt.working -= 1  # waiting makes no calls: a spent call budget need not wait for it
        try:
            await self._await_verdict(task, attempt)
        finally:
            rt.working += 1

    def _post_result(
        self,
        task: TaskState,
        attempt: int,
        output: Any,
        error: str | None,
        lease: str,
        calls: int | None = None,
    ) -> str | None:
        """Post the attempt's result; returns its error (an output that is not JSON is
        one)."""
        rt = self.runtime
        spec = task.spec
        ttl = rt.settings.result_ttl_s
        try:
            posted = Result(spec.task_id, attempt, output, error, calls)
            rt.emit(posted, origin=self.id, scope="origin", ttl=ttl)
        except InvalidSignal as exc:
            error = f"output is not JSON-compatible: {exc}"
            output = None
            posted = Result(spec.task_id, attempt, None, error, calls)
            rt.emit(posted, origin=self.id, scope="origin", ttl=ttl)
        if rt.recording:
            trigger = Trigger(address=lease, kind=KIND_CLAIM)
            detail = Detail(
                attempt=attempt, error=error, triggers=[trigger], output=preview(output)
            )
            rt.record(self.id, "result", spec.task_id, detail)
        return error

    def _post_partial(
        self, task: TaskState, attempt: int, output: Any, error: str | None, calls: int | None
    ) -> None:
        """The task was cancelled while this attempt ran and it finished within the grace
        period: keep what it produced (no verdict follows; the report shows it)."""
        rt = self.runtime
        if output is None and error is None:
            return
        try:
            posted = Result(task.spec.task_id, attempt, output, error, calls)
            rt.emit(posted, origin=self.id, scope="origin", ttl=rt.settings.result_ttl_s)
        except InvalidSignal:
            return
        detail = Detail(attempt=attempt, error=error, output=preview(output))
        rt.record(self.id, "partial", task.spec.task_id, detail)

    def _hand_off(self, task: TaskState, attempt: int, request: HandoffRequest) -> str | None:
        """Pass the task on; returns why it could not be (the attempt then errs)."""
        rt = self.runtime
        if task.handoffs >= rt.settings.max_handoffs:
            return f"handed on {task.handoffs} times already (max_handoffs)"
        handoff = Handoff(
            task.spec.task_id,
            attempt,
            task.handoffs + 1,
            request.to,
            request.skill,
            request.context,
            request.note,
        )
        try:
            rt.emit(handoff, origin=self.id, scope="origin", ttl=rt.settings.decision_ttl_s)
        except InvalidSignal as exc:
            return f"the handoff's context is not JSON-compatible: {exc}"
        detail = Detail(attempt=attempt, reason=request.note, to=request.to, skill=request.skill)
        rt.record(self.id, "handoff", task.spec.task_id, detail)
        return None

    async def _await_verdict(self, task: TaskState, attempt: int) -> None:
        """Wait for the verifiers' decision (or a request for a human's approval, which
        takes it out of the agents' hands); decide ``timeout`` if none comes in time."""
        rt = self.runtime
        spec = task.spec
        settings = rt.settings
        assert spec.verify is not None
        board = rt.board

        def settled() -> bool:
            return attempt in task.decisions or task.final or task.awaiting_approval

        future: asyncio.Future[None] | None = None
        try:
            async with asyncio.timeout(spec.verify.timeout_s):
                while not settled():
                    if future is None or future.done():
                        future = board.wait_settled(spec.task_id)
                    await asyncio.wait({future}, timeout=settings.poll_s)
                    if not settled():
                        # over a mesh, a vote can arrive after its voter tallied what it
                        # saw; nobody else would look again, so the worker re-tallies
                        self._try_decide(task, attempt)
        except TimeoutError:
            if not settled() and task.attempt == attempt:
                detail = Detail(attempt=attempt, ballots=task.ballots(attempt))
                rt.record(self.id, "no-consensus", spec.task_id, detail)
                self._decide(task, attempt, "rejected", basis="timeout")


class _Renewal:
    """The pending timer of one lease's renewal."""

    __slots__ = ("handle",)

    def __init__(self) -> None:
        self.handle: asyncio.TimerHandle | None = None

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
