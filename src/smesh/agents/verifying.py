"""The verifying half of an agent: judge results blind, vote, and decide attempts.

A verifier is woken by the board when a result of a skill it verifies is posted. It judges
the result from the task and the output alone (:meth:`~AgentBase.judge`), posts a vote (or,
when it is authoritative, a check), and then anyone who sees the evidence settle emits the
decision. :meth:`Verifying.settle` is the acceptance rule, and the hook for another one.
"""

from __future__ import annotations

import asyncio

from smesh.agents.guard import Stoppable
from smesh.agents.justify import cite_checks, cite_votes, decision_scope
from smesh.agents.protocol import (
    KIND_RESULT,
    ApprovalRequest,
    Check,
    Decision,
    Feedback,
    Outcome,
    Result,
    Ruling,
    Verdict,
    Vote,
    decode,
    settle,
)
from smesh.agents.records import Detail, Trigger
from smesh.agents.tasks import TaskState
from smesh.errors import BudgetExceeded
from smesh.signal import Signal

__all__ = ["Verifying"]


class Verifying(Stoppable):
    """Judging other agents' results, voting, and deciding attempts."""

    __slots__ = ()

    def _pick_result(self) -> tuple[TaskState, int] | None:
        board = self.runtime.board
        for skill, affinity in self.verifies.items():
            if affinity <= 0:
                continue
            for task_id in board.awaiting(skill):
                task = board.tasks[task_id]
                attempt = task.attempt
                key = (task_id, attempt)
                result = task.results.get(attempt)
                if (
                    result is None
                    or result.origin == self.id
                    or key in self._in_flight
                    or key in self._done_votes
                    or attempt in task.decisions
                ):
                    continue
                return task, attempt
        return None

    async def _verify(self, task: TaskState, attempt: int) -> None:
        rt = self.runtime
        spec = task.spec
        key = (spec.task_id, attempt)
        guard = self._guard(task, attempt)  # a cancelled task is not judged
        rt.working += 1
        try:
            result = task.results[attempt]
            posted = decode(Result, result.payload)
            try:
                async with asyncio.timeout(rt.settings.work_timeout_s):
                    judgement = await self.judge(
                        spec, posted.output if posted is not None else None
                    )
            except BudgetExceeded:
                raise
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
                rt.record(self.id, "abstain", spec.task_id, Detail(attempt=attempt, reason=reason))
                return
            if attempt in task.decisions or task.final or self._crashed:
                return
            # An authoritative verifier posts ground truth (a check, origin-scoped); others
            # vote, and votes for one verdict on one result share a signal.
            ttl = rt.settings.result_ttl_s
            ballot: Check | Vote
            if self.authoritative:
                ballot = Check(spec.task_id, attempt, result.address, judgement.verdict)
            else:
                ballot = Vote(spec.task_id, attempt, result.address, judgement.verdict)
            vote = rt.emit(
                ballot,
                origin=self.id,
                scope="origin" if self.authoritative else "content",
                ttl=ttl,
            )
            if judgement.verdict == "reject":
                feedback = Feedback(spec.task_id, attempt, judgement.reason)
                rt.emit(feedback, origin=self.id, scope="origin", ttl=ttl)
            if rt.recording:
                self._record_ballot(ballot, vote.address, result, judgement.reason)
            self._try_decide(task, attempt)
        except BudgetExceeded as exc:
            rt.record(self.id, "budget", spec.task_id, Detail(reason=str(exc)))
        finally:
            rt.working -= 1
            self._unguard(task, guard)
            self._verified(key)

    def _record_ballot(self, ballot: Check | Vote, address: str, result: Signal, why: str) -> None:
        """Journal a vote or check with what it judged and the trust of both sides."""
        rt = self.runtime
        now = rt.now()
        trust = rt.board.trust
        detail = Detail(
            attempt=ballot.attempt,
            verdict=ballot.verdict,
            reason=why,
            trust_self=round(trust.get(self.id, now), 6),
            triggers=[
                Trigger(
                    address=result.address,
                    kind=KIND_RESULT,
                    worker=result.origin,
                    trust_worker=round(trust.get(result.origin, now), 6),
                ),
                Trigger(address=address, kind=ballot.KIND),
            ],
        )
        rt.record(self.id, "check" if self.authoritative else "vote", ballot.task_id, detail)

    def settle(self, task: TaskState, attempt: int) -> Ruling | None:
        """The decision the evidence on ``attempt`` supports, or None to wait for more.

        By default :func:`smesh.agents.protocol.settle`: authoritative checks decide (any
        failing check rejects); otherwise the trust-weighted tally of the votes, as of the
        result's time, against the task's quorum and margin. Override it for another
        acceptance rule (e.g. "the tests AND the reviewer"); every agent that may decide a
        task should apply the same rule.
        """
        trust = self.runtime.board.trust
        result = task.results.get(attempt)
        when = result.created_at if result is not None else self.runtime.now()
        return settle(
            self._allowed_checks(task, attempt),
            task.ballots(attempt),
            lambda voter: trust.get(voter, when),
            task.spec.verify,
        )

    def _allowed_checks(self, task: TaskState, attempt: int) -> dict[str, Verdict] | None:
        """The checks on ``attempt`` by agents allowed to check its skill (others' "checks"
        are no ground truth: no board would accept a decision resting on them)."""
        checks = task.checks.get(attempt)
        if not checks:
            return None
        may_check, skill = self.runtime.board.justifier.may_check, task.spec.skill
        return {c: v for c, v in checks.items() if may_check(c, skill)}  # type: ignore[misc]

    def _try_decide(self, task: TaskState, attempt: int) -> None:
        """Emit the decision on ``attempt`` if :meth:`settle` says the evidence is enough."""
        if attempt in task.decisions or task.final or task.spec.verify is None:
            return
        if task.requests is not None and attempt in task.requests:
            return  # it passed; a human decides now
        ruling = self.settle(task, attempt)
        if ruling is not None:
            self._decide(task, attempt, ruling.outcome, basis=ruling.basis, **ruling.detail)

    def _cite(
        self, task: TaskState, attempt: int, basis: str
    ) -> tuple[str | None, dict[str, list[str]]]:
        """The result a decision on ``attempt`` is about, and the evidence it rests on."""
        result = task.results.get(attempt)
        if result is None:
            return None, {}
        if basis == "votes":
            return result.address, cite_votes(task.votes.get(attempt, {}).values())
        if basis == "checks":
            checks = self._allowed_checks(task, attempt) or {}
            return result.address, cite_checks(task.spec.task_id, attempt, result.address, checks)
        return result.address, {}

    def _decide(
        self, task: TaskState, attempt: int, outcome: Outcome, *, basis: str, **detail: float
    ) -> None:
        """Emit the decision on ``attempt``; ``basis`` says what it rests on (see
        :class:`~smesh.agents.protocol.Ruling`). Only verified bases teach trust."""
        rt = self.runtime
        if attempt in task.decisions or task.final:
            return
        if outcome == "accepted" and task.spec.approval is not None:
            self._request_approval(task, attempt, basis)
            return
        if outcome == "rejected" and task.tries >= task.spec.max_attempts:
            outcome = "failed"
        cited = self._cite(task, attempt, basis)
        decision = Decision(task.spec.task_id, attempt, outcome, basis, *cited)
        ttl = rt.settings.decision_ttl_s
        justifier = rt.board.justifier
        justifier.own = True  # settled here, by this board's rule and trust: see Justifier.own
        try:
            rt.emit(decision, origin=self.id, ttl=ttl, scope=decision_scope(basis))
        finally:
            justifier.own = False
        if rt.recording:
            masses = {k: round(v, 6) for k, v in detail.items()}
            record = Detail(attempt=attempt, verdict=outcome, basis=basis, extra=masses)
            rt.record(self.id, "decide", task.spec.task_id, record)

    def _request_approval(self, task: TaskState, attempt: int, basis: str) -> None:
        """The attempt passed: ask a human (every agent that sees it settle asks the same
        thing, so the requests land on one signal)."""
        rt = self.runtime
        if task.requests is not None and attempt in task.requests:
            return
        result = task.results.get(attempt)
        if result is None:
            return
        approval = task.spec.approval
        assert approval is not None
        request = ApprovalRequest(task.spec.task_id, attempt, result.address, approval.by)
        rt.emit(request, origin=self.id, ttl=rt.settings.decision_ttl_s)
        if rt.recording:
            detail = Detail(attempt=attempt, basis=basis, by=approval.by)
            rt.record(self.id, "approval-request", task.spec.task_id, detail)
