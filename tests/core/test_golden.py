"""The golden values of SPEC §1: decay, confidence, effective intensity, expiry, boost."""

from __future__ import annotations

import math
from typing import Any

import pytest

from smesh.clock import VirtualClock
from smesh.decay import EXPIRY_INTENSITY, Custom, Exponential, Linear, Sigmoid, Step
from smesh.field import Field
from smesh.signal import MAX_REINFORCEMENT_BOOST, Signal, reinforcement_boost

ALL_DECAYS = [Exponential(), Exponential(rate=0.2), Linear(), Sigmoid(), Step()]


def make(*, origin: str = "o", created_at: float = 0.0, **kw: Any) -> Signal:
    return Signal.create("task", {"x": 1}, origin=origin, created_at=created_at, **kw)


# -- decay families --------------------------------------------------------------------------


def test_exponential_rate_0_2_at_age_5_is_e_to_minus_1() -> None:
    s = make(decay=Exponential(rate=0.2), ttl=60.0)
    assert s.decayed(5.0) == pytest.approx(math.exp(-1.0), rel=1e-12)
    assert Exponential(rate=0.2).value(1.0, 5.0, 60.0) == pytest.approx(math.exp(-1.0))


def test_exponential_scales_with_initial_intensity() -> None:
    s = make(decay=Exponential(rate=0.2), intensity=0.4)
    assert s.decayed(5.0) == pytest.approx(0.4 * math.exp(-1.0), rel=1e-12)


@pytest.mark.parametrize(("age", "expected"), [(25.0, 0.75), (50.0, 0.5), (75.0, 0.25)])
def test_linear_ttl_100(age: float, expected: float) -> None:
    s = make(decay=Linear(), ttl=100.0)
    assert s.decayed(age) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("steepness", [0.05, 0.1, 1.0])
def test_sigmoid_ttl_100_at_half_life_is_half(steepness: float) -> None:
    s = make(decay=Sigmoid(steepness=steepness), ttl=100.0)
    assert s.decayed(50.0) == pytest.approx(0.5, abs=1e-12)
    # flat before the midpoint, falling after it
    assert s.decayed(10.0) > 0.5 > s.decayed(90.0)


def test_sigmoid_formula_off_midpoint() -> None:
    s = make(decay=Sigmoid(steepness=0.1), ttl=100.0, intensity=0.8)
    assert s.decayed(70.0) == pytest.approx(0.8 / (1.0 + math.exp(2.0)), rel=1e-12)


def test_step_is_flat_until_ttl_then_zero() -> None:
    s = make(decay=Step(), ttl=10.0, intensity=0.7)
    for age in (0.0, 1.0, 5.0, 9.999):
        assert s.decayed(age) == 0.7
    assert s.decayed(10.0) == 0.0
    assert s.expires_at() == 10.0


@pytest.mark.parametrize("decay", ALL_DECAYS, ids=repr)
def test_negative_age_gives_initial_intensity(decay: object) -> None:
    s = make(decay=decay, intensity=0.6, confidence=0.5, created_at=100.0)
    assert s.decayed(40.0) == 0.6
    assert s.effective(40.0) == pytest.approx(0.3)


@pytest.mark.parametrize("decay", ALL_DECAYS, ids=repr)
def test_age_at_or_beyond_ttl_gives_zero(decay: object) -> None:
    s = make(decay=decay, ttl=30.0, created_at=10.0)
    assert s.decayed(40.0) == 0.0
    assert s.effective(40.0) == 0.0
    assert s.decayed(1e9) == 0.0
    assert s.is_expired(40.0)


# -- confidence and effective intensity --------------------------------------------------------


def test_confidence_steps_are_0_0667_then_0_05_then_0_04() -> None:
    s = make(confidence=0.5)
    steps = []
    for by in ("a", "b", "c"):
        before = s.confidence
        s = s.reinforced(by)
        steps.append(s.confidence - before)
    assert steps == pytest.approx([0.1 / 1.5, 0.1 / 2.0, 0.1 / 2.5], abs=1e-12)
    assert steps == pytest.approx([0.0667, 0.05, 0.04], abs=5e-5)
    assert s.reinforcers == ("a", "b", "c")


def test_confidence_is_capped_at_one() -> None:
    s = make(confidence=0.99)
    s = s.reinforced("a").reinforced("b")
    assert s.confidence == 1.0


def test_effective_0_5_becomes_0_6_with_two_reinforcers() -> None:
    s = make(intensity=0.5, decay=Step())
    assert s.effective(0.0) == pytest.approx(0.5)
    s = s.reinforced("a").reinforced("b")
    assert len(s.reinforcers) == 2
    assert s.effective(0.0) == pytest.approx(0.6, abs=1e-12)


def test_effective_multiplies_decay_confidence_and_boost() -> None:
    s = make(intensity=0.8, confidence=0.5, decay=Exponential(rate=0.2))
    s = s.reinforced("a")
    expected = 0.8 * math.exp(-1.0) * s.confidence * 1.1
    assert s.effective(5.0) == pytest.approx(expected, rel=1e-12)


def test_effective_is_capped_at_one() -> None:
    s = make(intensity=1.0, decay=Step())
    for by in "abcdef":
        s = s.reinforced(by)
    assert s.effective(0.0) == 1.0


@pytest.mark.parametrize(
    ("n", "expected"), [(0, 1.0), (1, 1.1), (3, 1.3), (5, 1.5), (6, 1.5), (50, 1.5)]
)
def test_reinforcement_boost_is_capped_at_plus_half(n: int, expected: float) -> None:
    assert reinforcement_boost(n) == pytest.approx(expected)
    s = make(intensity=0.1, decay=Step())
    for i in range(n):
        s = s.reinforced(f"r{i}")
    # confidence is 1 and capped there, so only the boost moves the effective intensity
    assert s.confidence == 1.0
    assert s.effective(0.0) == pytest.approx(0.1 * expected, rel=1e-12)
    assert MAX_REINFORCEMENT_BOOST == 0.5


# -- expiry ------------------------------------------------------------------------------------


def test_exponential_0_1_with_ttl_60_expires_at_ln100_over_0_1() -> None:
    clock = VirtualClock()
    field = Field(clock)
    s = field.emit("task", {"x": 1}, origin="o", decay=Exponential(rate=0.1), ttl=60.0)
    expected = math.log(100.0) / 0.1  # ≈ 46.05 s, well before the ttl
    assert s.expires_at() == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(46.05, abs=0.01)
    assert field.tick(46.0) == []
    assert s.address in field
    assert not s.is_expired(46.0)
    assert s.is_expired(46.1)
    assert field.tick(46.1) == [s]
    assert len(field) == 0


def test_expiry_threshold_is_decayed_intensity_below_0_01() -> None:
    s = make(decay=Exponential(rate=0.1), ttl=600.0, intensity=0.5)
    at = s.expires_at()
    assert at == pytest.approx(math.log(0.5 / EXPIRY_INTENSITY) / 0.1)
    assert s.decayed(at - 1e-6) >= EXPIRY_INTENSITY
    assert s.decayed(at + 1e-6) < EXPIRY_INTENSITY


def test_signal_born_below_threshold_expires_immediately() -> None:
    field = Field(VirtualClock())
    s = field.emit("task", {"x": 1}, origin="o", intensity=0.005)
    assert s.expires_at() == 0.0
    assert field.sense(0.0) == []
    assert field.tick(0.0) == [s]


def test_linear_expiry_is_before_ttl() -> None:
    s = make(decay=Linear(), ttl=100.0)
    assert s.expires_at() == pytest.approx(99.0)


def test_sigmoid_expiry_age() -> None:
    s = make(decay=Sigmoid(steepness=0.1), ttl=200.0)
    assert s.expires_at() == pytest.approx(100.0 + math.log(99.0) / 0.1)
    # a ttl too short for the fall: the ttl wins
    assert make(decay=Sigmoid(steepness=0.1), ttl=20.0).expires_at() == 20.0


def test_step_lasts_until_ttl_in_the_field() -> None:
    field = Field(VirtualClock())
    s = field.emit("lease", {"x": 1}, origin="o", decay=Step(), ttl=30.0)
    assert field.tick(29.99) == []
    assert field.sense(0.1, now=29.99)[0].intensity == 1.0
    assert field.tick(30.0) == [s]


def test_custom_decay_expiry_found_by_bisection() -> None:
    decay = Custom(fn=lambda age, ttl: math.exp(-0.1 * age), label="exp-like")
    s = make(decay=decay, ttl=60.0)
    assert s.expires_at() == pytest.approx(math.log(100.0) / 0.1, abs=1e-9)
    field = Field(VirtualClock())
    field.emit(s)
    assert field.tick(46.0) == []
    assert field.tick(46.1) == [s]


def test_custom_decay_factor_is_clamped_and_can_last_until_ttl() -> None:
    decay = Custom(fn=lambda age, ttl: 3.0 - age)  # above 1, then below 0
    assert decay.factor(0.0, 10.0) == 1.0
    assert decay.factor(5.0, 10.0) == 0.0
    assert decay.expiry_age(1.0, 10.0) == pytest.approx(2.99, abs=1e-9)
    flat = Custom(fn=lambda age, ttl: 1.0)
    assert flat.expiry_age(1.0, 10.0) == 10.0
    assert flat.expiry_age(0.001, 10.0) == 0.0
