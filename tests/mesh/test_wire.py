"""The wire decoder under fuzzing: anything malformed is dropped with a reason, never raised."""

from __future__ import annotations

import math
import time
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smesh.decay import Exponential, Linear, Step
from smesh.errors import InvalidMessage, InvalidSignal
from smesh.mesh import Identity, MeshField
from smesh.mesh.codec import Codec, DroppedMessage, check_mark, signal_of
from smesh.mesh.wire import EmitOp, ReinforceOp, Sealed, SyncReply, emit_op, encode, seal
from smesh.signal import Signal

MESH = "fuzz"
IDENTITY = Identity.generate()
CODEC = Codec(MESH)


def _batch(*payloads: Any) -> bytes:
    now = time.time()
    ops: list[Any] = [
        emit_op(Signal.create("task", p, origin="poster", created_at=now)) for p in payloads
    ]
    return encode(seal(IDENTITY, MESH, 1, 7, ops))


GOOD = _batch({"a": 1}, [1, 2, 3], "text")

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=12,
)
msgpack_values = st.recursive(
    json_values | st.binary(max_size=16),
    lambda inner: st.lists(inner, max_size=5),
    max_leaves=16,
)


def test_a_good_batch_opens() -> None:
    opened = CODEC.open(GOOD)
    assert opened.signer == IDENTITY.node_id
    assert [signal_of(op).payload for op in opened.ops if isinstance(op, EmitOp)] == [
        {"a": 1},
        [1, 2, 3],
        "text",
    ]


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_bytes_are_dropped(data: bytes) -> None:
    with pytest.raises(DroppedMessage) as info:
        CODEC.open(data)
    assert info.value.reason in {"malformed", "version", "bad_signature", "oversize"}


@settings(max_examples=500)
@given(msgpack_values)
def test_random_msgpack_values_are_dropped(value: Any) -> None:
    with pytest.raises(InvalidMessage):
        CODEC.open(msgspec.msgpack.encode(value))


@settings(max_examples=500)
@given(st.data())
def test_mutated_batches_are_dropped_or_unchanged(data: st.DataObject) -> None:
    raw = bytearray(GOOD)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    mutated = bytes(raw[:cut]) if data.draw(st.booleans()) else bytes(raw)
    try:
        opened = CODEC.open(mutated)
    except DroppedMessage:
        return
    # whatever still opens carries exactly the signed content
    assert opened.sealed.ops == msgspec.msgpack.decode(GOOD, type=Sealed).ops


def test_size_version_and_signature_are_checked() -> None:
    with pytest.raises(DroppedMessage, match="bytes dropped") as info:
        Codec(MESH, max_bytes=64).open(GOOD)
    assert info.value.reason == "oversize"
    sealed = msgspec.msgpack.decode(GOOD, type=Sealed)
    with pytest.raises(DroppedMessage) as info:
        CODEC.open(encode(msgspec.structs.replace(sealed, v=2)))
    assert info.value.reason == "version"
    with pytest.raises(DroppedMessage) as info:
        Codec("other-mesh").open(GOOD)  # a batch is bound to its mesh
    assert info.value.reason == "bad_signature"
    with pytest.raises(DroppedMessage) as info:
        CODEC.open(encode(msgspec.structs.replace(sealed, seq=8)))  # bound to its place
    assert info.value.reason == "bad_signature"


def test_sync_replies_are_checked_too() -> None:
    sealed = msgspec.msgpack.decode(GOOD, type=Sealed)
    reply = CODEC.reply(encode(SyncReply(1, [sealed])))
    assert CODEC.verify(reply.batches[0])[1] == IDENTITY.node_id
    for bad in (b"", b"\x92\x02\x90", encode(SyncReply(9, []))):
        with pytest.raises(DroppedMessage):
            CODEC.reply(bad)


ops_in_signed_batches = st.lists(
    st.one_of(
        st.builds(
            EmitOp,
            kind=st.text(max_size=300),
            payload=json_values | st.integers(),
            origin=st.text(max_size=300),
            intensity=st.floats(),
            confidence=st.floats(),
            ttl=st.floats(),
            decay=st.sampled_from([Exponential(), Linear(), Step()]),
            radius=st.integers(-(2**40), 2**40),
            created_at=st.floats(),
            scope=st.sampled_from(["content", "origin", "nonsense"]),
        ),
        st.builds(
            ReinforceOp,
            address=st.one_of(st.text(max_size=40), st.just("0" * 32)),
            by=st.text(max_size=300),
            at=st.floats(),
        ),
    ),
    max_size=6,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(ops_in_signed_batches)
def test_hostile_values_in_a_validly_signed_batch_are_rejected_one_by_one(
    ops: list[Any],
) -> None:
    """A signer can put anything in its ops: each is validated and dropped on its own."""
    try:
        message = encode(seal(IDENTITY, MESH, 1, 1, ops))
    except InvalidSignal:
        return  # not even encodable (e.g. NaN keys): nothing to send
    opened = CODEC.open(message)
    for op in opened.ops:
        try:
            if isinstance(op, EmitOp):
                signal = signal_of(op)
                assert 0 <= signal.intensity <= 1 and math.isfinite(signal.created_at)
                assert 0 < signal.ttl < math.inf and signal.radius >= 0
            else:
                check_mark(op)
        except InvalidSignal:
            pass
    # and a replica applies what is valid, counts the rest, and never raises
    field = MeshField()
    field.inbound.apply([opened])
    counters = field.counters.snapshot()
    assert counters.get("applied_ops", 0) <= len(ops)
