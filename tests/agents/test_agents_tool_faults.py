"""Faulty tools and a looping model, at agent level: each attempt ends with a clear error in
the task's report, the journal says what each call did, and the run ends.

The model here is persistent: it calls the same tool again whatever came back, so each
fault runs into the step limit, and the report names the limit and the last failure.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from _agentkit import virtual

from smesh.agents import Agent, Settings, TaskSpec, Team
from smesh.agents.journal import Journal
from smesh.backends.base import Request
from smesh.backends.toolcalls import AssistantTurn, ToolCall, ToolResult
from smesh.testing import FunctionBackend
from smesh.testing.virtual_time import LoopClock
from smesh.tools import tool

STEPS = 2


@tool
async def boom(path: str) -> str:
    """Fails."""
    raise OSError(f"disk on fire at {path}")


@tool(timeout_s=2.0)
async def hang(path: str) -> str:
    """Never answers."""
    await asyncio.sleep(3600)
    return "never"


@tool
async def flood(path: str) -> str:
    """Returns 10 MB."""
    return "x" * (10 * 1024 * 1024)


@tool
async def typed(path: str, count: int) -> str:
    """Needs a path and an integer count."""
    return f"{path}:{count}"


def persistent(name: str, arguments: dict[str, Any]) -> FunctionBackend:
    def model(request: Request) -> Any:
        return AssistantTurn(tool_calls=(ToolCall(id="", name=name, arguments=arguments),))

    return FunctionBackend(model)


def run(tmp_path: Path, backend: FunctionBackend, tools: list[Any]) -> tuple[Any, list[Any]]:
    async def main() -> tuple[Any, list[Any]]:
        with Journal(tmp_path / "j.db") as journal:
            agent = Agent(
                "w", backend=backend, skills={"s": 1.0}, tools=tools, max_tool_steps=STEPS
            )
            team = Team(
                [agent],
                clock=LoopClock(),
                journal=journal,
                run_id="r",
                settings=Settings(idle_timeout_s=600.0),
            )
            report = await asyncio.wait_for(
                team.run([TaskSpec(task_id="t", skill="s", max_attempts=1)]), 3600
            )
            calls = [a.detail for a in journal.actions("r", "t") if a.action == "tool"]
        return report, calls

    report, calls = virtual(main())
    assert report.stopped_by == "quiescent"  # the run ends
    (task,) = report.tasks
    assert task.status == "failed"
    assert f"after {STEPS} step(s); stopped at the step limit" in (task.reason or "")
    # STEPS turns ran their call; the turn past the limit was not run
    assert [c["status"] for c in calls][-1] == "skipped"
    assert len(calls) == STEPS + 1
    return task, calls


@pytest.mark.parametrize(
    ("name", "tools", "arguments", "status", "says"),
    [
        ("boom", [boom], {"path": "/x"}, "error", "OSError: disk on fire at /x"),
        ("hang", [hang], {"path": "/x"}, "timeout", "hang did not finish within 2 s"),
        ("typed", [typed], {"path": "/x", "count": "many"}, "invalid", "invalid arguments"),
        ("typed", [typed], {"path": "/x"}, "invalid", "count"),
        ("nope", [typed], {}, "unknown", "no tool named 'nope'"),
    ],
)
def test_a_failing_call_ends_in_a_clear_report(
    tmp_path: Path, name: str, tools: list[Any], arguments: dict[str, Any], status: str, says: str
) -> None:
    task, calls = run(tmp_path, persistent(name, arguments), tools)
    assert [c["status"] for c in calls[:STEPS]] == [status] * STEPS
    assert all(c["ok"] is False and says in c["error"] for c in calls[:STEPS])
    assert f"the last failed call(s): {name} ({status}): " in (task.reason or "")
    assert says in (task.reason or "")


def test_a_10_mb_result_is_cut_before_the_model_and_the_journal_see_it(tmp_path: Path) -> None:
    backend = persistent("flood", {"path": "/x"})
    _, calls = run(tmp_path, backend, [flood])
    assert calls[0]["ok"] is True and len(calls[0]["output"]) <= 200
    shown = [t for t in backend.calls[-1].messages if isinstance(t, ToolResult)]
    assert shown and all(len(r.content.encode()) < 17 * 1024 for r in shown)
    assert (
        "[truncated: the result was 10,485,760 bytes; the first 16,384 shown]" in shown[0].content
    )


def test_a_model_that_never_stops_calling_ends_at_the_step_limit(tmp_path: Path) -> None:
    task, calls = run(tmp_path, persistent("typed", {"path": "/x", "count": 1}), [typed])
    assert [c["status"] for c in calls] == ["ok"] * STEPS + ["skipped"]
    assert "the model was still calling tools (typed)" in (task.reason or "")
    assert "failed call" not in (task.reason or "")  # nothing failed: the model just looped
