"""Forged identities on the mesh (issue 10, found-1), in one process: every probe uses the
project's own wire format, delivered through the live channel's real receive path.

A node may publish only operations that name its own agents (``<node>/<agent>``): an origin,
a reinforcer, a renewer or withdrawer under another node's id (or under no node at all) is
dropped and counted, whoever signed it.
"""

from __future__ import annotations

import time
from typing import Any

from smesh.clock import VirtualClock
from smesh.mesh import Identity, MeshConfig, MeshField
from smesh.mesh.wire import Op, ReinforceOp, emit_op, encode, seal
from smesh.signal import Signal

MESH = "forge"


def _field(clock: VirtualClock) -> MeshField:
    return MeshField(MeshConfig(mesh=MESH), clock=clock)


def _send(field: MeshField, who: Identity, ops: list[Op], seq: int) -> None:
    """A batch signed by ``who`` arrives on the live channel (as a zenoh sample would)."""
    field.inbound.on_batch(encode(seal(who, MESH, 1, seq, ops)))


def _emit(kind: str, payload: Any, origin: str, now: float) -> Op:
    return emit_op(Signal.create(kind, payload, origin=origin, created_at=now, ttl=600.0))


def _dropped(field: MeshField) -> dict[str, int]:
    return {k: v for k, v in field.counters.snapshot().items() if k.startswith("dropped_")}


def test_an_outsider_key_cannot_decide_or_vote_as_someone_elses_agent() -> None:
    clock = VirtualClock(time.time())
    field, outsider, honest = _field(clock), Identity.generate(), Identity.generate()
    now = clock.now()
    reviewer = f"{field.node_id}/reviewer"  # an agent this node hosts
    tester = f"{honest.node_id}/tester"  # an agent another node hosts
    decision = {"task_id": "t1", "attempt": 1, "verdict": "accepted", "basis": "votes"}
    vote = {"task_id": "t1", "attempt": 1, "result": "0" * 32, "verdict": "approve"}
    forged = [
        _emit("decision", decision, reviewer, now),
        _emit("vote", vote, tester, now),
        _emit("decision", {**decision, "task_id": "t2"}, "reviewer", now),  # unscoped
    ]
    _send(field, outsider, forged, seq=0)
    assert field.signals() == []
    assert _dropped(field) == {"dropped_foreign_origin": 3}
    # the same key speaking for its own agents is heard: the check is not a blanket refusal
    own = f"{outsider.node_id}/judge"
    _send(field, outsider, [_emit("vote", vote, own, now)], seq=1)
    assert [s.origin for s in field.signals()] == [own]


def test_fifty_fake_reinforcements_add_no_reinforcer() -> None:
    clock = VirtualClock(time.time())
    field, outsider, honest = _field(clock), Identity.generate(), Identity.generate()
    now = clock.now()
    vote = {"task_id": "t1", "attempt": 1, "result": "0" * 32, "verdict": "approve"}
    _send(field, honest, [_emit("vote", vote, f"{honest.node_id}/reviewer", now)], seq=0)
    (signal,) = field.signals()
    # 25 reinforcements and 25 concurrent emits of the same content (which count as
    # reinforcements too), each in the name of an agent of another node
    fakes: list[Op] = [
        ReinforceOp(address=signal.address, by=f"{honest.node_id}/agent-{i}", at=now + 1)
        for i in range(25)
    ]
    fakes += [_emit("vote", vote, f"{field.node_id}/agent-{i}", now + 1) for i in range(25)]
    _send(field, outsider, fakes, seq=0)
    live = field.get(signal.address)
    assert live is not None and live.reinforcers == ()
    assert _dropped(field) == {"dropped_foreign_reinforcer": 25, "dropped_foreign_origin": 25}
    # a genuine reinforcement by the outsider's own agent counts once
    mine = f"{outsider.node_id}/voter"
    _send(field, outsider, [ReinforceOp(address=signal.address, by=mine, at=now + 2)], seq=1)
    live = field.get(signal.address)
    assert live is not None and live.reinforcers == (mine,)


def test_renewals_and_withdrawals_need_the_names_of_the_signing_node() -> None:
    from smesh.mesh.wire import RenewOp, WithdrawOp

    clock = VirtualClock(time.time())
    field, owner = _field(clock), Identity.generate()
    now = clock.now()
    origin = f"{owner.node_id}/worker"
    claim = Signal.create("claim", {"t": 1}, origin=origin, created_at=now, scope="origin")
    _send(field, owner, [emit_op(claim)], seq=0)
    # the owner's own key, but a name of this node: not its agent, not its lease
    stray = f"{field.node_id}/worker"
    _send(
        field,
        owner,
        [
            RenewOp(address=claim.address, by=stray, at=now + 1),
            WithdrawOp(address=claim.address, by=stray, at=now + 1),
        ],
        seq=1,
    )
    assert field.get(claim.address) == claim
    assert _dropped(field) == {"dropped_foreign_name": 2}


def test_local_operations_must_name_this_nodes_agents() -> None:
    import pytest

    from smesh.errors import NotPermitted

    clock = VirtualClock(time.time())
    field, other = _field(clock), Identity.generate()
    mine = field.agent_name("coder")
    assert mine == f"{field.node_id}/coder" and field.owns(mine)
    signal = field.emit("task", {"t": 1}, origin=mine)
    for origin in ("coder", f"{other.node_id}/coder", f"{field.node_id}/"):
        with pytest.raises(NotPermitted, match="scoped under"):
            field.emit("task", {"t": 2}, origin=origin)
    with pytest.raises(NotPermitted, match="scoped under"):
        field.reinforce(signal.address, by=f"{other.node_id}/x")
    assert field.counters.get("published_ops") == 1
