"""Fast authentication on the live channel: pairwise MAC keys, signatures that follow.

Ed25519 costs ~45 µs to sign and ~110 µs to verify on this project's machine, more than a
whole zenoh hop, so on the live path a batch is authenticated the way PBFT does it: with an
*authenticator*, one MAC per receiver, under a key that only the sender and that receiver
hold. Keys come from an X25519 exchange whose public halves travel in signed :class:`Hello`
messages (one per node and process start), so a MAC is as good as a signature *to its
receiver*: nobody else can compute it. The sender publishes the batch with its MACs at once,
then signs it and publishes the signature (a :class:`~smesh.mesh.wire.SigNote`) right after;
replicas keep the signed batch, which is what makes provenance transferable and what late
joiners (who hold no pairwise key with the sender) verify.

A receiver with no MAC addressed to it (it joined a moment ago) waits for the signature.
A MAC addressed to it that does not check is a forgery or a tampered batch: dropped.
"""

from __future__ import annotations

import hmac
import struct
import threading
from hashlib import blake2b

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from smesh.mesh.identity import Identity, Verifier, node_id_of
from smesh.mesh.wire import Hello

__all__ = ["MAC_BYTES", "Keyring", "mailbox"]

MAC_BYTES = 16
_TO_BYTES = 8  # a MAC is addressed to a receiver by 8 bytes of blake2b(its key, its epoch)
_EPOCH = struct.Struct(">q")
_HELLO = b"smesh-hello/1"


def mailbox(public_key: bytes, epoch: int) -> bytes:
    """The 8-byte address of a node's MACs for one process start (key and epoch)."""
    return blake2b(public_key + _EPOCH.pack(epoch), digest_size=_TO_BYTES).digest()


def hello_message(mesh: str, signer: bytes, epoch: int, kx: bytes) -> bytes:
    """The bytes a :class:`Hello` signs."""
    return b"".join((_HELLO, mesh.encode(), b"\0", signer, _EPOCH.pack(epoch), kx))


class Keyring:
    """This node's key-agreement key and its pairwise MAC keys with verified peers.

    Args:
        identity: this node's signing identity.
        mesh: the mesh name (bound into every key).
        epoch: this process start's epoch.
    """

    def __init__(self, identity: Identity, mesh: str, epoch: int) -> None:
        self._identity = identity
        self._mesh = mesh
        self._epoch = epoch
        self._kx = x25519.X25519PrivateKey.generate()
        kx_public = self._kx.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.hello = Hello(
            v=1,
            signer=identity.public_key,
            epoch=epoch,
            kx=kx_public,
            sig=identity.sign(hello_message(mesh, identity.public_key, epoch, kx_public)),
        )
        self.box = mailbox(identity.public_key, epoch)
        self._lock = threading.Lock()
        # peer node id -> (its epoch, its mailbox, the pairwise key)
        self._peers: dict[str, tuple[int, bytes, bytes]] = {}

    def learn(self, hello: Hello, verifier: Verifier) -> bool:
        """Check a peer's hello and derive the pairwise key; True if it was new.

        Returns False for our own hello, an old epoch, one already known, or a bad
        signature (the caller counts that).
        """
        if hello.signer == self._identity.public_key or len(hello.kx) != 32:
            return False
        node = node_id_of(hello.signer)
        with self._lock:
            known = self._peers.get(node)
        if known is not None and known[0] >= hello.epoch:
            return False
        message = hello_message(self._mesh, hello.signer, hello.epoch, hello.kx)
        if not verifier.verify(hello.signer, hello.sig, message):
            raise ValueError("bad hello signature")
        try:
            shared = self._kx.exchange(x25519.X25519PublicKey.from_public_bytes(hello.kx))
        except ValueError:
            raise ValueError("bad key-agreement key") from None
        ends = sorted([(self._identity.public_key, self._epoch), (hello.signer, hello.epoch)])
        info = b"".join(
            [b"smesh-mac/1", self._mesh.encode(), b"\0"]
            + [key + _EPOCH.pack(epoch) for key, epoch in ends]
        )
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(shared)
        with self._lock:
            self._peers[node] = (hello.epoch, mailbox(hello.signer, hello.epoch), key)
        return True

    def forget(self, node: str) -> None:
        """Drop the key of a peer that left."""
        with self._lock:
            self._peers.pop(node, None)

    def tags(self, digest: bytes) -> list[bytes]:
        """One ``mailbox · MAC`` per known peer for a batch's signed digest."""
        with self._lock:
            peers = list(self._peers.values())
        return [
            box + blake2b(digest, key=key, digest_size=MAC_BYTES).digest() for _, box, key in peers
        ]

    def check(self, signer: str, epoch: int, digest: bytes, macs: list[bytes]) -> bool | None:
        """Whether the MAC addressed to us checks: None when there is none we can check
        (no MAC for this process start, or no key with that start of the signer yet)."""
        mine = next((m for m in macs if m[:_TO_BYTES] == self.box), None)
        if mine is None:
            return None
        with self._lock:
            entry = self._peers.get(signer)
        if entry is None or entry[0] != epoch:
            return None
        expected = blake2b(digest, key=entry[2], digest_size=MAC_BYTES).digest()
        return hmac.compare_digest(mine[_TO_BYTES:], expected)
