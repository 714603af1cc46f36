"""What a field tells its subscribers: change events, and the handle on a subscription.

:meth:`smesh.field.Field.subscribe` returns a :class:`Subscription`; the field delivers a
:class:`FieldEvent` to it, synchronously, for every change of a signal of the kinds it
asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import msgspec

from smesh.signal import Signal

__all__ = ["EVENT_TYPES", "EventType", "FieldEvent", "Subscription"]

EventType = Literal["emit", "reinforce", "withdraw", "renew", "expire"]
#: every :data:`EventType`, in the order of a signal's life
EVENT_TYPES: tuple[EventType, ...] = ("emit", "reinforce", "renew", "withdraw", "expire")


class FieldEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A change in the field, delivered to subscribers.

    Attributes:
        type: ``emit``, ``reinforce``, ``withdraw``, ``renew`` or ``expire``.
        signal: the signal after the change (for ``expire``/``withdraw``, its last state).
        by: the node that caused it (None for expiry).
        time: clock time of the change.
    """

    type: EventType
    signal: Signal
    by: str | None
    time: float


class Subscription:
    """A handle on a field subscription; :meth:`cancel` stops delivery.

    Args:
        callback: called with each event.
        kinds: the signal kinds it wants (None: all).
        on_cancel: how the field stops delivering to it (called once, by :meth:`cancel`).
    """

    __slots__ = ("_on_cancel", "callback", "kinds")

    def __init__(
        self,
        callback: Callable[[FieldEvent], None],
        kinds: frozenset[str] | None,
        on_cancel: Callable[[Subscription], None],
    ) -> None:
        self._on_cancel: Callable[[Subscription], None] | None = on_cancel
        self.callback = callback
        self.kinds = kinds

    @property
    def active(self) -> bool:
        """Whether events are still delivered."""
        return self._on_cancel is not None

    def cancel(self) -> None:
        """Stop delivering events. Safe to call twice."""
        on_cancel, self._on_cancel = self._on_cancel, None
        if on_cancel is not None:
            on_cancel(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()
