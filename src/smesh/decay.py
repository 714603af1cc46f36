"""How a signal's intensity fades with age.

Each decay is a small frozen value with two methods: :meth:`Decay.factor` (the fraction of
the initial intensity left at a given age) and :meth:`Decay.expiry_age` (the age at which the
signal expires: its ttl, or earlier when the decayed intensity drops below
:data:`EXPIRY_INTENSITY`). Knowing the expiry age up front is what lets the field expire
signals from a heap instead of rewriting every signal on every tick.

At age < 0 every decay gives the full initial intensity; at age >= ttl every decay gives 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar

import msgspec

from smesh.errors import InvalidSignal, UnknownName

__all__ = [
    "DEFAULT_DECAY",
    "EXPIRY_INTENSITY",
    "Custom",
    "Decay",
    "Exponential",
    "Linear",
    "Sigmoid",
    "Step",
    "parse_decay",
]

#: A signal whose decayed intensity falls below this is expired.
EXPIRY_INTENSITY = 0.01


class Decay(msgspec.Struct, frozen=True, tag_field="type"):
    """Base of the decay functions; subclasses are tagged for serialization."""

    name: ClassVar[str] = "decay"

    def factor(self, age: float, ttl: float) -> float:
        """Fraction of the initial intensity left at ``age`` (0 <= age < ttl)."""
        raise NotImplementedError

    def value(self, intensity: float, age: float, ttl: float) -> float:
        """Decayed intensity at ``age``, with the age < 0 and age >= ttl rules applied."""
        if age < 0.0:
            return intensity
        if age >= ttl:
            return 0.0
        return intensity * self.factor(age, ttl)

    def expiry_age(self, intensity: float, ttl: float) -> float:
        """Age at which a signal of this ``intensity`` expires (never more than ``ttl``)."""
        raise NotImplementedError


class Exponential(Decay, frozen=True, tag="exponential"):
    """``I0 · e^(−rate · age)``."""

    name: ClassVar[str] = "exponential"
    rate: float = 0.1

    def __post_init__(self) -> None:
        if not (self.rate > 0.0 and math.isfinite(self.rate)):
            raise InvalidSignal(f"exponential decay rate must be > 0, got {self.rate!r}")

    def factor(self, age: float, ttl: float) -> float:
        return math.exp(-self.rate * age)

    def expiry_age(self, intensity: float, ttl: float) -> float:
        if intensity < EXPIRY_INTENSITY:
            return 0.0
        return min(ttl, math.log(intensity / EXPIRY_INTENSITY) / self.rate)


class Linear(Decay, frozen=True, tag="linear"):
    """``I0 · max(0, 1 − age/ttl)``."""

    name: ClassVar[str] = "linear"

    def factor(self, age: float, ttl: float) -> float:
        return max(0.0, 1.0 - age / ttl)

    def expiry_age(self, intensity: float, ttl: float) -> float:
        if intensity < EXPIRY_INTENSITY:
            return 0.0
        return ttl * (1.0 - EXPIRY_INTENSITY / intensity)


class Sigmoid(Decay, frozen=True, tag="sigmoid"):
    """``I0 / (1 + e^((age − ttl/2) · steepness))``: flat, then a fall around ttl/2."""

    name: ClassVar[str] = "sigmoid"
    steepness: float = 0.1

    def __post_init__(self) -> None:
        if not (self.steepness > 0.0 and math.isfinite(self.steepness)):
            raise InvalidSignal(f"sigmoid steepness must be > 0, got {self.steepness!r}")

    def factor(self, age: float, ttl: float) -> float:
        x = (age - ttl / 2.0) * self.steepness
        if x > 700.0:  # e^x would overflow; the factor is 0 to double precision
            return 0.0
        return 1.0 / (1.0 + math.exp(x))

    def expiry_age(self, intensity: float, ttl: float) -> float:
        ratio = intensity / EXPIRY_INTENSITY - 1.0
        if ratio <= 0.0:
            return 0.0
        return max(0.0, min(ttl, ttl / 2.0 + math.log(ratio) / self.steepness))


class Step(Decay, frozen=True, tag="step"):
    """Full intensity until the ttl, then nothing (a lease)."""

    name: ClassVar[str] = "step"

    def factor(self, age: float, ttl: float) -> float:
        return 1.0

    def expiry_age(self, intensity: float, ttl: float) -> float:
        return ttl if intensity >= EXPIRY_INTENSITY else 0.0


class Custom(Decay, frozen=True, tag="custom"):
    """A user-supplied decay: ``fn(age, ttl)`` returns the factor in [0, 1].

    The function must be non-increasing in age; the expiry age is found by bisection, so a
    function that rises again after falling below the expiry threshold is cut off there.
    Custom decays cannot cross a process boundary (a function does not serialize).

    Args:
        fn: the decay factor as a function of age and ttl.
        label: a name shown in reports.
    """

    name: ClassVar[str] = "custom"
    fn: Callable[[float, float], float] | None = None
    label: str = "custom"

    def __post_init__(self) -> None:
        if self.fn is None or not callable(self.fn):
            raise InvalidSignal("custom decay needs a callable fn(age, ttl) -> factor")

    def factor(self, age: float, ttl: float) -> float:
        assert self.fn is not None
        return min(1.0, max(0.0, float(self.fn(age, ttl))))

    def expiry_age(self, intensity: float, ttl: float) -> float:
        def alive(age: float) -> bool:
            return intensity * self.factor(age, ttl) >= EXPIRY_INTENSITY

        if not alive(0.0):
            return 0.0
        lo, hi = 0.0, ttl
        if alive(hi):
            return ttl
        for _ in range(60):  # 2^-60 of the ttl: far below any clock's resolution
            mid = (lo + hi) / 2.0
            if alive(mid):
                lo = mid
            else:
                hi = mid
        return hi


DEFAULT_DECAY: Decay = Exponential()

_BY_NAME: dict[str, Callable[[float | None], Decay]] = {
    "exponential": lambda p: Exponential() if p is None else Exponential(rate=p),
    "linear": lambda p: Linear(),
    "sigmoid": lambda p: Sigmoid() if p is None else Sigmoid(steepness=p),
    "step": lambda p: Step(),
}


def parse_decay(spec: str | Decay) -> Decay:
    """Turn ``"exponential"``, ``"exponential:0.2"``, ``"linear"`` ... into a :class:`Decay`."""
    if isinstance(spec, Decay):
        return spec
    name, _, param = spec.partition(":")
    try:
        make = _BY_NAME[name.strip().lower()]
    except KeyError:
        known = ", ".join(sorted(_BY_NAME))
        raise UnknownName(f"unknown decay {name!r} (known: {known})") from None
    try:
        value = float(param) if param else None
    except ValueError:
        raise InvalidSignal(f"decay parameter must be a number, got {param!r}") from None
    return make(value)
