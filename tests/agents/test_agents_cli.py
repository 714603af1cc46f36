"""``smesh agents --demo`` and ``smesh trace``, run as real subprocesses on the scripted
backend (no model needed)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

DEMO_TASKS = {
    "code-palindrome",
    "explain-bst",
    "math-2plus2",
    "code-fizzbuzz",
    "explain-palindrome",  # waits for code-palindrome's accepted code (issue 13)
    "analysis-primes",
    "analysis-sales",  # the task that needs a tool (issue 12)
}
TASK_KEYS = {
    "id", "skill", "status", "claimed_by", "attempts", "tool_calls", "depends_on", "parent",
}  # fmt: skip
DEMO = ("agents", "--demo", "--backend", "scripted", "--json")


def smesh(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONHASHSEED": "0", "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "smesh", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
        check=False,
    )


def usage_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("smesh: error:")
    assert "Traceback" not in result.stdout + result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """One scripted demo run, journaled at tmp/j.db; shared by the trace tests."""
    cwd = tmp_path_factory.mktemp("demo")
    result = smesh(*DEMO, "--journal", "tmp/j.db", cwd=cwd)
    assert result.returncode == 0, result.stderr
    return cwd, json.loads(result.stdout)


def test_demo_json_is_the_stable_contract(demo_run: tuple[Path, dict[str, Any]]) -> None:
    cwd, data = demo_run
    assert {"run_id", "duration_s", "llm_calls", "tokens", "tasks"} <= set(data)
    assert isinstance(data["run_id"], str) and data["run_id"]
    assert data["duration_s"] >= 0
    assert data["llm_calls"] > 0 and data["tokens"] > 0
    assert {t["id"] for t in data["tasks"]} == DEMO_TASKS
    for task in data["tasks"]:
        assert set(task) == TASK_KEYS
        assert task["status"] in {"accepted", "failed"}
        assert task["attempts"] >= 1
    # the scripted model answers correctly: everything is accepted, by a worker of the skill
    assert [t["status"] for t in data["tasks"]] == ["accepted"] * len(DEMO_TASKS)
    assert {t["claimed_by"] for t in data["tasks"]} <= {"coder", "reviewer", "analyst", "writer"}
    # one task waits for another's accepted output
    deps = {t["id"]: t["depends_on"] for t in data["tasks"] if t["depends_on"]}
    assert deps == {"explain-palindrome": ["code-palindrome"]}
    assert {t["parent"] for t in data["tasks"]} == {None}
    # every decision the run acted on was justified by its evidence; honest agents' never
    # needed to wait or be refused
    decisions = data["decisions"]
    assert decisions["accepted"] >= len(DEMO_TASKS)  # its own agents' (``own``) and none refused
    assert not [k for k in decisions if k.startswith("dropped_")], decisions
    assert (cwd / "tmp" / "j.db").exists()


def test_trace_explains_claims_votes_decisions_and_trust(
    demo_run: tuple[Path, dict[str, Any]],
) -> None:
    cwd, data = demo_run
    result = smesh("trace", data["run_id"], "--journal", "tmp/j.db", cwd=cwd)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"run {data['run_id']}" in out
    for task in DEMO_TASKS:
        assert f"task {task}" in out
    for action in ("claim", "vote", "decide", "trust"):
        assert f" {action} " in out
    assert "won the lease" in out and "trust in poster" in out
    assert "judged attempt 1 blind" in out
    assert "trust mass approve" in out


def test_trace_of_one_task(demo_run: tuple[Path, dict[str, Any]]) -> None:
    cwd, data = demo_run
    result = smesh("trace", data["run_id"], "math-2plus2", "--journal", "tmp/j.db", cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert "task math-2plus2" in result.stdout
    assert "task code-palindrome" not in result.stdout
    assert "checker" in result.stdout  # the math tool verified it


def test_trace_defaults_to_the_latest_run_and_prints_json(
    demo_run: tuple[Path, dict[str, Any]],
) -> None:
    cwd, data = demo_run
    result = smesh("trace", "--journal", "tmp/j.db", "--json", cwd=cwd)
    assert result.returncode == 0, result.stderr
    trace = json.loads(result.stdout)
    assert trace["run_id"] == data["run_id"]
    assert trace["events"] > 0
    actions = trace["actions"]
    assert {"claim", "result", "vote", "decide", "trust"} <= {a["action"] for a in actions}
    for a in actions:
        assert {"seq", "time", "agent", "action", "task_id", "detail"} <= set(a)
    claims = [a for a in actions if a["action"] == "claim"]
    assert {a["task_id"] for a in claims} == DEMO_TASKS
    for claim in claims:
        (trigger,) = claim["detail"]["triggers"]
        assert {"address", "kind", "intensity", "trust_origin"} <= set(trigger)


def test_trace_usage_errors(demo_run: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    cwd, data = demo_run
    line = usage_error(smesh("trace", "no-such-run", "--journal", "tmp/j.db", cwd=cwd))
    assert "no-such-run" in line and data["run_id"] in line  # it lists the recent runs
    line = usage_error(
        smesh("trace", data["run_id"], "no-such-task", "--journal", "tmp/j.db", cwd=cwd)
    )
    assert "no-such-task" in line
    line = usage_error(smesh("trace", "--journal", "missing.db", cwd=tmp_path))
    assert "no journal" in line
    assert not (tmp_path / "missing.db").exists()  # reading does not create a journal


def test_agents_without_demo_is_a_usage_error(tmp_path: Path) -> None:
    assert "--demo" in usage_error(smesh("agents", cwd=tmp_path))


def test_demo_resumes_a_run_that_ran_out_of_budget(tmp_path: Path) -> None:
    first = smesh(*DEMO, "--journal", "j.db", "--max-calls", "3", cwd=tmp_path)
    assert first.returncode == 1, first.stderr  # unfinished work: exit 1 (issue 11)
    stopped = json.loads(first.stdout)
    assert stopped["stopped_by"] == "budget"
    assert stopped["llm_calls"] == 3
    assert "failed" in {t["status"] for t in stopped["tasks"]}
    # one line says why, what finished, the run id and the exact command that resumes it
    (line,) = first.stderr.strip().splitlines()
    unfinished = sum(t["status"] != "accepted" for t in stopped["tasks"])
    assert "budget" in line and f"{unfinished} unfinished" in line and stopped["run_id"] in line
    command = line.split(" · resume: ", 1)[1]
    assert command.startswith("smesh agents --demo") and command.endswith(stopped["run_id"])

    # that command, as printed (without the budget that stopped it)
    args = shlex.split(command)[1:]
    i = args.index("--max-calls")
    del args[i : i + 2]
    second = smesh(*args, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    resumed = json.loads(second.stdout)
    assert resumed["run_id"] == stopped["run_id"]
    assert [t["status"] for t in resumed["tasks"]] == ["accepted"] * len(DEMO_TASKS)
    before = {t["id"]: t for t in stopped["tasks"]}
    for task in resumed["tasks"]:
        if before[task["id"]]["status"] == "accepted":  # not redone: same worker, same attempt
            assert task["claimed_by"] == before[task["id"]]["claimed_by"]
            assert task["attempts"] == before[task["id"]]["attempts"]


def test_resuming_an_unknown_run_is_a_usage_error(demo_run: tuple[Path, dict[str, Any]]) -> None:
    cwd, _ = demo_run
    line = usage_error(smesh(*DEMO, "--journal", "tmp/j.db", "--resume", "nope", cwd=cwd))
    assert "nope" in line


def test_trace_explains_a_conceded_bid(tmp_path: Path) -> None:
    """Regression: a journaled concede (its rivals are objects) crashed ``smesh trace``."""
    script = (
        "import asyncio\n"
        "from smesh.agents import FunctionAgent, TaskSpec, Team\n"
        "from smesh.agents.journal import Journal\n"
        "async def work(ctx):\n"
        "    return 'ok'\n"
        "async def main():\n"
        "    with Journal('j.db') as journal:\n"
        "        low = FunctionAgent('a', perform=work, skills={'s': 0.5})\n"
        "        high = FunctionAgent('b', perform=work, skills={'s': 0.9})\n"
        "        team = Team([low, high], journal=journal, run_id='r1')\n"
        "        await team.run([TaskSpec(task_id='t', skill='s')])\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, check=True, timeout=60)
    result = smesh("trace", "r1", "--journal", "j.db", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "conceded attempt 1 (bid 0.5; rivals a:0.5, b:0.9)" in result.stdout


def test_the_demo_task_that_needs_a_tool(demo_run: tuple[Path, dict[str, Any]]) -> None:
    cwd, data = demo_run
    calls = {t["id"]: t["tool_calls"] for t in data["tasks"]}
    assert calls.pop("analysis-sales") >= 1  # the analyst queried the shop database
    assert set(calls.values()) == {0}  # the other tasks grant no tool, or none was needed
    result = smesh(
        "trace", data["run_id"], "analysis-sales", "--json", "--journal", "tmp/j.db", cwd=cwd
    )
    assert result.returncode == 0, result.stderr
    (attempt,) = json.loads(result.stdout)["attempts"]
    assert attempt["task_id"] == "analysis-sales" and attempt["agent"] == "analyst"
    call = attempt["tool_calls"][0]
    assert {"tool", "args", "ok", "duration_ms", "effect_id", "replayed"} <= set(call)
    assert call["tool"] == "sql_query" and call["ok"] is True and call["replayed"] is False
    assert "SUM(units)" in call["args"]["sql"] and "kettle" in call["result"]
    text = smesh("trace", data["run_id"], "analysis-sales", "--journal", "tmp/j.db", cwd=cwd)
    assert "called sql_query(sql=" in text.stdout and "→ ok in" in text.stdout
