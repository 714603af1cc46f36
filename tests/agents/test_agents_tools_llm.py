"""End to end on the real embedded model (marked ``llm``): an Agent in a Team calls a tool
through the local backend's native tool calling and answers from the tool's result.

The tool answers something the model cannot know (a made-up weather report), so an answer
that quotes it came from the call. What the 0.5B model says varies; the test allows a
second attempt and checks the structure: the journaled call, its arguments, its result in
the answer, and the LLM calls the budget counted.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from smesh.agents import Agent, Budget, Settings, TaskSpec, Team
from smesh.agents.journal import Journal
from smesh.tools import tool

pytestmark = pytest.mark.llm

REPORTS = {"oslo": "hail, 41 C"}


@tool
def get_weather(city: str) -> str:
    """Get the current weather for a city.

    Args:
        city: the city's name.
    """
    return REPORTS.get(city.strip().lower(), "unknown city")


def test_the_embedded_model_calls_a_tool_through_an_agent(tmp_path: Path) -> None:
    from smesh.backends.local import LocalBackend
    from smesh.backends.model import model_status

    status = model_status("0.5b")
    if not status.available:
        pytest.skip(f"embedded model not installed: {status.detail}")

    async def main() -> None:
        backend = LocalBackend(n_parallel=1, ctx_per_slot=2048)  # native mode, tool_rounds=1
        await backend.start()
        try:
            with Journal(tmp_path / "j.db") as journal:
                agent = Agent(
                    "forecaster",
                    backend=backend,
                    skills={"weather": 1.0},
                    tools=[get_weather],
                    temperature=0.0,
                    max_tokens=128,
                )
                team = Team(
                    [agent],
                    journal=journal,
                    run_id="llm-tools",
                    budget=Budget(calls=12, wall_s=240),
                    settings=Settings(work_timeout_s=120, idle_timeout_s=200),
                )
                task = TaskSpec(
                    task_id="weather",
                    skill="weather",
                    description="What is the weather in Oslo right now?",
                    max_attempts=2,
                )
                report = await team.run([task])
                calls = [a.detail for a in journal.actions("llm-tools") if a.action == "tool"]
        finally:
            await backend.aclose()
        (done,) = report.tasks
        assert report.stopped_by == "quiescent", report
        assert done.status == "accepted", done
        ok = [c for c in calls if c["ok"]]
        assert ok, calls  # the model called the tool, with arguments the schema accepted
        assert ok[0]["tool"] == "get_weather" and ok[0]["args"]["city"].lower() == "oslo"
        assert ok[0]["output"] == "hail, 41 C"
        assert "hail" in str(done.output).lower(), done.output  # the answer used the result
        # a call and an answer per attempt, each counted against the budget
        assert 2 <= report.llm_calls <= 12

    asyncio.run(main())
