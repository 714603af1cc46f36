"""The remote side of a replica: what the mesh brings in, and what it asks for.

Authenticated batches are merged into the replica; signature notes are kept with the
batches they sign; late joiners are answered; peers coming and going are followed (a
departed node's leases lapse, a newly confirmed peer is asked for what we may have missed).

Zenoh calls in on its own threads. When the field has an event loop, verified batches wait
in one queue *per signer* and are merged on the loop a slice at a time, taking turns between
signers, and the loop is given back every few milliseconds: a peer that floods waits behind
itself, not in front of everyone, and the loop keeps serving the others. What waits is
bounded (``limits.inbox_ops`` operations, ``dropped_inbox_full`` beyond). Without a loop,
work runs at once (the replica then locks; see :mod:`smesh.mesh.field`).

:class:`Inbound` sees the replica only through a :class:`ReplicaPort`: the few operations
it needs, which :class:`~smesh.mesh.field.MeshField` builds from its own methods. So this
module never touches the field's state, and does not import it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from smesh.mesh.channel import Accepted, Cover, LiveChannel
from smesh.mesh.codec import DroppedMessage
from smesh.mesh.replica import Counters
from smesh.mesh.store import Page
from smesh.mesh.sync import Sync
from smesh.mesh.transport import query_cursor
from smesh.mesh.wire import Opened, SigNote

__all__ = ["Inbound", "ReplicaPort"]

_log = logging.getLogger(__name__)
_SLICE_OPS = 256  # operations of one signer merged per turn
_TURN_S = 0.004  # the loop is given back after this much merging
_SYNC_WORKERS = 4  # sync threads at once (with newly confirmed peers)


class _Item:
    """One piece of a signer's queued work: a batch (decoded at its first slice, then
    merged a slice at a time) or a signature note."""

    __slots__ = ("decoded", "done", "head", "opened", "size")

    def __init__(self, head: Accepted | Cover) -> None:
        self.head = head
        self.size = head.count if isinstance(head, Accepted) else 0
        self.done = 0
        self.decoded = False
        self.opened: Opened | None = None


class ReplicaPort(msgspec.Struct, frozen=True, kw_only=True):
    """All that :class:`Inbound` may do to the replica it feeds.

    Attributes:
        loop: the event loop remote work runs on (None: run it at once, the replica locks).
        apply: merge verified remote batches (nothing once the field is closed).
        apply_part: merge operations ``start:stop`` of one verified batch.
        keep_notes: keep signature notes (``verified`` or not) with the batches they sign.
        servable: one page (after a cursor, up to a size) of the batches and notes to hand
            a late joiner, checking unchecked notes with the function given.
        peer_joined: a peer's liveliness token appeared; True if we should ask it for its
            replica (it is confirmed: it said hello too).
        peer_greeted: a peer said a new hello; True if we should ask it for its replica.
        peer_left: forget a departed peer and lapse its leases; False if closed.
    """

    loop: Callable[[], asyncio.AbstractEventLoop | None]
    apply: Callable[[list[Opened]], None]
    apply_part: Callable[[Opened, int, int], None]
    keep_notes: Callable[[Iterable[SigNote], bool], None]
    servable: Callable[[Callable[[SigNote], bool], int, int], Page]
    peer_joined: Callable[[str], bool]
    peer_greeted: Callable[[str], bool]
    peer_left: Callable[[str], bool]


class Inbound:
    """Brings remote operations into one replica.

    Args:
        port: what it may do to the replica.
        channel: the live channel (authentication).
        sync: sync queries and answers.
        counters: the replica's counters.
    """

    def __init__(
        self, port: ReplicaPort, channel: LiveChannel, sync: Sync, counters: Counters
    ) -> None:
        self.port = port
        self.channel = channel
        self.sync = sync
        self.counters = counters
        self._max_ops = channel.config.limits.inbox_ops
        self._jobs: deque[Callable[[], None]] = deque()
        # signer -> its verified batches and notes, in arrival order
        self._queues: dict[str, deque[_Item]] = {}
        self._queued_ops = 0
        self._inbox_lock = threading.Lock()
        self._drain_scheduled = False
        self._workers: set[threading.Thread] = set()
        channel.on_hello = self.on_hello

    # -- handing work to the replica's thread ----------------------------------------------

    def deliver(self, job: Callable[[], None]) -> None:
        """Run ``job`` on the field's loop, or now if the field has none."""
        loop = self.port.loop()
        if loop is None:
            job()
            return
        with self._inbox_lock:
            self._jobs.append(job)
            schedule = not self._drain_scheduled
            self._drain_scheduled = True
        if schedule:
            with contextlib.suppress(RuntimeError):  # the loop is closing: drop late work
                loop.call_soon_threadsafe(self._drain)

    def _enqueue(self, signer: str, head: Accepted | Cover, ops: int) -> None:
        loop = self.port.loop()
        if loop is None:  # at once, on this zenoh thread (the replica locks per slice)
            if isinstance(head, Cover):
                self.cover(head.note, head.verified)
            elif (opened := self._open(head)) is not None:
                self.port.apply([opened])
            return
        with self._inbox_lock:
            if ops and self._queued_ops + ops > self._max_ops:
                self.counters.add("dropped_inbox_full")
                self.counters.add("dropped_inbox_ops", ops)
                return
            self._queued_ops += ops
            queue = self._queues.get(signer)
            if queue is None:
                queue = self._queues[signer] = deque()
            queue.append(_Item(head))
            schedule = not self._drain_scheduled
            self._drain_scheduled = True
        if schedule:
            with contextlib.suppress(RuntimeError):  # the loop is closing: drop late work
                loop.call_soon_threadsafe(self._drain)

    def _open(self, accepted: Accepted) -> Opened | None:
        try:
            return self.channel.open(accepted)
        except DroppedMessage as exc:
            self.counters.add("dropped_" + exc.reason)
            return None

    def _run(self, item: _Item, start: int, stop: int) -> None:
        head = item.head
        if isinstance(head, Cover):
            self.cover(head.note, head.verified)
            return
        if not item.decoded:  # decoded here, on the loop, at its first slice
            item.decoded = True
            item.opened = self._open(head)
        if item.opened is not None:
            self.port.apply_part(item.opened, start, stop)

    def _drain(self) -> None:
        deadline = time.perf_counter() + _TURN_S
        while True:
            with self._inbox_lock:
                jobs = list(self._jobs)
                self._jobs.clear()
                turn: list[tuple[_Item, int, int]] = []
                for signer in list(self._queues):  # one slice of each signer's work
                    queue = self._queues[signer]
                    item = queue[0]
                    start = item.done
                    stop = min(item.size, start + _SLICE_OPS)
                    self._queued_ops -= stop - start
                    item.done = stop
                    turn.append((item, start, stop))
                    if stop >= item.size:
                        queue.popleft()
                        if not queue:
                            del self._queues[signer]
                if not jobs and not turn:
                    self._drain_scheduled = False
                    return
            for job in jobs:
                job()
            for item, start, stop in turn:
                self._run(item, start, stop)
            if time.perf_counter() >= deadline:
                loop = self.port.loop()
                if loop is not None:  # give the loop back; carry on at its next turn
                    loop.call_soon(self._drain)
                    return

    # -- the live channel ------------------------------------------------------------------

    def on_batch(self, data: bytes) -> None:
        """A live-channel message arrived (zenoh thread): authenticate it here, apply it on
        the loop (or at once, without one), in its signer's turn."""
        for result in self.channel.receive(data):
            if isinstance(result, Accepted):
                self._enqueue(result.signer, result, result.count)
            else:  # behind the batches it signs
                self._enqueue(self.channel.node_id(result.note.signer), result, 0)

    def on_own_note(self, note: SigNote) -> None:
        """The signer thread signed our own batches: keep the note with them."""
        self.deliver(lambda: self.cover(note, True))

    def cover(self, note: SigNote, verified: bool) -> None:
        """Keep a signature note with the batches it signs."""
        self.port.keep_notes((note,), verified)

    def apply_synced(self, synced: tuple[list[Opened], list[SigNote]]) -> None:
        """Merge what replicas sent us, and keep the notes that sign it."""
        opened, notes = synced
        self.port.apply(opened)
        self.port.keep_notes(notes, True)

    def apply(self, batches: list[Opened]) -> None:
        """Merge verified remote batches into the replica."""
        self.port.apply(batches)

    # -- late joiners ----------------------------------------------------------------------

    def on_query(self, query: Any) -> None:
        """Answer a late joiner with one page of the signed batches this replica holds
        (zenoh thread), or tell it to come back when the answer budget is spent.

        Signature notes that arrived after their batches were applied on MACs are checked
        here, the first time they serve as evidence.
        """
        try:
            if not self.sync.admit():
                self.sync.busy(query)
                return
            page = self.port.servable(self._check_note, query_cursor(query), self.sync.page_bytes)
            self.sync.answer(query, page)
        except Exception:
            self.counters.add("sync_answer_errors")
            _log.exception("answering a sync query failed")
        finally:
            query.drop()

    def _check_note(self, note: SigNote) -> bool:
        try:
            self.channel.codec.verify_note(note)
        except DroppedMessage as exc:
            self.counters.add("dropped_" + exc.reason)
            return False
        return True

    # -- presence --------------------------------------------------------------------------

    def on_peer(self, node: str, alive: bool) -> None:
        """A peer's liveliness token appeared or went (zenoh thread)."""
        self.deliver(lambda: self.peer_changed(node, alive))

    def on_hello(self, node: str) -> None:
        """A peer said a new hello (zenoh thread)."""
        self.deliver(lambda: self._greeted(node))

    def _greeted(self, node: str) -> None:
        if self.port.peer_greeted(node):
            self._spawn(lambda: self._sync_with(node))

    def peer_changed(self, node: str, alive: bool) -> None:
        """Follow a peer: ask a newly confirmed one for its replica; lapse a departed
        node's leases."""
        if alive:
            if self.port.peer_joined(node):
                self._spawn(lambda: self._sync_with(node))  # it may hold what we missed
            return
        if self.port.peer_left(node):
            self.channel.keyring.forget(node)

    def _sync_with(self, node: str) -> None:
        synced = self.sync.fetch(node)
        if synced[0]:
            self.deliver(lambda: self.apply_synced(synced))

    def _spawn(self, target: Callable[[], None]) -> None:
        if len(self._workers) >= _SYNC_WORKERS:
            self.counters.add("sync_skipped")  # the presence of many peers at once
            return

        def run() -> None:
            try:
                target()
            except Exception:
                self.counters.add("sync_errors")
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
