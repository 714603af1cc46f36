"""Trust: how much one node believes another, learned only from verified outcomes.

A :class:`TrustTable` maps peer ids to a trust value in [0.01, 0.99] (0.5 when unknown). It
changes only through :meth:`TrustTable.record`, which takes an *outcome* (a test run, a schema
check, an accepted or rejected decision), never a peer's say-so. Between outcomes, trust
relaxes toward 0.5: ``c·f + 0.5·(1 − f)`` with ``f = e^(−relaxation·dt)``, so old evidence
fades and a node can recover from a bad streak.

Three update rules are built in:

* ``additive`` (default): ``c ± step``.
* ``bayesian``: treats the outcome as evidence of accuracy ``evidence`` and applies Bayes'
  rule to the belief that the peer is reliable.
* ``beta``: Beta reputation; trust is the mean ``α/(α+β)`` of successes and failures (each
  starting at 1), and relaxation shrinks the counts back toward the prior.
"""

from __future__ import annotations

import math
from typing import Literal

import msgspec

from smesh.errors import InvalidValue, UnknownName

__all__ = [
    "DEFAULT_TRUST",
    "MAX_TRUST",
    "MIN_TRUST",
    "TrustModel",
    "TrustRecord",
    "TrustTable",
    "relax",
]

DEFAULT_TRUST = 0.5
MIN_TRUST = 0.01
MAX_TRUST = 0.99

TrustModel = Literal["additive", "bayesian", "beta"]
_MODELS = ("additive", "bayesian", "beta")


def _clamp(value: float) -> float:
    return MIN_TRUST if value < MIN_TRUST else MAX_TRUST if value > MAX_TRUST else value


def relax(value: float, dt: float, rate: float = 0.01) -> float:
    """Move ``value`` toward 0.5 for ``dt`` seconds: ``c·f + 0.5·(1 − f)``, f = e^(−rate·dt)."""
    if dt <= 0.0:
        return value
    f = math.exp(-rate * dt)
    return value * f + DEFAULT_TRUST * (1.0 - f)


class TrustRecord(msgspec.Struct, frozen=True):
    """Trust in one peer as last updated.

    Attributes:
        value: trust at ``updated_at``.
        updated_at: clock time of the last outcome.
        alpha: Beta-model success count (prior 1).
        beta: Beta-model failure count (prior 1).
    """

    value: float
    updated_at: float
    alpha: float = 1.0
    beta: float = 1.0


class TrustTable:
    """One node's trust in its peers.

    Args:
        model: ``additive``, ``bayesian`` or ``beta``.
        step: additive step per outcome.
        evidence: Bayesian likelihood that a good peer produces a good outcome.
        relaxation: rate of the pull toward 0.5, per second.
    """

    __slots__ = ("_records", "evidence", "model", "relaxation", "step")

    def __init__(
        self,
        model: TrustModel = "additive",
        *,
        step: float = 0.1,
        evidence: float = 0.8,
        relaxation: float = 0.01,
    ) -> None:
        if model not in _MODELS:
            raise UnknownName(f"unknown trust model {model!r} (known: {', '.join(_MODELS)})")
        if not 0.0 < step < 1.0:
            raise InvalidValue(f"trust step must be in (0, 1), got {step}")
        if not 0.5 < evidence < 1.0:
            raise InvalidValue(f"trust evidence must be in (0.5, 1), got {evidence}")
        if relaxation < 0.0:
            raise InvalidValue(f"trust relaxation must be >= 0, got {relaxation}")
        self.model: TrustModel = model
        self.step = step
        self.evidence = evidence
        self.relaxation = relaxation
        self._records: dict[str, TrustRecord] = {}

    def get(self, peer: str, now: float) -> float:
        """Trust in ``peer`` at time ``now`` (0.5 for a stranger)."""
        record = self._records.get(peer)
        if record is None:
            return DEFAULT_TRUST
        return _clamp(relax(record.value, now - record.updated_at, self.relaxation))

    def record(self, peer: str, success: bool, now: float, weight: float = 1.0) -> float:
        """Update trust in ``peer`` from a verified outcome and return the new value.

        Args:
            peer: the node whose work was verified.
            success: whether the verified outcome was good.
            now: clock time of the outcome.
            weight: strength of the evidence in [0, 1] (e.g. a partial test pass).
        """
        weight = min(1.0, max(0.0, weight))
        old = self._records.get(peer)
        current = self.get(peer, now)
        alpha, beta = 1.0, 1.0
        if self.model == "additive":
            value = current + (self.step if success else -self.step) * weight
        elif self.model == "bayesian":
            like = 0.5 + (self.evidence - 0.5) * weight
            p_good, p_bad = (like, 1.0 - like) if success else (1.0 - like, like)
            value = current * p_good / (current * p_good + (1.0 - current) * p_bad)
        else:
            if old is not None:
                # relax in step with the value: the evidence shrinks toward the prior's 2
                # and is split so that its mean is the relaxed trust ``current``
                f = math.exp(-self.relaxation * max(0.0, now - old.updated_at))
                total = 2.0 + (old.alpha + old.beta - 2.0) * f
                alpha = current * total
                beta = total - alpha
            if success:
                alpha += weight
            else:
                beta += weight
            value = alpha / (alpha + beta)
        value = _clamp(value)
        self._records[peer] = TrustRecord(value, now, alpha, beta)
        return value

    def set(self, peer: str, value: float, now: float) -> None:
        """Seed trust in ``peer`` (e.g. from configuration or a resumed journal)."""
        if not 0.0 <= value <= 1.0:
            raise InvalidValue(f"trust must be in [0, 1], got {value}")
        self._records[peer] = TrustRecord(_clamp(value), now)

    def snapshot(self, now: float) -> dict[str, float]:
        """Current trust in every peer that has a record."""
        return {peer: self.get(peer, now) for peer in self._records}

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, peer: object) -> bool:
        return peer in self._records
