"""Who may speak on a mesh that has a CA: signers whose key a certificate of that CA names.

With mutual TLS, a link opens only between holders of certificates the mesh CA issued. That
alone does not say *who signs* what crosses the link: a member could sign with any other
Ed25519 key and speak under that key's node id. So every signer must be bound to a
certificate: a node puts its certificate (DER) in its signed :class:`~smesh.mesh.wire.Hello`
and replicas pass the certificates of the signers they serve to late joiners; a receiver
checks each one against the CA, once, and from then on accepts operations signed by that
key, and nothing signed by a key no certificate names (``dropped_uncertified``).

Why in the hello and not at the TLS handshake: zenoh tells which certificate *common name*
each link's peer presented, but neither that certificate's key nor which link a message came
over, and in a peer mesh messages are relayed by peers we have no link with. A certificate
that travels with the key it binds can be checked by every receiver, however the message
came, and by late joiners after the signer has gone.

A certificate binds a key when it carries the subject alternative name
``smesh:node:<node id>`` of that key's node (what :func:`smesh.mesh.pki.issue` writes), or,
without such a name, when its subject key is the signing key itself. With an allow-list, the
certificate's common name must be on it too.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID

from smesh.errors import UsageError
from smesh.mesh.codec import DroppedMessage
from smesh.mesh.identity import node_id_of
from smesh.mesh.pki import NODE_URI
from smesh.mesh.wire import MAX_CERT_BYTES

__all__ = ["Members"]


class Members:
    """The certified signers of one mesh (thread-safe).

    Args:
        ca: the CA certificate (PEM) that issues members' certificates; None: no CA, every
            signer may speak (plain TCP meshes still check agent names, see
            :func:`smesh.mesh.identity.speaks_for`).
        allow: certificate common names allowed to speak (empty: any the CA issued).
        capacity: most members remembered (and most certificates checked and cached).
    """

    def __init__(
        self, ca: Path | None = None, *, allow: Iterable[str] = (), capacity: int = 4096
    ) -> None:
        self._ca: x509.Certificate | None = None
        if ca is not None:
            try:
                self._ca = x509.load_pem_x509_certificate(Path(ca).read_bytes())
            except (OSError, ValueError) as exc:
                raise UsageError(f"cannot read the mesh CA certificate {ca}: {exc}") from None
        self._allow = frozenset(allow)
        self._capacity = capacity
        self._lock = threading.Lock()
        self._members: dict[str, bytes] = {}  # node id -> its certificate (DER)
        # certificate (DER) -> ("" or why it is refused, the node ids it binds)
        self._checked: dict[bytes, tuple[str, tuple[str, ...]]] = {}

    @property
    def required(self) -> bool:
        """Whether signers need a certificate (the mesh has a CA)."""
        return self._ca is not None

    def own(self, public_key: bytes, cert_pem: Path) -> bytes:
        """Check that this node's certificate names its signing key; return it as DER.

        Raises:
            UsageError: the certificate is unreadable, or binds another key (the node
                would sign as someone its certificate does not name).
        """
        try:
            cert = x509.load_pem_x509_certificate(Path(cert_pem).read_bytes())
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read the node certificate {cert_pem}: {exc}") from None
        der = cert.public_bytes(serialization.Encoding.DER)
        try:
            self.admit(public_key, der)
        except DroppedMessage as exc:
            raise UsageError(
                f"{cert_pem} does not certify this node's signing key "
                f"{node_id_of(public_key)} ({exc.reason.replace('_', ' ')}): sign with the "
                "key the certificate was issued for"
            ) from None
        return der

    def admit(self, public_key: bytes, cert: bytes) -> str:
        """Check ``cert`` for the signer ``public_key``; remember the signer; return its
        node id. Without a CA every signer is admitted.

        Raises:
            DroppedMessage: no certificate, or one that is not the CA's, has expired, binds
                another key, or names someone off the allow-list.
        """
        node = node_id_of(public_key)
        if self._ca is None:
            return node
        if not cert:
            raise DroppedMessage("uncertified", f"signer {node} shows no certificate", node=node)
        nodes = self._nodes(cert, node)
        if node not in nodes:
            raise DroppedMessage(
                "foreign_certificate", f"signer {node} shows another's certificate", node=node
            )
        self._remember(node, cert)
        return node

    def admit_certificate(self, cert: bytes) -> tuple[str, ...]:
        """Check a certificate passed on by a replica; remember the nodes it names.

        Raises:
            DroppedMessage: it is not a valid member certificate.
        """
        nodes = self._nodes(cert, None)
        for node in nodes:
            self._remember(node, cert)
        return nodes

    def _nodes(self, cert: bytes, node: str | None) -> tuple[str, ...]:
        with self._lock:
            checked = self._checked.get(cert)
        if checked is None:
            checked = self._check(cert)
            with self._lock:
                if len(self._checked) >= self._capacity:
                    self._checked.clear()
                self._checked[cert] = checked
        reason, nodes = checked
        if reason:
            raise DroppedMessage(
                reason, f"certificate refused: {reason.replace('_', ' ')}", node=node
            )
        return nodes

    def knows(self, node: str) -> bool:
        """Whether ``node`` may speak: a certified member, or anyone without a CA."""
        return self._ca is None or node in self._members

    def certificates(self, nodes: Iterable[str]) -> list[bytes]:
        """The certificates of those of ``nodes`` that are members (for a late joiner)."""
        with self._lock:
            found = [self._members.get(node) for node in dict.fromkeys(nodes)]
        return list(dict.fromkeys(cert for cert in found if cert))

    def _remember(self, node: str, cert: bytes) -> None:
        with self._lock:
            if node not in self._members and len(self._members) >= self._capacity:
                # a CA issues a bounded number of certificates; forget the oldest member
                # rather than grow (it is readmitted with its next hello)
                del self._members[next(iter(self._members))]
            self._members[node] = cert

    def _check(self, der: bytes) -> tuple[str, tuple[str, ...]]:
        """("", the nodes it names) for a valid member certificate, else (why not, ())."""
        ca = self._ca
        if ca is None or len(der) > MAX_CERT_BYTES:
            return "bad_certificate", ()
        try:
            cert = x509.load_der_x509_certificate(der)
            cert.verify_directly_issued_by(ca)  # issuer name and the CA's signature
            now = dt.datetime.now(dt.UTC)
            if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
                return "expired_certificate", ()
            if cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
                return "bad_certificate", ()
            nodes = _named(cert)
        except Exception:  # InvalidSignature, and whatever a hostile certificate provokes
            return "bad_certificate", ()
        if self._allow:
            names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            if not names or names[0].value not in self._allow:
                return "not_allowed", ()
        return ("", nodes) if nodes else ("foreign_certificate", ())


def _named(cert: x509.Certificate) -> tuple[str, ...]:
    """The node ids ``cert`` binds: its ``smesh:node:`` names, or else its subject key's."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = sans.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    ours = tuple(u[len(NODE_URI) :] for u in uris if u.startswith(NODE_URI))
    if ours:
        return ours
    subject_key = cert.public_key()
    if isinstance(subject_key, ed25519.Ed25519PublicKey):
        return (node_id_of(subject_key.public_bytes_raw()),)
    return ()
