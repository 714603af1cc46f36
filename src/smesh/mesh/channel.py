"""The live channel: sealing and sending batches, authenticating what arrives, sync.

Sending, a node encodes a batch of operations, authenticates it to every peer it shares a
key with (one MAC each, see :mod:`smesh.mesh.auth`) and publishes it at once. Signatures
come after, in groups: a signer thread signs the ids of every batch sent since its last
note, at most every ``sign_interval_s`` and never sooner than ``sign_delay_s`` after the
first of them, so that Ed25519 (tens of microseconds) stays off the path of each batch
and one signature covers many. A node alone (no peer keys) signs each batch itself.

Receiving, a batch is accepted on the strength of the MAC addressed to us, or of its
signature (its own, or a note's) when it has no MAC for us; each ``(signer, epoch, seq)``
only once. Replicas keep each batch with what signs it (:mod:`smesh.mesh.store`) and serve
exactly that to late joiners, who verify every signature themselves.

Runs on zenoh's threads (and the signer's); it keeps its own locks and never touches the
replica, which :class:`smesh.mesh.field.MeshField` owns.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec

from smesh.mesh.auth import Keyring
from smesh.mesh.codec import Codec, DroppedMessage
from smesh.mesh.identity import Identity, node_id_of
from smesh.mesh.replica import Counters, ReplayGuard
from smesh.mesh.transport import MeshConfig, Transport
from smesh.mesh.wire import (
    MAX_NOTE_IDS,
    VERSION,
    Hello,
    Op,
    Opened,
    Sealed,
    SigNote,
    SyncReply,
    batch_id_of,
    encode,
    note_message,
    pack,
    signed_message,
)

__all__ = ["Cover", "LiveChannel"]

_REPLY_CHUNK = 1 << 20  # bytes of batches per sync-reply message
_PENDING_S = 5.0  # how long a batch with no MAC for us waits for its signature
_PENDING_MAX = 4096


class Cover(msgspec.Struct, frozen=True):
    """A signature note for batches that may already be in the replica."""

    note: SigNote
    verified: bool


class LiveChannel:
    """A node's end of the live channel.

    Args:
        identity: this node's signing identity.
        config: the mesh config.
        counters: where to count what is dropped and why.
    """

    def __init__(self, identity: Identity, config: MeshConfig, counters: Counters) -> None:
        self.identity = identity
        self.config = config
        self.counters = counters
        self.codec = Codec(config.mesh, max_bytes=config.max_message_bytes)
        self.epoch = time.time_ns()
        self.keyring = Keyring(identity, config.mesh, self.epoch)
        self.transport: Transport | None = None
        self._node_ids: dict[bytes, str] = {}
        self._seq = itertools.count()
        self._replay = ReplayGuard()
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[Sealed, float]] = {}  # batch id -> (batch, since)
        # the signer
        self._cond = threading.Condition()
        self._unsigned: list[bytes] = []
        self._first_unsigned = 0.0
        self._last_note = -1e9
        self._stopping = False
        self._signer: threading.Thread | None = None
        self._on_note: Callable[[SigNote], None] | None = None

    def node_id(self, public_key: bytes) -> str:
        """The node id of a public key (cached: every message names its signer)."""
        node = self._node_ids.get(public_key)
        if node is None:
            if len(self._node_ids) > 4096:
                self._node_ids.clear()
            node = self._node_ids[public_key] = node_id_of(public_key)
        return node

    # -- sending ---------------------------------------------------------------------------

    def send(self, ops: list[Op]) -> tuple[str, Sealed]:
        """Seal, authenticate and publish one batch; return its id and the form to keep
        (signed now if no peer holds a key with us, else covered by a later note).

        Raises:
            InvalidSignal: a payload does not encode.
        """
        body = pack(ops)
        seq = next(self._seq)
        public = self.identity.public_key
        message = signed_message(self.config.mesh, public, self.epoch, seq, body)
        batch_id = batch_id_of(message)
        transport = self.transport
        macs = self.keyring.tags(message) if transport is not None else []
        if not macs:
            sealed = Sealed(VERSION, public, self.epoch, seq, body, self.identity.sign(message))
            if transport is not None:
                transport.publish(encode(sealed))
            return batch_id, sealed
        assert transport is not None
        transport.publish(encode(Sealed(VERSION, public, self.epoch, seq, body, b"", macs)))
        with self._cond:
            self._unsigned.append(bytes.fromhex(batch_id))
            if len(self._unsigned) == 1:
                # wake the signer for the first unsigned batch only: it then sleeps until
                # the note is due, and a thread woken per batch would compete with this one
                self._first_unsigned = time.monotonic()
                self._cond.notify()
        return batch_id, Sealed(VERSION, public, self.epoch, seq, body, b"")

    def sign_pending(self) -> SigNote | None:
        """Sign the ids of every batch sent unsigned so far, publish the note, return it."""
        with self._cond:
            ids, self._unsigned = self._unsigned[:MAX_NOTE_IDS], self._unsigned[MAX_NOTE_IDS:]
            self._last_note = time.monotonic()
            if self._unsigned:
                self._first_unsigned = self._last_note
        if not ids:
            return None
        public = self.identity.public_key
        message = note_message(self.config.mesh, public, self.epoch, ids)
        note = SigNote(VERSION, public, self.epoch, ids, self.identity.sign(message))
        transport = self.transport
        if transport is not None:
            transport.publish(encode(note))
        self.counters.add("signature_notes")
        return note

    def start_signer(self, on_note: Callable[[SigNote], None]) -> None:
        """Start the signer thread; ``on_note`` receives each note it makes."""
        self._on_note = on_note
        self._stopping = False
        self._signer = threading.Thread(target=self._sign_loop, name="smesh-signer", daemon=True)
        self._signer.start()

    def stop_signer(self, timeout_s: float = 5.0) -> None:
        """Sign what is left and stop the signer thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._signer is not None:
            self._signer.join(timeout_s)
            self._signer = None

    def _sign_loop(self) -> None:
        interval, delay = self.config.sign_interval_s, self.config.sign_delay_s
        while True:
            with self._cond:
                while not self._unsigned and not self._stopping:
                    self._cond.wait()
                if not self._unsigned:
                    return  # stopping, nothing left
                due = max(self._last_note + interval, self._first_unsigned + delay)
                wait = due - time.monotonic()
                if wait > 0 and not self._stopping:
                    self._cond.wait(wait)
                    continue
            note = self.sign_pending()
            if note is not None and self._on_note is not None:
                try:
                    self._on_note(note)
                except Exception:
                    self.counters.add("signer_errors")

    def say_hello(self) -> None:
        """Publish this node's signed key-agreement key."""
        transport = self.transport
        if transport is not None:
            transport.publish(encode(self.keyring.hello))

    # -- receiving -------------------------------------------------------------------------

    def receive(self, data: bytes) -> list[Opened | Cover]:
        """Authenticate one live-channel message: batches to apply now, and signature notes
        to keep (nothing for a hello, a parked batch, or something dropped and counted)."""
        self.counters.add("received")
        try:
            envelope = self.codec.envelope(data)
            if isinstance(envelope, Hello):
                self._hello(envelope)
                return []
            if isinstance(envelope, SigNote):
                return self._note(envelope)
            opened = self._batch(envelope)
            return [] if opened is None else [opened]
        except DroppedMessage as exc:
            self.counters.add("dropped_" + exc.reason)
        except Exception:  # never let a message take the peer down
            self.counters.add("dropped_error")
        return []

    def _hello(self, hello: Hello) -> None:
        try:
            fresh = self.keyring.learn(hello, self.codec.verifier)
        except ValueError:
            raise DroppedMessage("bad_hello", "hello with a bad signature or key") from None
        if fresh:
            self.counters.add("peer_keys")
            self.say_hello()  # so that the newcomer learns our key in turn

    def _batch(self, sealed: Sealed, *, signed: bool = False) -> Opened | None:
        signer = self.node_id(sealed.signer)
        message, batch_id = self.codec.message(sealed)
        if sealed.sig:
            self.codec.verify(sealed)
        elif not signed:
            verdict = self.keyring.check(signer, sealed.epoch, message, sealed.macs)
            if verdict is False:
                raise DroppedMessage("bad_mac", f"batch from {signer} with a bad MAC", node=signer)
            if verdict is None:  # no MAC for us (yet): wait for its signature note
                self._park(batch_id, sealed)
                return None
            self.counters.add("mac_ok")
        if not self._replay.accept(signer, sealed.epoch, sealed.seq):
            raise DroppedMessage("replay", "replayed batch", node=signer)
        return Opened(sealed, batch_id, signer, self.codec.ops(sealed, signer))

    def _park(self, batch_id: str, sealed: Sealed) -> None:
        now = time.monotonic()
        stale = 0
        with self._lock:
            pending = self._pending
            # oldest first (insertion order): drop what waited too long, or the oldest when full
            while pending:
                oldest = next(iter(pending))
                if now - pending[oldest][1] <= _PENDING_S and len(pending) < _PENDING_MAX:
                    break
                del pending[oldest]
                stale += 1
            pending[batch_id] = (sealed, now)
        if stale:
            self.counters.add("dropped_unsigned", stale)

    def _note(self, note: SigNote) -> list[Opened | Cover]:
        with self._lock:
            parked = [self._pending.pop(raw.hex(), None) for raw in note.ids]
        waiting = [entry[0] for entry in parked if entry is not None]
        if not waiting:
            # it signs batches we already applied on their MACs: checked when first used
            return [Cover(note, verified=False)]
        try:
            self.codec.verify_note(note)  # it decides batches we hold back: check now
        except DroppedMessage:
            now = time.monotonic()
            with self._lock:  # a forged note must not cost the genuine one its batches
                for sealed in waiting:
                    self._pending[self.codec.message(sealed)[1]] = (sealed, now)
            raise
        out: list[Opened | Cover] = []
        for sealed in waiting:
            if sealed.signer != note.signer or sealed.epoch != note.epoch:
                self.counters.add("dropped_bad_signature")
                continue
            try:
                opened = self._batch(sealed, signed=True)
            except DroppedMessage as exc:
                self.counters.add("dropped_" + exc.reason)
                continue
            if opened is not None:
                out.append(opened)
        self.counters.add("signed_by_note", len(out))
        return [*out, Cover(note, verified=True)]

    # -- late joiners ----------------------------------------------------------------------

    def answer(self, query: Any, batches: list[Sealed], notes: list[SigNote]) -> None:
        """Reply to a sync query with ``batches`` and the ``notes`` that sign them."""
        transport = self.transport
        if transport is None:
            return
        chunk: list[Sealed] = []
        size = number = 0
        for sealed in batches:
            chunk.append(sealed)
            size += len(sealed.ops) + 160
            if size >= _REPLY_CHUNK:
                transport.reply(query, encode(SyncReply(VERSION, chunk)), number)
                chunk, size, number = [], 0, number + 1
        # the notes go last: a joiner checks every batch once it has all the replies
        transport.reply(query, encode(SyncReply(VERSION, chunk, notes)), number)
        self.counters.add("sync_answers")

    def fetch(self, peer: str = "*") -> tuple[list[Opened], list[SigNote]]:
        """Ask replicas for their batches; verify every signature (each one once).

        Returns the verified batches, and the verified notes (to keep with them).
        """
        transport = self.transport
        if transport is None:
            return [], []
        batches: dict[bytes, Sealed] = {}
        notes: dict[bytes, SigNote] = {}
        for data in transport.fetch(peer):
            try:
                reply = self.codec.reply(data)
            except DroppedMessage as exc:
                self.counters.add("dropped_" + exc.reason)
                continue
            for sealed in reply.batches:
                batches.setdefault(sealed.ops + sealed.signer + sealed.sig, sealed)
            for note in reply.notes:
                notes.setdefault(note.sig, note)
        covered: set[tuple[bytes, int, bytes]] = set()
        good: list[SigNote] = []
        for note in notes.values():
            try:
                self.codec.verify_note(note)
            except DroppedMessage as exc:
                self.counters.add("dropped_" + exc.reason)
                continue
            good.append(note)
            covered.update((note.signer, note.epoch, raw) for raw in note.ids)
        opened: dict[str, Opened] = {}
        for sealed in batches.values():
            try:
                _, batch_id = self.codec.message(sealed)
                if batch_id in opened:
                    continue
                if sealed.sig:
                    batch_id, signer = self.codec.verify(sealed)
                elif (sealed.signer, sealed.epoch, bytes.fromhex(batch_id)) in covered:
                    signer = self.node_id(sealed.signer)
                else:
                    raise DroppedMessage("unsigned", "a synced batch that nothing signs")
                opened[batch_id] = Opened(sealed, batch_id, signer, self.codec.ops(sealed, signer))
            except DroppedMessage as exc:
                self.counters.add("dropped_" + exc.reason)
        self.counters.add("synced_batches", len(opened))
        return list(opened.values()), good
