"""Node identities and the small CA."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519

from smesh.errors import UsageError
from smesh.mesh import Identity, node_id_of
from smesh.mesh.identity import Verifier
from smesh.mesh.pki import init_ca, issue, load_credentials


def test_a_node_id_is_derived_from_the_public_key(tmp_path: Path) -> None:
    me = Identity.generate()
    assert me.node_id == node_id_of(me.public_key)
    assert len(me.node_id) == 32 and me.node_id != Identity.generate().node_id
    me.save(tmp_path / "node.key")
    assert Identity.load(tmp_path / "node.key").node_id == me.node_id
    assert stat.S_IMODE((tmp_path / "node.key").stat().st_mode) == 0o600
    with pytest.raises(UsageError, match="not overwriting"):
        me.save(tmp_path / "node.key")
    again = Identity.load_or_create(tmp_path / "node.key")
    assert again.node_id == me.node_id
    assert Identity.load_or_create(tmp_path / "other.key").node_id != me.node_id


def test_signatures_verify_only_for_the_signer_and_the_message() -> None:
    me, other = Identity.generate(), Identity.generate()
    verifier = Verifier(capacity=1)
    sig = me.sign(b"hello")
    assert verifier.verify(me.public_key, sig, b"hello")
    assert not verifier.verify(me.public_key, sig, b"hellO")
    assert not verifier.verify(other.public_key, sig, b"hello")
    assert not verifier.verify(me.public_key[:31], sig, b"hello")
    assert not verifier.verify(me.public_key, sig[:63], b"hello")
    assert verifier.verify(other.public_key, other.sign(b"x"), b"x")  # cache of one rotates


def test_bad_key_files_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read"):
        Identity.load(tmp_path / "missing.key")
    (tmp_path / "junk.key").write_text("not a key")
    with pytest.raises(UsageError, match="not an unencrypted PEM"):
        Identity.load(tmp_path / "junk.key")


def test_the_ca_issues_node_certificates_whose_key_is_the_node_identity(tmp_path: Path) -> None:
    ca_cert = init_ca(tmp_path / "ca")
    creds = issue("node-1", ca=tmp_path / "ca", hosts=("localhost", "127.0.0.1", "10.0.0.7"))
    assert creds == load_credentials("node-1", ca=tmp_path / "ca")
    ca = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    cert = x509.load_pem_x509_certificate(creds.cert.read_bytes())
    public = ca.public_key()
    assert isinstance(public, ed25519.Ed25519PublicKey)
    public.verify(cert.signature, cert.tbs_certificate_bytes)  # signed by the CA
    assert cert.issuer == ca.subject
    assert cert.subject.rfc4514_string() == "CN=node-1"
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "node-1" in sans.get_values_for_type(x509.DNSName)
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} == {
        "127.0.0.1",
        "10.0.0.7",
    }
    identity = Identity.load(creds.key)
    node_public = cert.public_key()
    assert isinstance(node_public, ed25519.Ed25519PublicKey)
    assert node_id_of(node_public.public_bytes_raw()) == identity.node_id
    assert stat.S_IMODE(creds.key.stat().st_mode) == 0o600


def test_the_ca_refuses_to_overwrite_and_checks_names(tmp_path: Path) -> None:
    init_ca(tmp_path)
    with pytest.raises(UsageError, match="already holds a CA"):
        init_ca(tmp_path)
    issue("n1", ca=tmp_path)
    with pytest.raises(UsageError, match="already has a certificate"):
        issue("n1", ca=tmp_path)
    with pytest.raises(UsageError, match="node name"):
        issue("../evil", ca=tmp_path)
    with pytest.raises(UsageError, match="no CA"):
        issue("n2", ca=tmp_path / "nowhere")
    with pytest.raises(UsageError, match="missing TLS file"):
        load_credentials("n3", ca=tmp_path)


def _der(path: Path) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(
        serialization.Encoding.DER
    )


def test_a_certificate_names_its_node_and_admits_only_its_own_key(tmp_path: Path) -> None:
    from smesh.errors import InvalidMessage
    from smesh.mesh.members import Members
    from smesh.mesh.pki import node_uri

    init_ca(tmp_path / "ca")
    init_ca(tmp_path / "rogue")
    alpha = issue("alpha", ca=tmp_path / "ca")
    beta = issue("beta", ca=tmp_path / "ca")
    mallory = issue("mallory", ca=tmp_path / "rogue")
    key = Identity.load(alpha.key)
    sans = (
        x509.load_pem_x509_certificate(alpha.cert.read_bytes())
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value
    )
    assert node_uri(key.node_id) in sans.get_values_for_type(x509.UniformResourceIdentifier)
    members = Members(alpha.ca)
    assert members.required and not members.knows(key.node_id)
    assert members.admit(key.public_key, _der(alpha.cert)) == key.node_id
    assert members.knows(key.node_id)
    assert members.certificates([key.node_id, "nobody"]) == [_der(alpha.cert)]
    other = Identity.generate()
    refusals = {
        "uncertified": (other.public_key, b""),
        "foreign_certificate": (other.public_key, _der(alpha.cert)),  # alpha's, not its own
        "bad_certificate": (Identity.load(mallory.key).public_key, _der(mallory.cert)),
        "bad_certificate ": (other.public_key, _der(alpha.ca)),  # the CA itself
        "bad_certificate  ": (other.public_key, b"\x30\x03junk"),
    }
    for reason, (public_key, cert) in refusals.items():
        with pytest.raises(InvalidMessage) as caught:
            members.admit(public_key, cert)
        assert getattr(caught.value, "reason", None) == reason.strip()
    assert not members.knows(other.node_id)
    # an allow-list by common name, as --allow: beta's valid certificate is not on it
    only_alpha = Members(alpha.ca, allow=["alpha"])
    with pytest.raises(InvalidMessage, match="not allowed"):
        only_alpha.admit(Identity.load(beta.key).public_key, _der(beta.cert))
    # without a CA, anyone may speak (names are still checked, elsewhere)
    assert Members().admit(other.public_key, b"") == other.node_id and Members().knows("x")


def test_an_expired_certificate_admits_no_one(tmp_path: Path) -> None:
    import datetime as dt

    from cryptography.hazmat.primitives import serialization

    from smesh.errors import InvalidMessage
    from smesh.mesh.members import Members
    from smesh.mesh.pki import node_uri

    ca_cert = init_ca(tmp_path)
    ca = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key((tmp_path / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ed25519.Ed25519PrivateKey)
    me = Identity.generate()
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "old")]))
        .issuer_name(ca.subject)
        .public_key(ed25519.Ed25519PublicKey.from_public_bytes(me.public_key))
        .serial_number(x509.random_serial_number())
        .not_valid_before(past - dt.timedelta(days=1))
        .not_valid_after(past)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(node_uri(me.node_id))]),
            critical=False,
        )
        .sign(ca_key, None)
    )
    with pytest.raises(InvalidMessage, match="expired"):
        Members(ca_cert).admit(me.public_key, cert.public_bytes(serialization.Encoding.DER))


def test_a_node_cannot_sign_with_a_key_its_certificate_does_not_name(tmp_path: Path) -> None:
    from smesh.mesh import MeshConfig, MeshField

    init_ca(tmp_path)
    creds = issue("alpha", ca=tmp_path)
    config = MeshConfig(mesh="pki", tls=creds)
    with pytest.raises(UsageError, match="does not certify this node's signing key"):
        MeshField(config, identity=Identity.generate())
    field = MeshField(config, identity=Identity.load(creds.key))
    assert field.members.knows(field.node_id)  # its own certificate, checked, is served
