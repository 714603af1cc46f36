"""The replica's merge is commutative and idempotent, and agrees with a local field."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from smesh.clock import VirtualClock
from smesh.decay import Step
from smesh.field import Field
from smesh.mesh.merge import Entry, materialize, merge_op, replay
from smesh.mesh.wire import EmitOp, Op, ReinforceOp, RenewOp, WithdrawOp, emit_op
from smesh.signal import Signal

ORIGINS = ["a", "b", "c"]
NODES = ["n1", "n2", "n3"]
TIMES = [float(t) for t in range(1, 9)]
KIND, PAYLOAD = "vote", {"task": "t", "verdict": "approve"}
ADDRESS = Signal.create(KIND, PAYLOAD, origin="a", created_at=0.0).address


def _emit(origin: str, at: float, intensity: float = 1.0) -> EmitOp:
    signal = Signal.create(
        KIND, PAYLOAD, origin=origin, created_at=at, intensity=intensity, decay=Step()
    )
    return emit_op(signal)


emits = st.builds(
    lambda o, t, i, n: (_emit(o, t, i), n),
    st.sampled_from(ORIGINS),
    st.sampled_from(TIMES),
    st.sampled_from([0.5, 1.0]),
    st.sampled_from(NODES),
)
marks = st.builds(
    lambda cls, by, at, n: (cls(address=ADDRESS, by=by, at=at), n),
    st.sampled_from([ReinforceOp, RenewOp, WithdrawOp]),
    st.sampled_from([*ORIGINS, "d"]),
    st.sampled_from(TIMES),
    st.sampled_from(NODES),
)
histories = st.lists(st.one_of(emits, marks), min_size=1, max_size=14)


@settings(max_examples=300, deadline=None)
@given(histories, st.randoms(use_true_random=False))
def test_order_makes_no_difference(ops: list[tuple[Op, str]], rnd: random.Random) -> None:
    shuffled = list(ops)
    rnd.shuffle(shuffled)
    assert replay(shuffled) == replay(ops)


@settings(max_examples=300, deadline=None)
@given(histories, st.randoms(use_true_random=False))
def test_duplicates_make_no_difference(ops: list[tuple[Op, str]], rnd: random.Random) -> None:
    repeated = ops + [rnd.choice(ops) for _ in range(len(ops))]
    rnd.shuffle(repeated)
    assert replay(repeated) == replay(ops)


@settings(max_examples=200, deadline=None)
@given(histories, histories)
def test_merging_two_replicas_is_their_union(
    left: list[tuple[Op, str]], right: list[tuple[Op, str]]
) -> None:
    # replica A saw `left`, replica B saw `right`; after exchanging, both hold the union
    a, b = Entry(), Entry()
    for op, signer in left:
        merge_op(a, op, signer, None)
    for op, signer in right:
        merge_op(b, op, signer, None)
    for op, signer in right:
        merge_op(a, op, signer, None)
    for op, signer in left:
        merge_op(b, op, signer, None)
    assert materialize(a) == materialize(b) == replay(left + right)


def test_reinforcers_are_the_union_and_the_origin_is_the_earliest_emitter() -> None:
    ops: list[tuple[Op, str]] = [
        (_emit("b", 3.0), "n2"),
        (_emit("a", 2.0), "n1"),
        (ReinforceOp(address=ADDRESS, by="d", at=5.0), "n3"),
        (ReinforceOp(address=ADDRESS, by="a", at=6.0), "n1"),  # the origin never counts
    ]
    signal = replay(ops)
    assert signal is not None
    assert signal.origin == "a"
    assert signal.reinforcers == ("b", "d")
    assert signal.created_at == 2.0


def test_withdrawal_is_a_tombstone_up_to_its_time_and_needs_the_emitting_node() -> None:
    first, again = _emit("a", 1.0), _emit("a", 5.0)
    withdraw = WithdrawOp(address=ADDRESS, by="a", at=3.0)
    assert replay([(first, "n1"), (withdraw, "n1")]) is None
    # a re-emit after the tombstone starts afresh
    reborn = replay([(first, "n1"), (withdraw, "n1"), (again, "n1")])
    assert reborn is not None and reborn.created_at == 5.0
    # a withdrawal signed by another node than the emitter's is not authorized
    forged = replay([(first, "n1"), (WithdrawOp(address=ADDRESS, by="a", at=3.0), "n2")])
    assert forged is not None
    # a reinforcement before the tombstone dies with it
    late = replay(
        [(first, "n1"), (ReinforceOp(address=ADDRESS, by="d", at=2.0), "n3"), (withdraw, "n1")]
    )
    assert late is None


def test_renewal_is_the_maximum_and_only_the_origins_node_counts() -> None:
    base = (_emit("a", 1.0), "n1")
    renewals = [(RenewOp(address=ADDRESS, by="a", at=t), "n1") for t in (4.0, 2.0, 3.0)]
    signal = replay([base, *renewals])
    assert signal is not None and signal.created_at == 4.0
    hostile = replay([base, (RenewOp(address=ADDRESS, by="a", at=7.0), "n2")])
    assert hostile is not None and hostile.created_at == 1.0


def test_a_lapsed_lease_is_a_local_tombstone() -> None:
    base = (_emit("a", 1.0), "n1")
    assert replay([base], lapsed=1.5) is None
    assert replay([base], lapsed=0.5) is not None


actions = st.lists(
    st.tuples(
        st.sampled_from(["reinforce", "renew", "withdraw", "emit"]),
        st.sampled_from([*ORIGINS, "d"]),
    ),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(actions)
def test_one_writer_history_matches_a_local_field(steps: list[tuple[str, str]]) -> None:
    """Operations in time order, as one local field sees them, give the same signal."""
    clock = VirtualClock(1.0)
    field = Field(clock)
    ops: list[tuple[Op, str]] = []
    origin = "a"

    def emit_now(by: str) -> None:
        signal = field.new_signal(KIND, PAYLOAD, origin=by, decay=Step())
        field.emit(signal)
        ops.append((emit_op(signal), "n1"))

    emit_now(origin)
    for action, by in steps:
        clock.advance(1.0)
        live = field.get(ADDRESS)
        now = clock.now()
        if action == "emit":
            if live is None:
                origin = by
            emit_now(by)
        elif live is None:
            continue
        elif action == "reinforce":
            field.reinforce(ADDRESS, by=by)
            ops.append((ReinforceOp(address=ADDRESS, by=by, at=now), "n1"))
        elif action == "renew" and by == live.origin:
            field.renew(ADDRESS, by=by)
            ops.append((RenewOp(address=ADDRESS, by=by, at=now), "n1"))
        elif action == "withdraw" and by == live.origin:
            field.withdraw(ADDRESS, by=by)
            ops.append((WithdrawOp(address=ADDRESS, by=by, at=now), "n1"))
    expected: Any = field.get(ADDRESS)
    assert replay(ops) == expected


@settings(max_examples=200, deadline=None)
@given(histories, st.randoms(use_true_random=False), st.sampled_from([2.5, 6.0, 200.0]))
def test_order_makes_no_difference_at_any_time(
    ops: list[tuple[Op, str]], rnd: random.Random, now: float
) -> None:
    shuffled = list(ops)
    rnd.shuffle(shuffled)
    assert replay(shuffled, now=now) == replay(ops, now=now)


def test_an_expired_incarnation_takes_its_history_with_it() -> None:
    def short(origin: str, at: float) -> EmitOp:
        signal = Signal.create(KIND, PAYLOAD, origin=origin, created_at=at, ttl=2.0, decay=Step())
        return emit_op(signal)

    ops: list[tuple[Op, str]] = [
        (short("a", 1.0), "n1"),
        (ReinforceOp(address=ADDRESS, by="d", at=2.0), "n3"),  # reinforces the first life
        (short("b", 4.0), "n2"),  # the first one expired at 3.0: a new life, origin b
    ]
    reborn = replay(ops, now=4.5)
    assert reborn is not None
    assert (reborn.origin, reborn.reinforcers, reborn.created_at) == ("b", (), 4.0)
    assert replay(ops[:2], now=4.5) is None
    assert replay(ops, now=7.0) is None
    # without a time, the merge is pure: the earliest emit wins
    timeless = replay(ops)
    assert timeless is not None and timeless.origin == "a"


def test_a_renewal_after_an_incarnations_expiry_renews_the_next_one() -> None:
    # regression: the renewal at 4.5 used to revive the first life (expired at 3.0, with
    # its reinforcer) instead of renewing the second one, which a local field holds then
    def short(origin: str, at: float) -> EmitOp:
        signal = Signal.create(KIND, PAYLOAD, origin=origin, created_at=at, ttl=2.0, decay=Step())
        return emit_op(signal)

    ops: list[tuple[Op, str]] = [
        (short("a", 1.0), "n1"),
        (ReinforceOp(address=ADDRESS, by="d", at=2.0), "n3"),
        (short("a", 4.0), "n1"),  # the first life expired at 3.0
        (RenewOp(address=ADDRESS, by="a", at=4.5), "n1"),
    ]
    renewed = replay(ops, now=5.0)
    assert renewed is not None
    assert (renewed.reinforcers, renewed.created_at) == ((), 4.5)
    # renewals while a life lasts chain; one after its expiry does not bring it back
    chained = [(short("a", 1.0), "n1")] + [
        (RenewOp(address=ADDRESS, by="a", at=t), "n1") for t in (2.5, 4.0, 7.0)
    ]
    assert replay(chained, now=5.5) is not None  # alive until 6.0 after the renewal at 4.0
    assert replay(chained, now=6.5) is None  # the renewal at 7.0 came too late
    assert replay(chained, now=7.5) is None
