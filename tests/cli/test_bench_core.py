"""The core benchmark suite, exercised with tiny repeats (figures are not checked)."""

from __future__ import annotations

import pytest

from smesh.bench import SUITES, BenchResult, core, run_suite
from smesh.errors import UnknownName

STABLE = {
    "signal_creation": "ns",
    "effective_intensity": "ns",
    "effective_intensity_vectorized": "ns",
    "reinforcement": "ns",
    "field_emit_1000": "µs",
    "field_emit_batch_1000": "µs",
    "field_tick_10000": "µs",
    "network_tick_100_5": "µs",
    "network_tick_100_1000": "µs",
    "topology_small_world_500": "µs",
    "topology_full_mesh_500": "µs",
    "field_1m_rss": "MB",
}


@pytest.mark.parametrize(
    "measure",
    [
        lambda: core.bench_topology(1, "ring", 50),
        lambda: core.bench_topology(1, "small_world", 50),
        lambda: core.bench_signal_creation(1),
        lambda: core.bench_effective(1),
        lambda: core.bench_effective_vectorized(1, 1000),
        lambda: core.bench_reinforcement(1),
        lambda: core.bench_emit(1, batch=False),
        lambda: core.bench_emit(1, batch=True),
        lambda: core.bench_tick(1),
        lambda: core.bench_expire(1),
        lambda: core.bench_network_tick(1, 5, nodes=30),
    ],
)
def test_each_benchmark_returns_a_positive_figure(measure: object) -> None:
    value = measure()  # type: ignore[operator]
    assert isinstance(value, float)
    assert value > 0.0


def test_run_suite_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    # replace every measurement with a constant: this checks names, units and references
    for name in dir(core):
        if name.startswith("bench_"):
            monkeypatch.setattr(core, name, lambda *a, **k: 1.0)
    seen: list[str] = []
    results = run_suite("core", quick=True, progress=seen.append)
    assert all(isinstance(r, BenchResult) for r in results)
    by_name = {r.name: r for r in results}
    assert len(by_name) == len(results)
    for name, unit in STABLE.items():
        assert by_name[name].unit == unit
        assert by_name[name].target is not None
    assert by_name["field_tick_10000"].reference == 1200.0
    assert by_name["field_tick_10000"].target == 300.0
    assert by_name["signal_creation"].reference == 216.0
    assert by_name["effective_intensity_vectorized"].reference is None
    assert seen == [r.name for r in results]


def test_meets_target() -> None:
    fast = BenchResult(name="x", value=1.0, unit="ns", target=2.0)
    slow = BenchResult(name="x", value=3.0, unit="ns", target=2.0)
    speedup = BenchResult(name="x", value=3.0, unit="x", target=2.0, higher_is_better=True)
    assert fast.meets_target is True
    assert slow.meets_target is False
    assert speedup.meets_target is True
    assert BenchResult(name="x", value=1.0, unit="ns").meets_target is None


def test_unknown_suite() -> None:
    assert "core" in SUITES
    with pytest.raises(UnknownName):
        run_suite("nope")


def test_bench_json_contract(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from smesh.cli import main

    for name in dir(core):
        if name.startswith("bench_"):
            monkeypatch.setattr(core, name, lambda *a, **k: 2.5)
    assert main(["bench", "--quick", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"results"}
    names = set()
    for entry in data["results"]:
        assert set(entry) == {"name", "value", "unit", "reference", "target"}
        assert entry["value"] == 2.5
        names.add(entry["name"])
    assert set(STABLE) <= names
