"""Opening inbound messages: size, schema, version, signature and value checks.

Anything wrong raises :class:`DroppedMessage` (an :class:`~smesh.errors.InvalidMessage`)
with a short ``reason`` for the counters, never anything else: msgspec decodes into typed
structs only (no arbitrary objects), every operation's values are checked against the
signal's domain, and every address is recomputed from the content it names.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

from smesh.errors import InvalidMessage, InvalidSignal
from smesh.mesh.identity import PUBLIC_KEY_BYTES, SIGNATURE_BYTES, Verifier, node_id_of
from smesh.mesh.wire import (
    _ADDRESS,
    _MAX_NAME,
    MAX_CERT_BYTES,
    MAX_MESSAGE_BYTES,
    MAX_NOTE_IDS,
    MAX_OPS,
    VERSION,
    EmitOp,
    Envelope,
    Hello,
    MarkOp,
    Op,
    Opened,
    Sealed,
    SigNote,
    SyncReply,
    _signed_message,
    batch_id_of,
    note_message,
)
from smesh.signal import Signal, compute_address

__all__ = ["Codec", "DroppedMessage", "check_mark", "op_count", "signal_of"]

_decode_sealed = msgspec.msgpack.Decoder(Sealed).decode
_decode_envelope = msgspec.msgpack.Decoder(Envelope).decode
_decode_reply = msgspec.msgpack.Decoder(SyncReply).decode
_decode_ops = msgspec.msgpack.Decoder(list[Op]).decode


class DroppedMessage(InvalidMessage):
    """An inbound message that was dropped, with a short ``reason`` for the counters."""

    def __init__(self, reason: str, message: str, *, node: str | None = None) -> None:
        super().__init__(message, node=node)
        self.reason = reason


def op_count(body: bytes) -> int:
    """How many operations a batch's encoding holds, from its msgpack array header alone.

    Raises:
        DroppedMessage: the encoding does not start with an array.
    """
    if body:
        head = body[0]
        if 0x90 <= head <= 0x9F:
            return head & 0x0F
        if head == 0xDC and len(body) >= 3:
            return int.from_bytes(body[1:3], "big")
        if head == 0xDD and len(body) >= 5:
            return int.from_bytes(body[1:5], "big")
    raise DroppedMessage("malformed", "operations that are not a list")


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
        if isinstance(message, Hello) and len(message.cert) > MAX_CERT_BYTES:
            raise DroppedMessage("malformed", "hello with an oversized certificate")
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
        if any(len(cert) > MAX_CERT_BYTES for cert in reply.certs) or not (
            -1 <= reply.next < 2**63
        ):
            raise DroppedMessage("malformed", "sync reply with a bad certificate or cursor")
        return reply

    def check(self, sealed: Sealed, message: bytes, signer: str) -> None:
        """Check a batch's own signature over ``message`` (from :meth:`message`).

        Raises:
            DroppedMessage: another version, a malformed signature, or a bad one.
        """
        if sealed.v != VERSION:
            raise DroppedMessage("version", f"batch of version {sealed.v} dropped")
        if len(sealed.sig) != SIGNATURE_BYTES:
            raise DroppedMessage("malformed", "batch with a malformed signature")
        if not self.verifier.verify(sealed.signer, sealed.sig, message):
            raise DroppedMessage(
                "bad_signature", f"batch from {signer} with a bad signature", node=signer
            )

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
