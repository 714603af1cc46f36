"""The coordination protocol: typed signal payloads and the pure rules over them (SPEC §2).

Nothing here does I/O or keeps state: every agent evaluates the same functions over the same
signals and so reaches the same conclusion with no coordinator.

Each built-in kind's payload is a frozen struct below. On the wire a payload is the plain
JSON object of its fields (:func:`encode`), so signals stay readable by any peer and their
addresses do not depend on this module; a payload read from the field is validated by
:func:`decode`, which answers None for anything malformed (a buggy or hostile peer's signal
is ignored, never a crash).

``task`` (content scope): :class:`TaskSpec`
    ``{task_id, skill, description, priority, verify, max_attempts, input[, tools]}``; intensity
    ``0.5 + 0.5·priority``.
``claim`` (origin scope, a lease): :class:`Claim`
    ``{task_id, attempt, bid, state}``; ``state`` is ``bid`` while contested and ``held`` once
    its owner works on the task. Held claims are renewed while the work goes on and lapse
    when the owner dies or hangs.
``result`` (origin scope): :class:`Result`
    ``{task_id, attempt, output, error}``.
``vote`` (content scope): :class:`Vote`
    ``{task_id, attempt, result, verdict}``: voters with the same verdict on the same result
    land on one signal, so its origin plus reinforcers *are* the ballot.
``check`` (origin scope): :class:`Check`
    ``{task_id, attempt, result, verdict}`` from an *authoritative* verifier (a test run, a
    schema check): ground truth. When an attempt has checks, they decide it (any reject
    rejects) and the votes only teach trust.
``feedback`` (origin scope): :class:`Feedback`
    ``{task_id, attempt, reason}``: why a verifier rejected, for the next attempt.
``decision`` (content scope, durable): :class:`Decision`
    ``{task_id, attempt, verdict, basis, result, cites}`` with verdict ``accepted``,
    ``rejected`` or ``failed``; ``accepted`` and ``failed`` are final. It cites the result
    and the votes or checks it rests on, and a board acts on it only once it has re-derived
    it from them (:mod:`smesh.agents.justify`).
``pressure`` (content scope): :class:`Pressure`
    ``{backend, reason, hold_s}``: every agent sharing that backend backs off.
``heartbeat`` (origin scope): :class:`Heartbeat`
    ``{busy, slots}``: a participant is alive (leases already carry a worker's liveness; this
    is for tools and views that want to show who is there).
``finding`` (content scope): :class:`Finding`
    ``{file, label, bucket}``: the key of a finding (see :mod:`smesh.apps.findings`), so two
    agents reporting the same issue land on one signal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Literal, TypeVar

import msgspec

from smesh.errors import InvalidSignal

__all__ = [
    "BACKOFF_MARGIN",
    "FINAL",
    "KIND_CHECK",
    "KIND_CLAIM",
    "KIND_DECISION",
    "KIND_FEEDBACK",
    "KIND_FINDING",
    "KIND_HEARTBEAT",
    "KIND_PRESSURE",
    "KIND_RESULT",
    "KIND_TASK",
    "KIND_VOTE",
    "Check",
    "Claim",
    "ClaimView",
    "Decision",
    "Feedback",
    "Finding",
    "Heartbeat",
    "Outcome",
    "Payload",
    "Pressure",
    "Result",
    "Ruling",
    "Tally",
    "TaskSpec",
    "Verdict",
    "VerifySpec",
    "Vote",
    "claim_winner",
    "concedes",
    "decode",
    "encode",
    "settle",
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
KIND_FINDING = "finding"

#: a bid concedes for good when another live bid beats it by more than this
BACKOFF_MARGIN = 0.1

Verdict = Literal["approve", "reject"]
Outcome = Literal["accepted", "rejected", "failed"]
FINAL: frozenset[str] = frozenset({"accepted", "failed"})


# -- payloads --------------------------------------------------------------------------------


class Payload(msgspec.Struct, frozen=True):
    """Base of the typed payloads; ``KIND`` is the signal kind that carries one."""

    KIND: ClassVar[str]


P = TypeVar("P", bound=msgspec.Struct)


#: ``encode(payload)``: the wire form of a payload, a plain dict of its fields. Shallow on
#: purpose: a worker's ``output`` goes into the signal as it is, and the field rejects it
#: there if it is not JSON-compatible. (msgspec's own function: it is on every emit.)
encode: Callable[[Payload], dict[str, Any]] = msgspec.structs.asdict


def decode(cls: type[P], payload: Any) -> P | None:
    """``payload`` as a ``cls``, or None when it is malformed (validation at the edge)."""
    try:
        return msgspec.convert(payload, cls)
    except (msgspec.ValidationError, ValueError, TypeError):
        return None


class Claim(Payload, frozen=True):
    """A bid for, or the lease on, one attempt at a task."""

    KIND: ClassVar[str] = KIND_CLAIM
    task_id: str
    attempt: int
    bid: float
    state: Literal["bid", "held"]

    @property
    def held(self) -> bool:
        """Whether its owner works on the task (not just bidding)."""
        return self.state == "held"


class Result(Payload, frozen=True):
    """The outcome of one attempt: an output, or the error that prevented one."""

    KIND: ClassVar[str] = KIND_RESULT
    task_id: str
    attempt: int
    output: Any = None
    error: str | None = None


class Vote(Payload, frozen=True):
    """A verifier's blind verdict on one result (``result`` is its signal's address)."""

    KIND: ClassVar[str] = KIND_VOTE
    task_id: str
    attempt: int
    result: str
    verdict: Verdict


class Check(Payload, frozen=True):
    """An authoritative verifier's verdict on one result: ground truth."""

    KIND: ClassVar[str] = KIND_CHECK
    task_id: str
    attempt: int
    result: str
    verdict: Verdict


class Feedback(Payload, frozen=True):
    """Why a verifier rejected an attempt, for the next one."""

    KIND: ClassVar[str] = KIND_FEEDBACK
    task_id: str
    attempt: int
    reason: str = ""


class Decision(Payload, frozen=True):
    """The durable decision on an attempt, and what it rests on (see :class:`Ruling`).

    ``result`` is the address of the result decided on and ``cites`` the signals the
    decision rests on (a vote signal's address -> the voters counted on it; a check's
    address -> ``[]``): every receiver re-derives the decision from them
    (:mod:`smesh.agents.justify`) before it acts on it.
    """

    KIND: ClassVar[str] = KIND_DECISION
    task_id: str
    attempt: int
    verdict: Outcome
    basis: str = ""
    result: str | None = None
    cites: dict[str, list[str]] = {}


class Pressure(Payload, frozen=True):
    """A backend asked to slow down: everyone using it holds off for ``hold_s``."""

    KIND: ClassVar[str] = KIND_PRESSURE
    backend: str
    reason: str = ""
    hold_s: float = 0.0


class Heartbeat(Payload, frozen=True):
    """A participant is alive, with how many of its slots are busy."""

    KIND: ClassVar[str] = KIND_HEARTBEAT
    busy: int = 0
    slots: int = 0


class Finding(Payload, frozen=True, order=True):
    """What makes two reports the same finding (the payload of a ``finding`` signal).

    Attributes:
        file: the file's relative path.
        label: a review category (``security``) or a weakness (``CWE-89``).
        bucket: ``line // bucket_size`` of the first report.
    """

    KIND: ClassVar[str] = KIND_FINDING
    file: str
    label: str
    bucket: int


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
        tools: names of the tools a worker may use for it (None: no limit from the task;
            ``[]``: none). A worker uses the intersection with its own tools.
    """

    task_id: str
    skill: str
    description: str = ""
    priority: float = 0.5
    verify: VerifySpec | None = None
    max_attempts: int = 3
    input: Any = None
    kind: str = KIND_TASK
    tools: list[str] | None = None

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
        if data.get("tools") is None:  # unset: a task's address stays what it was
            data.pop("tools", None)
        return data

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any], kind: str = KIND_TASK) -> TaskSpec:
        """Rebuild a spec from a task signal's payload (raises on a malformed one)."""
        return msgspec.convert({**payload, "kind": kind}, cls)


def task_intensity(priority: float) -> float:
    """Intensity of a task signal: ``0.5 + 0.5·priority``."""
    return 0.5 + 0.5 * priority


# -- claims ----------------------------------------------------------------------------------


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


# -- verification ----------------------------------------------------------------------------


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


class Ruling(msgspec.Struct, frozen=True):
    """A decision a rule reaches on an attempt.

    Attributes:
        outcome: ``accepted`` or ``rejected`` (``failed`` once attempts run out).
        basis: what it rests on: ``checks`` (authoritative verifiers: ground truth),
            ``votes`` (a trust-weighted quorum), ``error`` (the attempt produced nothing),
            ``timeout`` (no consensus in time), ``unverified`` (no verification asked) or
            ``give-up`` (the poster failed its unfinished task). Only ``checks``, ``votes``
            and ``error`` teach trust.
        detail: numbers for the journal (e.g. the trust masses).
    """

    outcome: Outcome
    basis: str
    detail: dict[str, float] = {}


def settle(
    checks: Mapping[str, str] | None,
    ballots: Mapping[Verdict, Iterable[str]],
    trust: Callable[[str], float],
    verify: VerifySpec | None,
) -> Ruling | None:
    """The decision the evidence on one attempt supports, or None to wait for more.

    Authoritative checks decide when there are any (one failing check rejects); otherwise
    the trust-weighted :func:`tally` of the ballots against ``verify``'s quorum and margin.
    A task without verification is never settled by evidence (its first result is
    accepted as it is).

    Args:
        checks: checker -> verdict on the attempt.
        ballots: verdict -> the voters behind it.
        trust: a voter's trust (as of the result's time).
        verify: the task's verification spec.
    """
    if checks:
        verdict: Outcome = "rejected" if "reject" in checks.values() else "accepted"
        return Ruling(verdict, "checks")
    if verify is None:
        return None
    outcome = tally(ballots, trust, quorum=verify.quorum, margin=verify.margin)
    if outcome.outcome is None:
        return None
    return Ruling(outcome.outcome, "votes", {"approve": outcome.approve, "reject": outcome.reject})
