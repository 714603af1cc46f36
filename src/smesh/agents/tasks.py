"""What the board knows about one task (:class:`TaskState`), and the open-task index.

A :class:`TaskState` is a read model: everything in it is derived from the signals about
the task (the task itself, claims, results, votes, checks, feedback, decisions, and the
workflow kinds: cancel, approval requests and answers, handoffs, reopens). Every observer of
the same signals derives the same state, in any process.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from smesh.agents.protocol import ClaimView, Decision, Reopen, Result, TaskSpec, Verdict, decode
from smesh.signal import Signal

__all__ = ["CancelHook", "OpenSet", "TaskState", "failure_reason"]

#: called with (grace_s, reason) when the attempt it watches must stop (cancelled, or
#: superseded by a restart)
CancelHook = Callable[[float, str], None]


class TaskState:
    """Everything the field says about one task."""

    __slots__ = (
        "approvals",
        "attempt",
        "base",
        "cause",
        "checks",
        "children",
        "claims",
        "deadline",
        "decisions",
        "failed_inputs",
        "fallback",
        "feedback",
        "handoff",
        "handoffs",
        "hooks",
        "leases",
        "listed",
        "offer",
        "outcome",
        "requests",
        "restart",
        "restarted_at",
        "restarts",
        "results",
        "signal",
        "skill",
        "spec",
        "stale",
        "votes",
        "waiting",
        "watchers",
    )

    def __init__(self, spec: TaskSpec, signal: Signal) -> None:
        self.spec = spec
        self.signal = signal
        #: the skill it needs now (a handoff may change it)
        self.skill = spec.skill
        #: whether the board lists it among the open tasks of its skill
        self.listed = False
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
        self.outcome: str | None = None  # "accepted", "failed" or "cancelled" once final
        self.watchers: list[asyncio.Future[Signal]] = []
        # -- workflows (rarely used parts stay None until needed) --
        #: why a task ended without a decision of its own (a failed dependency, a cancel)
        self.cause: str | None = None
        #: dependencies not accepted yet; the task is dormant while > 0
        self.waiting = 0
        self.failed_inputs: dict[str, str] | None = None
        self.children: list[str] | None = None
        self.requests: dict[int, Signal] | None = None  # attempt -> approval request
        self.approvals: dict[int, Signal] | None = None  # attempt -> the answer that counted
        self.handoff: Signal | None = None  # the latest handoff of the current attempt
        self.handoffs = 0
        #: an addressed task opens to everyone at this time (None: no deadline)
        self.deadline: float | None = None
        #: the addressee is gone (its lease lapsed): the task is open to everyone
        self.fallback = False
        self.base = 1  # the first attempt since the last restart
        self.restarts = 0
        self.restarted_at = float("-inf")
        self.restart: Reopen | None = None  # why the current run of it started again
        self.stale: set[str] | None = None  # dependencies superseded since it started
        self.hooks: list[CancelHook] | None = None

    # -- derived views ---------------------------------------------------------------------

    @property
    def final(self) -> bool:
        """Whether the task is accepted, failed or cancelled for good."""
        return self.outcome is not None

    @property
    def cancelled(self) -> bool:
        """Whether the task was cancelled."""
        return self.outcome == "cancelled"

    def addressee(self, now: float) -> str | None:
        """The only agent that may claim it at ``now``, or None when anyone may."""
        handoff = self.handoff
        to = self.spec.to if handoff is None else handoff.payload.get("to")
        if to is None or self.fallback:
            return None
        if self.deadline is not None and now >= self.deadline:
            return None
        return str(to)

    @property
    def holder(self) -> str | None:
        """The agent holding a lease on the current attempt, if any."""
        for view in self.leases.values():
            if view.held:
                return view.agent
        return None

    @property
    def awaiting_approval(self) -> bool:
        """Whether the current attempt waits for a human's answer."""
        return (
            self.outcome is None
            and self.requests is not None
            and self.attempt in self.requests
            and self.attempt not in self.decisions
        )

    @property
    def is_open(self) -> bool:
        """Not final, not dormant, no lease held, and no result yet for the current attempt."""
        return (
            self.outcome is None
            and self.waiting == 0
            and self.attempt not in self.results
            and self.holder is None
        )

    @property
    def tries(self) -> int:
        """Attempts used since the last restart (what ``max_attempts`` bounds)."""
        return self.attempt - self.base + 1

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

    def accepted_output(self) -> Any:
        """The output of the accepted attempt (None unless accepted)."""
        if self.outcome != "accepted":
            return None
        decided = [a for a, d in self.decisions.items() if d.payload.get("verdict") == "accepted"]
        result = self.result(max(decided)) if decided else None
        return None if result is None else result.output

    def ballots(self, attempt: int) -> dict[Verdict, list[str]]:
        """Voters behind each verdict on ``attempt``: a vote's origin plus its reinforcers."""
        out: dict[Verdict, list[str]] = {}
        for verdict, vote in self.votes.get(attempt, {}).items():
            out[verdict] = [vote.origin, *vote.reinforcers]  # type: ignore[index]
        return out

    def voters(self, attempt: int) -> set[str]:
        """Everyone who voted on ``attempt``."""
        return {v for voters in self.ballots(attempt).values() for v in voters}

    # -- stopping the attempt in flight ----------------------------------------------------

    def add_hook(self, hook: CancelHook) -> None:
        """Call ``hook(grace_s, reason)`` if the current work must stop (until removed)."""
        if self.hooks is None:
            self.hooks = []
        self.hooks.append(hook)

    def remove_hook(self, hook: CancelHook) -> None:
        """Stop watching (the work it guarded is over)."""
        hooks = self.hooks
        if hooks is not None:
            if len(hooks) == 1 and hooks[0] is hook:
                self.hooks = None
            elif hook in hooks:
                hooks.remove(hook)

    def fire_hooks(self, grace_s: float, reason: str) -> None:
        """Tell the work in flight on this task to stop within ``grace_s``."""
        hooks, self.hooks = self.hooks, None
        for hook in hooks or ():
            hook(grace_s, reason)


class OpenSet:
    """Task ids of one skill: O(1) add, remove and uniform random pick."""

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

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._pos

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._ids))

    def view(self) -> Sequence[str]:
        """The ids as they stand (not a copy: do not change the set while reading it)."""
        return self._ids

    def sample(self, rng: random.Random, k: int) -> list[str]:
        if len(self._ids) <= k:
            return list(self._ids)
        return rng.sample(self._ids, k)


def failure_reason(task: TaskState) -> str:
    """Why ``task`` did not end accepted, in one line."""
    if task.cause is not None:
        return task.cause
    last = max(task.decisions) if task.decisions else None
    if last is None:
        return "failed"
    if task.decisions[last].payload.get("basis") == "give-up":
        return "unfinished when the run stopped"
    result = task.result(last)
    if result is not None and result.error:
        return result.error
    reasons = task.feedback.get(last, {})
    if reasons:
        return "; ".join(reasons[v] for v in sorted(reasons))
    return f"rejected on attempt {last} of {task.spec.max_attempts}"
