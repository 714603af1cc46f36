"""The mesh benchmark suite: its workloads run (tiny sizes) and report the stable names."""

from __future__ import annotations

import pytest

from smesh.bench import SUITES, BenchResult
from smesh.bench import mesh as bench


def test_the_workloads_run_between_real_processes() -> None:
    assert bench.raw_throughput(2000) > 0
    assert bench.mesh_throughput(2000) > 0
    for echo in ("mesh-echo-sync", "mesh-echo-loop"):
        raw, mesh = bench.latency(20, echo)
        assert len(raw) == len(mesh) == 20
        assert all(0 < t < 1 for t in raw + mesh)
    joins = bench.late_join(300, 1)
    assert len(joins) == 1 and 0 < joins[0] < 5000


def test_the_suite_reports_the_names_and_targets_of_the_issue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bench, "raw_throughput", lambda n: 200_000.0)
    monkeypatch.setattr(bench, "mesh_throughput", lambda n: 50_000.0)
    monkeypatch.setattr(bench, "latency", lambda n, echo: ([100e-6] * 10, [150e-6] * 10))
    monkeypatch.setattr(bench, "late_join", lambda signals, joins: [80.0] * joins)
    seen: list[str] = []
    results = {r.name: r for r in bench.run(quick=True, progress=seen.append)}
    assert SUITES["mesh"] == "smesh.bench.mesh" and seen
    assert all(isinstance(r, BenchResult) for r in results.values())
    ratio = results["mesh_throughput_ratio"]
    assert (ratio.value, ratio.target, ratio.higher_is_better) == (0.25, 0.5, True)
    assert ratio.meets_target is False
    latency = results["mesh_latency_p50_ratio"]
    assert (latency.value, latency.target, latency.meets_target) == (1.5, 2.0, True)
    join = results["mesh_late_join_10k_ms"]
    assert (join.value, join.target, join.meets_target) == (80.0, 200.0, True)
