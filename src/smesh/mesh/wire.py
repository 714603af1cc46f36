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

:mod:`smesh.mesh.codec` opens and validates inbound messages.
"""

from __future__ import annotations

import re
import struct
from hashlib import blake2b
from typing import Any

import msgspec

from smesh.decay import Exponential, Linear, Sigmoid, Step
from smesh.errors import InvalidSignal
from smesh.mesh.identity import Identity
from smesh.signal import Signal

__all__ = [
    "MAX_CERT_BYTES",
    "MAX_MESSAGE_BYTES",
    "MAX_OPS",
    "VERSION",
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
    "batch_id_of",
    "emit_op",
    "encode",
    "note_message",
    "pack",
    "seal",
    "sealed_id",
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
#: largest certificate a hello or a sync reply may carry (an Ed25519 one is ~400 bytes)
MAX_CERT_BYTES = 4096

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
    """A node's key-agreement key for one process start, signed by its identity, with the
    certificate (DER) that binds its key to the mesh CA, on a mesh that has one (see
    :mod:`smesh.mesh.members`; the certificate is signed by the CA, not by the node)."""

    v: int
    signer: bytes
    epoch: int
    kx: bytes
    sig: bytes
    cert: bytes = b""


Envelope = Sealed | SigNote | Hello


class SyncReply(msgspec.Struct, array_like=True, frozen=True):
    """One chunk of a replica's answer to a late joiner: batches with their signatures,
    each either its own ``sig`` or one of the ``notes`` listing its id.

    An answer is paged: the last chunk of a page carries the notes and the certificates of
    its signers (on a mesh with a CA), and ``next``, the cursor to ask the next page from
    (-1: that was all). ``busy``: the replica serves no more now; ask again shortly.
    """

    v: int
    batches: list[Sealed]
    notes: list[SigNote] = []
    certs: list[bytes] = []
    next: int = -1
    busy: bool = False


class Opened(msgspec.Struct, frozen=True):
    """A verified batch: its id, signer and decoded operations."""

    sealed: Sealed
    batch_id: str
    signer: str
    ops: list[Op]


_encode_ops = msgspec.msgpack.Encoder(order="sorted").encode
_encode = msgspec.msgpack.Encoder().encode
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
