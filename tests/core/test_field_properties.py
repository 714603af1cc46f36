"""Property tests of the field and of lazy decay (hypothesis).

The eager oracle below re-implements the SPEC §1 formulas independently of smesh, so the
lazy, per-reading computation (``Signal.effective``) and the vectorized one
(``SignalArray.effective``) are both checked against it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smesh.clock import VirtualClock
from smesh.decay import Custom, Decay, Exponential, Linear, Sigmoid, Step
from smesh.field import Field
from smesh.signal import Signal
from smesh.vectorized import SignalArray

SETTINGS = settings(max_examples=50, deadline=None)


def _custom_fn(age: float, ttl: float) -> float:
    return 1.0 - (age / ttl) ** 2


CUSTOM = Custom(fn=_custom_fn, label="quadratic")

unit = st.floats(0.0, 1.0)
decays = st.one_of(
    st.builds(Exponential, rate=st.floats(0.001, 5.0)),
    st.just(Linear()),
    st.builds(Sigmoid, steepness=st.floats(0.001, 5.0)),
    st.just(Step()),
)
decays_with_custom = st.one_of(decays, st.just(CUSTOM))
ttls = st.floats(0.05, 1000.0)


@st.composite
def signals(draw: st.DrawFn, decay: Any = decays) -> Signal:
    return Signal.create(
        draw(st.sampled_from(["task", "claim", "vote"])),
        draw(st.integers(0, 10**6)),
        origin=draw(st.sampled_from(["a", "b", "c"])),
        created_at=draw(st.floats(0.0, 100.0)),
        intensity=draw(unit),
        confidence=draw(unit),
        ttl=draw(ttls),
        decay=draw(decay),
        radius=draw(st.integers(0, 8)),
    )


# -- the eager oracle ----------------------------------------------------------------------------


def eager_decay(decay: Decay, i0: float, ttl: float, now: float, created_at: float) -> float:
    age = now - created_at
    if age < 0:
        return i0
    # "age >= ttl", decided on times: at now == created_at + ttl the signal is gone even
    # when now - created_at rounds to just below ttl
    if now >= created_at + ttl:
        return 0.0
    if isinstance(decay, Exponential):
        return i0 * math.exp(-decay.rate * age)
    if isinstance(decay, Linear):
        return i0 * max(0.0, 1.0 - age / ttl)
    if isinstance(decay, Sigmoid):
        x = (age - ttl / 2.0) * decay.steepness
        return 0.0 if x > 700 else i0 / (1.0 + math.exp(x))
    if isinstance(decay, Step):
        return i0
    assert decay is CUSTOM
    return i0 * min(1.0, max(0.0, _custom_fn(age, ttl)))


def eager_confidence(c0: float, n: int) -> float:
    c = c0
    for k in range(1, n + 1):
        c = min(1.0, c + 0.1 / (1.0 + 0.5 * k))
    return c


def eager_effective(s: Signal, n: int, c0: float, now: float) -> float:
    value = eager_decay(s.decay, s.intensity, s.ttl, now, s.created_at)
    return min(1.0, value * eager_confidence(c0, n) * (1.0 + min(0.1 * n, 0.5)))


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


# -- properties ----------------------------------------------------------------------------------


@st.composite
def reinforced_at(
    draw: st.DrawFn, decay: Any = decays_with_custom
) -> tuple[Signal, Signal, int, float]:
    base = draw(signals(decay))
    n = draw(st.integers(0, 9))
    s = base
    for k in range(n):
        s = s.reinforced(f"r{k}")
    # ages from well before creation to well past the ttl
    age = draw(
        st.one_of(
            st.floats(-50.0, 0.0),
            st.floats(0.0, base.ttl),
            st.floats(base.ttl, base.ttl * 3 + 1),
            st.just(0.0),
            st.just(base.ttl),
        )
    )
    return base, s, n, base.created_at + age


@SETTINGS
@given(case=reinforced_at())
def test_lazy_decay_equals_eager_recomputation(case: tuple[Signal, Signal, int, float]) -> None:
    base, s, n, now = case
    expected = eager_effective(base, n, base.confidence, now)
    assert close(s.effective(now), expected), (s.effective(now), expected)
    assert close(s.confidence, eager_confidence(base.confidence, n))
    assert close(s.decayed(now), eager_decay(s.decay, s.intensity, s.ttl, now, s.created_at))


@SETTINGS
@given(
    cases=st.lists(
        st.tuples(signals(decays_with_custom), st.integers(0, 9)), min_size=1, max_size=30
    ),
    now=st.floats(-10.0, 2000.0),
)
def test_vectorized_effective_equals_eager_recomputation(
    cases: list[tuple[Signal, int]], now: float
) -> None:
    batch = []
    expected = []
    for base, n in cases:
        s = base
        for k in range(n):
            s = s.reinforced(f"r{k}")
        batch.append(s)
        expected.append(eager_effective(base, n, base.confidence, now))
    array = SignalArray(batch)
    got = array.effective(now)
    assert len(array) == len(batch)
    assert got.shape == (len(batch),)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got, [s.effective(now) for s in batch], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("decay", [Exponential(), Linear(), Sigmoid(), Step(), CUSTOM], ids=repr)
def test_vectorized_single_family_batches(decay: Decay) -> None:
    # a batch of one family takes the no-indexing fast path
    batch = [
        Signal.create("t", i, origin="o", created_at=float(i), ttl=20.0, decay=decay)
        for i in range(25)
    ]
    for now in (-5.0, 0.0, 7.5, 20.0, 44.9, 100.0):
        np.testing.assert_allclose(
            SignalArray(batch).effective(now), [s.effective(now) for s in batch], atol=1e-12
        )
    assert SignalArray([]).effective(1.0).shape == (0,)


@SETTINGS
@given(case=reinforced_at(decays))
def test_effective_intensity_stays_in_unit_interval(
    case: tuple[Signal, Signal, int, float],
) -> None:
    _, s, _, now = case
    value = s.effective(now)
    assert 0.0 <= value <= 1.0
    assert 0.0 <= s.decayed(now) <= s.intensity
    vector = SignalArray([s]).effective(now)
    assert 0.0 <= vector[0] <= 1.0


@SETTINGS
@given(
    batch=st.lists(signals(), min_size=1, max_size=20),
    times=st.lists(st.floats(0.0, 3000.0), min_size=1, max_size=5),
)
def test_nothing_is_sensed_after_expiry(batch: list[Signal], times: list[float]) -> None:
    field = Field(VirtualClock())
    field.emit_many(batch)
    live = {s.address: s for s in field.signals()}
    gone: set[str] = set()
    for t in sorted(times):
        # before the tick: whatever is sensed is genuinely alive
        for sensed in field.sense(0.0, now=t):
            assert not sensed.signal.is_expired(t)
            assert t - sensed.signal.created_at < sensed.signal.ttl
            assert sensed.intensity > 0.0
        expired = field.tick(t)
        due = {a for a, s in live.items() if a not in gone and s.expires_at() <= t}
        assert {s.address for s in expired} == due
        gone |= due
        sensed_now = {x.signal.address for x in field.sense(0.0, now=t)}
        assert not sensed_now & gone
        for address in gone:
            assert field.get(address, now=t) is None
            assert address not in {s.address for s in field.signals()}
        assert len(field) == len(live) - len(gone)


@SETTINGS
@given(s=signals(), ttl_factor=st.floats(1.0, 5.0))
def test_expired_signal_is_never_sensed_at_any_later_time(s: Signal, ttl_factor: float) -> None:
    field = Field(VirtualClock())
    field.emit(s)
    at = s.created_at + s.ttl * ttl_factor
    assert field.sense(0.0, now=at) == []
    assert field.get(s.address, now=at) is None
    field.tick(at)
    assert len(field) == 0


@SETTINGS
@given(
    s=signals(),
    reinforcers=st.lists(st.sampled_from(["a", "b", "c", "d", "e", "f", "g"]), max_size=25),
)
def test_reinforcement_is_idempotent_per_node(s: Signal, reinforcers: list[str]) -> None:
    field = Field(VirtualClock())
    field.emit(s)
    seen: list[str] = []
    for by in reinforcers:
        counted = field.reinforce(s.address, by=by)
        new = by != s.origin and by not in seen
        assert counted is new
        if new:
            seen.append(by)
    live = field.get(s.address, now=s.created_at)
    if live is None:  # born expired (intensity < 0.01): still held until a tick
        live = field.signals()[0]
    assert live.reinforcers == tuple(seen)
    assert field.stats().reinforcements == len(seen)
    assert close(live.confidence, eager_confidence(s.confidence, len(seen)))
    assert live.created_at == s.created_at
    # reinforcing again by everyone changes nothing
    for by in seen:
        assert field.reinforce(s.address, by=by) is False
    assert field.signals()[0] == live


@SETTINGS
@given(
    batch=st.lists(signals(), max_size=25), origins=st.lists(st.sampled_from("abcxyz"), max_size=25)
)
def test_emit_many_matches_sequential_emit(batch: list[Signal], origins: list[str]) -> None:
    # re-emit some of the batch from other origins to create duplicates
    dupes = [
        Signal.create(s.kind, s.payload, origin=o, created_at=s.created_at)
        for s, o in zip(batch, origins, strict=False)
    ]
    items = batch + dupes
    a, b = Field(VirtualClock()), Field(VirtualClock())
    for s in items:
        a.emit(s)
    assert b.emit_many(items) == a.stats().emitted
    assert a.signals() == b.signals()
    assert a.stats() == b.stats()
    for t in (10.0, 100.0, 2000.0):
        assert a.tick(t) == b.tick(t)
