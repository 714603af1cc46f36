"""The remote side of a replica: what the mesh brings in, and what it asks for.

Authenticated batches are merged into the replica; signature notes are kept with the
batches they sign; late joiners are answered; peers coming and going are followed (a
departed node's leases lapse, a newcomer is asked for what we may have missed).

Zenoh calls in on its own threads. :meth:`Inbound.deliver` hands each piece of work to the
field's event loop when it has one (``call_soon_threadsafe``, one wake-up per burst), or
runs it at once under the field's lock when it has none (see :mod:`smesh.mesh.field`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from smesh.errors import InvalidSignal
from smesh.mesh.channel import Cover
from smesh.mesh.codec import DroppedMessage, check_mark, signal_of
from smesh.mesh.merge import EmitRecord, Entry, merge_op, resolve
from smesh.mesh.wire import EmitOp, Op, Opened, SigNote
from smesh.signal import Signal

if TYPE_CHECKING:
    from smesh.mesh.field import MeshField

__all__ = ["Inbound"]

_log = logging.getLogger(__name__)


class Inbound:
    """Brings remote operations into one :class:`~smesh.mesh.field.MeshField`.

    Args:
        field: the replica it feeds (it works on the field's own state, under its lock).
    """

    def __init__(self, field: MeshField) -> None:
        self.field = field
        self._inbox: deque[Callable[[], None]] = deque()
        self._inbox_lock = threading.Lock()
        self._drain_scheduled = False
        self._workers: set[threading.Thread] = set()

    # -- handing work to the replica's thread ----------------------------------------------

    def deliver(self, job: Callable[[], None]) -> None:
        """Run ``job`` on the field's loop, or now if the field has none."""
        loop = self.field._loop
        if loop is None:
            job()
            return
        with self._inbox_lock:
            self._inbox.append(job)
            if self._drain_scheduled:
                return
            self._drain_scheduled = True
        with contextlib.suppress(RuntimeError):  # the loop is closing: drop late messages
            loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        while True:
            with self._inbox_lock:
                if not self._inbox:
                    self._drain_scheduled = False
                    return
                jobs = list(self._inbox)
                self._inbox.clear()
            for job in jobs:
                job()

    # -- the live channel ------------------------------------------------------------------

    def on_batch(self, data: bytes) -> None:
        """A live-channel message arrived (zenoh thread): authenticate it here, apply it on
        the loop (or at once, without one)."""
        for result in self.field.channel.receive(data):
            self.deliver(functools.partial(self._take, result))

    def _take(self, result: Opened | Cover) -> None:
        if isinstance(result, Opened):
            self.apply([result])
        else:
            self.cover(result.note, result.verified)

    def on_own_note(self, note: SigNote) -> None:
        """The signer thread signed our own batches: keep the note with them."""
        self.deliver(lambda: self.cover(note, True))

    def cover(self, note: SigNote, verified: bool) -> None:
        """Keep a signature note with the batches it signs."""
        with self.field._lock:
            self.field._store.cover(note, verified=verified)

    def apply_synced(self, synced: tuple[list[Opened], list[SigNote]]) -> None:
        """Merge what replicas sent us, and keep the notes that sign it."""
        opened, notes = synced
        self.apply(opened)
        with self.field._lock:
            for note in notes:
                self.field._store.cover(note, verified=True)

    def apply(self, batches: list[Opened]) -> None:
        """Merge verified remote batches into the replica."""
        field = self.field
        if field._closed:
            return
        field._enter()
        try:
            now = field.clock.now()
            horizon = now + field.config.max_skew_s
            applied = 0
            for opened in batches:
                kept = False
                for op in opened.ops:
                    try:
                        merged = self._merge(op, opened, now, horizon)
                    except Exception:  # whatever a signer sent, the replica stays up
                        field.counters.add("dropped_error")
                        _log.exception("unexpected error merging an operation")
                        continue
                    if merged:
                        kept = True
                        applied += 1
                if kept:
                    field._store.add(opened.batch_id, opened.sealed)
            field.counters.add("applied_ops", applied)
        finally:
            field._exit()

    def _merge(self, op: Op, opened: Opened, now: float, horizon: float) -> bool:
        field = self.field
        signal: Signal | None = None
        try:
            if isinstance(op, EmitOp):
                signal = signal_of(op)
                if signal.created_at > horizon:
                    field.counters.add("dropped_skew")
                    return False
                expires = signal.created_at + field._expiry_age(signal)
                if expires <= now:
                    field.counters.add("stale_ops")  # expired in flight: nothing to do
                    return False
                address = signal.address
                if address not in field._entries:  # the common case: a new signal
                    record = EmitRecord(signal, opened.signer, opened.batch_id)
                    field._entries[address] = Entry(record)
                    if address not in field._live:
                        field._insert(signal, local=False, expires=expires)
                    return True
            else:
                check_mark(op)
                if op.at > horizon:
                    field.counters.add("dropped_skew")
                    return False
                address = op.address
        except (InvalidSignal, RecursionError):
            field.counters.add("dropped_invalid_op")
            return False
        entry = field._entries.get(address)
        if entry is None:
            entry = field._entries[address] = Entry()
        if merge_op(entry, op, opened.signer, opened.batch_id, signal) is None:
            return False
        by = op.origin if isinstance(op, EmitOp) else op.by
        field._settle(address, entry, by, local=False)
        return True

    # -- late joiners ----------------------------------------------------------------------

    def on_query(self, query: Any) -> None:
        """Answer a late joiner with every signed batch this replica holds (zenoh thread).

        Signature notes that arrived after their batches were applied on MACs are checked
        here, the first time they serve as evidence.
        """
        field = self.field
        try:
            with field._lock:
                batches, notes, unchecked = field._store.servable()
            if unchecked:
                verdicts: dict[bytes, bool] = {}
                for note in notes:
                    if note.sig in unchecked:
                        try:
                            field.codec.verify_note(note)
                            verdicts[note.sig] = True
                        except DroppedMessage as exc:
                            field.counters.add("dropped_" + exc.reason)
                            verdicts[note.sig] = False
                with field._lock:
                    for key, ok in verdicts.items():
                        field._store.verified(key, ok)
                    if not all(verdicts.values()):
                        batches, notes, _ = field._store.servable()
            field.channel.answer(query, batches, notes)
        except Exception:
            field.counters.add("sync_answer_errors")
            _log.exception("answering a sync query failed")
        finally:
            query.drop()

    # -- presence --------------------------------------------------------------------------

    def on_peer(self, node: str, alive: bool) -> None:
        """A peer's liveliness token appeared or went (zenoh thread)."""
        self.deliver(lambda: self.peer_changed(node, alive))

    def peer_changed(self, node: str, alive: bool) -> None:
        """Follow a peer: ask a newcomer for its replica; lapse a departed node's leases."""
        field = self.field
        if field._closed:
            return
        if alive:
            with field._lock:
                known = node in field._peers
                field._peers[node] = field.clock.now()
            if field._synced and not known:
                self._spawn(lambda: self._sync_with(node))  # it may hold what we missed
            return
        field.channel.keyring.forget(node)
        field._enter()
        try:
            field._peers.pop(node, None)
            now = field.clock.now()
            lapsed = 0
            for kind in field.config.lease_kinds:
                for address in list(field._kinds.get(kind, ())):
                    entry = field._entries.get(address)
                    if entry is None:
                        continue
                    state = resolve(entry, field._lapsed.get(address), now)
                    if state.record is not None and state.record.signer == node:
                        field._lapsed[address] = now
                        field._settle(address, entry, None, local=False)
                        lapsed += 1
            field.counters.add("lapsed_leases", lapsed)
        finally:
            field._exit()

    def _sync_with(self, node: str) -> None:
        synced = self.field.channel.fetch(node)
        if synced[0]:
            self.deliver(lambda: self.apply_synced(synced))

    def _spawn(self, target: Callable[[], None]) -> None:
        def run() -> None:
            try:
                target()
            except Exception:
                self.field.counters.add("sync_errors")
                _log.exception("syncing with a peer failed")
            finally:
                self._workers.discard(thread)

        thread = threading.Thread(target=run, name="smesh-mesh-sync", daemon=True)
        self._workers.add(thread)
        thread.start()

    def join(self, timeout_s: float) -> None:
        """Wait for the sync threads still running."""
        for worker in list(self._workers):
            worker.join(timeout_s)
