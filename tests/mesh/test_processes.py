"""The mesh over real processes on 127.0.0.1: convergence, late joiners, crashes, forgeries."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import zenoh
from _meshkit import Peer, eventually, free_port

from smesh.mesh import Identity
from smesh.mesh.codec import Codec
from smesh.mesh.pki import init_ca, issue
from smesh.mesh.transport import MeshConfig, zenoh_config
from smesh.mesh.wire import Envelope, Sealed, SigNote, encode, seal

Spawn = Callable[..., Peer]
LOCAL = ("--listen", "tcp/127.0.0.1:0")  # every peer listens, so gossip can link them all


def tcp(port: int) -> str:
    return "tcp/127.0.0.1:" + str(port)


def _mesh_of(spawn: Spawn, mesh: str, n: int) -> list[Peer]:
    port = free_port()
    first = spawn("--mesh", mesh, "--listen", tcp(port))
    rest = [spawn("--mesh", mesh, "--connect", tcp(port), *LOCAL) for _ in range(n - 1)]
    peers = [first, *rest]
    for peer in peers:
        assert eventually(_sees(peer, n - 1)), peer.stderr()
    return peers


def _sees(peer: Peer, others: int) -> Callable[[], bool]:
    return lambda: len(peer.call("peers")["peers"]) == others


def _dumps(peers: list[Peer]) -> list[list[Any]]:
    return [p.call("dump")["signals"] for p in peers]


def _converged(peers: list[Peer]) -> bool:
    first, *rest = _dumps(peers)
    return all(d == first for d in rest)


def test_three_peers_converge_on_the_same_field(spawn: Spawn, mesh_name: str) -> None:
    a, b, c = _mesh_of(spawn, mesh_name, 3)
    own = [
        p.call("emit", kind="finding", payload={"n": i}, origin=f"agent-{i}")
        for i, p in enumerate((a, b, c))
    ]
    # the same content from three origins: one signal, reinforced by the later emitters
    shared = [
        p.call("emit", kind="vote", payload={"task": "t", "verdict": "approve"}, origin=f"v{i}")
        for i, p in enumerate((a, b, c))
    ]
    assert len({s["address"] for s in shared}) == 1
    lease = a.call(
        "emit",
        kind="claim",
        payload={"task_id": "t"},
        origin="agent-0",
        scope="origin",
        ttl=30,
        step=True,
    )
    gone = b.call(
        "emit",
        kind="claim",
        payload={"task_id": "u"},
        origin="agent-1",
        scope="origin",
        ttl=30,
        step=True,
    )
    assert eventually(
        lambda: all(p.call("wait", count=6, within=0)["live"] == 6 for p in (a, b, c))
    )
    c.call("reinforce", address=own[0]["address"], by="agent-2")
    b.call("reinforce", address=own[0]["address"], by="agent-1")
    a.call("renew", address=lease["address"], by="agent-0")
    b.call("withdraw", address=gone["address"], by="agent-1")
    assert eventually(lambda: _converged([a, b, c])), _dumps([a, b, c])
    signals = {s["address"]: s for s in _dumps([a])[0]}
    assert gone["address"] not in signals
    # names are scoped under the node that hosts (and signs for) each agent
    by_c, by_b = f"{c.node_id}/agent-2", f"{b.node_id}/agent-1"
    assert sorted(signals[own[0]["address"]]["reinforcers"]) == sorted([by_c, by_b])
    vote = signals[shared[0]["address"]]
    assert len(vote["reinforcers"]) == 2 and vote["origin"] not in vote["reinforcers"]
    assert signals[lease["address"]]["created_at"] > signals[own[0]["address"]]["created_at"]
    # every reinforcer's provenance checks out on a replica that signed none of it
    record = c.call("provenance", address=shared[0]["address"])
    assert record["verified"] is True
    nodes = {record["provenance"]["emitter"]["node"]} | {
        r["node"] for r in record["provenance"]["reinforcers"]
    }
    assert nodes == {a.node_id, b.node_id, c.node_id}


def test_a_late_joiner_receives_every_live_signal(spawn: Spawn, mesh_name: str) -> None:
    port = free_port()
    emitter = spawn("--mesh", mesh_name, "--listen", tcp(port))
    replica_port = free_port()
    replica = spawn(
        "--mesh",
        mesh_name,
        "--listen",
        tcp(replica_port),
        "--connect",
        tcp(port),
    )
    assert eventually(lambda: len(replica.call("peers")["peers"]) == 1)
    addresses = [
        emitter.call("emit", kind="task", payload={"i": i}, origin="poster")["address"]
        for i in range(40)
    ]
    withdrawn = addresses[:5]
    for address in withdrawn:
        emitter.call("withdraw", address=address, by="poster")
    short = emitter.call("emit", kind="task", payload={"short": 1}, origin="poster", ttl=0.3)
    assert replica.call("wait", count=36, within=10)["live"] >= 35
    time.sleep(0.5)  # the short-lived signal expires everywhere on its own decay
    # every batch the replica holds is signed (notes follow batches by a few ms)
    assert eventually(lambda: replica.call("stats")["unsigned"] == 0)
    expected = [s for s in emitter.call("dump")["signals"] if s["address"] != short["address"]]
    emitter.kill()  # the replica alone must answer the late joiner
    joiner = spawn("--mesh", mesh_name, "--connect", tcp(replica_port))
    got = joiner.call("dump")["signals"]
    assert [s["address"] for s in got] == [s["address"] for s in expected]
    assert got == expected
    assert not set(withdrawn) & {s["address"] for s in got}
    assert joiner.late_join_ms is not None and joiner.late_join_ms < 2000


def _raw_session(port: int, mesh: str) -> Any:
    config = zenoh_config(MeshConfig(mesh=mesh, connect=(tcp(port),)))
    return zenoh.open(config)


def test_forged_tampered_replayed_and_garbage_messages_are_dropped(
    spawn: Spawn, mesh_name: str
) -> None:
    port = free_port()
    victim = spawn("--mesh", mesh_name, "--listen", tcp(port))
    honest = spawn("--mesh", mesh_name, "--connect", tcp(port), *LOCAL)
    assert eventually(lambda: len(victim.call("peers")["peers"]) == 1)
    session = _raw_session(port, mesh_name)
    try:
        captured: list[Any] = []
        sub = session.declare_subscriber(
            f"smesh/{mesh_name}/ops/*",
            lambda s: captured.append(msgspec.msgpack.decode(s.payload.to_bytes(), type=Envelope)),
        )
        time.sleep(0.5)
        honest.call("emit", kind="task", payload={"honest": 1}, origin="poster")

        def batches() -> list[Sealed]:
            return [m for m in captured if isinstance(m, Sealed)]

        def notes() -> list[SigNote]:
            return [m for m in captured if isinstance(m, SigNote)]

        assert eventually(lambda: len(batches()) == 1 and len(notes()) == 1), captured
        assert victim.call("wait", count=1)["live"] == 1
        good = batches()[0]
        assert good.sig == b"" and good.macs  # authenticated by MAC, the signature followed
        forger = Identity.generate()
        real = seal(forger, mesh_name, 1, 0, _emit_ops({"forged": 1}))
        parked = msgspec.structs.replace(real, signer=good.signer, seq=9, sig=b"", macs=[])
        parked_id = bytes.fromhex(Codec(mesh_name).message(parked)[1])
        attacks: list[Sealed | SigNote] = [
            # signed by another key but claiming the honest node's public key
            msgspec.structs.replace(real, signer=good.signer),
            # the honest batch with its operations swapped: its MAC no longer checks
            msgspec.structs.replace(good, ops=real.ops),
            # the honest batch sent again
            good,
            # a batch signed for another mesh
            seal(forger, mesh_name + "x", 1, 1, _emit_ops({"other": 1})),
            # a batch with no MAC and no signature in the honest node's name, then a
            # signature that is not the honest node's
            parked,
            SigNote(v=1, signer=good.signer, epoch=1, ids=[parked_id], sig=bytes(64)),
        ]
        pub = session.declare_publisher(f"smesh/{mesh_name}/ops/forger")
        for message in attacks:
            pub.put(encode(message))
        pub.put(b"\x93\x01\x02")
        pub.put(b"\xc1garbage")
        pub.put(b"\x00" * (9 * 1024 * 1024))
        sub.undeclare()

        def dropped() -> dict[str, int]:
            counters = victim.call("stats")["counters"]
            return {k: v for k, v in counters.items() if k.startswith("dropped_")}

        assert eventually(lambda: sum(dropped().values()) >= 8), dropped()
        assert dropped() == {
            "dropped_bad_signature": 3,  # impersonation, another mesh, forged signature
            "dropped_bad_mac": 1,  # tampered
            "dropped_replay": 1,
            "dropped_malformed": 2,
            "dropped_oversize": 1,
        }
        assert victim.call("stats")["counters"]["mac_ok"] >= 1
        live = victim.call("dump")["signals"]
        assert [s["payload"] for s in live] == [{"honest": 1}]
        # the signature that followed the honest batch was kept: its provenance checks out
        assert victim.call("provenance", address=live[0]["address"])["verified"] is True
        # the peer is unharmed: honest traffic still flows
        honest.call("emit", kind="task", payload={"after": 1}, origin="poster")
        assert victim.call("wait", count=2)["live"] == 2
    finally:
        session.close()


def _emit_ops(payload: Any) -> list[Any]:
    from smesh.mesh.wire import emit_op
    from smesh.signal import Signal

    return [emit_op(Signal.create("task", payload, origin="poster", created_at=time.time()))]


def _team(
    spawn: Spawn, mesh: str, port: int, spec: dict[str, Any], *, listen: bool = False
) -> Peer:
    where = ["--listen", tcp(port)] if listen else ["--connect", tcp(port), *LOCAL]
    peer = spawn("--mesh", mesh, *where, "--team", json.dumps(spec))
    assert peer.read()["started"] is True
    return peer


def test_kill_9_a_peer_mid_run_its_claims_are_reoffered_and_completed(
    spawn: Spawn, mesh_name: str
) -> None:
    port = free_port()
    # the victim's agent bids highest, claims one task and hangs holding its lease
    hangs = {"agents": [{"id": "victim", "affinity": 0.9, "hang": True}]}
    victim = _team(spawn, mesh_name, port, hangs, listen=True)
    worker = _team(spawn, mesh_name, port, {"agents": [{"id": "worker", "affinity": 0.6}]})
    poster = _team(spawn, mesh_name, port, {"post": 4, "wait_peers": 2})
    time.sleep(2.0)  # the victim holds one task, the worker does the others
    started = time.monotonic()
    victim.kill()
    final = poster.read(timeout=30)
    elapsed = time.monotonic() - started
    report = final["report"]
    # the victim's held lease lapsed when its liveliness token went away
    assert final["mesh"]["counters"].get("lapsed_leases", 0) >= 1, final["mesh"]
    tasks = {t["id"]: t for t in report["tasks"]}
    assert report["stopped_by"] == "quiescent", report
    assert all(t["status"] == "accepted" for t in tasks.values()), report
    assert {t["claimed_by"] for t in tasks.values()} == {f"{worker.node_id}/worker"}
    # the lease is 30 s: only the victim's departure (liveliness) explains a faster re-offer
    assert elapsed < 15, elapsed
    assert worker.read(timeout=30)["report"]["stopped_by"] == "quiescent"


def _tls_peer(
    spawn: Spawn, mesh: str, name: str, ca: Path, *where: str, allow: tuple[str, ...] = ()
) -> Peer:
    args = ["--mesh", mesh, "--sync-timeout", "0.5", "--name", name, "--tls-ca", str(ca)]
    for cn in allow:
        args += ["--allow", cn]
    return spawn(*args, *where)


def test_a_peer_certified_by_another_ca_cannot_join(
    spawn: Spawn, mesh_name: str, tmp_path: Path
) -> None:
    ca, rogue = tmp_path / "ca", tmp_path / "rogue"
    init_ca(ca)
    init_ca(rogue)
    for name in ("alpha", "beta"):
        issue(name, ca=ca)
    issue("mallory", ca=rogue)
    port = free_port()
    alpha = _tls_peer(spawn, mesh_name, "alpha", ca, "--listen", f"tls/127.0.0.1:{port}")
    beta = _tls_peer(spawn, mesh_name, "beta", ca, "--connect", f"tls/127.0.0.1:{port}")
    mallory = _tls_peer(spawn, mesh_name, "mallory", rogue, "--connect", f"tls/127.0.0.1:{port}")
    assert eventually(lambda: alpha.call("peers")["peers"] == [beta.node_id])
    alpha.call("emit", kind="task", payload={"secret": 1}, origin="poster")
    mallory.call("emit", kind="task", payload={"intrusion": 1}, origin="mallory")
    assert beta.call("wait", count=1)["live"] == 1
    time.sleep(1.0)
    # mallory holds only what it said itself; nobody heard it, it heard nobody
    assert [s["payload"] for s in mallory.call("dump")["signals"]] == [{"intrusion": 1}]
    assert mallory.call("peers")["peers"] == []
    assert [s["payload"] for s in alpha.call("dump")["signals"]] == [{"secret": 1}]
    assert [s["payload"] for s in beta.call("dump")["signals"]] == [{"secret": 1}]


def test_access_control_by_certificate_name(spawn: Spawn, mesh_name: str, tmp_path: Path) -> None:
    ca = tmp_path / "ca"
    init_ca(ca)
    for name in ("alpha", "beta", "gamma"):
        issue(name, ca=ca)
    port = free_port()
    members = ("alpha", "beta")
    alpha = _tls_peer(
        spawn, mesh_name, "alpha", ca, "--listen", f"tls/127.0.0.1:{port}", allow=members
    )
    beta = _tls_peer(
        spawn, mesh_name, "beta", ca, "--connect", f"tls/127.0.0.1:{port}", allow=members
    )
    # gamma's certificate is valid, but its name is not on the list
    gamma = _tls_peer(spawn, mesh_name, "gamma", ca, "--connect", f"tls/127.0.0.1:{port}")
    assert eventually(lambda: beta.call("peers")["peers"] == [alpha.node_id])
    alpha.call("emit", kind="task", payload={"members only": 1}, origin="poster")
    gamma.call("emit", kind="task", payload={"outsider": 1}, origin="gamma")
    assert beta.call("wait", count=1)["live"] == 1
    time.sleep(1.0)
    assert [s["payload"] for s in beta.call("dump")["signals"]] == [{"members only": 1}]
    assert [s["payload"] for s in gamma.call("dump")["signals"]] == [{"outsider": 1}]
