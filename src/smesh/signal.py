"""Signals: the immutable messages that live in a field.

A :class:`Signal` is a frozen value. Its *address* is a 128-bit blake2b digest over a
canonical, length-delimited encoding of its content, so two agents that independently say the
same thing produce the same address and the second emit reinforces the first. Mutation
(reinforcement, renewal) returns a new value; a signal you hold never changes under you.
"""

from __future__ import annotations

import math
from hashlib import blake2b
from typing import Any, Literal

import msgspec

from smesh.decay import DEFAULT_DECAY, EXPIRY_INTENSITY, Decay
from smesh.errors import InvalidSignal

__all__ = [
    "MAX_REINFORCEMENT_BOOST",
    "Scope",
    "Signal",
    "compute_address",
    "reinforcement_boost",
]

Scope = Literal["content", "origin"]

#: Reinforcement adds 0.1 per distinct reinforcer to the effective intensity, up to +0.5.
MAX_REINFORCEMENT_BOOST = 0.5

# msgpack is length-delimited by construction (every string, map and array carries its size),
# and sorted keys make it canonical: one C call gives the bytes we hash.
_encode_canonical = msgspec.msgpack.Encoder(order="sorted").encode


def compute_address(kind: str, payload: Any, origin: str, scope: Scope = "content") -> str:
    """Return the 32-hex-digit address of a signal's content.

    The hashed bytes are the canonical msgpack encoding (sorted keys, every item
    length-prefixed) of ``(scope, kind, payload)``, plus ``origin`` in origin scope.

    Raises:
        InvalidSignal: the payload is not JSON-compatible.
    """
    parts = (scope, kind, payload, origin) if scope == "origin" else (scope, kind, payload)
    try:
        body = _encode_canonical(parts)
    except (TypeError, OverflowError, RecursionError, msgspec.EncodeError) as exc:
        raise InvalidSignal(f"signal payload must be JSON-compatible: {exc}") from None
    return blake2b(body, digest_size=16).hexdigest()


def reinforcement_boost(reinforcers: int) -> float:
    """The multiplier ``1 + min(0.1·n, 0.5)`` that n distinct reinforcers give."""
    return 1.0 + min(0.1 * reinforcers, MAX_REINFORCEMENT_BOOST)


def _reject(
    kind: object,
    origin: object,
    intensity: float,
    confidence: float,
    ttl: float,
    decay: object,
    radius: object,
    scope: object,
) -> None:
    checks: list[tuple[bool, str]] = [
        (isinstance(kind, str) and bool(kind), f"kind must be a non-empty string, got {kind!r}"),
        (
            isinstance(origin, str) and bool(origin),
            f"origin must be a non-empty node id, got {origin!r}",
        ),
        (0.0 <= intensity <= 1.0, f"intensity must be in [0, 1], got {intensity!r}"),
        (0.0 <= confidence <= 1.0, f"confidence must be in [0, 1], got {confidence!r}"),
        (0.0 < ttl < math.inf, f"ttl must be a positive number of seconds, got {ttl!r}"),
        (
            type(radius) is int and radius >= 0,
            f"radius must be an int >= 0, got {radius!r}",
        ),
        (scope in ("content", "origin"), f"scope must be 'content' or 'origin', got {scope!r}"),
        (isinstance(decay, Decay), f"decay must be a smesh.decay.Decay, got {decay!r}"),
    ]
    for ok, message in checks:
        if not ok:
            raise InvalidSignal(message)
    raise InvalidSignal("invalid signal")  # pragma: no cover - one check above fails


class Signal(msgspec.Struct, frozen=True, kw_only=True):
    """An immutable signal. Build one with :meth:`Signal.create`.

    Attributes:
        kind: what the signal is about (``task``, ``claim``, ``vote``, ... or your own).
        payload: JSON-compatible content.
        origin: id of the node that emitted it.
        intensity: initial intensity I0 in [0, 1].
        confidence: the emitter's confidence in [0, 1]; reinforcement raises it.
        ttl: seconds until the signal expires regardless of intensity.
        decay: how intensity fades with age.
        radius: maximum hops it may travel over a network.
        created_at: clock time of emission (renewal moves it forward).
        scope: ``content`` (address from kind + payload) or ``origin`` (+ origin).
        reinforcers: distinct nodes that reinforced it, in order; the origin never appears.
        address: 32 hex digits identifying the content.
    """

    kind: str
    payload: Any
    origin: str
    intensity: float = 1.0
    confidence: float = 1.0
    ttl: float = 60.0
    decay: Decay = DEFAULT_DECAY
    radius: int = 5
    created_at: float = 0.0
    scope: Scope = "content"
    reinforcers: tuple[str, ...] = ()
    address: str = ""

    @classmethod
    def create(
        cls,
        kind: str,
        payload: Any = None,
        *,
        origin: str,
        created_at: float,
        intensity: float = 1.0,
        confidence: float = 1.0,
        ttl: float = 60.0,
        decay: Decay = DEFAULT_DECAY,
        radius: int = 5,
        scope: Scope = "content",
    ) -> Signal:
        """Validate the parts and build a signal with its address.

        Raises:
            InvalidSignal: a value lies outside its domain.
        """
        # One combined test on the hot path; the detailed message is built only on failure.
        if not (
            0.0 <= intensity <= 1.0
            and 0.0 <= confidence <= 1.0
            and 0.0 < ttl < math.inf
            and type(radius) is int
            and radius >= 0
            and type(kind) is str
            and kind
            and type(origin) is str
            and origin
            and (scope in {"content", "origin"})
            and isinstance(decay, Decay)
        ):
            _reject(kind, origin, intensity, confidence, ttl, decay, radius, scope)
        return cls(
            kind=kind,
            payload=payload,
            origin=origin,
            intensity=intensity,
            confidence=confidence,
            ttl=ttl,
            decay=decay,
            radius=radius,
            created_at=created_at,
            scope=scope,
            address=compute_address(kind, payload, origin, scope),
        )

    # -- time-dependent views --------------------------------------------------------------

    def age(self, now: float) -> float:
        """Seconds since emission (or the last renewal)."""
        return now - self.created_at

    def decayed(self, now: float) -> float:
        """Intensity after decay alone: ``I0 · decay(age)``."""
        age = now - self.created_at
        if age < 0.0:
            return self.intensity
        ttl = self.ttl
        # compared as times, not ages: now - created_at can round below ttl when
        # now == created_at + ttl, and a signal must be gone at its own expiry time
        if now >= self.created_at + ttl:
            return 0.0
        return self.intensity * self.decay.factor(age, ttl)

    def effective(self, now: float) -> float:
        """``min(1, decayed · confidence · (1 + min(0.1·n, 0.5)))``, n = distinct reinforcers.

        This is what sensing, ranking and relaying use.
        """
        age = now - self.created_at
        ttl = self.ttl
        if age < 0.0:
            value = self.intensity
        elif now >= self.created_at + ttl:  # as in decayed()
            return 0.0
        else:
            value = self.intensity * self.decay.factor(age, ttl)
        n = len(self.reinforcers)
        value *= self.confidence * (1.0 + (0.1 * n if n < 5 else MAX_REINFORCEMENT_BOOST))
        return value if value < 1.0 else 1.0

    def expires_at(self) -> float:
        """The clock time at which this signal expires (ttl or intensity below 0.01)."""
        return self.created_at + self.decay.expiry_age(self.intensity, self.ttl)

    def is_expired(self, now: float) -> bool:
        """True once age >= ttl or the decayed intensity is below 0.01."""
        return now >= self.created_at + self.ttl or self.decayed(now) < EXPIRY_INTENSITY

    # -- derived values --------------------------------------------------------------------

    def reinforced(self, by: str) -> Signal:
        """Return this signal reinforced by node ``by``.

        Each node counts once and the origin never counts, so reinforcing twice, or by the
        origin, returns the signal unchanged. Confidence rises by ``0.1/(1+0.5·n)`` with n the
        new count; the age is not reset.
        """
        if by == self.origin or by in self.reinforcers:
            return self
        n = len(self.reinforcers) + 1
        confidence = self.confidence + 0.1 / (1.0 + 0.5 * n)
        return msgspec.structs.replace(
            self,
            reinforcers=(*self.reinforcers, by),
            confidence=confidence if confidence < 1.0 else 1.0,
        )

    def renewed(self, now: float) -> Signal:
        """Return this signal with its age restarted at ``now`` (used for leases)."""
        return msgspec.structs.replace(self, created_at=now)
