"""``smesh review``, ``smesh swarm`` and ``smesh code`` through the command line
(in-process, with scripted models registered as backends)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _coders import Team
from _oracle import ISSUES, SAMPLES, Oracle, as_planted

from smesh.backends import register_backend
from smesh.cli import main
from smesh.testing import FunctionBackend


@pytest.fixture(autouse=True)
def scripted_backends() -> Iterator[None]:
    register_backend(
        "oracle", lambda model=None, **kw: FunctionBackend(Oracle(SAMPLES)), replace=True
    )
    register_backend("coders", lambda model=None, **kw: FunctionBackend(Team()), replace=True)
    yield


def smesh(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_review_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = smesh(
        capsys,
        "review",
        "--path",
        str(SAMPLES),
        "--backend",
        "oracle",
        "--format",
        "json",
        "--journal",
        str(tmp_path / "j.db"),
    )
    assert code == 0
    doc = json.loads(out)
    agreed = {
        (f["file"], f["line_start"], f["category"]) for f in doc["findings"] if f["consensus"]
    }
    assert as_planted(agreed) == {(i["file"], i["line"], i["category"]) for i in ISSUES}
    assert doc["summary"]["run_id"]


def test_review_sarif_and_markdown_to_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, validate_sarif: Callable[[Any], None]
) -> None:
    sarif = tmp_path / "out" / "review.sarif"
    code, out, _ = smesh(
        capsys,
        "review",
        "--path",
        str(SAMPLES),
        "--backend",
        "oracle",
        "--format",
        "sarif",
        "--out",
        str(sarif),
        "--journal",
        str(tmp_path / "j.db"),
    )
    assert code == 0 and out == ""
    validate_sarif(json.loads(sarif.read_text()))
    md = tmp_path / "review.md"
    code, _, _ = smesh(
        capsys,
        "review",
        "--path",
        str(SAMPLES),
        "--backend",
        "oracle",
        "--format",
        "markdown",
        "--out",
        str(md),
        "--reviewers",
        "security,documentation",
        "--journal",
        str(tmp_path / "j.db"),
    )
    assert code == 0 and md.read_text().startswith("# Code review")


def test_review_text_shows_progress_and_summary(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = smesh(
        capsys,
        "review",
        "--path",
        str(SAMPLES),
        "--ext",
        "js",
        "--backend",
        "oracle",
        "--journal",
        str(tmp_path / "j.db"),
    )
    assert code == 0
    assert "Consensus (4)" in out and "server.js:10 [security/high]" in out
    assert "LLM calls" in err and "resume with --resume" in err


def test_swarm_json_and_sarif(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, validate_sarif: Callable[[Any], None]
) -> None:
    pytest.importorskip("bandit")
    code, out, _ = smesh(
        capsys,
        "swarm",
        "--path",
        str(SAMPLES),
        "--backend",
        "oracle",
        "--json",
        "--consensus",
        "2",
        "--journal",
        str(tmp_path / "j.db"),
    )
    assert code == 0
    doc = json.loads(out)
    assert {f["cwe"] for f in doc["findings"]} >= {"CWE-89", "CWE-78", "CWE-22", "CWE-918"}
    assert all(f["consensus"] for f in doc["findings"])
    sarif = tmp_path / "s.sarif"
    code, _, _ = smesh(
        capsys,
        "swarm",
        "--path",
        str(SAMPLES),
        "--specialists",
        "none",
        "--format",
        "sarif",
        "--out",
        str(sarif),
        "--journal",
        str(tmp_path / "j.db"),
    )
    assert code == 0
    log = json.loads(sarif.read_text())
    validate_sarif(log)
    # no model: the two default analyzers, bandit and the flow analysis, report alone
    assert {r["properties"]["support"][0] for r in log["runs"][0]["results"]} == {"bandit", "flow"}


def test_code_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = smesh(
        capsys,
        "code",
        "word statistics",
        "--out",
        str(tmp_path / "proj"),
        "--backend",
        "coders",
        "--json",
        "--journal",
        str(tmp_path / "j.db"),
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["out"] == str((tmp_path / "proj").resolve())
    assert [m["status"] for m in doc["modules"]] == ["accepted", "accepted"]
    assert (tmp_path / "proj" / "tests" / "test_counting.py").is_file()


@pytest.mark.parametrize(
    "args",
    [
        ["review"],  # --path missing
        ["review", "--path", "/nonexistent/repo"],
        ["review", "--path", str(SAMPLES / "EXPECTED.json")],  # not a directory
        ["review", "--path", str(SAMPLES), "--format", "pdf"],
        ["review", "--path", str(SAMPLES), "--reviewers", "grammar"],
        ["swarm", "--path", str(SAMPLES), "--format", "markdown"],
        ["swarm", "--path", str(SAMPLES), "--consensus", "0"],
        ["swarm", "--path", str(SAMPLES), "--specialists", "phishing"],
        ["swarm", "--path", str(SAMPLES), "--analyzers", "nope"],
        ["swarm", "--path", str(SAMPLES), "--specialists", "none", "--analyzers", "none"],
        ["code", "x"],  # --out missing
        ["code", " ", "--out", "/tmp/x"],
        ["code", "x", "--out", str(SAMPLES / "EXPECTED.json")],
        ["code", "x", "--out", "/tmp/x", "--coders", "0"],
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    code, out, err = smesh(capsys, *args)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("smesh: error:"), err
    assert "Traceback" not in out + err


def test_swarm_says_before_it_starts_when_the_budget_cannot_hold_the_plan(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pytest.importorskip("bandit")
    _, out, err = smesh(
        capsys, "swarm", "--path", str(SAMPLES), "--backend", "oracle", "--json",
        "--max-seconds", "1", "--max-calls", "3", "--journal", str(tmp_path / "j.db"),
    )  # fmt: skip
    assert "will not finish within its budget" in err
    assert "LLM work against a budget of 1 s" in err and "calls against a budget of 3" in err
    doc = json.loads(out)  # stdout is still exactly one JSON document
    assert doc["plan"]["checks"] == 10
    assert doc["summary"]["llm_calls"] <= 3
