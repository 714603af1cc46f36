"""One run-options value from the command line to the apps: the flags really arrive.

``--max-calls`` must stop a real run, ``--resume`` must continue it from the journal
without redoing finished work, and ``--seed`` must reach the team; the options value
itself cannot change under a running app.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _oracle import ISSUES, SAMPLES, Oracle, as_planted

from smesh.agents import FunctionAgent, TaskSpec, WorkContext
from smesh.agents.journal import Journal
from smesh.agents.runtime import Budget
from smesh.apps.options import APP_SETTINGS, RunOptions
from smesh.backends import register_backend
from smesh.cli import main
from smesh.testing import FunctionBackend
from smesh.trust import TrustTable

CALLS: list[int] = []


@pytest.fixture(autouse=True)
def counted_oracle() -> Iterator[None]:
    """The oracle as a backend that counts the calls of each run."""

    def make(model: str | None = None, **kw: Any) -> FunctionBackend:
        oracle = Oracle(SAMPLES)
        CALLS.append(0)

        def answer(request: Any) -> Any:
            CALLS[-1] += 1
            return oracle(request)

        return FunctionBackend(answer, name="oracle")

    register_backend("counted-oracle", make, replace=True)
    CALLS.clear()
    yield


def review(
    capsys: pytest.CaptureFixture[str], journal: Path, *flags: str, exit_code: int = 0
) -> dict[str, Any]:
    code = main(
        [
            *("review", "--path", str(SAMPLES), "--backend", "counted-oracle", "--json"),
            *("--journal", str(journal), *flags),
        ]
    )
    out, err = capsys.readouterr()
    assert code == exit_code, err
    doc: dict[str, Any] = json.loads(out)
    return doc


def test_max_calls_stops_the_run_and_resume_finishes_it_without_redoing_work(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    full = review(capsys, tmp_path / "full.db")
    assert full["summary"]["stopped_by"] == "quiescent"
    journal = tmp_path / "j.db"
    # a run the budget stopped with work left exits 1 (issue 11)
    cut = review(capsys, journal, "--max-calls", "12", "--seed", "3", exit_code=1)
    assert cut["summary"]["stopped_by"] == "budget"
    assert cut["summary"]["llm_calls"] <= 12 and CALLS[-1] <= 12
    resumed = review(capsys, journal, "--resume", cut["summary"]["run_id"], "--seed", "3")
    assert resumed["summary"]["stopped_by"] == "quiescent"
    assert resumed["summary"]["run_id"] == cut["summary"]["run_id"]
    agreed = {(f["file"], f["line_start"], f["category"]) for f in resumed["findings"]}
    assert as_planted(agreed) == {(i["file"], i["line"], i["category"]) for i in ISSUES}
    # the finished scans were replayed from the journal, not asked again
    assert CALLS[-1] < full["summary"]["llm_calls"]


async def done(ctx: WorkContext) -> str:
    return "done"


def test_the_options_are_frozen_and_build_the_team_they_describe(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db")
    try:
        budget = Budget(calls=5)
        seen: list[Any] = []
        options = RunOptions(budget=budget, journal=journal, seed=42, run_id="r-1")
        with pytest.raises(dataclasses.FrozenInstanceError):
            options.seed = 1  # type: ignore[misc]
        bound = options.replace(on_start=seen.append)
        assert options.on_start is None and bound.budget is budget and bound.seed == 42
        field = bound.field()
        agent = FunctionAgent("worker", perform=done, skills={"s": 1.0})
        team = bound.team([agent], field=field, trust=TrustTable())
        assert (team.seed, team.run_id, team.journal, team.budget) == (42, "r-1", journal, budget)
        assert team.settings is APP_SETTINGS and team.field is field
        bound.started(team.board)
        assert seen == [team.board]
        report = asyncio.run(team.run([TaskSpec(task_id="t", skill="s", description="d")]))
        assert report.run_id == "r-1" and report.accepted == 1
    finally:
        journal.close()
