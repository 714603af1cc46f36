"""``smesh eval``: one JSON document on stdout, a PNG plot, one-line errors with exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _evalkit import CodeOracle, canonical, wrong

from smesh.backends import register_backend
from smesh.cli import main
from smesh.testing import FunctionBackend

CONTRACT = {"suite", "backend", "n", "seed", "conditions", "extra"}
CONDITION = {"name", "score", "ci_low", "ci_high", "tokens_per_item", "seconds_per_item"}


def smesh_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "smesh", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_fanout_json_is_exactly_one_document_with_the_contract(tmp_path: Path) -> None:
    out = smesh_cli("eval", "fanout", "--n", "30", "--seed", "2", "--json", "--plot", str(tmp_path))
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert set(doc) == CONTRACT
    assert doc["suite"] == "fanout" and doc["n"] == 30 and doc["seed"] == 2
    assert all(set(c) == CONDITION for c in doc["conditions"])
    png = tmp_path / "eval-fanout.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_faults_table_on_stdout() -> None:
    out = smesh_cli("eval", "faults", "--n", "20", "--no-mesh")
    assert out.returncode == 0, out.stderr
    assert "kill 50%" in out.stdout and "accepted twice 0" in out.stdout


@pytest.fixture
def oracle_backend() -> str:
    plan = {
        "HumanEval/2": [canonical("HumanEval/2")],
        "HumanEval/4": [wrong("HumanEval/4")],
    }

    def factory(model: str | None = None, **options: Any) -> FunctionBackend:
        oracle = CodeOracle({t: plan.get(t, [wrong(t)]) for t in _all_ids()})
        return FunctionBackend(oracle, name="eval-oracle")

    register_backend("eval-oracle", factory, replace=True)
    return "eval-oracle"


def _all_ids() -> list[str]:
    return [f"HumanEval/{i}" for i in range(164)]


def test_code_suite_through_the_command(
    oracle_backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "eval",
            "code",
            "--backend",
            oracle_backend,
            "--n",
            "3",
            "--seed",
            "11",
            "--budget-tokens",
            "900",
            "--conditions",
            "single,team",
            "--json",
            "--plot",
            str(tmp_path),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    doc = json.loads(captured.out)
    assert set(doc) == CONTRACT
    assert [c["name"] for c in doc["conditions"]] == ["single", "team"]
    assert doc["backend"] == "eval-oracle" and doc["extra"]["budget_tokens_per_item"] == 900
    for detail in doc["extra"]["details"].values():
        assert all(item["tokens"] <= 900 for item in detail["items"])
    assert (tmp_path / "eval-code.png").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eval", "nonsense"], "is not one of"),
        (["eval", "code", "--budget-tokens", "0"], "budget-tokens"),
        (["eval", "code", "--n", "0"], "--n"),
        (["eval", "fanout", "--conditions", "smesh"], "--conditions applies"),
        (["eval", "code", "--backend", "scripted", "--threads", "2"], "--threads"),
        (["eval", "code", "--backend", "nosuchkind"], "unknown backend"),
        (["eval", "code", "--backend", "scripted", "--conditions", "single,bogus"], "bogus"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("smesh: error:")
    assert message in err


def test_a_plot_path_that_is_a_file_is_refused(tmp_path: Path, capsys: Any) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    assert main(["eval", "fanout", "--n", "5", "--plot", str(target)]) == 2
    assert "is a file" in capsys.readouterr().err


def test_help_names_every_suite() -> None:
    out = smesh_cli("eval", "--help")
    assert out.returncode == 0
    for suite in ("code", "reason", "fanout", "faults", "scale"):
        assert suite in out.stdout
