"""Field: emit, sense, reinforce, withdraw, renew, tick, history, stats, subscriptions."""

from __future__ import annotations

from typing import Any

import pytest

from smesh.clock import VirtualClock
from smesh.decay import Exponential, Linear, Step
from smesh.errors import InvalidSignal, NotPermitted, SignalNotFound
from smesh.field import Field, FieldEvent
from smesh.signal import Signal


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def field(clock: VirtualClock) -> Field:
    return Field(clock)


def sig(payload: Any, *, kind: str = "task", origin: str = "o", **kw: Any) -> Signal:
    kw.setdefault("created_at", 0.0)
    return Signal.create(kind, payload, origin=origin, **kw)


# -- emit ----------------------------------------------------------------------------------------


def test_emit_stamps_the_clock_and_stores_the_signal(field: Field, clock: VirtualClock) -> None:
    clock.set(12.5)
    s = field.emit("task", {"id": 1}, origin="a", ttl=30.0)
    assert s.created_at == 12.5
    assert s.ttl == 30.0
    assert field.get(s.address) == s
    assert s.address in field
    assert len(field) == 1
    assert list(field) == [s]


def test_duplicate_emit_reinforces_instead_of_inserting(field: Field) -> None:
    first = field.emit("task", {"id": 1}, origin="a", confidence=0.5)
    second = field.emit("task", {"id": 1}, origin="b", confidence=0.9, intensity=0.1)
    assert len(field) == 1
    assert second.address == first.address
    assert second.origin == "a"  # the live signal keeps its origin and content
    assert second.intensity == first.intensity
    assert second.reinforcers == ("b",)
    assert second.confidence == pytest.approx(0.5 + 0.1 / 1.5)
    assert field.get(first.address) == second
    stats = field.stats()
    assert (stats.emitted, stats.reinforcements, stats.live) == (1, 1, 1)


def test_duplicate_emit_by_the_origin_changes_nothing(field: Field) -> None:
    first = field.emit("task", {"id": 1}, origin="a")
    again = field.emit("task", {"id": 1}, origin="a")
    assert again == first
    assert field.stats().reinforcements == 0


def test_origin_scoped_emits_from_two_origins_are_two_signals(field: Field) -> None:
    a = field.emit("claim", {"task": 1}, origin="a", scope="origin")
    b = field.emit("claim", {"task": 1}, origin="b", scope="origin")
    assert a.address != b.address
    assert len(field) == 2
    assert field.stats().reinforcements == 0


def test_emit_signal_with_extra_options_is_rejected(field: Field) -> None:
    with pytest.raises(InvalidSignal):
        field.emit(sig(1), {"payload": "extra"})  # type: ignore[call-overload]
    with pytest.raises(InvalidSignal):
        field.emit(sig(1), ttl=3.0)  # type: ignore[call-overload]
    assert len(field) == 0


def test_negative_history_is_rejected(clock: VirtualClock) -> None:
    with pytest.raises(InvalidSignal):
        Field(clock, history=-1)


# -- sense ---------------------------------------------------------------------------------------


def test_sense_applies_the_threshold(field: Field) -> None:
    strong = field.emit(sig("strong", intensity=0.9))
    mid = field.emit(sig("mid", intensity=0.5))
    field.emit(sig("weak", intensity=0.05))
    assert [s.signal for s in field.sense()] == [strong, mid]  # default threshold 0.1
    assert [s.signal for s in field.sense(0.6)] == [strong]
    assert len(field.sense(0.0)) == 3
    assert field.sense(0.95) == []
    # the threshold is inclusive
    assert [s.signal for s in field.sense(0.5)] == [strong, mid]


def test_sense_reports_effective_intensity(field: Field) -> None:
    s = field.emit(sig("a", intensity=0.8, confidence=0.5, decay=Exponential(rate=0.2)))
    sensed = field.sense(0.0, now=5.0)
    assert len(sensed) == 1
    assert sensed[0].intensity == pytest.approx(s.effective(5.0))
    assert sensed[0].intensity == pytest.approx(0.8 * 0.5 * 0.36787944117, rel=1e-9)


def test_sense_kind_and_where_filters(field: Field) -> None:
    t1 = field.emit(sig({"n": 1}, kind="task"))
    t2 = field.emit(sig({"n": 2}, kind="task", intensity=0.7))
    c = field.emit(sig({"n": 3}, kind="claim"))
    assert [s.signal for s in field.sense(kind="task")] == [t1, t2]
    assert [s.signal for s in field.sense(kind="claim")] == [c]
    assert field.sense(kind="vote") == []
    only_even = field.sense(where=lambda s: s.payload["n"] % 2 == 0)
    assert [s.signal for s in only_even] == [t2]
    both = field.sense(kind="task", where=lambda s: s.payload["n"] == 1)
    assert [s.signal for s in both] == [t1]


def test_sense_orders_strongest_first_with_a_deterministic_tie_break(clock: VirtualClock) -> None:
    signals = [sig(i, intensity=0.5) for i in range(10)] + [sig("top", intensity=0.9)]
    expected_ties = sorted(s.address for s in signals[:10])
    orders = []
    for batch in (signals, list(reversed(signals))):
        field = Field(clock)
        for s in batch:
            field.emit(s)
        sensed = field.sense(0.0)
        assert sensed[0].signal.payload == "top"
        assert [x.signal.address for x in sensed[1:]] == expected_ties
        orders.append([x.signal.address for x in sensed])
    assert orders[0] == orders[1]


def test_sense_ranks_by_effective_not_initial_intensity(field: Field) -> None:
    fast = field.emit(sig("fast", intensity=1.0, decay=Exponential(rate=1.0), ttl=100.0))
    slow = field.emit(sig("slow", intensity=0.6, decay=Step(), ttl=100.0))
    assert [s.signal for s in field.sense(0.0, now=0.0)] == [fast, slow]
    assert [s.signal for s in field.sense(0.0, now=2.0)] == [slow, fast]


def test_sense_ignores_signals_past_expiry_even_before_tick(field: Field) -> None:
    field.emit(sig("short", decay=Step(), ttl=5.0))
    assert len(field.sense(0.0, now=4.9)) == 1
    assert field.sense(0.0, now=5.0) == []
    assert len(field) == 1  # not removed until a tick


# -- reinforce -----------------------------------------------------------------------------------


def test_reinforce_returns_whether_it_counted(field: Field) -> None:
    s = field.emit(sig(1, origin="a", confidence=0.5))
    assert field.reinforce(s.address, by="b") is True
    assert field.reinforce(s.address, by="b") is False
    assert field.reinforce(s.address, by="a") is False
    assert field.reinforce(s.address, by="c") is True
    live = field.get(s.address)
    assert live is not None
    assert live.reinforcers == ("b", "c")
    assert live.confidence == pytest.approx(0.5 + 0.1 / 1.5 + 0.1 / 2.0)
    assert live.created_at == s.created_at
    assert field.stats().reinforcements == 2


def test_reinforce_unknown_address_raises(field: Field) -> None:
    with pytest.raises(SignalNotFound) as info:
        field.reinforce("0" * 32, by="b")
    assert info.value.signal == "0" * 32
    assert isinstance(info.value, KeyError)
    assert "0" * 32 in str(info.value)


def test_reinforce_after_tick_expiry_raises(field: Field) -> None:
    s = field.emit(sig(1, decay=Step(), ttl=1.0))
    field.tick(1.0)
    with pytest.raises(SignalNotFound):
        field.reinforce(s.address, by="b")


# -- withdraw / renew ----------------------------------------------------------------------------


def test_only_the_origin_may_withdraw(field: Field) -> None:
    s = field.emit(sig("claim", origin="a"))
    with pytest.raises(NotPermitted) as info:
        field.withdraw(s.address, by="b")
    assert info.value.node == "b"
    assert s.address in field
    assert field.withdraw(s.address, by="a") == s
    assert s.address not in field
    assert field.get(s.address) is None
    assert field.history == (s,)
    assert field.stats().withdrawn == 1
    with pytest.raises(SignalNotFound):
        field.withdraw(s.address, by="a")


def test_withdrawn_signal_does_not_come_back_at_tick(field: Field) -> None:
    s = field.emit(sig("claim", origin="a", decay=Step(), ttl=1.0))
    field.withdraw(s.address, by="a")
    assert field.tick(5.0) == []
    assert field.stats().expired == 0


def test_only_the_origin_may_renew(field: Field, clock: VirtualClock) -> None:
    s = field.emit(sig("lease", origin="a", decay=Step(), ttl=10.0))
    clock.set(4.0)
    with pytest.raises(NotPermitted):
        field.renew(s.address, by="b")
    with pytest.raises(SignalNotFound):
        field.renew("f" * 32, by="a")
    renewed = field.renew(s.address, by="a")
    assert renewed.created_at == 4.0
    assert field.get(s.address) == renewed
    assert field.stats().renewed == 1


def test_renewed_lease_outlives_its_original_expiry(field: Field, clock: VirtualClock) -> None:
    s = field.emit(sig("lease", origin="a", decay=Step(), ttl=10.0))
    clock.set(8.0)
    field.renew(s.address, by="a")
    clock.set(10.0)
    assert field.tick() == []
    assert field.get(s.address) is not None
    assert len(field.sense(0.5)) == 1
    assert field.tick(17.9) == []
    expired = field.tick(18.0)
    assert [e.address for e in expired] == [s.address]
    assert expired[0].created_at == 8.0
    assert field.get(s.address) is None
    assert field.stats().expired == 1


def test_renewal_within_the_same_bucket_still_expires_once(
    field: Field, clock: VirtualClock
) -> None:
    s = field.emit(sig("lease", origin="a", decay=Step(), ttl=10.0))
    clock.set(0.1)
    field.renew(s.address, by="a")  # new expiry 10.1: the same 0.25 s bucket as 10.0
    assert field.tick(10.05) == []
    assert len(field.tick(10.1)) == 1
    assert field.tick(100.0) == []
    assert field.stats().expired == 1


def test_renewing_an_exponential_signal_restores_its_intensity(
    field: Field, clock: VirtualClock
) -> None:
    s = field.emit(sig("beacon", origin="a", decay=Exponential(rate=0.1), ttl=60.0))
    clock.set(40.0)
    assert field.sense(0.0)[0].intensity == pytest.approx(s.effective(40.0))
    field.renew(s.address, by="a")
    assert field.sense(0.0)[0].intensity == pytest.approx(1.0)
    assert field.tick(50.0) == []  # the original expiry (46.05 s) has passed
    assert len(field.tick(40.0 + 46.1)) == 1


# -- tick and history ----------------------------------------------------------------------------


def test_tick_returns_exactly_the_expired_signals(field: Field) -> None:
    long_lived = [sig(("long", i), decay=Step(), ttl=1000.0) for i in range(5000)]
    short = [sig(("short", i), decay=Step(), ttl=1.0 + i) for i in range(5)]
    field.emit_many(long_lived + short)
    assert field.tick(0.5) == []
    assert field.tick(2.5) == short[:2]
    assert field.tick(2.5) == []  # idempotent at the same time
    assert field.tick(10.0) == short[2:]
    assert len(field) == 5000
    assert all(s.address in field for s in long_lived[::500])
    assert field.stats().expired == 5


def test_tick_defaults_to_the_clock_and_expire_is_an_alias(
    field: Field, clock: VirtualClock
) -> None:
    s = field.emit(sig(1, decay=Step(), ttl=3.0))
    clock.set(2.0)
    assert field.expire() == []
    clock.set(3.0)
    assert field.expire() == [s]


def test_tick_handles_signals_due_later_in_a_partly_due_bucket(field: Field) -> None:
    a = field.emit(sig("a", decay=Step(), ttl=10.0))
    b = field.emit(sig("b", decay=Step(), ttl=10.2))  # same 0.25 s bucket
    assert field.tick(10.1) == [a]
    assert field.tick(10.15) == []
    assert field.tick(10.2) == [b]


def test_history_is_a_ring_buffer(clock: VirtualClock) -> None:
    field = Field(clock, history=3)
    signals = [field.emit(sig(i, decay=Step(), ttl=1.0 + i)) for i in range(5)]
    expired = field.tick(100.0)
    assert expired == signals
    assert field.history == tuple(signals[2:])
    assert field.stats().history == 3
    # more expiries keep pushing the oldest out
    late = field.emit(sig("late", decay=Step(), ttl=1.0, created_at=100.0))
    field.tick(200.0)
    assert field.history == (signals[3], signals[4], late)


def test_history_zero_keeps_nothing(clock: VirtualClock) -> None:
    field = Field(clock, history=0)
    field.emit(sig(1, decay=Step(), ttl=1.0))
    assert len(field.tick(5.0)) == 1
    assert field.history == ()


def test_get_returns_none_after_expiry_even_before_tick(field: Field) -> None:
    s = field.emit(sig(1, decay=Linear(), ttl=10.0))
    assert field.get(s.address, now=9.0) == s
    assert field.get(s.address, now=9.95) is None  # below 0.01: expired
    assert field.get(s.address, now=10.0) is None
    assert len(field) == 1
    assert field.get("nope") is None


def test_contains_follows_the_clock(field: Field, clock: VirtualClock) -> None:
    s = field.emit(sig(1, decay=Step(), ttl=2.0))
    assert s.address in field
    clock.set(2.0)
    assert s.address not in field
    assert 42 not in field


# -- stats ---------------------------------------------------------------------------------------


def test_stats_counters(field: Field, clock: VirtualClock) -> None:
    a = field.emit(sig("a", kind="task", origin="x", decay=Step(), ttl=5.0))
    b = field.emit(sig("b", kind="task", origin="x", decay=Step(), ttl=50.0))
    c = field.emit(sig("c", kind="claim", origin="x", decay=Step(), ttl=50.0))
    field.emit(sig("b", kind="task", origin="y"))  # duplicate: a reinforcement
    field.reinforce(c.address, by="z")
    field.reinforce(c.address, by="z")  # not counted
    clock.set(1.0)
    field.renew(b.address, by="x")
    field.withdraw(c.address, by="x")
    field.tick(6.0)
    stats = field.stats()
    assert stats.live == 1
    assert stats.emitted == 3
    assert stats.reinforcements == 2
    assert stats.expired == 1
    assert stats.withdrawn == 1
    assert stats.renewed == 1
    assert stats.history == 2
    assert stats.by_kind == {"task": 1}
    assert [h.address for h in field.history] == [c.address, a.address]
    assert field.history[0].reinforcers == ("z",)
    assert field.signals() == [field.get(b.address)]
    assert field.signals("claim") == []


def test_signals_by_kind_in_emission_order(field: Field) -> None:
    emitted = [field.emit(sig(i, kind="task" if i % 2 else "vote")) for i in range(6)]
    assert field.signals("task") == emitted[1::2]
    assert field.signals("vote") == emitted[0::2]
    assert field.signals() == emitted


# -- subscriptions -------------------------------------------------------------------------------


def test_subscribers_receive_every_event_type(field: Field, clock: VirtualClock) -> None:
    events: list[FieldEvent] = []
    field.subscribe(events.append)
    s = field.emit(sig("lease", origin="a", decay=Step(), ttl=10.0))
    field.reinforce(s.address, by="b")
    field.reinforce(s.address, by="b")  # not counted: no event
    clock.set(2.0)
    field.renew(s.address, by="a")
    w = field.emit(sig("claim", origin="a"))
    field.withdraw(w.address, by="a")
    field.tick(12.0)
    assert [(e.type, e.by) for e in events] == [
        ("emit", "a"),
        ("reinforce", "b"),
        ("renew", "a"),
        ("emit", "a"),
        ("withdraw", "a"),
        ("expire", None),
    ]
    assert events[1].signal.reinforcers == ("b",)
    assert events[2].signal.created_at == 2.0
    assert events[2].time == 2.0
    assert events[4].signal.address == w.address
    assert events[5].signal.address == s.address
    assert events[5].time == 12.0


def test_subscription_kind_filter(field: Field) -> None:
    tasks: list[FieldEvent] = []
    both: list[FieldEvent] = []
    field.subscribe(tasks.append, kinds=["task"])
    field.subscribe(both.append, kinds={"task", "claim"})
    field.emit(sig(1, kind="task"))
    field.emit(sig(2, kind="claim"))
    field.emit(sig(3, kind="vote"))
    assert [e.signal.kind for e in tasks] == ["task"]
    assert [e.signal.kind for e in both] == ["task", "claim"]


def test_cancel_stops_delivery(field: Field) -> None:
    events: list[FieldEvent] = []
    sub = field.subscribe(events.append)
    field.emit(sig(1))
    assert sub.active
    sub.cancel()
    sub.cancel()  # safe twice
    assert not sub.active
    field.emit(sig(2))
    assert len(events) == 1
    with field.subscribe(events.append) as scoped:
        field.emit(sig(3))
    assert not scoped.active
    field.emit(sig(4))
    assert [e.signal.payload for e in events] == [1, 3]


def test_a_raising_subscriber_does_not_starve_the_others(field: Field) -> None:
    before: list[FieldEvent] = []
    after: list[FieldEvent] = []

    def boom(event: FieldEvent) -> None:
        raise RuntimeError("subscriber failed")

    field.subscribe(before.append)
    field.subscribe(boom)
    field.subscribe(after.append)
    with pytest.raises(RuntimeError, match="subscriber failed"):
        field.emit(sig(1))
    assert len(before) == len(after) == 1
    assert len(field) == 1  # the emit itself happened


def test_subscriber_may_cancel_itself_during_delivery(field: Field) -> None:
    seen: list[str] = []

    def once(event: FieldEvent) -> None:
        seen.append(event.type)
        sub.cancel()

    sub = field.subscribe(once)
    field.emit(sig(1))
    field.emit(sig(2))
    assert seen == ["emit"]


# -- emit_many -----------------------------------------------------------------------------------


def _snapshot(field: Field) -> tuple[object, ...]:
    return (
        {s.address: s for s in field.signals()},
        [s.address for s in field.signals()],
        field.stats(),
    )


def test_emit_many_equals_sequential_emits(clock: VirtualClock) -> None:
    pre = [sig(("pre", i), origin="p", confidence=0.5) for i in range(3)]
    batch = [
        sig(("new", 0), origin="a"),
        sig(("new", 1), origin="a", decay=Linear(), ttl=5.0),
        sig(("new", 0), origin="b"),  # duplicate inside the batch
        sig(("new", 0), origin="b"),  # and again, by the same node
        sig(("pre", 1), origin="c"),  # duplicate of a live signal
        sig(("pre", 1), origin="p"),  # the origin itself: not a reinforcement
        sig(("new", 2), kind="vote", origin="a"),
    ]
    one_by_one = Field(clock)
    batched = Field(clock)
    for f in (one_by_one, batched):
        f.emit_many(pre)
    for s in batch:
        one_by_one.emit(s)
    assert batched.emit_many(iter(batch)) == 3
    assert _snapshot(batched) == _snapshot(one_by_one)
    for t in (4.0, 5.0, 100.0):
        assert batched.tick(t) == one_by_one.tick(t)
    assert _snapshot(batched) == _snapshot(one_by_one)


def test_emit_many_publishes_events(field: Field) -> None:
    events: list[FieldEvent] = []
    field.subscribe(events.append)
    field.emit_many([sig(1, origin="a"), sig(1, origin="b"), sig(2, origin="a")])
    assert sorted(e.type for e in events) == ["emit", "emit", "reinforce"]
