"""The pure rules of the coordination protocol: who wins a claim, when evidence settles.

Every agent evaluates these same functions over the same signals and so reaches the same
conclusion with no coordinator. :mod:`smesh.agents.protocol` re-exports them beside the
payloads they read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Literal

import msgspec

if TYPE_CHECKING:
    from smesh.agents.protocol import VerifySpec

__all__ = [
    "BACKOFF_MARGIN",
    "FINAL",
    "ClaimView",
    "Outcome",
    "Ruling",
    "Tally",
    "Verdict",
    "claim_winner",
    "concedes",
    "settle",
    "tally",
]

#: a bid concedes for good when another live bid beats it by more than this
BACKOFF_MARGIN = 0.1

Verdict = Literal["approve", "reject"]
Outcome = Literal["accepted", "rejected", "failed"]
FINAL: frozenset[str] = frozenset({"accepted", "failed"})


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
