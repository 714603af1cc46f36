"""The remote side of a replica: what the mesh brings in, and what it asks for.

Authenticated batches are merged into the replica; signature notes are kept with the
batches they sign; late joiners are answered; peers coming and going are followed (a
departed node's leases lapse, a newcomer is asked for what we may have missed).

Zenoh calls in on its own threads. :meth:`Inbound.deliver` hands each piece of work to the
field's event loop when it has one (``call_soon_threadsafe``, one wake-up per burst), or
runs it at once when it has none (the replica then locks; see :mod:`smesh.mesh.field`).

:class:`Inbound` sees the replica only through a :class:`ReplicaPort`: the few operations
it needs, which :class:`~smesh.mesh.field.MeshField` builds from its own methods. So this
module never touches the field's state, and does not import it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from smesh.mesh.channel import Cover, LiveChannel
from smesh.mesh.codec import DroppedMessage
from smesh.mesh.replica import Counters
from smesh.mesh.wire import Opened, Sealed, SigNote

__all__ = ["Inbound", "ReplicaPort"]

_log = logging.getLogger(__name__)


class ReplicaPort(msgspec.Struct, frozen=True, kw_only=True):
    """All that :class:`Inbound` may do to the replica it feeds.

    Attributes:
        loop: the event loop remote work runs on (None: run it at once, the replica locks).
        apply: merge verified remote batches (nothing once the field is closed).
        keep_notes: keep signature notes (``verified`` or not) with the batches they sign.
        servable: the batches and notes to hand a late joiner, checking unchecked notes
            with the function given.
        peer_joined: record a present peer; True if we should ask it for its replica.
        peer_left: forget a departed peer and lapse its leases; False if closed.
    """

    loop: Callable[[], asyncio.AbstractEventLoop | None]
    apply: Callable[[list[Opened]], None]
    keep_notes: Callable[[Iterable[SigNote], bool], None]
    servable: Callable[[Callable[[SigNote], bool]], tuple[list[Sealed], list[SigNote]]]
    peer_joined: Callable[[str], bool]
    peer_left: Callable[[str], bool]


class Inbound:
    """Brings remote operations into one replica.

    Args:
        port: what it may do to the replica.
        channel: the live channel (authentication, sync queries and answers).
        counters: the replica's counters.
    """

    def __init__(self, port: ReplicaPort, channel: LiveChannel, counters: Counters) -> None:
        self.port = port
        self.channel = channel
        self.counters = counters
        self._inbox: deque[Callable[[], None]] = deque()
        self._inbox_lock = threading.Lock()
        self._drain_scheduled = False
        self._workers: set[threading.Thread] = set()

    # -- handing work to the replica's thread ----------------------------------------------

    def deliver(self, job: Callable[[], None]) -> None:
        """Run ``job`` on the field's loop, or now if the field has none."""
        loop = self.port.loop()
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
        for result in self.channel.receive(data):
            self.deliver(functools.partial(self._take, result))

    def _take(self, result: Opened | Cover) -> None:
        if isinstance(result, Opened):
            self.port.apply([result])
        else:
            self.cover(result.note, result.verified)

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
        """Answer a late joiner with every signed batch this replica holds (zenoh thread).

        Signature notes that arrived after their batches were applied on MACs are checked
        here, the first time they serve as evidence.
        """
        try:
            batches, notes = self.port.servable(self._check_note)
            self.channel.answer(query, batches, notes)
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

    def peer_changed(self, node: str, alive: bool) -> None:
        """Follow a peer: ask a newcomer for its replica; lapse a departed node's leases."""
        if alive:
            if self.port.peer_joined(node):
                self._spawn(lambda: self._sync_with(node))  # it may hold what we missed
            return
        if self.port.peer_left(node):
            self.channel.keyring.forget(node)

    def _sync_with(self, node: str) -> None:
        synced = self.channel.fetch(node)
        if synced[0]:
            self.deliver(lambda: self.apply_synced(synced))

    def _spawn(self, target: Callable[[], None]) -> None:
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
