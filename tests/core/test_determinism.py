"""Simulations: the same seed gives the same trace; the summary is consistent with it."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smesh.decay import Linear
from smesh.errors import InvalidValue, UnknownName
from smesh.sim import SimConfig, SimResult, SimTick, run_simulation

TOPOLOGIES = ["ring", "full_mesh", "small_world", "scale_free", "grid", "random"]


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    topology=st.sampled_from(TOPOLOGIES),
    nodes=st.integers(1, 40),
    signals=st.integers(0, 6),
)
def test_same_seed_same_result_including_trace(
    seed: int, topology: str, nodes: int, signals: int
) -> None:
    config = SimConfig(nodes=nodes, topology=topology, ticks=15, signals=signals, seed=seed)
    first = run_simulation(config)
    second = run_simulation(config)
    assert first == second
    assert msgspec.json.encode(first) == msgspec.json.encode(second)
    assert len(first.trace) == 15


@settings(max_examples=10, deadline=None)
@given(a=st.integers(0, 2**31), b=st.integers(0, 2**31))
def test_different_seeds_give_different_traces(a: int, b: int) -> None:
    if a == b:
        return
    config = SimConfig(nodes=40, topology="small_world", ticks=15, signals=4, reinforce_prob=0.2)
    ra = run_simulation(msgspec.structs.replace(config, seed=a))
    rb = run_simulation(msgspec.structs.replace(config, seed=b))
    assert ra.trace != rb.trace


def test_summary_is_consistent_with_the_trace() -> None:
    seen: list[SimTick] = []
    result = run_simulation(
        SimConfig(nodes=50, topology="small_world", ticks=40, signals=5, seed=7),
        on_tick=seen.append,
    )
    assert isinstance(result, SimResult)
    assert seen == result.trace
    assert [t.tick for t in result.trace] == list(range(1, 41))
    assert [t.time for t in result.trace] == pytest.approx([0.1 * k for k in range(1, 41)])
    coverages = [t.coverage for t in result.trace]
    assert coverages == sorted(coverages)  # best reach never shrinks
    assert result.coverage == coverages[-1]
    assert 0.0 < result.coverage <= 1.0
    assert result.max_hops == max(t.max_hops for t in result.trace) > 1
    assert result.reinforcements == sum(t.reinforcements for t in result.trace)
    assert result.expired == sum(t.expired for t in result.trace)
    assert result.active_signals == result.trace[-1].active_signals
    assert result.edges == 100
    assert result.topology == "small_world"
    for level, first in ((0.5, result.ticks_to_50), (0.9, result.ticks_to_90)):
        if first is None:
            assert all(c < level for c in coverages)
        else:
            assert coverages[first - 1] >= level
            assert all(c < level for c in coverages[: first - 1])


def test_zero_ticks_and_zero_signals() -> None:
    result = run_simulation(SimConfig(nodes=10, ticks=0, signals=3))
    assert result.trace == []
    assert result.ticks_to_50 is None
    assert result.ticks_to_90 is None
    assert result.coverage == pytest.approx(0.1)  # each signal only at its emitter
    empty = run_simulation(SimConfig(nodes=10, ticks=5, signals=0))
    assert empty.coverage == 0.0
    assert empty.ticks_to_50 is None
    assert all(t.coverage == 0.0 for t in empty.trace)


def test_short_lived_signals_expire_in_the_simulation() -> None:
    result = run_simulation(
        SimConfig(nodes=20, ticks=30, signals=4, ttl=1.0, decay=Linear(), seed=3)
    )
    assert result.expired == 4
    assert result.active_signals == 0
    assert result.trace[-1].mean_intensity == 0.0


def test_more_signals_than_nodes() -> None:
    result = run_simulation(SimConfig(nodes=3, ticks=5, signals=10, seed=2))
    assert result.active_signals == 10


@pytest.mark.parametrize(
    "kw",
    [
        {"nodes": 0},
        {"ticks": -1},
        {"signals": -1},
        {"dt": 0.0},
        {"reinforce_prob": 1.5},
    ],
)
def test_invalid_configs(kw: dict[str, object]) -> None:
    with pytest.raises(InvalidValue):
        run_simulation(SimConfig(**kw))  # type: ignore[arg-type]


def test_unknown_topology() -> None:
    with pytest.raises(UnknownName):
        run_simulation(SimConfig(topology="torus"))
