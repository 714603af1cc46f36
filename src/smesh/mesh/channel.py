"""The live channel: sealing and sending batches, authenticating what arrives, serving sync.

Sending, a node encodes a batch of operations, authenticates it to every peer it shares a
key with (see :mod:`smesh.mesh.auth`), publishes it, then signs it and publishes the
signature. Receiving, a batch is accepted on the strength of the MAC addressed to us, or of
its signature when it carries one (or once it follows), and only once per
``(signer, epoch, seq)``. Replicas keep every batch with its signature: that is what they
serve to late joiners, who verify every signature themselves.

Everything here runs on zenoh's threads (or the caller's); it keeps its own small locks and
never touches the replica, which :class:`smesh.mesh.field.MeshField` owns.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import msgspec

from smesh.mesh.auth import Keyring
from smesh.mesh.identity import Identity, node_id_of
from smesh.mesh.replica import Counters, ReplayGuard
from smesh.mesh.transport import MeshConfig, Transport
from smesh.mesh.wire import (
    VERSION,
    Codec,
    DroppedMessage,
    Hello,
    Op,
    Opened,
    Sealed,
    SigNote,
    SyncReply,
    batch_id_of,
    encode,
    pack,
    signed_message,
)

__all__ = ["Attach", "LiveChannel"]

_REPLY_CHUNK = 1 << 20  # bytes of batches per sync-reply message
_PENDING_S = 5.0  # how long a batch with no MAC for us waits for its signature
_PENDING_MAX = 4096
_AWAITING_MAX = 1 << 16

_Key = tuple[str, int, int]  # signer node id, epoch, seq


class Attach(msgspec.Struct, frozen=True):
    """The signature of a batch already applied on the strength of its MAC."""

    batch_id: str
    sig: bytes


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
        self._seq = itertools.count()
        self._replay = ReplayGuard()
        self._lock = threading.Lock()
        self._pending: dict[_Key, tuple[Sealed, float]] = {}
        self._awaiting: dict[_Key, str] = {}
        self._unverified: set[str] = set()

    # -- sending ---------------------------------------------------------------------------

    def send(self, ops: list[Op]) -> tuple[str, Sealed]:
        """Seal, authenticate, publish and sign one batch; return its id and signed form.

        Raises:
            InvalidSignal: a payload does not encode.
        """
        body = pack(ops)
        seq = next(self._seq)
        public = self.identity.public_key
        message = signed_message(self.config.mesh, public, self.epoch, seq, body)
        transport = self.transport
        macs = self.keyring.tags(message) if transport is not None else []
        if macs:
            # the batch leaves now, authenticated to each peer we share a key with; the
            # signature, which costs more than the whole hop, follows
            assert transport is not None
            transport.publish(encode(Sealed(VERSION, public, self.epoch, seq, body, b"", macs)))
        sig = self.identity.sign(message)
        if transport is not None:
            if macs:
                transport.publish(encode(SigNote(VERSION, public, self.epoch, seq, sig)))
            else:
                transport.publish(encode(Sealed(VERSION, public, self.epoch, seq, body, sig)))
        return batch_id_of(message), Sealed(VERSION, public, self.epoch, seq, body, sig)

    def say_hello(self) -> None:
        """Publish this node's signed key-agreement key."""
        transport = self.transport
        if transport is not None:
            transport.publish(encode(self.keyring.hello))

    # -- receiving -------------------------------------------------------------------------

    def receive(self, data: bytes) -> Opened | Attach | None:
        """Authenticate one live-channel message.

        Returns a batch to apply, a signature to attach to a batch already applied, or None
        (a hello, a batch waiting for its signature, or something dropped and counted).
        """
        self.counters.add("received")
        try:
            envelope = self.codec.envelope(data)
            if isinstance(envelope, Hello):
                self._hello(envelope)
                return None
            if isinstance(envelope, SigNote):
                return self._signature(envelope)
            return self._batch(envelope)
        except DroppedMessage as exc:
            self.counters.add("dropped_" + exc.reason)
        except Exception:  # never let a message take the peer down
            self.counters.add("dropped_error")
        return None

    def _hello(self, hello: Hello) -> None:
        try:
            fresh = self.keyring.learn(hello, self.codec.verifier)
        except ValueError:
            raise DroppedMessage("bad_hello", "hello with a bad signature or key") from None
        if fresh:
            self.counters.add("peer_keys")
            self.say_hello()  # so that the newcomer learns our key in turn

    def _batch(self, sealed: Sealed) -> Opened | None:
        signer = node_id_of(sealed.signer)
        message, batch_id = self.codec.message(sealed)
        if sealed.sig:
            self.codec.verify(sealed)
        else:
            verdict = self.keyring.check(signer, sealed.epoch, message, sealed.macs)
            if verdict is False:
                raise DroppedMessage("bad_mac", f"batch from {signer} with a bad MAC", node=signer)
            if verdict is None:
                self._park((signer, sealed.epoch, sealed.seq), sealed)
                return None
            self.counters.add("mac_ok")
            with self._lock:
                self._awaiting[(signer, sealed.epoch, sealed.seq)] = batch_id
                while len(self._awaiting) > _AWAITING_MAX:
                    del self._awaiting[next(iter(self._awaiting))]
        if not self._replay.accept(signer, sealed.epoch, sealed.seq):
            raise DroppedMessage("replay", "replayed batch", node=signer)
        return Opened(sealed, batch_id, signer, self.codec.ops(sealed, signer))

    def _park(self, key: _Key, sealed: Sealed) -> None:
        now = time.monotonic()
        with self._lock:
            expired = [k for k, (_, since) in self._pending.items() if now - since > _PENDING_S]
            for old in expired:
                del self._pending[old]
            if len(self._pending) >= _PENDING_MAX:
                del self._pending[next(iter(self._pending))]
                expired.append(key)
            self._pending[key] = (sealed, now)
        if expired:
            self.counters.add("dropped_unsigned", len(expired))

    def _signature(self, note: SigNote) -> Opened | Attach | None:
        key = (node_id_of(note.signer), note.epoch, note.seq)
        with self._lock:
            parked = self._pending.pop(key, None)
            batch_id = self._awaiting.pop(key, None) if parked is None else None
        if parked is not None:  # it had no MAC for us: its signature decides
            return self._batch(msgspec.structs.replace(parked[0], sig=note.sig, macs=[]))
        if batch_id is None:
            self.counters.add("orphan_signatures")
            return None
        with self._lock:
            self._unverified.add(batch_id)  # checked when first used as evidence
        return Attach(batch_id, note.sig)

    # -- late joiners ----------------------------------------------------------------------

    def servable(self, held: list[tuple[str, Sealed]]) -> list[Sealed]:
        """The signed batches among ``held``, each signature checked at least once."""
        out: list[Sealed] = []
        for batch_id, sealed in held:
            if not sealed.sig:
                continue  # its signature has not arrived (yet)
            with self._lock:
                unchecked = batch_id in self._unverified
            if unchecked:
                try:
                    self.codec.verify(sealed)
                except DroppedMessage as exc:
                    self.counters.add("dropped_" + exc.reason)
                    continue
                with self._lock:
                    self._unverified.discard(batch_id)
            out.append(sealed)
        return out

    def answer(self, query: Any, batches: list[Sealed]) -> None:
        """Reply to a sync query with ``batches``, in chunks of about a megabyte."""
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
        if chunk:
            transport.reply(query, encode(SyncReply(VERSION, chunk)), number)
        self.counters.add("sync_answers")

    def fetch(self, peer: str = "*") -> list[Opened]:
        """Ask replicas for their batches; verify each distinct batch once."""
        transport = self.transport
        if transport is None:
            return []
        seen: set[bytes] = set()
        opened: list[Opened] = []
        for data in transport.fetch(peer):
            try:
                reply = self.codec.reply(data)
            except DroppedMessage as exc:
                self.counters.add("dropped_" + exc.reason)
                continue
            for sealed in reply.batches:
                if sealed.sig in seen:  # every replica holds the same batches: check once
                    continue
                seen.add(sealed.sig)
                try:
                    batch_id, signer = self.codec.verify(sealed)
                    opened.append(Opened(sealed, batch_id, signer, self.codec.ops(sealed, signer)))
                except DroppedMessage as exc:
                    self.counters.add("dropped_" + exc.reason)
        self.counters.add("synced_batches", len(opened))
        return opened
