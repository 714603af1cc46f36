"""The field: the store of live signals that agents share.

Decay is lazy. A signal keeps its ``created_at`` and every reading computes its intensity
from the clock, so nothing is rewritten as time passes. Each signal's expiry time is known
when it is emitted (see :meth:`smesh.decay.Decay.expiry_age`), so the field files it in a
timing wheel: buckets of :data:`BUCKET_SECONDS`, with a heap of bucket keys. A tick looks only
at buckets that are due, so its cost follows the number of expiring signals, not live ones.
Renewal files the signal again and leaves the stale entry to be skipped when its bucket
comes due.

A field used without a network is *ambient*: every node perceives every signal at the
signal's own effective intensity. :class:`smesh.diffusion.NetworkField` adds per-node reach.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal, overload

import msgspec

from smesh.clock import Clock, SystemClock
from smesh.decay import DEFAULT_DECAY, EXPIRY_INTENSITY, Decay
from smesh.errors import InvalidSignal, NotPermitted, SignalNotFound
from smesh.signal import Scope, Signal

__all__ = ["BUCKET_SECONDS", "Field", "FieldEvent", "FieldStats", "Sensed", "Subscription"]

#: Width of one timing-wheel bucket. Expiry itself is exact: a due bucket is checked signal
#: by signal, and signals not yet expired stay in it.
BUCKET_SECONDS = 0.25

EventType = Literal["emit", "reinforce", "withdraw", "renew", "expire"]


class Sensed(msgspec.Struct, frozen=True):
    """A signal as one node perceives it.

    Attributes:
        signal: the live signal.
        intensity: its effective intensity at the perceiving node.
    """

    signal: Signal
    intensity: float


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


class FieldStats(msgspec.Struct, frozen=True, kw_only=True):
    """Counters and a snapshot of the field."""

    live: int
    emitted: int
    reinforcements: int
    expired: int
    withdrawn: int
    renewed: int
    history: int
    by_kind: dict[str, int]


class Subscription:
    """A handle on a field subscription; :meth:`cancel` stops delivery."""

    __slots__ = ("_field", "callback", "kinds")

    def __init__(
        self, field: Field, callback: Callable[[FieldEvent], None], kinds: frozenset[str] | None
    ) -> None:
        self._field: Field | None = field
        self.callback = callback
        self.kinds = kinds

    @property
    def active(self) -> bool:
        """Whether events are still delivered."""
        return self._field is not None

    def cancel(self) -> None:
        """Stop delivering events. Safe to call twice."""
        if self._field is not None:
            self._field._unsubscribe(self)
            self._field = None

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


class Field:
    """The shared store of live signals.

    Args:
        clock: time source; defaults to the system clock.
        history: how many expired or withdrawn signals to keep (a ring buffer).
    """

    def __init__(self, clock: Clock | None = None, *, history: int = 1000) -> None:
        if history < 0:
            raise InvalidSignal(f"history must be >= 0, got {history}")
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._live: dict[str, Signal] = {}
        # kind -> addresses, as a dict used as an insertion-ordered set (a set would iterate
        # in hash order, which changes between processes and breaks reproducibility)
        self._kinds: dict[str, dict[str, None]] = {}
        # (decay, I0, ttl) -> expiry age: signals mostly share these, and the age costs a
        # log and a division to compute
        self._ages: dict[tuple[Decay, float, float], float] = {}
        self._buckets: dict[int, list[str]] = {}
        self._due: list[int] = []  # heap of bucket keys
        self._history: deque[Signal] = deque(maxlen=history)
        self._subscribers: list[Subscription] = []
        self._emitted = 0
        self._reinforcements = 0
        self._expired = 0
        self._withdrawn = 0
        self._renewed = 0

    # -- emitting --------------------------------------------------------------------------

    def new_signal(
        self,
        kind: str,
        payload: Any = None,
        *,
        origin: str,
        intensity: float = 1.0,
        confidence: float = 1.0,
        ttl: float = 60.0,
        decay: Decay = DEFAULT_DECAY,
        radius: int = 5,
        scope: Scope = "content",
    ) -> Signal:
        """Build a signal stamped with this field's clock, without emitting it."""
        return Signal.create(
            kind,
            payload,
            origin=origin,
            created_at=self.clock.now(),
            intensity=intensity,
            confidence=confidence,
            ttl=ttl,
            decay=decay,
            radius=radius,
            scope=scope,
        )

    @overload
    def emit(self, signal: Signal, /) -> Signal: ...

    @overload
    def emit(
        self,
        kind: str,
        payload: Any = None,
        /,
        *,
        origin: str,
        intensity: float = 1.0,
        confidence: float = 1.0,
        ttl: float = 60.0,
        decay: Decay = DEFAULT_DECAY,
        radius: int = 5,
        scope: Scope = "content",
    ) -> Signal: ...

    def emit(self, signal: Signal | str, payload: Any = None, /, **options: Any) -> Signal:
        """Put a signal in the field and return its live state.

        Pass a :class:`Signal`, or a kind and payload plus :meth:`new_signal`'s options. If a
        live signal already has the same address, the new emitter reinforces it instead.
        """
        if not isinstance(signal, Signal):
            signal = self.new_signal(signal, payload, **options)
        elif payload is not None or options:
            raise InvalidSignal("emit(Signal) takes no payload or options")
        address = signal.address
        live = self._live
        existing = live.get(address)
        if existing is not None:
            if not existing.is_expired(self.clock.now()):
                self.reinforce(address, by=signal.origin)
                return live[address]
            # past its expiry but not yet ticked away: it is gone, and this is a new signal
            self._expire_now(existing)
        live[address] = signal
        bucket = self._kinds.get(signal.kind)
        if bucket is None:
            self._kinds[signal.kind] = {address: None}
        else:
            bucket[address] = None
        self._schedule(signal.created_at + self._expiry_age(signal), address)
        self._emitted += 1
        if self._subscribers:
            self._publish("emit", signal, signal.origin)
        return signal

    def _expiry_age(self, signal: Signal) -> float:
        key = (signal.decay, signal.intensity, signal.ttl)
        age = self._ages.get(key)
        if age is None:
            if len(self._ages) >= 4096:  # bound the cache; signals rarely vary this much
                self._ages.clear()
            age = self._ages[key] = signal.decay.expiry_age(signal.intensity, signal.ttl)
        return age

    def emit_many(self, signals: Iterable[Signal]) -> int:
        """Emit many signals at once, exactly as that many :meth:`emit` calls would; return
        how many were new (the rest reinforced live twins)."""
        if self._subscribers:
            # subscribers must see the events in emit order: take the plain path
            before = self._emitted
            for signal in signals:
                self.emit(signal)
            return self._emitted - before
        live = self._live
        kinds = self._kinds
        buckets = self._buckets
        ages = self._ages
        fresh = 0
        replaced = 0
        for signal in signals:
            address = signal.address
            if address in live:
                before = self._emitted
                self.emit(signal)  # reinforce a live twin, or replace an expired one
                replaced += self._emitted - before
                continue
            live[address] = signal
            kind = signal.kind
            bucket = kinds.get(kind)
            if bucket is None:
                kinds[kind] = {address: None}
            else:
                bucket[address] = None
            age = ages.get((signal.decay, signal.intensity, signal.ttl))
            if age is None:
                age = self._expiry_age(signal)
            slot = int((signal.created_at + age) // BUCKET_SECONDS)
            pending = buckets.get(slot)
            if pending is None:
                buckets[slot] = [address]
                heapq.heappush(self._due, slot)
            else:
                pending.append(address)
            fresh += 1
        self._emitted += fresh
        return fresh + replaced

    def _schedule(self, when: float, address: str) -> None:
        slot = int(when // BUCKET_SECONDS)
        pending = self._buckets.get(slot)
        if pending is None:
            self._buckets[slot] = [address]
            heapq.heappush(self._due, slot)
        else:
            pending.append(address)

    # -- changing live signals -------------------------------------------------------------

    def reinforce(self, address: str, *, by: str) -> bool:
        """Record that node ``by`` corroborates the signal at ``address``.

        A signal past its expiry that no tick has removed yet still takes the
        reinforcement; it cannot outlive its expiry (reinforcement never resets the age) and
        goes at the next tick. Checking expiry here would double the cost of the hottest
        operation for no change in what anyone senses.

        Returns:
            True if this counted as a new reinforcement; False if ``by`` had already
            reinforced it or is its origin (each node counts once).

        Raises:
            SignalNotFound: no live signal has this address.
        """
        signal = self._get_live(address)
        updated = signal.reinforced(by)
        if updated is signal:
            return False
        self._live[address] = updated
        self._reinforcements += 1
        if self._subscribers:
            self._publish("reinforce", updated, by)
        return True

    def withdraw(self, address: str, *, by: str) -> Signal:
        """Remove a signal; only its origin may (e.g. a conceded claim).

        Raises:
            SignalNotFound: no live signal has this address.
            NotPermitted: ``by`` is not the signal's origin.
        """
        signal = self._owned(address, by, "withdraw")
        self._remove(signal)
        self._withdrawn += 1
        if self._subscribers:
            self._publish("withdraw", signal, by)
        return signal

    def renew(self, address: str, *, by: str) -> Signal:
        """Restart the age of a signal; only its origin may (e.g. renewing a lease).

        Raises:
            SignalNotFound: no live signal has this address.
            NotPermitted: ``by`` is not the signal's origin.
        """
        signal = self._owned(address, by, "renew")
        renewed = signal.renewed(self.clock.now())
        self._live[address] = renewed
        self._schedule(renewed.expires_at(), address)
        self._renewed += 1
        if self._subscribers:
            self._publish("renew", renewed, by)
        return renewed

    def tick(self, now: float | None = None) -> list[Signal]:
        """Expire every signal that is due at ``now`` (default: the clock) and return them.

        Cost is proportional to the number of expiring signals, not live ones.
        """
        if now is None:
            now = self.clock.now()
        due = self._due
        buckets = self._buckets
        live = self._live
        expired: list[Signal] = []
        last = int(now // BUCKET_SECONDS)
        while due and due[0] <= last:
            slot = due[0]
            keep: list[str] = []
            for address in buckets[slot]:
                signal = live.get(address)
                if signal is None:
                    continue  # withdrawn, or expired through a newer entry
                expires = signal.expires_at()
                if expires <= now:
                    self._remove(signal)
                    expired.append(signal)
                elif int(expires // BUCKET_SECONDS) == slot:
                    keep.append(address)  # due later within this bucket
                # else: renewed since; its newer entry sits in a later bucket
            if keep:
                buckets[slot] = keep
                break  # the rest of this bucket, and all later ones, are not due yet
            del buckets[slot]
            heapq.heappop(due)
        if expired:
            self._expired += len(expired)
            if self._subscribers:
                for signal in expired:
                    self._publish("expire", signal, None, now)
        return expired

    expire = tick

    def _expire_now(self, signal: Signal) -> None:
        """Expire one signal ahead of the tick that would have found it."""
        self._remove(signal)
        self._expired += 1
        if self._subscribers:
            self._publish("expire", signal, None)

    def _remove(self, signal: Signal) -> None:
        address = signal.address
        del self._live[address]
        bucket = self._kinds[signal.kind]
        del bucket[address]
        if not bucket:
            del self._kinds[signal.kind]
        self._history.append(signal)
        self._forget(address)

    def _forget(self, address: str) -> None:
        """Hook for subclasses that keep per-signal state."""

    # -- reading ---------------------------------------------------------------------------

    def _get_live(self, address: str) -> Signal:
        signal = self._live.get(address)
        if signal is None:
            raise SignalNotFound(f"no live signal at address {address}", signal=address)
        return signal

    def _owned(self, address: str, by: str, verb: str) -> Signal:
        """The live signal at ``address``, if ``by`` emitted it (only origins may change it).

        A signal past its expiry that no tick has removed yet is expired on the spot and not
        found: renewing it would revive a lease that has already lapsed.
        """
        signal = self._get_live(address)
        if signal.is_expired(self.clock.now()):
            self._expire_now(signal)
            raise SignalNotFound(f"no live signal at address {address}", signal=address)
        if by != signal.origin:
            raise NotPermitted(
                f"{by} cannot {verb} a signal emitted by {signal.origin}", node=by, signal=address
            )
        return signal

    def get(self, address: str, now: float | None = None) -> Signal | None:
        """The live signal at ``address``, or None if absent or already expired."""
        signal = self._live.get(address)
        if signal is None:
            return None
        if signal.is_expired(self.clock.now() if now is None else now):
            return None
        return signal

    def __contains__(self, address: object) -> bool:
        return isinstance(address, str) and self.get(address) is not None

    def __len__(self) -> int:
        """Number of signals held (including any due to expire at the next tick)."""
        return len(self._live)

    def __iter__(self) -> Iterator[Signal]:
        return iter(list(self._live.values()))

    def signals(self, kind: str | None = None) -> list[Signal]:
        """Held signals, optionally of one kind, in emission order."""
        if kind is None:
            return list(self._live.values())
        live = self._live
        return [live[a] for a in self._kinds.get(kind, ())]

    def intensity_at(self, signal: Signal, node: str, now: float) -> float:
        """Effective intensity of ``signal`` at ``node`` (ambient: the same everywhere)."""
        return signal.effective(now)

    def sense(
        self,
        threshold: float = 0.1,
        *,
        node: str | None = None,
        kind: str | None = None,
        where: Callable[[Signal], bool] | None = None,
        now: float | None = None,
    ) -> list[Sensed]:
        """What a node perceives: live signals at or above ``threshold``, strongest first.

        Args:
            threshold: minimum effective intensity (a node's sensing threshold).
            node: the perceiving node; matters only when the field has a topology.
            kind: only signals of this kind.
            where: an extra filter on the signal.
            now: the time of the reading (default: the clock).
        """
        if now is None:
            now = self.clock.now()
        candidates = self.signals(kind)
        out: list[Sensed] = []
        for signal in candidates:
            if where is not None and not where(signal):
                continue
            if signal.decayed(now) < EXPIRY_INTENSITY:
                continue
            intensity = (
                signal.effective(now) if node is None else self.intensity_at(signal, node, now)
            )
            if intensity >= threshold and intensity > 0.0:
                out.append(Sensed(signal, intensity))
        out.sort(key=lambda s: (-s.intensity, s.signal.address))
        return out

    @property
    def history(self) -> tuple[Signal, ...]:
        """Recently expired or withdrawn signals, oldest first (bounded)."""
        return tuple(self._history)

    def stats(self) -> FieldStats:
        """Counters since creation and the live population by kind."""
        return FieldStats(
            live=len(self._live),
            emitted=self._emitted,
            reinforcements=self._reinforcements,
            expired=self._expired,
            withdrawn=self._withdrawn,
            renewed=self._renewed,
            history=len(self._history),
            by_kind={k: len(v) for k, v in self._kinds.items()},
        )

    # -- subscriptions ---------------------------------------------------------------------

    def subscribe(
        self, callback: Callable[[FieldEvent], None], *, kinds: Iterable[str] | None = None
    ) -> Subscription:
        """Call ``callback`` with every :class:`FieldEvent` (optionally of some kinds only).

        Callbacks run synchronously inside the field operation that caused the event; they
        must not block. An exception in one callback does not stop the others and is re-raised
        after all have run.
        """
        sub = Subscription(self, callback, frozenset(kinds) if kinds is not None else None)
        self._subscribers.append(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        self._subscribers = [s for s in self._subscribers if s is not sub]

    def _publish(
        self, type_: EventType, signal: Signal, by: str | None, when: float | None = None
    ) -> None:
        event = FieldEvent(
            type=type_, signal=signal, by=by, time=self.clock.now() if when is None else when
        )
        errors: list[BaseException] = []
        for sub in tuple(self._subscribers):
            if sub.kinds is None or signal.kind in sub.kinds:
                try:
                    sub.callback(event)
                except Exception as exc:
                    errors.append(exc)
        if errors:
            raise errors[0]
