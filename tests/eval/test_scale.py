"""The scale suite: the sweep grid and real measurements in fresh processes."""

from __future__ import annotations

from pathlib import Path

import smesh.eval.scale as scale_suite
from smesh.eval.plot import plot_result


def test_the_grid_covers_both_sweeps() -> None:
    agents, tasks = scale_suite.points(100_000)
    assert agents == [(10, 10_000), (100, 10_000), (1_000, 10_000), (10_000, 10_000)]
    assert tasks == [(100, 100), (100, 1_000), (100, 10_000), (100, 100_000)]
    small_agents, small_tasks = scale_suite.points(300)
    assert small_agents == [(10, 300), (100, 300)]
    assert small_tasks == [(100, 100), (100, 300)]


def test_a_point_is_measured_in_its_own_process() -> None:
    row = scale_suite.measure_point(20, 200)
    assert row["accepted"] == 200 and row["stopped_by"] == "quiescent"
    assert row["us_per_task"] > 0 and row["peak_rss_mb"] > 10


def test_the_quick_suite_reports_per_task_cost_and_slopes(tmp_path: Path) -> None:
    result = scale_suite.run_scale(n=300)
    png = plot_result(result, tmp_path)
    assert png.name == "eval-scale.png" and png.read_bytes()[:4] == b"\x89PNG"
    assert result.suite == "scale" and len(result.conditions) == 3
    assert all(c.score > 0 for c in result.conditions)
    assert len(result.extra["slopes_vs_tasks"]) == 1
    assert result.extra["per_task_ratio_most_vs_fewest_agents"] > 0


def test_a_bad_point_is_one_clear_line() -> None:
    assert scale_suite.main(["x", "1"]) == 2
