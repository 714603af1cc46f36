"""A small certificate authority for mTLS between mesh peers.

``smesh mesh init-ca DIR`` creates an Ed25519 CA; ``smesh mesh issue NODE --ca DIR`` issues a
certificate for one node, signed by that CA, usable both to accept connections and to open
them (zenoh peers do both). The node's TLS key is also its signing identity: the key in
``NODE.key`` is the Ed25519 key whose public half names the node (see
:mod:`smesh.mesh.identity`), and the certificate says so twice: its subject key is that key,
and a subject alternative name ``smesh:node:<node id>`` (:func:`node_uri`) names the node.
A node shows its certificate in its signed hello; every receiver checks it against the CA
and binds the signer to it (:mod:`smesh.mesh.members`).

Peers verify each other against the CA only, not against host names: a mesh is a set of
nodes, not of DNS names, and access control (optional) goes by the certificate's common name.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from pathlib import Path

import msgspec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from smesh.errors import UsageError
from smesh.mesh.identity import node_id_of

__all__ = [
    "CA_CERT",
    "CA_KEY",
    "NODE_URI",
    "NodeCredentials",
    "init_ca",
    "issue",
    "load_credentials",
    "node_uri",
]

CA_CERT = "ca.pem"
CA_KEY = "ca.key"
#: the scheme of the subject alternative name that binds a certificate to a node id
NODE_URI = "smesh:node:"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def node_uri(node_id: str) -> str:
    """The subject alternative name (a URI) that binds a certificate to ``node_id``."""
    return NODE_URI + node_id


class NodeCredentials(msgspec.Struct, frozen=True, kw_only=True):
    """Paths of one node's TLS material.

    Attributes:
        name: the node name (the certificate's common name).
        ca: the CA certificate that every peer trusts.
        cert: this node's certificate.
        key: this node's private key (PKCS#8 PEM, Ed25519; also its signing key).
    """

    name: str
    ca: Path
    cert: Path
    key: Path


def _write_private(path: Path, data: bytes) -> None:
    # create with 0600 from the start: a key must never be readable by others, not even
    # for the instant between writing it and a chmod
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _pem_key(key: ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def init_ca(directory: str | Path, *, name: str = "smesh mesh CA", days: int = 3650) -> Path:
    """Create a CA (key and self-signed certificate) in ``directory``; return the cert path.

    Raises:
        UsageError: the directory already holds a CA.
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = root / CA_CERT, root / CA_KEY
    if cert_path.exists() or key_path.exists():
        raise UsageError(f"{root} already holds a CA ({CA_CERT}, {CA_KEY}); not overwriting")
    key = ed25519.Ed25519PrivateKey.generate()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, None)  # Ed25519 signs without a separate digest
    )
    _write_private(key_path, _pem_key(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path


def _san(name: str, node_id: str, hosts: tuple[str, ...]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = [x509.UniformResourceIdentifier(node_uri(node_id))]
    if "_" not in name:
        entries.append(x509.DNSName(name))
    for host in hosts:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            entries.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(entries)


def issue(
    node: str,
    *,
    ca: str | Path,
    out: str | Path | None = None,
    hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
    days: int = 825,
) -> NodeCredentials:
    """Issue a certificate for ``node`` signed by the CA in ``ca``, with a fresh Ed25519 key
    that is both its TLS key and its signing identity (named in the certificate).

    Args:
        node: the node name; becomes the certificate's common name.
        ca: the CA directory (from :func:`init_ca`).
        out: where to write ``NODE.pem`` and ``NODE.key`` (default: the CA directory).
        hosts: host names and IP addresses to list as subject alternative names.
        days: validity.

    Raises:
        UsageError: a bad node name, no CA there, or the node already has a certificate.
    """
    if not _NAME.match(node):
        raise UsageError(f"node name must be 1-63 letters, digits, '.', '_' or '-': {node!r}")
    ca_dir = Path(ca)
    try:
        ca_cert = x509.load_pem_x509_certificate((ca_dir / CA_CERT).read_bytes())
        ca_key = serialization.load_pem_private_key((ca_dir / CA_KEY).read_bytes(), None)
    except FileNotFoundError:
        raise UsageError(f"no CA in {ca_dir}: run `smesh mesh init-ca {ca_dir}` first") from None
    if not isinstance(ca_key, ed25519.Ed25519PrivateKey):
        raise UsageError(f"{ca_dir / CA_KEY} is not an Ed25519 key")
    target = Path(out) if out is not None else ca_dir
    target.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = target / f"{node}.pem", target / f"{node}.key"
    if cert_path.exists() or key_path.exists():
        raise UsageError(f"{node} already has a certificate in {target}; not overwriting")
    key = ed25519.Ed25519PrivateKey.generate()
    public = key.public_key()
    now = dt.datetime.now(dt.UTC)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node)]))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(_san(node, node_id_of(public.public_bytes_raw()), hosts), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, None)
    )
    _write_private(key_path, _pem_key(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return NodeCredentials(name=node, ca=ca_dir / CA_CERT, cert=cert_path, key=key_path)


def load_credentials(
    node: str, *, ca: str | Path, directory: str | Path | None = None
) -> NodeCredentials:
    """The paths of a node's existing credentials (``NODE.pem``/``NODE.key`` next to the CA
    unless ``directory`` says otherwise).

    Raises:
        UsageError: a file is missing.
    """
    ca_dir = Path(ca)
    where = Path(directory) if directory is not None else ca_dir
    creds = NodeCredentials(
        name=node, ca=ca_dir / CA_CERT, cert=where / f"{node}.pem", key=where / f"{node}.key"
    )
    for path in (creds.ca, creds.cert, creds.key):
        if not path.is_file():
            raise UsageError(f"missing TLS file {path}")
    return creds
