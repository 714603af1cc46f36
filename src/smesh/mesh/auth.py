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
import time
from hashlib import blake2b
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from smesh.mesh.codec import DroppedMessage
from smesh.mesh.identity import Identity, Verifier, node_id_of
from smesh.mesh.limits import Limits
from smesh.mesh.quota import Bucket
from smesh.mesh.replica import Counters
from smesh.mesh.wire import Hello

if TYPE_CHECKING:
    from smesh.mesh.members import Members

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


class _PeerKey:
    __slots__ = ("box", "epoch", "key", "seen", "sig")

    def __init__(self, epoch: int, box: bytes, key: bytes, seen: float, sig: bytes) -> None:
        self.epoch = epoch
        self.box = box
        self.key = key
        self.seen = seen
        self.sig = sig


class Keyring:
    """This node's key-agreement key and its pairwise MAC keys with verified peers.

    Keys are bounded: one per peer node, at most ``limits.max_peers`` of them, each
    expiring ``limits.peer_ttl_s`` after the peer's last hello (peers say hello again every
    ``limits.hello_interval_s``). When full, the least recently seen key of a node whose
    liveliness token is not up goes first (see :meth:`present`). So hellos from keys
    nobody runs can neither push out the keys of present peers nor make every batch we
    send carry a MAC for each of them for long.

    Args:
        identity: this node's signing identity.
        mesh: the mesh name (bound into every key).
        epoch: this process start's epoch.
        cert: this node's certificate (DER) on a mesh with a CA, shown in its hello.
        limits: the bounds (default :class:`~smesh.mesh.limits.Limits`).
        counters: where evictions and expiries are counted.
    """

    def __init__(
        self,
        identity: Identity,
        mesh: str,
        epoch: int,
        *,
        cert: bytes = b"",
        limits: Limits | None = None,
        counters: Counters | None = None,
    ) -> None:
        self._identity = identity
        self._mesh = mesh
        self._epoch = epoch
        self._limits = limits if limits is not None else Limits()
        self._counters = counters if counters is not None else Counters()
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
            cert=cert,
        )
        self.box = mailbox(identity.public_key, epoch)
        self._lock = threading.Lock()
        self._peers: dict[str, _PeerKey] = {}  # peer node id -> its key
        self._tags: list[tuple[bytes, bytes]] = []  # (mailbox, key) of every live peer
        self._present: set[str] = set()  # nodes whose liveliness token is up
        # new hellos cost two public-key operations each: a budget for them
        self._new_hellos = Bucket(self._limits.hellos_per_s, self._limits.hellos_burst)
        self._next_sweep = 0.0

    def learn(self, hello: Hello, verifier: Verifier, members: Members | None = None) -> bool:
        """Check a peer's hello and derive the pairwise key; True if it was new.

        A hello already known refreshes its key. Returns False for our own hello, an old
        epoch, or one already known.

        Raises:
            ValueError: a bad signature or key-agreement key.
            DroppedMessage: its certificate does not admit it to the mesh, or new hellos
                come faster than ``limits.hellos_per_s`` (it is heard at its next one).
        """
        if hello.signer == self._identity.public_key or len(hello.kx) != 32:
            return False
        node = node_id_of(hello.signer)
        now = time.monotonic()
        with self._lock:
            known = self._peers.get(node)
            if known is not None and known.epoch >= hello.epoch:
                if known.epoch == hello.epoch and known.sig == hello.sig:
                    known.seen = now  # the same signed hello again: nothing to check
                return False
        if not self._new_hellos.take():
            raise DroppedMessage("rate", "too many new hellos at once", node=node)
        message = hello_message(self._mesh, hello.signer, hello.epoch, hello.kx)
        if not verifier.verify(hello.signer, hello.sig, message):
            raise ValueError("bad hello signature")
        if members is not None:
            members.admit(hello.signer, hello.cert)
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
        entry = _PeerKey(hello.epoch, mailbox(hello.signer, hello.epoch), key, now, hello.sig)
        with self._lock:
            self._peers.pop(node, None)
            if len(self._peers) >= self._limits.max_peers:
                present, peers = self._present, self._peers
                absent = [n for n in peers if n not in present]
                stalest = min(absent or peers, key=lambda n: peers[n].seen)
                del peers[stalest]
                self._counters.add("evicted_peer_keys")
            self._peers[node] = entry
            self._retag()
        return True

    def __len__(self) -> int:
        """How many peer keys are held (each adds a MAC to every batch we send)."""
        return len(self._tags)

    def knows(self, node: str) -> bool:
        """Whether we hold a live key with ``node`` (it said hello within the TTL)."""
        with self._lock:
            entry = self._peers.get(node)
        return entry is not None and time.monotonic() - entry.seen <= self._limits.peer_ttl_s

    def present(self, node: str, here: bool) -> None:
        """Record whether ``node``'s liveliness token is up (its key is kept first)."""
        with self._lock:
            if here:
                if len(self._present) < 4 * self._limits.max_peers:
                    self._present.add(node)
            else:
                self._present.discard(node)

    def forget(self, node: str) -> None:
        """Drop the key of a peer that left."""
        with self._lock:
            self._present.discard(node)
            if self._peers.pop(node, None) is not None:
                self._retag()

    def _retag(self) -> None:
        # under the lock: a new list, so that tags() reads it without locking
        self._tags = [(entry.box, entry.key) for entry in self._peers.values()]

    def _sweep(self, now: float) -> None:
        horizon = now - self._limits.peer_ttl_s
        with self._lock:
            self._next_sweep = now + min(1.0, self._limits.peer_ttl_s / 4)
            stale = [node for node, entry in self._peers.items() if entry.seen < horizon]
            for node in stale:
                del self._peers[node]
            if stale:
                self._retag()
        if stale:
            self._counters.add("expired_peer_keys", len(stale))

    def tags(self, digest: bytes) -> list[bytes]:
        """One ``mailbox · MAC`` per live peer key for a batch's signed digest."""
        now = time.monotonic()
        if now >= self._next_sweep:
            self._sweep(now)
        return [
            box + blake2b(digest, key=key, digest_size=MAC_BYTES).digest()
            for box, key in self._tags
        ]

    def mine(self, macs: list[bytes]) -> bytes | None:
        """The MAC among ``macs`` addressed to us, if any (found before any hashing)."""
        box = self.box
        for mac in macs:
            if mac[:_TO_BYTES] == box:
                return mac
        return None

    def check(self, signer: str, epoch: int, digest: bytes, mine: bytes | None) -> bool | None:
        """Whether ``mine``, the MAC addressed to us (see :meth:`mine`), checks: None when
        there is none we can check (no MAC for this process start, or no key with that
        start of the signer yet)."""
        if mine is None:
            return None
        with self._lock:
            entry = self._peers.get(signer)
        if entry is None or entry.epoch != epoch:
            return None
        expected = blake2b(digest, key=entry.key, digest_size=MAC_BYTES).digest()
        return hmac.compare_digest(mine[_TO_BYTES:], expected)
