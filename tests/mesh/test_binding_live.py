"""Forged identities against live peers (issue 10, found-1): real processes, real zenoh on
127.0.0.1, the forger speaking the project's own wire format from a raw zenoh session."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zenoh
from _meshkit import Peer, eventually, free_port

from smesh.mesh import Identity
from smesh.mesh.pki import init_ca, issue, load_credentials
from smesh.mesh.transport import MeshConfig, zenoh_config
from smesh.mesh.wire import Hello, Op, emit_op, encode, seal
from smesh.signal import Signal

Spawn = Callable[..., Peer]
pytestmark = pytest.mark.slow


def _decisions(origin: str, tasks: list[str]) -> list[Op]:
    now = time.time()
    return [
        emit_op(
            Signal.create(
                "decision",
                {"task_id": task, "attempt": attempt, "verdict": "accepted", "basis": "votes"},
                origin=origin,
                created_at=now,
                ttl=600.0,
            )
        )
        for task in tasks
        for attempt in (1, 2)
    ]


def _counters(peer: Peer) -> dict[str, int]:
    counters: dict[str, int] = peer.call("stats")["counters"]
    return counters


def test_signed_decisions_from_a_fresh_key_decide_nothing(spawn: Spawn, mesh_name: str) -> None:
    """Found-1: 12 validly signed "accepted" decisions from a fresh key in a live 2-node run
    made both nodes report every task accepted, most of which no one had worked on."""
    port = free_port()
    spec = {"post": 6, "wait_peers": 1, "idle": 5.0}
    poster = spawn(
        "--mesh", mesh_name, "--listen", f"tcp/127.0.0.1:{port}", "--team", json.dumps(spec)
    )
    observer = spawn("--mesh", mesh_name, "--connect", f"tcp/127.0.0.1:{port}")
    assert poster.read()["started"] is True
    assert observer.call("wait", count=6)["live"] == 6
    tasks = observer.call("dump")["signals"]
    origin = tasks[0]["origin"]  # the poster's name, as every replica sees it
    forger = Identity.generate()
    session: Any = zenoh.open(
        zenoh_config(MeshConfig(mesh=mesh_name, connect=(f"tcp/127.0.0.1:{port}",)))
    )
    try:
        pub = session.declare_publisher(f"smesh/{mesh_name}/ops/{forger.node_id}")
        time.sleep(0.5)  # let the subscriptions reach the forger's session
        ids = [t["payload"]["task_id"] for t in tasks]
        pub.put(encode(seal(forger, mesh_name, time.time_ns(), 0, _decisions(origin, ids))))
        final = poster.read(timeout=30)
    finally:
        session.close()
    statuses = [t["status"] for t in final["report"]["tasks"]]
    assert "accepted" not in statuses, final["report"]
    assert final["report"]["stopped_by"] != "quiescent"
    assert final["mesh"]["counters"].get("dropped_foreign_origin") == 12
    assert eventually(lambda: _counters(observer).get("dropped_foreign_origin") == 12)
    # the only decisions anyone holds are the poster's own: it gave up on the idle run
    decisions = [s for s in observer.call("dump")["signals"] if s["kind"] == "decision"]
    assert {d["payload"]["verdict"] for d in decisions} <= {"failed"}
    assert {d["origin"] for d in decisions} <= {origin}


def _tls_args(mesh: str, name: str, ca: Path) -> list[str]:
    return ["--mesh", mesh, "--sync-timeout", "0.5", "--name", name, "--tls-ca", str(ca)]


def _open_as(mesh: str, creds: Any, port: int) -> Any:
    config = MeshConfig(mesh=mesh, connect=(f"tls/127.0.0.1:{port}",), tls=creds)
    return zenoh.open(zenoh_config(config))


def test_a_certified_joiner_signing_with_another_key_is_not_admitted(
    spawn: Spawn, mesh_name: str, tmp_path: Path
) -> None:
    """Found-1: a joiner presenting a valid certificate of the CA but signing with a
    different Ed25519 key was admitted, its signals accepted under a node id that is not
    the certificate's."""
    ca = tmp_path / "ca"
    init_ca(ca)
    for name in ("alpha", "beta", "mallory"):
        issue(name, ca=ca)
    port = free_port()
    alpha = spawn(*_tls_args(mesh_name, "alpha", ca), "--listen", f"tls/127.0.0.1:{port}")
    beta = spawn(*_tls_args(mesh_name, "beta", ca), "--connect", f"tls/127.0.0.1:{port}")
    assert eventually(lambda: alpha.call("peers")["peers"] == [beta.node_id])
    mallory = load_credentials("mallory", ca=ca)
    certified = Identity.load(mallory.key)
    other = Identity.generate()  # not the key its certificate carries
    session = _open_as(mesh_name, mallory, port)
    try:
        root = f"smesh/{mesh_name}"
        token = session.liveliness().declare_token(f"{root}/peers/{other.node_id}")
        pub = session.declare_publisher(f"{root}/ops/{other.node_id}")
        time.sleep(0.5)
        # its hello (no certificate, then its TLS certificate that carries another key),
        # then batches signed by the other key, in that key's own names
        from smesh.mesh.auth import Keyring

        hello = Keyring(other, mesh_name, time.time_ns()).hello
        pub.put(encode(hello))
        cert = mallory.cert.read_bytes()
        pub.put(encode(_with_cert(hello, cert)))
        own = f"{other.node_id}/judge"
        pub.put(encode(seal(other, mesh_name, hello.epoch, 0, _decisions(own, ["t1"]))))
        pub.put(encode(seal(other, mesh_name, hello.epoch, 1, _decisions(own, ["t2"]))))
        time.sleep(1.5)
        for peer in (alpha, beta):
            assert peer.call("dump")["signals"] == []
            assert other.node_id not in peer.call("peers")["peers"]
            counters = _counters(peer)
            # each refusal counted under its reason: the batches, and both hellos
            assert counters.get("dropped_uncertified") == 2, counters
            assert counters.get("dropped_hello_uncertified") == 1, counters
            assert counters.get("dropped_hello_foreign_certificate") == 1, counters
        # the honest members still hear each other, and mallory's real key is a member:
        # the refusal is about the binding, not about the certificate
        alpha.call("emit", kind="task", payload={"honest": 1}, origin="poster")
        assert beta.call("wait", count=1)["live"] == 1
        good = Keyring(certified, mesh_name, time.time_ns()).hello
        pub.put(encode(_with_cert(good, cert)))
        mine = f"{certified.node_id}/judge"
        pub.put(encode(seal(certified, mesh_name, good.epoch, 0, _decisions(mine, ["t3"]))))
        assert beta.call("wait", count=3)["live"] == 3
        token.undeclare()
    finally:
        session.close()


def _with_cert(hello: Hello, cert_pem: bytes) -> Hello:
    import msgspec
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    return msgspec.structs.replace(hello, cert=der)
