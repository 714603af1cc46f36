"""Trust tables (additive, Bayesian, Beta) with relaxation toward 0.5, and nodes."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smesh.errors import InvalidValue, UnknownName
from smesh.node import Node
from smesh.trust import DEFAULT_TRUST, MAX_TRUST, MIN_TRUST, TrustTable, relax


def relaxed(c: float, dt: float, rate: float = 0.01) -> float:
    f = math.exp(-rate * dt)
    return c * f + 0.5 * (1.0 - f)


def test_strangers_get_0_5() -> None:
    table = TrustTable()
    assert DEFAULT_TRUST == 0.5
    assert table.get("anyone", 0.0) == 0.5
    assert table.get("anyone", 1e6) == 0.5
    assert "anyone" not in table
    assert len(table) == 0


def test_additive_steps_up_and_down() -> None:
    table = TrustTable()
    assert table.record("p", True, 0.0) == pytest.approx(0.6)
    assert table.record("p", True, 0.0) == pytest.approx(0.7)
    assert table.record("p", False, 0.0) == pytest.approx(0.6)
    assert table.get("p", 0.0) == pytest.approx(0.6)
    assert "p" in table
    assert table.record("q", False, 0.0) == pytest.approx(0.4)


def test_additive_step_and_weight() -> None:
    table = TrustTable(step=0.2)
    assert table.record("p", True, 0.0) == pytest.approx(0.7)
    assert table.record("p", False, 0.0, weight=0.5) == pytest.approx(0.6)
    assert table.record("p", True, 0.0, weight=5.0) == pytest.approx(0.8)  # weight clipped
    assert table.record("p", True, 0.0, weight=-1.0) == pytest.approx(0.8)  # no evidence


def test_additive_is_clamped_to_0_01_and_0_99() -> None:
    table = TrustTable()
    for _ in range(20):
        table.record("good", True, 0.0)
        table.record("bad", False, 0.0)
    assert table.get("good", 0.0) == MAX_TRUST == 0.99
    assert table.get("bad", 0.0) == MIN_TRUST == 0.01


def test_bayesian_update_moves_toward_the_outcome() -> None:
    table = TrustTable("bayesian", evidence=0.8)
    assert table.record("p", True, 0.0) == pytest.approx(0.8)  # 0.5·0.8 / (0.5·0.8 + 0.5·0.2)
    assert table.record("p", True, 0.0) == pytest.approx(0.64 / (0.64 + 0.04))
    assert table.record("q", False, 0.0) == pytest.approx(0.2)
    values = [table.record("r", True, 0.0) for _ in range(30)]
    assert values == sorted(values)
    assert values[-1] == MAX_TRUST
    downs = [table.record("r", False, 0.0) for _ in range(60)]
    assert downs == sorted(downs, reverse=True)
    assert downs[-1] == MIN_TRUST


def test_bayesian_weight_zero_is_no_evidence() -> None:
    table = TrustTable("bayesian")
    assert table.record("p", True, 0.0, weight=0.0) == pytest.approx(0.5)


def test_beta_reputation_is_alpha_over_alpha_plus_beta() -> None:
    table = TrustTable("beta")
    assert table.record("p", True, 0.0) == pytest.approx(2 / 3)
    table.record("p", True, 0.0)
    table.record("p", True, 0.0)
    assert table.record("p", False, 0.0) == pytest.approx(4 / 6)
    assert table.record("q", False, 0.0) == pytest.approx(1 / 3)
    assert table.record("w", True, 0.0, weight=0.5) == pytest.approx(1.5 / 2.5)


def test_beta_evidence_relaxes_in_step_with_the_value() -> None:
    table = TrustTable("beta")
    for _ in range(8):
        table.record("p", True, 0.0)  # alpha = 9, beta = 1
    assert table.get("p", 0.0) == pytest.approx(0.9)
    # between outcomes the value relaxes like every model's, and the evidence shrinks
    current = relaxed(0.9, 100.0)
    assert table.get("p", 100.0) == pytest.approx(current)
    f = math.exp(-0.01 * 100.0)
    total = 2.0 + 8.0 * f
    assert table.record("p", True, 100.0) == pytest.approx((current * total + 1) / (total + 1))


def test_beta_failure_never_raises_trust_after_a_pause() -> None:
    table = TrustTable("beta")
    for _ in range(8):
        table.record("p", True, 0.0)
    before = table.get("p", 100.0)
    assert table.record("p", False, 100.0, weight=0.1) < before


def test_beta_respects_a_seeded_value() -> None:
    table = TrustTable("beta")
    table.set("p", 0.9, now=0.0)
    assert table.record("p", True, 0.0) > 0.9
    table.set("q", 0.2, now=0.0)
    assert table.record("q", False, 0.0) < 0.2


@pytest.mark.parametrize(("start", "dt"), [(0.9, 50.0), (0.1, 10.0), (0.99, 1000.0), (0.3, 0.0)])
def test_relaxation_toward_0_5(start: float, dt: float) -> None:
    table = TrustTable()
    table.set("p", start, now=10.0)
    assert table.get("p", 10.0 + dt) == pytest.approx(relaxed(start, dt), rel=1e-12)
    assert relax(start, dt) == pytest.approx(relaxed(start, dt), rel=1e-12)
    assert table.snapshot(10.0 + dt) == {"p": pytest.approx(relaxed(start, dt))}


def test_relaxation_rate_is_configurable_and_time_never_runs_backwards() -> None:
    table = TrustTable(relaxation=0.1)
    table.set("p", 0.9, now=0.0)
    assert table.get("p", 10.0) == pytest.approx(relaxed(0.9, 10.0, rate=0.1))
    assert table.get("p", -5.0) == 0.9  # dt < 0: no relaxation
    frozen = TrustTable(relaxation=0.0)
    frozen.set("p", 0.9, now=0.0)
    assert frozen.get("p", 1e6) == pytest.approx(0.9)


def test_record_applies_relaxation_before_the_update() -> None:
    table = TrustTable()
    table.set("p", 0.9, now=0.0)
    assert table.record("p", True, 100.0) == pytest.approx(relaxed(0.9, 100.0) + 0.1)


def test_set_validates_and_clamps() -> None:
    table = TrustTable()
    table.set("p", 1.0, now=0.0)
    assert table.get("p", 0.0) == MAX_TRUST
    table.set("q", 0.0, now=0.0)
    assert table.get("q", 0.0) == MIN_TRUST
    with pytest.raises(InvalidValue):
        table.set("p", 1.5, now=0.0)


def test_unknown_model_and_bad_parameters() -> None:
    with pytest.raises(UnknownName):
        TrustTable("gossip")  # type: ignore[arg-type]
    with pytest.raises(LookupError):  # UnknownName is a LookupError too
        TrustTable("gossip")  # type: ignore[arg-type]
    with pytest.raises(InvalidValue):
        TrustTable(step=0.0)
    with pytest.raises(InvalidValue):
        TrustTable("bayesian", evidence=0.5)
    with pytest.raises(InvalidValue):
        TrustTable(relaxation=-0.1)
    with pytest.raises(UnknownName):
        Node("a", trust="gossip")  # type: ignore[arg-type]


outcomes = st.lists(
    st.tuples(
        st.sampled_from(["p", "q"]),
        st.booleans(),
        st.floats(0.0, 50.0),
        st.floats(0.0, 1.0),
    ),
    max_size=40,
)


@settings(max_examples=50, deadline=None)
@given(model=st.sampled_from(["additive", "bayesian", "beta"]), events=outcomes)
def test_trust_always_stays_in_bounds(
    model: str, events: list[tuple[str, bool, float, float]]
) -> None:
    table = TrustTable(model)  # type: ignore[arg-type]
    now = 0.0
    for peer, success, dt, weight in events:
        now += dt
        before = table.get(peer, now)
        value = table.record(peer, success, now, weight)
        assert MIN_TRUST <= value <= MAX_TRUST
        # an outcome never moves trust against itself
        if success:
            assert value >= before - 1e-12
        else:
            assert value <= before + 1e-12
        for later in (now, now + 1.0, now + 1e4):
            assert MIN_TRUST <= table.get(peer, later) <= MAX_TRUST


# -- nodes -------------------------------------------------------------------------------------


def test_node_defaults_skills_and_validation() -> None:
    node = Node("a", skills={"code": 0.8})
    assert node.sense_threshold == 0.1
    assert node.reinforce_threshold == 0.5
    assert node.affinity("code") == 0.8
    assert node.affinity("poetry") == 0.0
    assert node.trust.model == "additive"
    assert Node("b", trust="bayesian").trust.model == "bayesian"
    for bad in (
        {"sense_threshold": 1.5},
        {"reinforce_threshold": -0.1},
        {"skills": {"code": 2.0}},
    ):
        with pytest.raises(InvalidValue):
            Node("a", **bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidValue):
        Node("")
