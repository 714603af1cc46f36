"""The wire format: compact, versioned, signed msgpack envelopes.

A node publishes its field operations in *batches*. A :class:`Sealed` batch is an array
``[version, signer public key, epoch, seq, ops, signature]`` where ``ops`` is the canonical
msgpack encoding (sorted keys) of a list of operations:

- ``[1, kind, payload, origin, intensity, confidence, ttl, decay, radius, created_at, scope]``
  emit (the signal's content; receivers recompute its address),
- ``[2, address, by, at]`` reinforce, ``[3, address, by, at]`` renew (``at`` becomes the new
  ``created_at``), ``[4, address, by, at]`` withdraw (a tombstone up to ``at``).

The signature is Ed25519 over ``"smesh/1" · mesh · signer · epoch · seq · blake2b-256(ops)``,
so every operation is signed over its canonical encoding and bound to one mesh, one signer
and one place in that signer's sequence. A node signs once per batch: Ed25519 costs tens of
microseconds, a batch carries up to thousands of operations.

:class:`Codec` opens inbound messages and validates everything (size, schema, signature,
values); anything wrong raises :class:`DroppedMessage` (an :class:`InvalidMessage`) with a
short ``reason`` for the counters, never anything else.
"""

from __future__ import annotations

import math
import re
import struct
from hashlib import blake2b
from typing import Any

import msgspec

from smesh.decay import Exponential, Linear, Sigmoid, Step
from smesh.errors import InvalidMessage, InvalidSignal
from smesh.mesh.identity import PUBLIC_KEY_BYTES, SIGNATURE_BYTES, Identity, Verifier, node_id_of
from smesh.signal import Signal, compute_address

__all__ = [
    "MAX_MESSAGE_BYTES",
    "MAX_OPS",
    "VERSION",
    "Codec",
    "DroppedMessage",
    "EmitOp",
    "Envelope",
    "Hello",
    "Op",
    "Opened",
    "ReinforceOp",
    "RenewOp",
    "Sealed",
    "SigNote",
    "SyncReply",
    "WithdrawOp",
    "emit_op",
    "note_message",
    "pack",
    "seal",
    "signal_of",
    "signed_message",
]

VERSION = 1
#: largest inbound message accepted (a batch or one chunk of a sync reply)
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
#: most operations in one batch
MAX_OPS = 16384
_MAX_NAME = 256  # kinds, origins and reinforcer ids
_ADDRESS = re.compile(r"^[0-9a-f]{32}$")
_DOMAIN = b"smesh/1"
_NOTE = b"smesh-note/1"
#: most batch ids one signature note covers
MAX_NOTE_IDS = 4096

_Decays = Exponential | Linear | Sigmoid | Step


class EmitOp(msgspec.Struct, array_like=True, frozen=True, tag=1):
    """A signal's content, as emitted (its address is recomputed by every receiver)."""

    kind: str
    payload: Any
    origin: str
    intensity: float
    confidence: float
    ttl: float
    decay: _Decays
    radius: int
    created_at: float
    scope: str


class ReinforceOp(msgspec.Struct, array_like=True, frozen=True, tag=2):
    """Node ``by`` corroborates the signal at ``address`` (at time ``at``)."""

    address: str
    by: str
    at: float


class RenewOp(msgspec.Struct, array_like=True, frozen=True, tag=3):
    """The origin restarts the signal's age: ``created_at`` becomes ``at``."""

    address: str
    by: str
    at: float


class WithdrawOp(msgspec.Struct, array_like=True, frozen=True, tag=4):
    """The origin removes the signal: a tombstone for everything at or before ``at``."""

    address: str
    by: str
    at: float


Op = EmitOp | ReinforceOp | RenewOp | WithdrawOp
MarkOp = ReinforceOp | RenewOp | WithdrawOp


class Sealed(msgspec.Struct, array_like=True, frozen=True, tag=1):
    """One signed batch of operations, exactly as it travels and as replicas keep it.

    On the live channel ``sig`` may be empty, with ``macs`` authenticating the batch to each
    receiver and the signature following in a :class:`SigNote` (see
    :mod:`smesh.mesh.auth`); replicas keep and serve the batch with its signature.
    """

    v: int
    signer: bytes
    epoch: int
    seq: int
    ops: bytes
    sig: bytes
    macs: list[bytes] = []


class SigNote(msgspec.Struct, array_like=True, frozen=True, tag=2):
    """One signature over the ids of batches sent before with MACs only.

    A node signs its live batches in groups, every few milliseconds at most, so that
    signing (tens of microseconds) stays off the path of each batch; a replica keeps each
    batch with the note that covers it, and that pair is what late joiners verify.
    """

    v: int
    signer: bytes
    epoch: int
    ids: list[bytes]
    sig: bytes


class Hello(msgspec.Struct, array_like=True, frozen=True, tag=3):
    """A node's key-agreement key for one process start, signed by its identity."""

    v: int
    signer: bytes
    epoch: int
    kx: bytes
    sig: bytes


Envelope = Sealed | SigNote | Hello


class SyncReply(msgspec.Struct, array_like=True, frozen=True):
    """One chunk of a replica's answer to a late joiner: batches with their signatures,
    each either its own ``sig`` or one of the ``notes`` listing its id."""

    v: int
    batches: list[Sealed]
    notes: list[SigNote] = []


class Opened(msgspec.Struct, frozen=True):
    """A verified batch: its id, signer and decoded operations."""

    sealed: Sealed
    batch_id: str
    signer: str
    ops: list[Op]


class DroppedMessage(InvalidMessage):
    """An inbound message that was dropped, with a short ``reason`` for the counters."""

    def __init__(self, reason: str, message: str, *, node: str | None = None) -> None:
        super().__init__(message, node=node)
        self.reason = reason


_encode_ops = msgspec.msgpack.Encoder(order="sorted").encode
_encode = msgspec.msgpack.Encoder().encode
_decode_sealed = msgspec.msgpack.Decoder(Sealed).decode
_decode_envelope = msgspec.msgpack.Decoder(Envelope).decode
_decode_reply = msgspec.msgpack.Decoder(SyncReply).decode
_decode_ops = msgspec.msgpack.Decoder(list[Op]).decode
_HEADER = struct.Struct(">qq")


def _signed_message(mesh: bytes, signer: bytes, epoch: int, seq: int, ops: bytes) -> bytes:
    digest = blake2b(ops, digest_size=32).digest()
    return b"".join((_DOMAIN, mesh, b"\0", signer, _HEADER.pack(epoch, seq), digest))


def note_message(mesh: str, signer: bytes, epoch: int, ids: list[bytes]) -> bytes:
    """What a :class:`SigNote`'s signature covers."""
    return b"".join((_NOTE, mesh.encode(), b"\0", signer, _HEADER.pack(epoch, len(ids)), *ids))


def batch_id_of(message: bytes) -> str:
    """The id of a batch: 32 hex digits of blake2b over its signed message."""
    return blake2b(message, digest_size=16).hexdigest()


def emit_op(signal: Signal) -> EmitOp:
    """The emit operation for a signal.

    Raises:
        InvalidSignal: the signal's decay cannot cross a process boundary (a custom one).
    """
    decay = signal.decay
    if not isinstance(decay, _Decays):
        raise InvalidSignal(f"a {type(decay).__name__} decay cannot cross a process boundary")
    return EmitOp(
        kind=signal.kind,
        payload=signal.payload,
        origin=signal.origin,
        intensity=signal.intensity,
        confidence=signal.confidence,
        ttl=signal.ttl,
        decay=decay,
        radius=signal.radius,
        created_at=signal.created_at,
        scope=signal.scope,
    )


def pack(ops: list[Op]) -> bytes:
    """The canonical encoding of a batch's operations.

    Raises:
        InvalidSignal: a payload does not encode.
    """
    try:
        return _encode_ops(ops)
    except (TypeError, OverflowError, msgspec.EncodeError) as exc:
        raise InvalidSignal(f"signal payload must be JSON-compatible: {exc}") from None


def signed_message(mesh: str, signer: bytes, epoch: int, seq: int, body: bytes) -> bytes:
    """What a batch's signature (and each MAC) covers."""
    return _signed_message(mesh.encode(), signer, epoch, seq, body)


def seal(identity: Identity, mesh: str, epoch: int, seq: int, ops: list[Op]) -> Sealed:
    """Encode and sign a batch of operations.

    Raises:
        InvalidSignal: a payload does not encode.
    """
    body = pack(ops)
    message = _signed_message(mesh.encode(), identity.public_key, epoch, seq, body)
    return Sealed(
        v=VERSION,
        signer=identity.public_key,
        epoch=epoch,
        seq=seq,
        ops=body,
        sig=identity.sign(message),
    )


def encode(message: Sealed | SigNote | Hello | SyncReply) -> bytes:
    """The bytes of an envelope or a sync reply."""
    return _encode(message)


def sealed_id(mesh: str, sealed: Sealed) -> str:
    """The id of a batch (see :func:`batch_id_of`)."""
    return batch_id_of(
        _signed_message(mesh.encode(), sealed.signer, sealed.epoch, sealed.seq, sealed.ops)
    )


def _finite(value: float) -> bool:
    return not (math.isinf(value) or math.isnan(value))


def signal_of(op: EmitOp) -> Signal:
    """Rebuild and validate the signal an emit operation carries (address included).

    Raises:
        InvalidSignal: a value lies outside its domain.
    """
    kind, origin = op.kind, op.origin
    if not (
        0.0 <= op.intensity <= 1.0
        and 0.0 <= op.confidence <= 1.0
        and 0.0 < op.ttl < math.inf
        and op.radius >= 0
        and 0 < len(kind) <= _MAX_NAME
        and 0 < len(origin) <= _MAX_NAME
        and op.scope in ("content", "origin")
        and _finite(op.created_at)
    ):
        raise InvalidSignal("emit operation with a value out of its domain")
    scope: Any = op.scope
    return Signal(
        kind=kind,
        payload=op.payload,
        origin=origin,
        intensity=op.intensity,
        confidence=op.confidence,
        ttl=op.ttl,
        decay=op.decay,
        radius=op.radius,
        created_at=op.created_at,
        scope=scope,
        address=compute_address(kind, op.payload, origin, scope),
    )


def check_mark(op: MarkOp) -> None:
    """Validate a reinforce, renew or withdraw operation.

    Raises:
        InvalidSignal: a malformed address, node id or time.
    """
    if not (_ADDRESS.match(op.address) and 0 < len(op.by) <= _MAX_NAME and _finite(op.at)):
        raise InvalidSignal("malformed operation")


class Codec:
    """Opens inbound messages for one mesh: size, schema, version and signature checks.

    Safe to use from several threads at once (it keeps no state but a key cache).

    Args:
        mesh: the mesh name every signature is bound to.
        max_bytes: the largest message accepted.
    """

    def __init__(self, mesh: str, *, max_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self.mesh = mesh
        self._mesh = mesh.encode()
        self.max_bytes = max_bytes
        self.verifier = Verifier()

    def sealed(self, data: bytes) -> Sealed:
        """Decode one batch envelope without verifying it.

        Raises:
            DroppedMessage: oversized, malformed or of another version.
        """
        if len(data) > self.max_bytes:
            raise DroppedMessage("oversize", f"message of {len(data)} bytes dropped")
        try:
            sealed = _decode_sealed(data)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError, RecursionError) as exc:
            raise DroppedMessage("malformed", f"malformed batch: {exc}") from None
        return sealed

    def envelope(self, data: bytes) -> Sealed | SigNote | Hello:
        """Decode one live-channel message without verifying it.

        Raises:
            DroppedMessage: oversized, malformed or of another version.
        """
        if len(data) > self.max_bytes:
            raise DroppedMessage("oversize", f"message of {len(data)} bytes dropped")
        try:
            message: Sealed | SigNote | Hello = _decode_envelope(data)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError, RecursionError) as exc:
            raise DroppedMessage("malformed", f"malformed message: {exc}") from None
        if message.v != VERSION:
            raise DroppedMessage("version", f"message of version {message.v} dropped")
        if len(message.signer) != PUBLIC_KEY_BYTES:
            raise DroppedMessage("malformed", "message with a malformed signer key")
        seq = getattr(message, "seq", 0)
        if not (0 <= message.epoch < 2**63 and 0 <= seq < 2**63):
            raise DroppedMessage("malformed", "message with an epoch or seq out of range")
        if isinstance(message, SigNote) and (
            len(message.ids) > MAX_NOTE_IDS or any(len(i) != 16 for i in message.ids)
        ):
            raise DroppedMessage("malformed", "signature note with malformed ids")
        return message

    def verify_note(self, note: SigNote) -> str:
        """Check a signature note; return its signer's node id.

        Raises:
            DroppedMessage: malformed, or a bad signature.
        """
        if (
            note.v != VERSION
            or len(note.signer) != PUBLIC_KEY_BYTES
            or len(note.ids) > MAX_NOTE_IDS
            or any(len(i) != 16 for i in note.ids)
            or not 0 <= note.epoch < 2**63
        ):
            raise DroppedMessage("malformed", "malformed signature note")
        signer = node_id_of(note.signer)
        message = note_message(self.mesh, note.signer, note.epoch, note.ids)
        if not self.verifier.verify(note.signer, note.sig, message):
            raise DroppedMessage(
                "bad_signature", f"signature note from {signer} does not verify", node=signer
            )
        return signer

    def message(self, sealed: Sealed) -> tuple[bytes, str]:
        """What ``sealed``'s signature and MACs cover, and its batch id.

        Raises:
            DroppedMessage: a malformed key, epoch or seq.
        """
        if not (
            len(sealed.signer) == PUBLIC_KEY_BYTES
            and 0 <= sealed.epoch < 2**63
            and 0 <= sealed.seq < 2**63
        ):
            raise DroppedMessage("malformed", "batch with a malformed key, epoch or seq")
        message = _signed_message(self._mesh, sealed.signer, sealed.epoch, sealed.seq, sealed.ops)
        return message, batch_id_of(message)

    def reply(self, data: bytes) -> SyncReply:
        """Decode one sync-reply chunk without verifying its batches.

        Raises:
            DroppedMessage: oversized, malformed or of another version.
        """
        if len(data) > self.max_bytes:
            raise DroppedMessage("oversize", f"sync reply of {len(data)} bytes dropped")
        try:
            reply = _decode_reply(data)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError, RecursionError) as exc:
            raise DroppedMessage("malformed", f"malformed sync reply: {exc}") from None
        if reply.v != VERSION:
            raise DroppedMessage("version", f"sync reply of version {reply.v} dropped")
        return reply

    def verify(self, sealed: Sealed) -> tuple[str, str]:
        """Check a batch's version and signature; return its id and its signer's node id.

        Raises:
            DroppedMessage: another version, or a bad signature.
        """
        if sealed.v != VERSION:
            raise DroppedMessage("version", f"batch of version {sealed.v} dropped")
        if len(sealed.signer) != PUBLIC_KEY_BYTES or len(sealed.sig) != SIGNATURE_BYTES:
            raise DroppedMessage("malformed", "batch with a malformed key or signature")
        if not (0 <= sealed.epoch < 2**63 and 0 <= sealed.seq < 2**63):
            raise DroppedMessage("malformed", "batch with an epoch or seq out of range")
        signer = node_id_of(sealed.signer)
        message = _signed_message(self._mesh, sealed.signer, sealed.epoch, sealed.seq, sealed.ops)
        if not self.verifier.verify(sealed.signer, sealed.sig, message):
            raise DroppedMessage(
                "bad_signature", f"batch from {signer} with a bad signature", node=signer
            )
        return batch_id_of(message), signer

    def ops(self, sealed: Sealed, signer: str) -> list[Op]:
        """Decode a verified batch's operations.

        Raises:
            DroppedMessage: malformed operations, or too many.
        """
        try:
            ops = _decode_ops(sealed.ops)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError, RecursionError) as exc:
            raise DroppedMessage(
                "malformed", f"malformed operations from {signer}: {exc}", node=signer
            ) from None
        if len(ops) > MAX_OPS:
            raise DroppedMessage("oversize", f"batch of {len(ops)} operations", node=signer)
        return ops

    def open(self, data: bytes) -> Opened:
        """Decode, verify and decode the operations of one batch message.

        Raises:
            DroppedMessage: the message is invalid in any way.
        """
        sealed = self.sealed(data)
        batch_id, signer = self.verify(sealed)
        return Opened(sealed, batch_id, signer, self.ops(sealed, signer))
