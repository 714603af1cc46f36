"""Node identity: an Ed25519 key, and a node id derived from its public half.

A node signs everything it publishes (see :mod:`smesh.mesh.wire`); a receiver needs nothing
but the message to check it, because every message carries the signer's 32-byte public key
and the node id is a hash of that key. Nobody can claim a node id without holding its key.

The same key can serve as the node's TLS key: :func:`smesh.mesh.pki.issue` writes an
Ed25519 key that :meth:`Identity.load` reads, and a certificate that names the node id.

Agent names on a mesh are scoped under the node that hosts them: ``<node id>/<agent>``
(:func:`agent_name`). A node may speak only for its own agents: receivers drop any
operation whose origin or reinforcer is not scoped under the node that signed it, so every
name in a replica is authenticated by the key that signed it (:func:`speaks_for`).
"""

from __future__ import annotations

import os
from hashlib import blake2b
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from smesh.errors import UsageError

__all__ = [
    "PUBLIC_KEY_BYTES",
    "SIGNATURE_BYTES",
    "Identity",
    "Verifier",
    "agent_name",
    "node_id_of",
    "node_of",
    "speaks_for",
]

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
NODE_ID_CHARS = 32
_ID_PERSON = b"smesh-node-id"
_HEX = frozenset("0123456789abcdef")


def node_id_of(public_key: bytes) -> str:
    """The node id for a raw Ed25519 public key: 32 hex digits (128 bits) of blake2b."""
    return blake2b(public_key, digest_size=16, person=_ID_PERSON).hexdigest()


def agent_name(node_id: str, agent: str) -> str:
    """The mesh-wide name of agent ``agent`` hosted by ``node_id``: ``<node id>/<agent>``."""
    return f"{node_id}/{agent}"


def speaks_for(node_id: str, name: str) -> bool:
    """Whether ``name`` is one of ``node_id``'s agents (``<node id>/<something>``)."""
    return (
        name.startswith(node_id)
        and name[NODE_ID_CHARS : NODE_ID_CHARS + 1] == "/"
        and (len(name) > NODE_ID_CHARS + 1)
    )


def node_of(name: str) -> str | None:
    """The node id an agent name is scoped under, or None for a name scoped under none."""
    head = name[:NODE_ID_CHARS]
    if len(name) > NODE_ID_CHARS + 1 and name[NODE_ID_CHARS] == "/" and set(head) <= _HEX:
        return head
    return None


class Identity:
    """A node's signing key.

    Args:
        key: the Ed25519 private key.
    """

    __slots__ = ("_key", "node_id", "public_key")

    def __init__(self, key: ed25519.Ed25519PrivateKey) -> None:
        self._key = key
        self.public_key: bytes = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.node_id: str = node_id_of(self.public_key)

    @classmethod
    def generate(cls) -> Identity:
        """A fresh random identity (kept in memory only)."""
        return cls(ed25519.Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: str | Path) -> Identity:
        """Read a PKCS#8 PEM Ed25519 key (as written by :meth:`save` or ``smesh mesh issue``).

        Raises:
            UsageError: the file is missing or holds something else.
        """
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read node key {path}: {exc.strerror}") from None
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise UsageError(f"{path} is not an unencrypted PEM private key: {exc}") from None
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise UsageError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
        return cls(key)

    @classmethod
    def load_or_create(cls, path: str | Path) -> Identity:
        """Load the key at ``path``, creating it (mode 0600) if it does not exist yet."""
        target = Path(path)
        if target.exists():
            return cls.load(target)
        identity = cls.generate()
        identity.save(target)
        return identity

    def save(self, path: str | Path) -> None:
        """Write the key as PKCS#8 PEM, readable by the owner only; never overwrites.

        Raises:
            UsageError: the file exists already.
        """
        pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise UsageError(f"{target} exists; not overwriting a key") from None
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        return self._key.sign(message)

    def __repr__(self) -> str:
        return f"Identity({self.node_id})"


class Verifier:
    """Checks Ed25519 signatures, keeping parsed public keys in a bounded cache.

    Safe to share between threads: the cache is a plain dict whose single operations are
    atomic, and it is simply emptied when full (a mesh has far fewer nodes than that).

    Args:
        capacity: most public keys kept parsed.
    """

    __slots__ = ("_capacity", "_keys")

    def __init__(self, capacity: int = 4096) -> None:
        self._keys: dict[bytes, ed25519.Ed25519PublicKey] = {}
        self._capacity = capacity

    def verify(self, public_key: bytes, signature: bytes, message: bytes) -> bool:
        """Whether ``signature`` is ``public_key``'s signature of ``message``."""
        if len(public_key) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
            return False
        key = self._keys.get(public_key)
        if key is None:
            try:
                key = ed25519.Ed25519PublicKey.from_public_bytes(public_key)
            except ValueError:
                return False
            if len(self._keys) >= self._capacity:
                self._keys.clear()
            self._keys[public_key] = key
        try:
            key.verify(signature, message)
        except InvalidSignature:
            return False
        return True
