"""The field: the store of live signals that agents share.

Decay is lazy. A signal keeps its ``created_at`` and every reading computes its intensity
from the clock, so nothing is rewritten as time passes. Each signal's expiry time is known
when it is emitted, so the field files it in a timing wheel (:mod:`smesh.expiry`) and a tick
looks only at what is due: its cost follows the number of expiring signals, not live ones.

A field used without a network is *ambient*: every node perceives every signal at the
signal's own effective intensity. :class:`smesh.diffusion.NetworkField` adds per-node reach.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any, overload

import msgspec

from smesh.clock import Clock, SystemClock
from smesh.decay import DEFAULT_DECAY, EXPIRY_INTENSITY, Decay
from smesh.errors import InvalidSignal, NotPermitted, SignalNotFound
from smesh.events import EventType, FieldEvent, Subscription
from smesh.expiry import BUCKET_SECONDS, ExpiryWheel
from smesh.signal import Scope, Signal

# FieldEvent and Subscription (smesh.events), BUCKET_SECONDS (smesh.expiry): re-exported
__all__ = ["BUCKET_SECONDS", "Field", "FieldEvent", "FieldStats", "Sensed", "Subscription"]

_COUNTERS: dict[EventType, str] = {  # what _tally() counts an event as
    "emit": "_emitted", "reinforce": "_reinforcements", "renew": "_renewed",
    "withdraw": "_withdrawn", "expire": "_expired",
}  # fmt: skip


class Sensed(msgspec.Struct, frozen=True):
    """A signal as one node perceives it: the live ``signal`` and its effective
    ``intensity`` at that node."""

    signal: Signal
    intensity: float


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


class Field:
    """The shared store of live signals.

    Args:
        clock: time source; defaults to the system clock.
        history: how many expired or withdrawn signals to keep (a ring buffer).

    Extension points (protected: for subclasses, not callers). A subclass that derives the
    live signals from another source of truth, such as a replica of a distributed field
    (:mod:`smesh.mesh.replica_field`), changes them only through these, which keep the kind
    index, the expiry wheel, the history and the counters consistent:

    - :meth:`_held` reads the signal held at an address (expired but not yet ticked
      included), :meth:`_get_live` the same or :class:`~smesh.errors.SignalNotFound`;
    - :meth:`_insert` holds a new signal (counted as emitted), :meth:`_replace` and
      :meth:`_discard` update and remove a held one (they count and publish nothing);
    - :meth:`_tally` counts an event in :meth:`stats`, :meth:`_publish` delivers it
      (``_subscribed``: anyone listening?); :meth:`_expires_at` as the field files it;
    - :meth:`_forget` runs whenever a signal leaves: override it to drop per-signal state.

    The field itself is single-threaded and holds no lock; a subclass shared between
    threads locks around these.
    """

    def __init__(self, clock: Clock | None = None, *, history: int = 1000) -> None:
        if history < 0:
            raise InvalidSignal(f"history must be >= 0, got {history}")
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._live: dict[str, Signal] = {}
        # kind -> addresses, as a dict used as an insertion-ordered set (a set would iterate
        # in hash order, which changes between processes and breaks reproducibility)
        self._kinds: dict[str, dict[str, None]] = {}
        self._wheel = ExpiryWheel()
        self._history: deque[Signal] = deque(maxlen=history)
        self._subscribers: list[Subscription] = []
        self._subscribed = False  # whether _subscribers holds any (read by subclasses)
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
        live[address] = signal  # as _insert() does, inlined: the hottest path
        bucket = self._kinds.get(signal.kind)
        if bucket is None:
            self._kinds[signal.kind] = {address: None}
        else:
            bucket[address] = None
        self._wheel.file_signal(signal)
        self._emitted += 1
        if self._subscribers:
            self._publish("emit", signal, signal.origin)
        return signal

    def emit_many(self, signals: Iterable[Signal]) -> int:
        """Emit many signals at once, exactly as that many :meth:`emit` calls would; return
        how many were new (the rest reinforced live twins)."""
        before = self._emitted
        if self._subscribers:
            # subscribers must see the events in emit order: take the plain path
            for signal in signals:
                self.emit(signal)
            return self._emitted - before
        live = self._live
        kinds = self._kinds
        pending = iter(signals)  # in chunks: the scratch list stays small
        while chunk := list(islice(pending, 4096)):
            fresh: list[Signal] = []
            for signal in chunk:
                address = signal.address
                if address in live:
                    self._emitted += len(fresh)  # keep the counts and the wheel in step first
                    self._wheel.file_all(fresh)
                    fresh.clear()
                    self.emit(signal)  # reinforce a live twin, or replace an expired one
                    continue
                live[address] = signal
                bucket = kinds.get(signal.kind)
                if bucket is None:
                    kinds[signal.kind] = {address: None}
                else:
                    bucket[address] = None
                fresh.append(signal)
            self._emitted += len(fresh)
            self._wheel.file_all(fresh)
        return self._emitted - before

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
        self._discard(signal)
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
        self._replace(renewed, refile=True)
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
        if now < self._wheel.next_due:
            return []  # the common case: nothing can be due yet
        expired = self._wheel.collect(now, self._live, self._discard)
        if expired:
            self._expired += len(expired)
            if self._subscribers:
                for signal in expired:
                    self._publish("expire", signal, None, now)
        return expired

    expire = tick

    def _expire_now(self, signal: Signal) -> None:
        """Expire one signal ahead of the tick that would have found it."""
        self._discard(signal)
        self._expired += 1
        if self._subscribers:
            self._publish("expire", signal, None)

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

    # -- reading ---------------------------------------------------------------------------

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
        sub = Subscription(
            callback, frozenset(kinds) if kinds is not None else None, self._unsubscribe
        )
        self._subscribers.append(sub)
        self._subscribed = True
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        self._subscribers = [s for s in self._subscribers if s is not sub]
        self._subscribed = bool(self._subscribers)

    # -- extension points for subclasses (see the class docstring) -------------------------

    def _held(self, address: str) -> Signal | None:
        """The signal held at ``address`` (expired but not yet ticked included), or None."""
        return self._live.get(address)

    def _get_live(self, address: str) -> Signal:
        """The signal held at ``address``; :class:`SignalNotFound` if none is."""
        signal = self._live.get(address)
        if signal is None:
            raise SignalNotFound(f"no live signal at address {address}", signal=address)
        return signal

    def _insert(self, signal: Signal, *, expires_at: float | None = None) -> None:
        """Hold a signal whose address holds none yet: index it, file its expiry
        (``expires_at``, when the caller has computed it, or its own), count an emit."""
        address = signal.address
        self._live[address] = signal
        bucket = self._kinds.get(signal.kind)
        if bucket is None:
            self._kinds[signal.kind] = {address: None}
        else:
            bucket[address] = None
        if expires_at is None:
            self._wheel.file_signal(signal)
        else:
            self._wheel.file(address, expires_at)
        self._emitted += 1

    def _replace(self, signal: Signal, *, refile: bool = False) -> None:
        """Hold ``signal`` instead of the signal held at its address (reinforced, renewed,
        or otherwise changed); ``refile`` when its expiry moved (a new ``created_at`` or
        intensity)."""
        self._live[signal.address] = signal
        if refile:
            self._wheel.file_signal(signal)

    def _discard(self, signal: Signal) -> None:
        """Stop holding ``signal``: unindex it, keep it in the history, :meth:`_forget` it.
        Its stale expiry entry is skipped when due."""
        address = signal.address
        del self._live[address]
        bucket = self._kinds[signal.kind]
        del bucket[address]
        if not bucket:
            del self._kinds[signal.kind]
        self._history.append(signal)
        self._forget(address)

    def _forget(self, address: str) -> None:
        """Called when the signal at ``address`` leaves; subclasses drop per-signal state."""

    def _tally(self, event: EventType, n: int = 1) -> None:
        """Count ``n`` events of a type in :meth:`stats` (``emit`` counts as emitted,
        ``reinforce`` as a reinforcement, and so on)."""
        self.__dict__[_COUNTERS[event]] += n

    def _expires_at(self, signal: Signal) -> float:
        """The time at which ``signal`` expires, as the field files it."""
        return self._wheel.expires_at(signal)

    def _publish(
        self, type_: EventType, signal: Signal, by: str | None, when: float | None = None
    ) -> None:
        """Deliver one event to the subscribers of its kind (``when``: default, the clock).

        Every subscriber runs; the first exception is re-raised after all have run.
        """
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
