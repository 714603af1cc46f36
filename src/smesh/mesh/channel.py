"""The live channel: sealing and sending batches, authenticating what arrives, sync.

Sending, a node encodes a batch of operations, authenticates it to every peer it shares a
key with (one MAC each, see :mod:`smesh.mesh.auth`) and publishes it at once. Signatures
come after, in groups: a signer thread signs the ids of every batch sent since its last
note, at most every ``sign_interval_s`` and never sooner than ``sign_delay_s`` after the
first of them, so that Ed25519 (tens of microseconds) stays off the path of each batch
and one signature covers many. A node alone (no peer keys) signs each batch itself.

Receiving, a batch is accepted on the strength of the MAC addressed to us, or of its
signature (its own, or a note's) when it has no MAC for us (it waits for it, bounded: see
:mod:`smesh.mesh.pending`); then only from a signer the mesh admits (on a mesh with a CA, one
whose certificate we hold: :mod:`smesh.mesh.members`), each ``(signer, epoch, seq)`` only
once, and within the signer's quota (:mod:`smesh.mesh.quota`). Replicas keep each batch with
what signs it (:mod:`smesh.mesh.store`) and serve exactly that to late joiners
(:mod:`smesh.mesh.sync`), who verify every signature themselves.

Runs on zenoh's threads (and the signer's); it keeps its own locks and never touches the
replica, which :class:`smesh.mesh.field.MeshField` owns.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable

import msgspec

from smesh.mesh.auth import Keyring
from smesh.mesh.codec import Codec, DroppedMessage, op_count
from smesh.mesh.identity import Identity, node_id_of
from smesh.mesh.members import Members
from smesh.mesh.pending import PendingBatches
from smesh.mesh.quota import Quotas
from smesh.mesh.replica import Counters, ReplayGuard
from smesh.mesh.transport import MeshConfig, Transport
from smesh.mesh.wire import (
    MAX_NOTE_IDS,
    MAX_OPS,
    VERSION,
    Hello,
    Op,
    Opened,
    Sealed,
    SigNote,
    batch_id_of,
    encode,
    note_message,
    pack,
    signed_message,
)

__all__ = ["Accepted", "Cover", "LiveChannel"]

_HELLO_GAP = 0.1  # at least this long between two hellos we say in reply to newcomers
_PRECHECK_BYTES = 16 * 1024  # MAC'd batches above this are checked against the quota first


class Cover(msgspec.Struct, frozen=True):
    """A signature note for batches that may already be in the replica."""

    note: SigNote
    verified: bool


class Accepted(msgspec.Struct, frozen=True):
    """A live batch that authenticated and fits its signer's quota; its operations are
    decoded later, by :meth:`LiveChannel.open`.

    Attributes:
        sealed: the batch.
        batch_id: its id.
        signer: its signer's node id.
        count: how many operations it holds.
    """

    sealed: Sealed
    batch_id: str
    signer: str
    count: int


class LiveChannel:
    """A node's end of the live channel.

    Args:
        identity: this node's signing identity.
        config: the mesh config.
        counters: where to count what is dropped and why.
        members: who may speak (default: a mesh without a CA, anyone).
        cert: this node's certificate (DER) to show in its hello, on a mesh with a CA.
    """

    def __init__(
        self,
        identity: Identity,
        config: MeshConfig,
        counters: Counters,
        *,
        members: Members | None = None,
        cert: bytes = b"",
    ) -> None:
        self.identity = identity
        self.config = config
        self.counters = counters
        self.members = members if members is not None else Members()
        self._certified = self.members.required  # signers need a certificate
        self.codec = Codec(config.mesh, max_bytes=config.max_message_bytes)
        self.epoch = time.time_ns()
        limits = config.limits
        self.keyring = Keyring(
            identity, config.mesh, self.epoch, cert=cert, limits=limits, counters=counters
        )
        self.transport: Transport | None = None
        self.pending = PendingBatches(limits, counters)
        self.quotas = Quotas(limits)
        #: called with the node id of every peer whose hello was new (on a zenoh thread)
        self.on_hello: Callable[[str], None] | None = None
        self._node_ids: dict[bytes, str] = {}
        self._seq = itertools.count()
        self._replay = ReplayGuard()
        # the signer (it also says hello again every hello_interval_s)
        self._cond = threading.Condition()
        self._unsigned: list[bytes] = []
        self._first_unsigned = 0.0
        self._last_note = -1e9
        self._last_hello = -1e9
        self._next_hello = float("inf")
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
        hello_every = self.config.limits.hello_interval_s
        with self._cond:  # the first hello goes out on announce (or as asked already)
            self._next_hello = min(self._next_hello, time.monotonic() + hello_every)
        while True:
            hello = False
            with self._cond:
                while True:
                    now = time.monotonic()
                    if now >= self._next_hello and not self._stopping:
                        self._next_hello = now + hello_every
                        hello = True
                        break
                    if self._unsigned:
                        due = max(self._last_note + interval, self._first_unsigned + delay)
                        if due <= now or self._stopping:
                            break
                        self._cond.wait(min(due, self._next_hello) - now)
                    elif self._stopping:
                        return  # stopping, nothing left
                    else:
                        self._cond.wait(self._next_hello - now)
            if hello:  # peers keep our key only while we keep saying hello
                self.say_hello()
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
            self._last_hello = time.monotonic()
            transport.publish(encode(self.keyring.hello))

    def hello_soon(self) -> None:
        """Say hello again shortly: at once, unless we did less than ``_HELLO_GAP`` ago
        (then at the end of that gap), so that a burst of newcomers, real or not, costs one
        hello per gap rather than one each."""
        with self._cond:
            due = max(time.monotonic(), self._last_hello + _HELLO_GAP)
            if due < self._next_hello:
                self._next_hello = due
                self._cond.notify()
        if self._signer is None:  # no signer thread (not started): say it now
            self.say_hello()

    # -- receiving -------------------------------------------------------------------------

    def receive(self, data: bytes) -> list[Accepted | Cover]:
        """Authenticate one live-channel message: batches to apply (:meth:`open` decodes
        their operations), and signature notes to keep (nothing for a hello, a parked
        batch, or something dropped and counted)."""
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
            fresh = self.keyring.learn(hello, self.codec.verifier, self.members)
        except ValueError:
            raise DroppedMessage("bad_hello", "hello with a bad signature or key") from None
        except DroppedMessage as exc:  # its certificate does not admit it
            raise DroppedMessage("hello_" + exc.reason, str(exc), node=exc.node) from None
        if fresh:
            self.counters.add("peer_keys")
            self.hello_soon()  # so that the newcomer learns our key in turn
            if self.on_hello is not None:
                self.on_hello(self.node_id(hello.signer))

    def _batch(self, sealed: Sealed, *, signed: bool = False) -> Accepted | None:
        signer = self.node_id(sealed.signer)
        count = op_count(sealed.ops)
        if count > MAX_OPS:
            raise DroppedMessage("oversize", f"batch of {count} operations", node=signer)
        size = len(sealed.ops)
        mine = None if sealed.sig or signed else self.keyring.mine(sealed.macs)
        # a signer over its quota loses the batch before it costs a signature check or a
        # long hash (read-only: a batch forged in its name spends nothing of its quota); a
        # short one with a MAC for us is cheaper to check than to pre-check
        costly = mine is None or size > _PRECHECK_BYTES
        if costly and not self.quotas.affords(signer, count, size):
            self.counters.add("dropped_quota_ops", count)
            raise DroppedMessage("quota", f"{signer} is over its quota", node=signer)
        # one that will wait for a signature pays, unauthenticated, a budget shared by all
        # such batches, before it costs a hash
        if not (sealed.sig or signed or mine) and not self.pending.admits(size):
            raise DroppedMessage("pending_rate", "too many unsigned bytes", node=signer)
        message, batch_id = self.codec.message(sealed)
        if sealed.sig:
            self.codec.check(sealed, message, signer)
        elif not signed:
            verdict = self.keyring.check(signer, sealed.epoch, message, mine)
            if verdict is False:
                raise DroppedMessage("bad_mac", f"batch from {signer} with a bad MAC", node=signer)
            if verdict is None:  # no MAC for us (yet): wait for its signature note
                self.pending.park(batch_id, sealed)
                return None
            self.counters.add("mac_ok")
        if self._certified and not self.members.knows(signer):
            raise DroppedMessage("uncertified", f"batch from uncertified {signer}", node=signer)
        if not self._replay.accept(signer, sealed.epoch, sealed.seq):
            raise DroppedMessage("replay", "replayed batch", node=signer)
        if not self.quotas.take(signer, count, size):  # authenticated: now it pays
            self.counters.add("dropped_quota_ops", count)
            raise DroppedMessage("quota", f"{signer} is over its quota", node=signer)
        return Accepted(sealed, batch_id, signer, count)

    def open(self, accepted: Accepted) -> Opened:
        """Decode an accepted batch's operations (on the thread that applies them, so that
        a large batch holds up no other signer's on the zenoh thread).

        Raises:
            DroppedMessage: malformed operations, or not as many as its header said.
        """
        sealed, signer = accepted.sealed, accepted.signer
        ops = self.codec.ops(sealed, signer)
        if len(ops) != accepted.count:
            raise DroppedMessage("malformed", "operations of another count", node=signer)
        return Opened(sealed, accepted.batch_id, signer, ops)

    def _note(self, note: SigNote) -> list[Accepted | Cover]:
        waiting = self.pending.take(note.ids)
        if not waiting:
            # it signs batches we already applied on their MACs: checked when first used
            return [Cover(note, verified=False)]
        try:
            self.codec.verify_note(note)  # it decides batches we hold back: check now
        except DroppedMessage:
            # a forged note must not cost the genuine one its batches
            self.pending.put_back([(self.codec.message(b)[1], b) for b in waiting])
            raise
        out: list[Accepted | Cover] = []
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
