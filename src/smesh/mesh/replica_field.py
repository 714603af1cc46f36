"""ReplicaField: a field whose live signals are derived from a replica's operations.

:class:`~smesh.mesh.field.MeshField` builds on this. Here is only the replica's side of the
:class:`~smesh.field.Field` contract: per address, the set of operations seen (see
:mod:`smesh.mesh.merge`) decides the live signal; :meth:`ReplicaField._settle` brings the
field's own storage (live map, kind index, expiry wheel, counters) in line with it and
delivers the same :class:`~smesh.field.FieldEvent`\\ s a local field would. Operations of
signals that are gone are kept a grace period (late messages, tombstones), then swept, with
the batches nothing refers to any more.

Every public read takes the field's re-entrant lock: without an event loop, remote
operations are applied on zenoh's threads.
"""

from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from smesh.clock import Clock
from smesh.field import Field, FieldEvent, FieldStats, Sensed, Subscription
from smesh.mesh.merge import Entry, materialize, tombstone
from smesh.mesh.replica import Counters
from smesh.mesh.store import BatchStore
from smesh.signal import Signal

__all__ = ["ReplicaField"]

_log = logging.getLogger(__name__)
_SWEEP_S = 5.0  # how often unreferenced batches are dropped


class ReplicaField(Field):
    """A field backed by a CRDT replica (see the module docstring).

    Args:
        clock: time source.
        history: how many expired or withdrawn signals to keep.
        gc_grace_s: how long the operations of a dead signal are kept.
    """

    def __init__(self, clock: Clock, *, history: int, gc_grace_s: float) -> None:
        super().__init__(clock, history=history)
        self.counters = Counters()
        self._lock = threading.RLock()
        self._entries: dict[str, Entry] = {}
        self._store = BatchStore()
        self._lapsed: dict[str, float] = {}
        self._gc: list[tuple[float, str]] = []  # heap of (when to look again, address)
        self._gc_grace_s = gc_grace_s
        self._next_sweep = 0.0

    # -- reading (locked: remote operations may be applied on other threads) ---------------

    def get(self, address: str, now: float | None = None) -> Signal | None:
        with self._lock:
            return super().get(address, now)

    def __len__(self) -> int:
        with self._lock:
            return len(self._live)

    def __iter__(self) -> Iterator[Signal]:
        with self._lock:
            return iter(list(self._live.values()))

    def signals(self, kind: str | None = None) -> list[Signal]:
        with self._lock:
            return super().signals(kind)

    def sense(self, threshold: float = 0.1, **options: Any) -> list[Sensed]:
        with self._lock:
            return super().sense(threshold, **options)

    def stats(self) -> FieldStats:
        with self._lock:
            return super().stats()

    def subscribe(
        self, callback: Callable[[FieldEvent], None], *, kinds: Iterable[str] | None = None
    ) -> Subscription:
        with self._lock:
            return super().subscribe(callback, kinds=kinds)

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            super()._unsubscribe(sub)

    # -- applying a change to the replica --------------------------------------------------

    def _settle(self, address: str, entry: Entry, by: str | None, *, local: bool) -> None:
        """Bring ``_live[address]`` in line with the entry and publish what changed."""
        now = self.clock.now()
        new = materialize(entry, self._lapsed.get(address), now)
        if new is not None and new.is_expired(now):
            new = None
        old = self._live.get(address)
        if new is None:
            if old is None:
                self._forget(address)
                return
            self._remove(old)
            if self._withdrawn_now(entry, address, old):
                self._withdrawn += 1
                self._notify("withdraw", old, by, local)
            else:
                self._expired += 1
                self._notify("expire", old, None, local)
            return
        if old is None:
            self._insert(new, local=local)
            return
        if new == old:
            return
        self._live[address] = new
        if new.created_at != old.created_at or new.intensity != old.intensity:
            self._schedule(new.created_at + self._expiry_age(new), address)
        told = False
        if new.created_at > old.created_at:
            self._renewed += 1
            self._notify("renew", new, new.origin, local)
            told = True
        for reinforcer in new.reinforcers:
            if reinforcer not in old.reinforcers:
                self._reinforcements += 1
                self._notify("reinforce", new, reinforcer, local)
                told = True
        if not told:  # the content changed hands (an earlier concurrent emit arrived)
            self._notify("reinforce", new, by, local)

    def _insert(self, signal: Signal, *, local: bool, expires: float | None = None) -> None:
        """Add a signal that is not live yet (as :meth:`Field.emit` does)."""
        address = signal.address
        self._live[address] = signal
        kinds = self._kinds.get(signal.kind)
        if kinds is None:
            self._kinds[signal.kind] = {address: None}
        else:
            kinds[address] = None
        if expires is None:
            expires = signal.created_at + self._expiry_age(signal)
        self._schedule(expires, address)
        self._emitted += 1
        if self._subscribers:
            self._notify("emit", signal, signal.origin, local)

    def _withdrawn_now(self, entry: Entry, address: str, old: Signal) -> bool:
        lapsed = self._lapsed.get(address)
        cut = tombstone(entry, None)
        return cut >= old.created_at and (lapsed is None or cut >= lapsed)

    def _notify(self, type_: Any, signal: Signal, by: str | None, local: bool) -> None:
        if not self._subscribers:
            return
        if local:
            self._publish(type_, signal, by)
            return
        try:
            self._publish(type_, signal, by)
        except Exception:  # a subscriber's bug must not break the replica
            self.counters.add("subscriber_errors")
            _log.exception("a field subscriber failed on a remote %s", type_)

    def _forget(self, address: str) -> None:
        entry = self._entries.get(address)
        if entry is not None:
            heapq.heappush(self._gc, (entry.latest() + self._gc_grace_s, address))

    def _collect(self, now: float) -> None:
        gc = self._gc
        while gc and gc[0][0] <= now:
            _, address = heapq.heappop(gc)
            entry = self._entries.get(address)
            if entry is None or address in self._live:
                continue
            due = entry.latest() + self._gc_grace_s
            if due > now:
                heapq.heappush(gc, (due, address))
                continue
            del self._entries[address]
            self._lapsed.pop(address, None)
        if now >= self._next_sweep:
            self._next_sweep = now + _SWEEP_S
            keep: set[str] = set()
            for entry in self._entries.values():
                keep.update(entry.batches())
            self._store.sweep(keep)
