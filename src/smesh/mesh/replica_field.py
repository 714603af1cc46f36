"""ReplicaField: a field whose live signals are derived from a replica's operations.

:class:`~smesh.mesh.field.MeshField` builds on this. Here is the replica's side of the
:class:`~smesh.field.Field` contract: per address, the set of operations seen (see
:mod:`smesh.mesh.merge`) decides the live signal; :meth:`ReplicaField._settle` brings the
field in line with it through :class:`~smesh.field.Field`'s extension points (insert,
replace, discard, tally, publish) and delivers the same :class:`~smesh.field.FieldEvent`\\ s
a local field would. Verified remote batches are merged here too
(:meth:`ReplicaField._apply_remote`), each operation only if it names an agent of the node
that signed it (``<node>/<agent>``: see :func:`smesh.mesh.identity.speaks_for`) and while
that signer holds fewer than ``held_ops`` operations here. Operations of signals that are
gone are kept a grace period (late messages, tombstones), then swept, with the batches
nothing refers to any more.

Every public read takes the field's re-entrant lock: without an event loop, remote
operations are applied on zenoh's threads. The core :class:`~smesh.field.Field` stays free
of locks; they live here.
"""

from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from smesh.clock import Clock
from smesh.errors import InvalidSignal
from smesh.events import EventType
from smesh.field import Field, FieldEvent, FieldStats, Sensed, Subscription
from smesh.mesh.codec import check_mark, signal_of
from smesh.mesh.merge import EmitRecord, Entry, Resolved, materialize, merge_op, resolve, tombstone
from smesh.mesh.replica import Counters
from smesh.mesh.store import BatchStore, Page
from smesh.mesh.wire import EmitOp, Op, Opened, ReinforceOp, SigNote
from smesh.signal import Signal

__all__ = ["ReplicaField"]

_log = logging.getLogger(__name__)
_SWEEP_S = 5.0  # how often unreferenced batches are dropped
#: most remote operations merged under the lock at once (and on the loop in one go)
APPLY_SLICE = 256


class ReplicaField(Field):
    """A field backed by a CRDT replica (see the module docstring).

    Args:
        clock: time source.
        history: how many expired or withdrawn signals to keep.
        gc_grace_s: how long the operations of a dead signal are kept.
        max_skew_s: how far ahead of our clock a remote timestamp may be.
        held_ops: most operations of one remote signer kept at once.
        counters: where to count (default: new counters).

    For subclasses (protected): the replica's state, guarded by ``_lock`` (re-entrant):
    ``_entries`` (address → :class:`~smesh.mesh.merge.Entry`), ``_store`` (the signed
    :class:`~smesh.mesh.store.BatchStore`), ``_closed`` (set once it takes no more);
    :meth:`_enter`/:meth:`_exit` bracket a change; :meth:`_entry` and :meth:`_state` read
    an address's operations; :meth:`_settle` and :meth:`_admit` apply a change to the
    field; :meth:`_apply_remote`, :meth:`_apply_part`, :meth:`_lapse`, :meth:`_keep_notes`
    and :meth:`_servable` are the remote side, which :class:`~smesh.mesh.inbound.Inbound`
    reaches through its port.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        history: int,
        gc_grace_s: float,
        max_skew_s: float,
        held_ops: int = 100_000,
        counters: Counters | None = None,
    ) -> None:
        super().__init__(clock, history=history)
        self.counters = counters if counters is not None else Counters()
        self._lock = threading.RLock()
        self._entries: dict[str, Entry] = {}
        self._store = BatchStore()
        self._lapsed: dict[str, float] = {}  # local tombstones: leases of departed nodes
        self._gc: list[tuple[float, str]] = []  # heap of (when to look again, address)
        self._gc_grace_s = gc_grace_s
        self._max_skew_s = max_skew_s
        self._held_ops = held_ops
        self._held_by: dict[str, int] = {}  # remote signer -> operations of it kept here
        self._next_sweep = 0.0
        self._closed = False  # set by a subclass when it stops: late batches are ignored

    # -- reading (locked: remote operations may be applied on other threads) ---------------

    def get(self, address: str, now: float | None = None) -> Signal | None:
        with self._lock:
            return super().get(address, now)

    def __len__(self) -> int:
        with self._lock:
            return super().__len__()

    def __iter__(self) -> Iterator[Signal]:
        with self._lock:
            return super().__iter__()

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

    # -- the replica's state ---------------------------------------------------------------

    def _enter(self) -> None:
        """Begin a change (take the lock); :class:`MeshField` also counts the depth."""
        self._lock.acquire()

    def _exit(self) -> None:
        """End a change begun by :meth:`_enter`."""
        self._lock.release()

    def _entry(self, address: str) -> Entry:
        """The operations kept for ``address`` (a new, empty entry if none are)."""
        entry = self._entries.get(address)
        if entry is None:
            entry = self._entries[address] = Entry()
        return entry

    def _state(self, address: str, entry: Entry) -> Resolved:
        """Where ``entry`` stands now (its live incarnation, if any)."""
        return resolve(entry, self._lapsed.get(address), self.clock.now())

    # -- applying a change to the field ----------------------------------------------------

    def _settle(self, address: str, entry: Entry, by: str | None, *, local: bool) -> None:
        """Bring the signal held at ``address`` in line with the entry; publish the change."""
        now = self.clock.now()
        new = materialize(entry, self._lapsed.get(address), now)
        if new is not None and new.is_expired(now):
            new = None
        old = self._held(address)
        if new is None:
            if old is None:
                self._forget(address)
                return
            self._discard(old)
            if self._withdrawn_now(entry, address, old):
                self._tally("withdraw")
                self._notify("withdraw", old, by, local)
            else:
                self._tally("expire")
                self._notify("expire", old, None, local)
            return
        if old is None:
            self._admit(new, local=local)
            return
        if new == old:
            return
        self._replace(
            new, refile=new.created_at != old.created_at or new.intensity != old.intensity
        )
        told = False
        if new.created_at > old.created_at:
            self._tally("renew")
            self._notify("renew", new, new.origin, local)
            told = True
        for reinforcer in new.reinforcers:
            if reinforcer not in old.reinforcers:
                self._tally("reinforce")
                self._notify("reinforce", new, reinforcer, local)
                told = True
        if not told:  # the content changed hands (an earlier concurrent emit arrived)
            self._notify("reinforce", new, by, local)

    def _admit(self, signal: Signal, *, local: bool, expires_at: float | None = None) -> None:
        """Hold a signal that is not held yet, as :meth:`Field.emit` does."""
        self._insert(signal, expires_at=expires_at)
        if self._subscribed:
            self._notify("emit", signal, signal.origin, local)

    def _withdrawn_now(self, entry: Entry, address: str, old: Signal) -> bool:
        lapsed = self._lapsed.get(address)
        cut = tombstone(entry, None)
        return cut >= old.created_at and (lapsed is None or cut >= lapsed)

    def _notify(self, type_: EventType, signal: Signal, by: str | None, local: bool) -> None:
        if not self._subscribed:
            return
        if local:
            self._publish(type_, signal, by)
            return
        try:
            self._publish(type_, signal, by)
        except Exception:  # a subscriber's bug must not break the replica
            self.counters.add("subscriber_errors")
            _log.exception("a field subscriber failed on a remote %s", type_)

    # -- the remote side -------------------------------------------------------------------

    def _apply_remote(self, batches: list[Opened]) -> None:
        """Merge verified remote batches into the replica (nothing once closed), a slice of
        operations at a time: the lock is never held for a whole large batch."""
        for opened in batches:
            count = len(opened.ops)
            for start in range(0, count, APPLY_SLICE):
                self._apply_part(opened, start, min(count, start + APPLY_SLICE))

    def _apply_part(self, opened: Opened, start: int, stop: int) -> None:
        """Merge operations ``start:stop`` of a verified remote batch."""
        if self._closed:
            return
        self._enter()
        try:
            signer = opened.signer
            ops = opened.ops if start == 0 and stop >= len(opened.ops) else opened.ops[start:stop]
            held = self._held_by.get(signer, 0)
            if held >= self._held_ops:  # checked per slice: it may go over by one slice
                self.counters.add("dropped_held_quota", len(ops))
                return
            now = self.clock.now()
            horizon = now + self._max_skew_s
            speaker = signer + "/"  # names it may speak for: "<its node id>/..."
            applied = fresh = 0
            for op in ops:
                try:
                    merged = self._merge_remote(op, opened, now, horizon, speaker)
                except Exception:  # whatever a signer sent, the replica stays up
                    self.counters.add("dropped_error")
                    _log.exception("unexpected error merging an operation")
                    continue
                if merged:
                    applied += 1
                    fresh += merged - 1
            if fresh:
                self._held_by[signer] = held + fresh
            if applied:
                self._store.add(opened.batch_id, opened.sealed)
                self.counters.add("applied_ops", applied)
        finally:
            self._exit()

    def _merge_remote(
        self, op: Op, opened: Opened, now: float, horizon: float, speaker: str
    ) -> int:
        """Merge one remote operation: 0 if it changed nothing (or was dropped), 1 if it
        merged into a record kept already, 2 if it added a record."""
        signal: Signal | None = None
        try:
            if isinstance(op, EmitOp):
                origin = op.origin
                # only for its own agents (see smesh.mesh.identity.speaks_for)
                if not (origin.startswith(speaker) and len(origin) > len(speaker)):
                    self.counters.add("dropped_foreign_origin")
                    return 0
                signal = signal_of(op)
                if signal.created_at > horizon:
                    self.counters.add("dropped_skew")
                    return 0
                expires = self._expires_at(signal)
                if expires <= now:
                    self.counters.add("stale_ops")  # expired in flight: nothing to do
                    return 0
                address = signal.address
                if address not in self._entries:  # the common case: a new signal
                    # (no entry means nothing held: every held signal has its entry)
                    self._entries[address] = Entry(
                        EmitRecord(signal, opened.signer, opened.batch_id)
                    )
                    self._admit(signal, local=False, expires_at=expires)
                    return 2
            else:
                check_mark(op)
                by = op.by
                if not (by.startswith(speaker) and len(by) > len(speaker)):
                    reinforce = isinstance(op, ReinforceOp)
                    self.counters.add(
                        "dropped_foreign_reinforcer" if reinforce else "dropped_foreign_name"
                    )
                    return 0
                if op.at > horizon:
                    self.counters.add("dropped_skew")
                    return 0
                address = op.address
        except (InvalidSignal, RecursionError):
            self.counters.add("dropped_invalid_op")
            return 0
        entry = self._entry(address)
        size = len(entry)
        if merge_op(entry, op, opened.signer, opened.batch_id, signal) is None:
            return 0
        self._settle(address, entry, op.origin if isinstance(op, EmitOp) else op.by, local=False)
        return 2 if len(entry) > size else 1

    def _lapse(self, node: str, kinds: Iterable[str]) -> int:
        """Lapse the leases (signals of ``kinds``) that ``node`` emitted: it left the mesh.
        Returns how many lapsed."""
        self._enter()
        try:
            now = self.clock.now()
            lapsed = 0
            for kind in kinds:
                for signal in self.signals(kind):
                    address = signal.address
                    entry = self._entries.get(address)
                    if entry is None:
                        continue
                    state = resolve(entry, self._lapsed.get(address), now)
                    if state.record is not None and state.record.signer == node:
                        self._lapsed[address] = now
                        self._settle(address, entry, None, local=False)
                        lapsed += 1
            self.counters.add("lapsed_leases", lapsed)
            return lapsed
        finally:
            self._exit()

    def _keep_notes(self, notes: Iterable[SigNote], verified: bool) -> None:
        """Keep signature notes with the batches they sign."""
        with self._lock:
            for note in notes:
                self._store.cover(note, verified=verified)

    def _servable(self, check: Callable[[SigNote], bool], after: int, max_bytes: int) -> Page:
        """One page of the signed batches to hand a late joiner, and the notes they need.

        Notes not checked yet (they arrived after their batches were applied on MACs) are
        checked here with ``check``, outside the lock, the first time they serve as
        evidence; a bad one is dropped with the batches that rely on it.
        """
        with self._lock:
            page = self._store.page(after, max_bytes)
        if not page.unchecked:
            return page
        verdicts = {note.sig: check(note) for note in page.notes if note.sig in page.unchecked}
        with self._lock:
            for key, ok in verdicts.items():
                self._store.verified(key, ok)
            if not all(verdicts.values()):
                page = self._store.page(after, max_bytes)
        return page

    # -- forgetting ------------------------------------------------------------------------

    def _forget(self, address: str) -> None:
        entry = self._entries.get(address)
        if entry is not None:
            heapq.heappush(self._gc, (entry.latest() + self._gc_grace_s, address))

    def _release(self, entry: Entry) -> None:
        """The operations of a forgotten entry no longer count against their signers."""
        held = self._held_by
        for signer in entry.signers():
            left = held.get(signer, 0) - 1
            if left > 0:
                held[signer] = left
            else:
                held.pop(signer, None)

    def _collect(self, now: float) -> None:
        """Drop the operations of signals dead for ``gc_grace_s``, and unreferenced batches."""
        gc = self._gc
        while gc and gc[0][0] <= now:
            _, address = heapq.heappop(gc)
            entry = self._entries.get(address)
            if entry is None or self._held(address) is not None:
                continue
            due = entry.latest() + self._gc_grace_s
            if due > now:
                heapq.heappush(gc, (due, address))
                continue
            del self._entries[address]
            self._lapsed.pop(address, None)
            self._release(entry)
        if now >= self._next_sweep:
            self._next_sweep = now + _SWEEP_S
            keep: set[str] = set()
            for entry in self._entries.values():
                keep.update(entry.batches())
            self._store.sweep(keep)
