"""The bounds on each input path, in one process (the floods against real peers are in
test_floods.py): what waits, what is kept, what is listed, what is served."""

from __future__ import annotations

import time
from pathlib import Path

from smesh.mesh import Identity, Limits, MeshConfig, MeshField
from smesh.mesh.auth import Keyring
from smesh.mesh.identity import Verifier
from smesh.mesh.pending import PendingBatches
from smesh.mesh.presence import Presence
from smesh.mesh.quota import Quotas
from smesh.mesh.replica import Counters
from smesh.mesh.store import BatchStore
from smesh.mesh.wire import VERSION, Op, Sealed, emit_op, encode, pack, seal
from smesh.signal import Signal

MESH = "bounds"


def _unsigned(signer: Identity, seq: int, size: int) -> Sealed:
    return Sealed(VERSION, signer.public_key, 1, seq, b"\x91\xc4" + bytes(size), b"")


def test_batches_waiting_for_a_signature_are_capped_in_bytes_oldest_out() -> None:
    counters = Counters()
    pending = PendingBatches(Limits(pending_bytes=1_000_000), counters)
    sender = Identity.generate()
    for seq in range(30):
        pending.park(f"{seq:032x}", _unsigned(sender, seq, 100_000))
    assert pending.held_bytes <= 1_000_000 and len(pending) == 9
    assert counters.get("dropped_pending") == 21
    # the newest are those kept, and a note releases exactly its own
    assert [b.seq for b in pending.take([bytes.fromhex(f"{29:032x}")])] == [29]
    assert pending.take([bytes.fromhex(f"{0:032x}")]) == []
    pending.park("f" * 32, _unsigned(sender, 99, 2_000_000))  # alone over the cap
    assert counters.get("dropped_pending") == 22


def test_unsigned_bytes_share_a_budget_checked_before_any_hash() -> None:
    field = MeshField(
        MeshConfig(mesh=MESH, limits=Limits(pending_bytes=1_000_000, pending_bytes_per_s=1.0))
    )
    sender = Identity.generate()
    for seq in range(5):  # 400 KB each, no MAC and no signature: each would wait
        field.inbound.on_batch(encode(_unsigned(sender, seq, 400_000)))
    counters = field.counters.snapshot()
    assert counters["dropped_pending_rate"] == 3  # the budget held two of them
    assert counters.get("dropped_pending", 0) == 0


def test_hello_keys_are_capped_expire_and_keep_present_peers_first() -> None:
    counters = Counters()
    limits = Limits(max_peers=4, hello_interval_s=0.1, peer_ttl_s=0.3, hellos_burst=1000)
    me = Keyring(Identity.generate(), MESH, 1, limits=limits, counters=counters)
    verifier = Verifier()
    honest = Identity.generate()
    assert me.learn(Keyring(honest, MESH, 1).hello, verifier)
    me.present(honest.node_id, True)
    for _ in range(10):  # strangers with valid hellos and no liveliness token
        me.learn(Keyring(Identity.generate(), MESH, 1).hello, verifier)
    assert len(me) == 4 and me.knows(honest.node_id)  # the present peer was kept
    assert counters.get("evicted_peer_keys") == 7
    assert len(me.tags(b"digest")) == 4  # one MAC each, no more
    time.sleep(0.35)
    assert me.tags(b"digest") == [] and not me.knows(honest.node_id)  # expired: no hellos
    assert counters.get("expired_peer_keys") == 4


def test_new_hellos_beyond_their_budget_are_dropped_before_any_crypto() -> None:
    field = MeshField(MeshConfig(mesh=MESH, limits=Limits(hellos_burst=5, hellos_per_s=1.0)))
    for _ in range(20):
        field.inbound.on_batch(encode(Keyring(Identity.generate(), MESH, 1).hello))
    counters = field.counters.snapshot()
    assert counters["peer_keys"] == 5 and counters["dropped_hello_rate"] == 15


def test_a_liveliness_token_is_a_peer_only_once_its_node_said_hello() -> None:
    counters = Counters()
    known: set[str] = set()
    presence = Presence(known.__contains__, Limits(max_peers=3, peer_ttl_s=10.0), counters)
    assert presence.token("real", 0.0) is False  # no hello yet: not confirmed
    assert presence.peers(0.0) == []
    known.add("real")
    assert presence.greeted("real") is True and presence.greeted("real") is False
    for i in range(5):  # fake tokens: the table stays bounded, the real peer stays
        presence.token(f"fake{i}", 1.0)
    assert presence.peers(1.0) == ["real"]
    assert counters.get("dropped_peer_tokens") == 3
    presence.peers(20.0)  # after the TTL, the silent ones are forgotten
    assert counters.get("dropped_silent_peer") == 2 and "fake4" not in presence


def test_one_signers_quota_is_its_own() -> None:
    quotas = Quotas(Limits(signer_ops_per_s=1.0, signer_ops_burst=100.0))
    assert quotas.affords("a", 100, 10) and quotas.take("a", 60, 10)
    assert not quotas.affords("a", 60, 10) and not quotas.take("a", 60, 10)
    assert quotas.take("b", 100, 10)  # another signer's bucket is full


def test_a_signer_over_its_quota_loses_whole_batches_counted() -> None:
    limits = Limits(signer_ops_burst=2500.0, signer_ops_per_s=1.0)
    field = MeshField(MeshConfig(mesh=MESH, limits=limits))
    flooder = Identity.generate()
    origin = f"{flooder.node_id}/spam"
    now = time.time()
    for seq in range(5):
        ops: list[Op] = [
            emit_op(Signal.create("spam", i, origin=origin, created_at=now, ttl=60.0))
            for i in range(seq * 1000, seq * 1000 + 1000)
        ]
        field.inbound.on_batch(encode(seal(flooder, MESH, 1, seq, ops)))
    assert len(field) == 2000
    assert field.counters.get("dropped_quota") == 3
    assert field.counters.get("dropped_quota_ops") == 3000


def test_a_signer_holds_at_most_its_share_of_the_replica() -> None:
    field = MeshField(MeshConfig(mesh=MESH, limits=Limits(signer_held_ops=300)))
    other = Identity.generate()
    origin = f"{other.node_id}/a"
    now = time.time()
    ops: list[Op] = [
        emit_op(Signal.create("k", i, origin=origin, created_at=now, ttl=60.0)) for i in range(1000)
    ]
    field.inbound.on_batch(encode(seal(other, MESH, 1, 0, ops)))
    assert 300 <= len(field) <= 300 + 256  # checked per slice of 256
    assert field.counters.get("dropped_held_quota") >= 1000 - 556


def test_sync_answers_come_in_pages_capped_in_bytes() -> None:
    store = BatchStore()
    me = Identity.generate()
    for seq in range(10):
        body = pack([emit_op(Signal.create("k", "x" * 1000, origin="a/b", created_at=1.0))])
        store.add(f"{seq:032x}", Sealed(VERSION, me.public_key, 1, seq, body, b"s" * 64))
    first = store.page(0, 3000)
    assert len(first.batches) == 2 and first.next > 0
    seen = [b.seq for b in first.batches]
    cursor = first.next
    while cursor > 0:
        page = store.page(cursor, 3000)
        seen += [b.seq for b in page.batches]
        cursor = page.next
    assert seen == list(range(10))  # every batch once, in the order kept


def test_a_late_joiner_pages_through_a_replica_and_admits_signers_by_their_certificates(
    tmp_path: Path,
) -> None:
    """On a mesh with a CA: alpha emits and leaves, beta keeps the batches, gamma joins from
    beta in pages of ~2 KB and admits alpha's batches on the certificate beta passes on."""
    from _meshkit import eventually, free_port

    from smesh.mesh.pki import init_ca, issue

    init_ca(tmp_path)
    creds = {name: issue(name, ca=tmp_path) for name in ("alpha", "beta", "gamma")}
    port, mesh = free_port(), f"pages{free_port()}"
    limits = Limits(sync_page_bytes=2000)

    def node(name: str, *, listen: str = "", connect: str = "") -> MeshField:
        config = MeshConfig(
            mesh=mesh,
            listen=(listen,) if listen else (),
            connect=(connect,) if connect else (),
            tls=creds[name],
            limits=limits,
            sync_timeout_s=1.0,
        )
        return MeshField(config, identity=Identity.load(creds[name].key))

    beta = node("beta", listen=f"tls/127.0.0.1:{port}").start()
    try:
        alpha = node("alpha", connect=f"tls/127.0.0.1:{port}").start()
        with alpha:
            assert eventually(lambda: beta.peers() == [alpha.node_id])
            origin = alpha.agent_name("poster")
            for i in range(40):
                alpha.emit("task", {"i": i, "pad": "x" * 200}, origin=origin, ttl=600.0)
            assert eventually(lambda: len(beta) == 40 and beta.mesh_stats().unsigned == 0)
        with node("gamma", connect=f"tls/127.0.0.1:{port}") as gamma:
            assert len(gamma) == 40  # all of it, from beta alone, page by page
            assert {s.origin for s in gamma.signals()} == {origin}
            assert gamma.members.knows(alpha.node_id)  # on the certificate beta passed on
            assert beta.counters.get("sync_answers") >= 5
    finally:
        beta.close()


def test_a_field_joins_once_and_leaves_no_threads_behind() -> None:
    """A second start used to open a second zenoh session that nothing closed: its callback
    threads kept the interpreter (a test run, a CI job) from exiting."""
    import threading

    import pytest
    from _meshkit import eventually, free_port

    from smesh.errors import UsageError

    def zenoh_threads() -> list[str]:
        return [t.name for t in threading.enumerate() if "pyo3" in t.name and not t.daemon]

    before = set(zenoh_threads())
    field = MeshField(
        MeshConfig(mesh=f"once{free_port()}", listen=(f"tcp/127.0.0.1:{free_port()}",))
    ).start()
    try:
        with pytest.raises(UsageError, match="already joined"):
            field.start()
        with field as same:  # entering a started field uses it as it is
            assert same is field and not field.closed
        assert field.closed
        with pytest.raises(UsageError, match="closed"):
            field.start()
    finally:
        field.close()
    assert eventually(lambda: set(zenoh_threads()) <= before), zenoh_threads()
