"""``run_code`` with a scripted team: tests really run, the gate needs tests and review,
rejections come back with feedback, trust moves and the output is a runnable project."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _coders import Team

from smesh.agents.journal import Journal
from smesh.apps.code import CodeReport, run_code
from smesh.apps.options import RunOptions
from smesh.errors import UsageError
from smesh.testing import FunctionBackend

KEYS = ["name", "status", "tests_run", "tests_passed", "review", "attempts", "coder"]


def build(tmp_path: Path, team: Team, **kw: Any) -> CodeReport:
    backend = FunctionBackend(team)
    return asyncio.run(run_code("word statistics for text", tmp_path / "out", backend, **kw))


def test_modules_pass_tests_and_review_and_the_project_runs(tmp_path: Path) -> None:
    report = build(tmp_path, Team())
    assert [m.status for m in report.modules] == ["accepted", "accepted"]
    assert {m.name: (m.tests_run, m.tests_passed) for m in report.modules} == {
        "counting": (2, 2),
        "longest": (1, 1),
    }
    assert all(m.review == "approved" and m.attempts == 1 for m in report.modules)
    out = tmp_path / "out"
    for rel in ("textstats/__init__.py", "textstats/counting.py", "tests/test_counting.py"):
        assert (out / rel).is_file(), rel
    assert not (out / ".smesh-work").exists() and not (out / ".sandbox").exists()
    # the directory is a runnable project: its own test suite passes there
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=out,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "3 passed" in ran.stdout
    doc = report.contract()
    assert list(doc) == ["out", "modules", "summary"]
    assert all(list(m) == KEYS for m in doc["modules"])
    assert doc["summary"]["consensus"] == 2 and doc["summary"]["total"] == 2


def test_a_failing_module_goes_back_with_the_test_output(tmp_path: Path) -> None:
    team = Team(("counting",), bad_coders=("coder-1", "coder-2"))
    report = build(tmp_path, team)
    [module] = report.modules
    assert module.status == "accepted" and module.attempts == 2
    retry = [p for a, p in team.prompts if a.startswith("coder") and "rejected" in p]
    assert len(retry) == 1
    assert "tests: 1/2 passed" in retry[0] and "assert 0 == 3" in retry[0]


def test_passing_tests_are_not_enough_without_the_review(tmp_path: Path) -> None:
    team = Team(("counting",), picky_reviews=1)
    report = build(tmp_path, team)
    [module] = report.modules
    assert module.status == "accepted" and module.attempts == 2 and module.review == "approved"
    retry = [p for a, p in team.prompts if a.startswith("coder") and "rejected" in p]
    assert "add a docstring" in retry[0]


def test_a_module_that_never_passes_fails_after_the_rounds(tmp_path: Path) -> None:
    team = Team(("counting",), bad_coders=("coder-1", "coder-2"), stubborn=True)
    report = build(tmp_path, team, rounds=2)
    [module] = report.modules
    assert (module.status, module.attempts) == ("failed", 2)
    assert (module.tests_run, module.tests_passed) == (2, 1)
    assert report.summary.consensus == 0


def test_trust_follows_outcomes_and_steers_the_next_claims(tmp_path: Path) -> None:
    # coder-1 always writes wrong code, and a little slower, so that coder-2 is free
    # again when coder-1's module comes back: both bid, and reputation decides
    team = Team(("counting", "longest"), bad_coders=("coder-1",), stubborn=True)
    journal = Journal(tmp_path / "j.db")
    backend = FunctionBackend(team, latency=lambda r: 0.3 if r.agent == "coder-1" else 0.0)
    report = asyncio.run(
        run_code(
            "word statistics",
            tmp_path / "out",
            backend,
            coders=2,
            options=RunOptions(journal=journal),
        )
    )
    actions = journal.actions(report.summary.run_id)
    journal.close()
    trust = report.summary.trust
    assert trust["coder-1"] < 0.5 < trust["coder-2"]
    assert [m.status for m in report.modules] == ["accepted", "accepted"]
    assert {m.coder for m in report.modules} == {"coder-2"}
    [taken] = [m for m in report.modules if m.attempts == 2]  # coder-1's, taken over
    claims = [(a.agent, a.detail["bid"]) for a in actions if a.action == "claim"]
    claims = [c for c in claims if c[0].startswith("coder")]
    assert claims[0][1] == claims[1][1] == 0.9  # equal strangers at first
    # afterwards the trusted coder outbids the failed one, which stands back
    assert claims[-1][0] == "coder-2" and claims[-1][1] > 0.9
    assert [c for c in claims if c[0] == "coder-1"] == [("coder-1", 0.9)]
    retaken = [a for a in actions if a.action == "claim" and a.task_id == f"module:{taken.name}"]
    assert [a.agent for a in retaken] == ["coder-1", "coder-2"]


def test_bad_arguments_are_usage_errors(tmp_path: Path) -> None:
    backend = FunctionBackend(lambda r: "")
    with pytest.raises(UsageError, match="empty"):
        asyncio.run(run_code("  ", tmp_path, backend))
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="not a directory"):
        asyncio.run(run_code("x", tmp_path / "file", backend))
    with pytest.raises(UsageError):
        asyncio.run(run_code("x", tmp_path, backend, coders=0))
