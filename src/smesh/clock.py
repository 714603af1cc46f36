"""The one injectable clock.

Everything time-dependent in smesh asks a :class:`Clock` for the time; nothing calls
``time.time()`` directly. Tests and simulations use :class:`VirtualClock`, which only moves
when told to, so runs are reproducible.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

from smesh.errors import InvalidValue

__all__ = ["Clock", "SystemClock", "VirtualClock"]


@runtime_checkable
class Clock(Protocol):
    """Source of the current time, in seconds."""

    def now(self) -> float:
        """Return the current time in seconds."""
        ...


class SystemClock:
    """Wall-clock time (seconds since the epoch).

    Wall time rather than a monotonic clock, because signal ages must mean the same thing in
    every process that shares a field.
    """

    __slots__ = ()

    def now(self) -> float:
        """Return ``time.time()``."""
        return time.time()

    def __repr__(self) -> str:
        return "SystemClock()"


class VirtualClock:
    """A clock that moves only when told to.

    Args:
        start: the initial time in seconds.
    """

    __slots__ = ("_now",)

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def now(self) -> float:
        """Return the current virtual time."""
        return self._now

    def advance(self, seconds: float) -> float:
        """Move time forward by ``seconds`` (must be >= 0) and return the new time."""
        if seconds < 0:
            raise InvalidValue(f"a clock cannot go backwards (advance by {seconds})")
        self._now += seconds
        return self._now

    def set(self, when: float) -> None:
        """Jump to ``when``, which must not be earlier than now."""
        if when < self._now:
            raise InvalidValue(f"a clock cannot go backwards ({when} < {self._now})")
        self._now = float(when)

    def __repr__(self) -> str:
        return f"VirtualClock({self._now!r})"
