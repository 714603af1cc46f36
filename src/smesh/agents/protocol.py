"""The coordination protocol, as pure functions over signals (SPEC §2).

Nothing here does I/O or keeps state: every agent evaluates the same functions over the same
signals and so reaches the same conclusion with no coordinator.

Signal kinds and their payloads:

``task`` (content scope)
    ``{task_id, skill, description, priority, verify, max_attempts, input}``; intensity
    ``0.5 + 0.5·priority``.
``claim`` (origin scope, a lease)
    ``{task_id, attempt, bid, state}``; ``state`` is ``bid`` while contested and ``held`` once
    its owner works on the task. Held claims are renewed while the work goes on and lapse
    when the owner dies or hangs.
``result`` (origin scope)
    ``{task_id, attempt, output, error}``.
``vote`` (content scope)
    ``{task_id, attempt, result, verdict}``: voters with the same verdict on the same result
    land on one signal, so its origin plus reinforcers *are* the ballot.
``check`` (origin scope)
    ``{task_id, attempt, result, verdict}`` from an *authoritative* verifier (a test run, a
    schema check): ground truth. When an attempt has checks, they decide it (any reject
    rejects) and the votes only teach trust.
``feedback`` (origin scope)
    ``{task_id, attempt, reason}``: why a verifier rejected, for the next attempt.
``decision`` (content scope, durable)
    ``{task_id, attempt, verdict}`` with verdict ``accepted``, ``rejected`` or ``failed``;
    ``accepted`` and ``failed`` are final.
``pressure`` (content scope)
    ``{backend, reason, hold_s}``: every agent sharing that backend backs off.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import msgspec

from smesh.errors import InvalidSignal

__all__ = [
    "BACKOFF_MARGIN",
    "FINAL",
    "ClaimView",
    "Tally",
    "TaskSpec",
    "VerifySpec",
    "claim_winner",
    "concedes",
    "tally",
    "task_intensity",
]

KIND_TASK = "task"
KIND_CLAIM = "claim"
KIND_RESULT = "result"
KIND_VOTE = "vote"
KIND_FEEDBACK = "feedback"
KIND_CHECK = "check"
KIND_DECISION = "decision"
KIND_PRESSURE = "pressure"
KIND_HEARTBEAT = "heartbeat"

#: a bid concedes for good when another live bid beats it by more than this
BACKOFF_MARGIN = 0.1

Verdict = Literal["approve", "reject"]
Outcome = Literal["accepted", "rejected", "failed"]
FINAL: frozenset[str] = frozenset({"accepted", "failed"})


class VerifySpec(msgspec.Struct, frozen=True, kw_only=True):
    """How a task's results are verified.

    Attributes:
        quorum: trust-weighted mass one verdict needs.
        margin: lead that verdict needs over the other (δ).
        schema: a JSON schema the output must satisfy (checked by schema verifiers).
        timeout_s: how long the worker waits for a decision before treating the attempt as
            rejected for lack of consensus.
    """

    quorum: float = 0.9
    margin: float = 0.3
    schema: dict[str, Any] | None = None
    timeout_s: float = 120.0


class TaskSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A unit of work, as posted in a ``task`` signal.

    Attributes:
        task_id: unique id; also the idempotency key of every side effect.
        skill: the skill it needs (agents claim by affinity for it).
        description: what to do.
        priority: in [0, 1]; sets the signal's intensity ``0.5 + 0.5·priority``.
        verify: how results are checked; None accepts the first result.
        max_attempts: attempts before the task fails for good.
        input: extra JSON input for the worker.
        kind: the signal kind that carries it (``task`` or your own task kind).
    """

    task_id: str
    skill: str
    description: str = ""
    priority: float = 0.5
    verify: VerifySpec | None = None
    max_attempts: int = 3
    input: Any = None
    kind: str = KIND_TASK

    def __post_init__(self) -> None:
        if not self.task_id or not self.skill:
            raise InvalidSignal("a task needs a task_id and a skill")
        if not 0.0 <= self.priority <= 1.0:
            raise InvalidSignal(f"priority must be in [0, 1], got {self.priority}")
        if self.max_attempts < 1:
            raise InvalidSignal(f"max_attempts must be >= 1, got {self.max_attempts}")

    def payload(self) -> dict[str, Any]:
        """The JSON payload of the task signal."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        data.pop("kind", None)
        return data

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any], kind: str = KIND_TASK) -> TaskSpec:
        """Rebuild a spec from a task signal's payload."""
        return msgspec.convert({**payload, "kind": kind}, cls)


def task_intensity(priority: float) -> float:
    """Intensity of a task signal: ``0.5 + 0.5·priority``."""
    return 0.5 + 0.5 * priority


class ClaimView(msgspec.Struct, frozen=True):
    """The part of a live claim the rules look at."""

    agent: str
    bid: float
    held: bool


def _rank(claim: ClaimView) -> tuple[float, str]:
    # higher bid first, then lower node id: negate the bid so min() picks the winner
    return (-claim.bid, claim.agent)


def claim_winner(claims: Iterable[ClaimView]) -> str | None:
    """The agent every observer agrees owns the task, or None if no claim is live.

    A held claim beats any bid (its owner is already working); among equals the higher bid
    wins, then the lower node id.
    """
    pool = list(claims)
    if not pool:
        return None
    held = [c for c in pool if c.held]
    return min(held or pool, key=_rank).agent


def concedes(mine: ClaimView, others: Iterable[ClaimView]) -> bool:
    """Whether ``mine`` should give up: a held claim exists, another bid beats mine by more
    than :data:`BACKOFF_MARGIN`, or I lose the deterministic tie-break."""
    rivals = [c for c in others if c.agent != mine.agent]
    if not rivals:
        return False
    if mine.held:  # a holder yields only to another holder that wins the tie-break
        return claim_winner([mine, *rivals]) != mine.agent
    if any(c.held for c in rivals):
        return not mine.held or claim_winner([mine, *rivals]) != mine.agent
    if any(c.bid > mine.bid + BACKOFF_MARGIN for c in rivals):
        return True
    return claim_winner([mine, *rivals]) != mine.agent


class Tally(msgspec.Struct, frozen=True):
    """Trust-weighted vote masses and the outcome they imply."""

    approve: float
    reject: float
    outcome: Outcome | None


def tally(
    ballots: Mapping[Verdict, Iterable[str]],
    trust: Callable[[str], float],
    *,
    quorum: float,
    margin: float,
) -> Tally:
    """Weigh the voters behind each verdict by trust.

    Accept when the approving mass reaches ``quorum`` and leads by at least ``margin``;
    reject symmetrically; otherwise the outcome is None (wait for more votes). A voter who
    appears under both verdicts counts for neither.
    """
    approvers = set(ballots.get("approve", ()))
    rejecters = set(ballots.get("reject", ()))
    both = approvers & rejecters
    approve = sum(trust(v) for v in sorted(approvers - both))
    reject = sum(trust(v) for v in sorted(rejecters - both))
    outcome: Outcome | None = None
    # a small epsilon so that 0.45 + 0.45 reaches a 0.9 quorum despite binary floats
    eps = 1e-9
    if approve + eps >= quorum and approve - reject + eps >= margin:
        outcome = "accepted"
    elif reject + eps >= quorum and reject - approve + eps >= margin:
        outcome = "rejected"
    return Tally(approve, reject, outcome)
