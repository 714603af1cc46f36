"""The ``smesh`` command, run as a real subprocess (``python -m smesh``)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

import smesh

SIM_KEYS = {
    "nodes",
    "edges",
    "topology",
    "ticks",
    "coverage",
    "max_hops",
    "ticks_to_50",
    "ticks_to_90",
    "active_signals",
    "reinforcements",
    "expired",
}
SMALL = ["--nodes", "20", "--ticks", "8", "--signals", "3"]


def smesh_cli(*args: str, hashseed: str = "0") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONHASHSEED": hashseed, "COLUMNS": "100", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "smesh", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def assert_usage_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("smesh: error:")
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


# -- help and version --------------------------------------------------------------------------


def test_help_lists_the_commands() -> None:
    result = smesh_cli("--help")
    assert result.returncode == 0
    for command in ("sim", "status", "bench"):
        assert command in result.stdout
    assert smesh_cli("-h").stdout == result.stdout


def test_version() -> None:
    result = smesh_cli("--version")
    assert result.returncode == 0
    assert smesh.__version__ in result.stdout


def test_unknown_command_is_a_usage_error() -> None:
    assert "frobnicate" in assert_usage_error(smesh_cli("frobnicate"))


# -- sim ---------------------------------------------------------------------------------------


def test_sim_json_has_exactly_the_stable_keys() -> None:
    result = smesh_cli("sim", "--json", *SMALL, "--topology", "ring", "--seed", "5")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == SIM_KEYS
    assert data["nodes"] == 20
    assert data["edges"] == 20
    assert data["topology"] == "ring"
    assert data["ticks"] == 8
    assert isinstance(data["coverage"], float)
    assert 0.0 <= data["coverage"] <= 1.0
    for key in ("max_hops", "active_signals", "reinforcements", "expired"):
        assert isinstance(data[key], int)
        assert data[key] >= 0
    for key in ("ticks_to_50", "ticks_to_90"):
        assert data[key] is None or (isinstance(data[key], int) and 1 <= data[key] <= 8)
    assert result.stderr == ""


def test_sim_json_matches_the_library() -> None:
    from smesh.sim import SimConfig, run_simulation

    result = smesh_cli("sim", "--json", *SMALL, "--seed", "9", "--topology", "grid")
    data = json.loads(result.stdout)
    expected = run_simulation(SimConfig(nodes=20, ticks=8, signals=3, seed=9, topology="grid"))
    assert data == {key: getattr(expected, key) for key in SIM_KEYS}


def test_sim_same_seed_same_json_across_processes() -> None:
    args = ("sim", "--json", "--nodes", "40", "--ticks", "20", "--seed", "3")
    first = smesh_cli(*args, hashseed="1")
    second = smesh_cli(*args, hashseed="2")
    assert first.returncode == second.returncode == 0
    assert json.loads(first.stdout) == json.loads(second.stdout)
    other = smesh_cli("sim", "--json", "--nodes", "40", "--ticks", "20", "--seed", "4")
    assert json.loads(other.stdout) != json.loads(first.stdout)


def test_sim_zero_ticks_gives_null_ticks_to() -> None:
    result = smesh_cli("sim", "--json", "--nodes", "10", "--ticks", "0")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["ticks"] == 0
    assert data["ticks_to_50"] is None
    assert data["ticks_to_90"] is None
    assert data["expired"] == 0


def test_sim_live_view_and_summary() -> None:
    result = smesh_cli("sim", *SMALL)
    assert result.returncode == 0, result.stderr
    assert "Simulation summary" in result.stdout
    assert "ticks to 50 %" in result.stdout
    assert "coverage" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--topology", "hexagon"],
        ["--nodes", "0"],
        ["--nodes", "-3"],
        ["--ticks", "-1"],
        ["--signals", "-1"],
        ["--nodes", "many"],
        ["--dt", "0"],
        ["--no-such-option"],
    ],
    ids=" ".join,
)
def test_sim_bad_arguments(args: list[str]) -> None:
    assert_usage_error(smesh_cli("sim", "--json", *args))


def test_sim_plot_into_a_missing_directory(tmp_path: Path) -> None:
    line = assert_usage_error(
        smesh_cli("sim", *SMALL, "--plot", str(tmp_path / "missing" / "out.png"))
    )
    assert "does not exist" in line


def test_sim_plot_below_a_regular_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert_usage_error(smesh_cli("sim", *SMALL, "--plot", str(blocker / "out.png")))


@pytest.mark.parametrize("name", ["out.jpg", "out", "out.png.txt"])
def test_sim_plot_with_a_wrong_suffix(tmp_path: Path, name: str) -> None:
    line = assert_usage_error(smesh_cli("sim", *SMALL, "--plot", str(tmp_path / name)))
    assert ".png or .svg" in line
    assert not (tmp_path / name).exists()


def test_sim_plot_onto_a_directory(tmp_path: Path) -> None:
    (tmp_path / "dir.png").mkdir()
    assert_usage_error(smesh_cli("sim", *SMALL, "--plot", str(tmp_path / "dir.png")))


def test_sim_plot_into_an_unwritable_directory(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running with privileges that ignore directory permissions")
        line = assert_usage_error(smesh_cli("sim", *SMALL, "--plot", str(locked / "out.png")))
        assert "cannot write" in line
    finally:
        locked.chmod(0o700)


def test_sim_unwritable_plot_path_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # the same check as above, independent of the user (root ignores permissions)
    from smesh.cli import main

    monkeypatch.setattr("smesh.cli.sim.os.access", lambda *a, **k: False)
    code = main(["sim", *SMALL, "--plot", str(tmp_path / "out.png")])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.strip().splitlines() == [captured.err.strip()]
    assert captured.err.startswith("smesh: error:")
    assert "cannot write" in captured.err
    assert not (tmp_path / "out.png").exists()


def test_sim_writes_a_png_plot(tmp_path: Path) -> None:
    out = tmp_path / "coverage.png"
    result = smesh_cli("sim", "--json", *SMALL, "--plot", str(out))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["plot"] == str(out)
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 1000


def test_sim_writes_an_svg_plot(tmp_path: Path) -> None:
    out = tmp_path / "coverage.SVG"
    result = smesh_cli("sim", *SMALL, "--plot", str(out))
    assert result.returncode == 0, result.stderr
    assert "plot written" in result.stdout
    text = out.read_text()
    assert "<svg" in text
    assert "</svg>" in text


# -- status ------------------------------------------------------------------------------------


def test_status_json() -> None:
    result = smesh_cli("status", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["version"] == smesh.__version__
    assert data["python"] == platform.python_version()
    parts = data["parts"]
    for core in ("numpy", "networkx", "rich"):
        assert parts[core]["installed"] is True
        assert parts[core]["works"] is True
        assert parts[core]["version"]
    for info in parts.values():
        assert set(info) >= {"installed", "works", "version", "detail"}
        assert not (info["works"] and not info["installed"])


def test_status_table() -> None:
    result = smesh_cli("status")
    assert result.returncode == 0, result.stderr
    assert smesh.__version__ in result.stdout
    assert "numpy" in result.stdout


# -- bench (the full suite is slow: only its argument handling runs here) ------------------------


def test_bench_unknown_suite() -> None:
    assert "nope" in assert_usage_error(smesh_cli("bench", "--suite", "nope"))
