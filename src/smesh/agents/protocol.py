"""The coordination protocol: typed signal payloads, and the pure rules over them (SPEC §2).

Nothing here does I/O or keeps state. The rules every agent evaluates identically (who wins
a claim, when votes settle) live in :mod:`smesh.agents.rules` and are re-exported here.

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

Workflow kinds (SPEC §2.7), all durable: ``cancel`` (origin scope, :class:`Cancel`: a task
and its subtasks, or the run), ``approval-request`` (content scope, :class:`ApprovalRequest`:
an attempt that passed waits for a human), ``approval`` (origin scope, :class:`Approval`:
the human's answer, which decides the attempt), ``handoff`` (origin scope,
:class:`Handoff`: the holder passes its task on with context) and ``reopen`` (origin
scope, :class:`Reopen`: new information runs a task again).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal, TypeVar

import msgspec

from smesh.agents.rules import (
    BACKOFF_MARGIN,
    FINAL,
    ClaimView,
    Outcome,
    Ruling,
    Tally,
    Verdict,
    claim_winner,
    concedes,
    settle,
    tally,
)
from smesh.agents.taskspec import KIND_TASK, ApprovalSpec, TaskSpec, VerifySpec, task_intensity

__all__ = [
    "BACKOFF_MARGIN",
    "FINAL",
    "KIND_APPROVAL",
    "KIND_APPROVAL_REQUEST",
    "KIND_CANCEL",
    "KIND_CHECK",
    "KIND_CLAIM",
    "KIND_DECISION",
    "KIND_FEEDBACK",
    "KIND_FINDING",
    "KIND_HANDOFF",
    "KIND_HEARTBEAT",
    "KIND_PRESSURE",
    "KIND_REOPEN",
    "KIND_RESULT",
    "KIND_TASK",
    "KIND_VOTE",
    "WORKFLOW_KINDS",
    "Approval",
    "ApprovalRequest",
    "ApprovalSpec",
    "Cancel",
    "Check",
    "Claim",
    "ClaimView",
    "Decision",
    "Feedback",
    "Finding",
    "Handoff",
    "Heartbeat",
    "Outcome",
    "Payload",
    "Pressure",
    "Reopen",
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

KIND_CLAIM = "claim"
KIND_RESULT = "result"
KIND_VOTE = "vote"
KIND_FEEDBACK = "feedback"
KIND_CHECK = "check"
KIND_DECISION = "decision"
KIND_PRESSURE = "pressure"
KIND_HEARTBEAT = "heartbeat"
KIND_FINDING = "finding"
KIND_CANCEL = "cancel"
KIND_APPROVAL_REQUEST = "approval-request"
KIND_APPROVAL = "approval"
KIND_HANDOFF = "handoff"
KIND_REOPEN = "reopen"
#: the durable kinds of workflows (a resumed run replays them)
WORKFLOW_KINDS: frozenset[str] = frozenset(
    {KIND_CANCEL, KIND_APPROVAL_REQUEST, KIND_APPROVAL, KIND_HANDOFF, KIND_REOPEN}
)


# -- payloads --------------------------------------------------------------------------------


class Payload(msgspec.Struct, frozen=True):
    """Base of the typed payloads; ``KIND`` is the signal kind that carries one; ``SPARSE``:
    fields added later, left off the wire while unset (None), so that the wire form, and
    the address, of a payload that does not use them stays what it was."""

    KIND: ClassVar[str]
    SPARSE: ClassVar[tuple[str, ...]] = ()


P = TypeVar("P", bound=msgspec.Struct)


_asdict: Callable[[Payload], dict[str, Any]] = msgspec.structs.asdict


def encode(payload: Payload) -> dict[str, Any]:
    """The wire form of a payload: a plain dict of its fields, less unset ``SPARSE`` ones.
    Shallow on purpose (msgspec's asdict; it is on every emit): a worker's ``output`` goes
    in as it is, and the field rejects it there if it is not JSON-compatible."""
    wire = _asdict(payload)
    for name in payload.SPARSE:
        if wire[name] is None:
            del wire[name]
    return wire


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
    """The outcome of one attempt: an output, or the error that prevented one; ``calls``:
    for a task with ``max_calls``, the calls its work has used so far, its subtasks' included
    (how a parent in another process learns what its share left over)."""

    KIND: ClassVar[str] = KIND_RESULT
    SPARSE: ClassVar[tuple[str, ...]] = ("calls",)
    task_id: str
    attempt: int
    output: Any = None
    error: str | None = None
    calls: int | None = None


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


class Cancel(Payload, frozen=True):
    """Stop a task and everything spawned under it (``task_id`` None: every task of the run
    posted before it); workers get ``grace_s`` (None: the run's ``cancel_grace_s``)."""

    KIND: ClassVar[str] = KIND_CANCEL
    task_id: str | None = None
    reason: str = ""
    by: str = ""
    grace_s: float | None = None


class ApprovalRequest(Payload, frozen=True):
    """Attempt ``attempt`` passed verification; its ``result`` (an address) waits for the
    approval of ``by`` (None: any approver)."""

    KIND: ClassVar[str] = KIND_APPROVAL_REQUEST
    task_id: str
    attempt: int
    result: str
    by: str | None = None


class Approval(Payload, frozen=True):
    """A human's answer to the request on ``attempt`` (None: the one waiting when it
    arrives) about ``result``; it decides the attempt, and a rejection's ``reason`` is the
    next attempt's feedback."""

    KIND: ClassVar[str] = KIND_APPROVAL
    task_id: str
    attempt: int | None = None
    verdict: Verdict = "approve"
    reason: str = ""
    by: str = ""
    result: str | None = None


class Handoff(Payload, frozen=True):
    """The holder hands attempt ``attempt`` on to agent ``to`` and/or to agents of
    ``skill``, who continue from ``context``; ``seq`` numbers the task's handoffs, so each
    is a signal of its own."""

    KIND: ClassVar[str] = KIND_HANDOFF
    task_id: str
    attempt: int
    seq: int = 1
    to: str | None = None
    skill: str | None = None
    context: Any = None
    note: str = ""


class Reopen(Payload, frozen=True):
    """New information (``reason``, ``context``) posted by ``by`` at ``at``: the task runs
    again with its previous answer (``at`` makes the same news posted twice two signals)."""

    KIND: ClassVar[str] = KIND_REOPEN
    task_id: str
    reason: str = ""
    context: Any = None
    by: str = ""
    at: float = 0.0
