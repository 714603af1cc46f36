"""The task board: a read model of the coordination signals in one field.

Agents could rediscover everything by sensing the field, but a thousand agents re-scanning
thousands of signals on every change would spend their time searching. The board follows
the field's events once per process and keeps, per task, the live claims, results, votes
and decisions, plus an index of *open* tasks by skill. It also learns reputation from
decisions: every agent in a process would compute the same trust from the same public
outcomes, so they share one table.

The board decides nothing. It wakes the agents a change concerns (workers of the task's
skill, verifiers of a result's skill); each agent then applies the protocol itself.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

import msgspec

from smesh.agents.justify import Justifier
from smesh.agents.protocol import (
    FINAL,
    KIND_CHECK,
    KIND_CLAIM,
    KIND_DECISION,
    KIND_FEEDBACK,
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
    Verdict,
    Vote,
    decode,
)
from smesh.field import Field, FieldEvent
from smesh.signal import Signal
from smesh.trust import TrustTable

__all__ = ["Listener", "TaskBoard", "TaskState"]


class Listener(Protocol):
    """What the board needs from an agent: a way to wake it."""

    id: str

    def wake(self) -> None:
        """Ask the agent to look at the board again soon."""


class TaskState:
    """Everything the field says about one task."""

    __slots__ = (
        "attempt",
        "checks",
        "claims",
        "decisions",
        "feedback",
        "leases",
        "offer",
        "outcome",
        "results",
        "signal",
        "spec",
        "votes",
        "watchers",
    )

    def __init__(self, spec: TaskSpec, signal: Signal) -> None:
        self.spec = spec
        self.signal = signal
        self.attempt = 1
        #: bumped each time a lease lapses or is released without a result, so agents that
        #: conceded to the old holder may bid again
        self.offer = 0
        self.claims: dict[str, Signal] = {}  # agent -> live claim for the current attempt
        self.leases: dict[str, ClaimView] = {}  # the same claims, as the claim rules see them
        self.results: dict[int, Signal] = {}
        self.votes: dict[int, dict[str, Signal]] = {}  # attempt -> verdict -> vote signal
        self.checks: dict[int, dict[str, str]] = {}  # attempt -> checker -> verdict
        self.feedback: dict[int, dict[str, str]] = {}  # attempt -> verifier -> reason
        self.decisions: dict[int, Signal] = {}
        self.outcome: str | None = None  # "accepted" or "failed" once final
        self.watchers: list[asyncio.Future[Signal]] = []

    @property
    def final(self) -> bool:
        """Whether the task is accepted or failed for good."""
        return self.outcome is not None

    @property
    def holder(self) -> str | None:
        """The agent holding a lease on the current attempt, if any."""
        for view in self.leases.values():
            if view.held:
                return view.agent
        return None

    @property
    def is_open(self) -> bool:
        """Not final, no lease held, and no result yet for the current attempt."""
        return self.outcome is None and self.attempt not in self.results and self.holder is None

    def claim_views(self) -> list[ClaimView]:
        """The live claims on the current attempt, as the claim rules see them."""
        return list(self.leases.values())

    def result(self, attempt: int) -> Result | None:
        """The result posted for ``attempt``, decoded, if any."""
        signal = self.results.get(attempt)
        return None if signal is None else decode(Result, signal.payload)

    def decision(self, attempt: int) -> Decision | None:
        """The decision on ``attempt``, decoded, if any."""
        signal = self.decisions.get(attempt)
        return None if signal is None else decode(Decision, signal.payload)

    def ballots(self, attempt: int) -> dict[Verdict, list[str]]:
        """Voters behind each verdict on ``attempt``: a vote's origin plus its reinforcers."""
        out: dict[Verdict, list[str]] = {}
        for verdict, vote in self.votes.get(attempt, {}).items():
            out[verdict] = [vote.origin, *vote.reinforcers]  # type: ignore[index]
        return out

    def voters(self, attempt: int) -> set[str]:
        """Everyone who voted on ``attempt``."""
        return {v for voters in self.ballots(attempt).values() for v in voters}


class _OpenSet:
    """Open task ids of one skill: O(1) add, remove and uniform random pick."""

    __slots__ = ("_ids", "_pos")

    def __init__(self) -> None:
        self._ids: list[str] = []
        self._pos: dict[str, int] = {}

    def add(self, task_id: str) -> None:
        if task_id not in self._pos:
            self._pos[task_id] = len(self._ids)
            self._ids.append(task_id)

    def discard(self, task_id: str) -> None:
        i = self._pos.pop(task_id, None)
        if i is None:
            return
        last = self._ids.pop()
        if i < len(self._ids):
            self._ids[i] = last
            self._pos[last] = i

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._ids))

    def sample(self, rng: random.Random, k: int) -> list[str]:
        if len(self._ids) <= k:
            return list(self._ids)
        return rng.sample(self._ids, k)


class TaskBoard:
    """Follows one field's coordination signals and wakes the agents they concern.

    Args:
        field: the field to follow.
        trust: the shared reputation table (learned from decisions).
        task_kinds: signal kinds that carry tasks.
        checkers: skill -> names whose checks of it are authoritative (see
            :class:`~smesh.agents.justify.Justifier`).
    """

    def __init__(
        self,
        field: Field,
        *,
        trust: TrustTable | None = None,
        task_kinds: frozenset[str] = frozenset({KIND_TASK}),
        checkers: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.field = field
        self.trust = trust if trust is not None else TrustTable()
        #: re-derives every decision from the evidence it cites before the board acts on it
        self.justifier = Justifier(self.trust, checkers=checkers)
        self.task_kinds = task_kinds
        self.tasks: dict[str, TaskState] = {}
        self._unfinished = 0
        self._open: dict[str, _OpenSet] = {}
        self._awaiting: dict[str, dict[str, None]] = {}  # skill -> tasks awaiting a verdict
        self._workers: dict[str, list[Listener]] = {}
        self._verifiers: dict[str, list[Listener]] = {}
        self._all: list[Listener] = []
        self._on_change: list[Callable[[TaskState, str], None]] = []
        self._on_trust: list[Callable[[float, str, str, str, float], None]] = []
        kinds = {
            KIND_CLAIM,
            KIND_RESULT,
            KIND_VOTE,
            KIND_CHECK,
            KIND_FEEDBACK,
            KIND_DECISION,
            *task_kinds,
        }
        self._subscription = field.subscribe(self._on_event, kinds=kinds)
        for signal in field.signals():  # adopt what the field already holds
            if signal.kind in kinds:
                self._apply(FieldEvent(type="emit", signal=signal, by=signal.origin, time=0.0))

    def close(self) -> None:
        """Stop following the field."""
        self._subscription.cancel()

    # -- registration ----------------------------------------------------------------------

    def register(self, agent: Listener, *, skills: Any = (), verifies: Any = ()) -> None:
        """Wake ``agent`` on open tasks of ``skills`` and on results of ``verifies``."""
        self._all.append(agent)
        for skill in skills:
            self._workers.setdefault(skill, []).append(agent)
        for skill in verifies:
            self._verifiers.setdefault(skill, []).append(agent)

    def on_change(self, callback: Callable[[TaskState, str], None]) -> None:
        """Call ``callback(task, what)`` after every change to a task (for views, journals)."""
        self._on_change.append(callback)

    def on_trust(self, callback: Callable[[float, str, str, str, float], None]) -> None:
        """Call ``callback(time, peer, task_id, cause, value)`` after every trust update."""
        self._on_trust.append(callback)

    def wake_all(self) -> None:
        """Wake every registered agent (used at shutdown)."""
        for agent in self._all:
            agent.wake()

    # -- queries ---------------------------------------------------------------------------

    def open_tasks(self, skill: str) -> _OpenSet:
        """Open tasks needing ``skill``."""
        return self._open.get(skill) or _OpenSet()

    def awaiting(self, skill: str) -> list[str]:
        """Tasks of ``skill`` whose current attempt has a result and no decision yet."""
        return list(self._awaiting.get(skill, ()))

    def all_final(self) -> bool:
        """Whether every task on the board is accepted or failed."""
        return self._unfinished == 0

    def wait_decision(self, task_id: str) -> asyncio.Future[Signal]:
        """A future resolved with the next decision on ``task_id``."""
        future: asyncio.Future[Signal] = asyncio.get_running_loop().create_future()
        self.tasks[task_id].watchers.append(future)
        return future

    # -- event handling --------------------------------------------------------------------

    def _on_event(self, event: FieldEvent) -> None:
        self._apply(event)

    def _apply(self, event: FieldEvent) -> None:
        # Payloads are decoded here, at the edge: a malformed one (a buggy or hostile peer's)
        # is ignored, and everything past this point reads typed attributes.
        signal = event.signal
        kind = signal.kind
        if kind in self.task_kinds:
            self._on_task(event)
        elif kind == KIND_CLAIM:
            claim = decode(Claim, signal.payload)
            task = None if claim is None else self.tasks.get(claim.task_id)
            if claim is not None and task is not None:
                self._on_claim(task, claim, event)
        elif kind == KIND_RESULT:
            if event.type == "emit":
                result = decode(Result, signal.payload)
                task = None if result is None else self.tasks.get(result.task_id)
                if result is not None and task is not None:
                    self._on_result(task, result.attempt, signal)
        elif kind == KIND_VOTE:
            if event.type in ("emit", "reinforce"):
                vote = decode(Vote, signal.payload)
                task = None if vote is None else self.tasks.get(vote.task_id)
                if vote is not None and task is not None:
                    task.votes.setdefault(vote.attempt, {})[vote.verdict] = signal
                    self._changed(task, "vote")
        elif kind == KIND_CHECK:
            if event.type == "emit":
                check = decode(Check, signal.payload)
                task = None if check is None else self.tasks.get(check.task_id)
                if check is not None and task is not None:
                    task.checks.setdefault(check.attempt, {})[signal.origin] = check.verdict
                    self._changed(task, "check")
        elif kind == KIND_FEEDBACK:
            if event.type == "emit":
                feedback = decode(Feedback, signal.payload)
                task = None if feedback is None else self.tasks.get(feedback.task_id)
                if feedback is not None and task is not None:
                    by_attempt = task.feedback.setdefault(feedback.attempt, {})
                    by_attempt[signal.origin] = feedback.reason
        elif kind == KIND_DECISION and event.type == "emit":
            decision = decode(Decision, signal.payload)
            task = None if decision is None else self.tasks.get(decision.task_id)
            if decision is not None and task is not None:
                self._admit(task, decision, signal)
        if self.justifier.holding:
            self._recheck(signal)

    # -- justified decisions (see smesh.agents.justify) ---------------------------------------

    def _admit(self, task: TaskState, decision: Decision, signal: Signal) -> None:
        """Act on ``decision`` only once its cited evidence re-derives it here."""
        if decision.attempt in task.decisions:
            return  # decided already: a second decision changes nothing
        lookup, now = self.field.get, self.field.clock.now
        if self.justifier.admit(task.spec, task.signal.origin, decision, signal, lookup, now):
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
            self._refresh(task)
            self._changed(task, "task")
        elif task is not None and event.type in ("expire", "withdraw") and not task.final:
            # the task faded away or was withdrawn by its poster before it was done
            task.outcome = "failed"
            self._unfinished -= 1
            self._refresh(task)
            self._changed(task, "task-gone")
            self._resolve_watchers(task, signal)
        elif task is not None and event.type in ("reinforce", "renew"):
            task.signal = signal

    def _on_result(self, task: TaskState, attempt: int, signal: Signal) -> None:
        task.results.setdefault(attempt, signal)
        self._refresh(task)
        if attempt == task.attempt:
            for agent in self._verifiers.get(task.spec.skill, ()):
                agent.wake()
        self._changed(task, "result")

    def _on_claim(self, task: TaskState, claim: Claim, event: FieldEvent) -> None:
        if claim.attempt != task.attempt:
            return
        signal = event.signal
        agent = signal.origin
        if event.type in ("emit", "renew", "reinforce"):
            task.claims[agent] = signal
            task.leases[agent] = ClaimView(agent, claim.bid, claim.state == "held")
        elif task.claims.get(agent) is not None and task.claims[agent].address == signal.address:
            del task.claims[agent]  # withdrawn, or a lease that lapsed
            del task.leases[agent]
            if claim.state == "held" and task.attempt not in task.results:
                task.offer += 1  # the holder is gone without a result: offer it again
        self._refresh(task)
        self._changed(task, "claim-" + event.type)

    def _on_decision(self, task: TaskState, decision: Decision, signal: Signal) -> None:
        attempt = decision.attempt
        if attempt in task.decisions:
            return  # the same decision emitted again by another agent reinforces, not repeats
        task.decisions[attempt] = signal
        verdict = decision.verdict
        self._learn(task, attempt, verdict, decision.basis, signal.created_at)
        if task.final:
            pass  # already over (another attempt's decision, the task gone): counted once
        elif verdict in FINAL:
            task.outcome = verdict
            self._unfinished -= 1
        elif attempt == task.attempt:
            task.attempt = attempt + 1
            task.claims.clear()
            task.leases.clear()
            task.offer += 1
        self._refresh(task)
        self._changed(task, "decision")
        self._resolve_watchers(task, signal)

    def _resolve_watchers(self, task: TaskState, signal: Signal) -> None:
        watchers, task.watchers = task.watchers, []
        for future in watchers:
            if not future.done():
                future.set_result(signal)

    def _learn(self, task: TaskState, attempt: int, verdict: str, basis: str, when: float) -> None:
        """Update reputation from a verified outcome: the worker, and every voter.

        A quorum of votes or an authoritative check verifies a result (voters are then judged
        against it: this is how a rubber stamp loses trust to ground truth); an attempt that
        failed outright (``error``) counts against its worker. Timeouts and unverified
        acceptances teach nothing.
        """
        task_id = task.spec.task_id
        result = task.results.get(attempt)
        updates: list[tuple[str, bool, str]] = []
        if result is not None and basis in ("votes", "checks", "error"):
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
        skill = task.spec.skill
        if task.is_open:
            was = len(self._open.setdefault(skill, _OpenSet()))
            self._open[skill].add(task.spec.task_id)
            if len(self._open[skill]) != was:
                for agent in self._workers.get(skill, ()):
                    agent.wake()
        else:
            open_set = self._open.get(skill)
            if open_set is not None:
                open_set.discard(task.spec.task_id)
        waiting = self._awaiting.setdefault(skill, {})
        if (
            task.outcome is None
            and task.attempt in task.results
            and task.attempt not in task.decisions
        ):
            waiting[task.spec.task_id] = None
        else:
            waiting.pop(task.spec.task_id, None)

    def _changed(self, task: TaskState, what: str) -> None:
        for callback in self._on_change:
            callback(task, what)
