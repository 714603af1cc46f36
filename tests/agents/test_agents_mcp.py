"""An agent using an MCP server's tools in a real Team run: the test MCP server
(``tests/tools/_mcp_server.py``, written with the official ``mcp`` package) runs as a stdio
subprocess, and the agent's model calls its tools through ``Agent(tools=[server])``."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from smesh.agents import Agent, Settings, TaskSpec, Team
from smesh.agents.journal import Journal
from smesh.backends.base import Request
from smesh.backends.toolcalls import AssistantTurn, ToolCall, ToolResult
from smesh.testing import FunctionBackend
from smesh.tools import SQLiteEffectLedger
from smesh.tools.mcp import MCPTools

pytest.importorskip("mcp")

SERVER = Path(__file__).resolve().parents[1] / "tools" / "_mcp_server.py"


def model(request: Request) -> Any:
    """Adds with the server, fails once on purpose, upper-cases, then reports all three."""
    seen = [t for t in request.messages if isinstance(t, ToolResult)]
    if not seen:
        return AssistantTurn(
            tool_calls=(
                ToolCall(id="", name="add", arguments={"a": 20, "b": 22}),
                ToolCall(id="", name="fail", arguments={"reason": "testing"}),
            )
        )
    if len(seen) == 2:
        total = json.loads(seen[0].content)["result"]  # the server's structured result
        text = {"text": f"the sum is {total}"}
        return AssistantTurn(tool_calls=(ToolCall(id="", name="text_upper", arguments=text),))
    return " | ".join(("error: " if r.is_error else "") + r.content for r in seen)


def test_an_agent_uses_an_mcp_servers_tools_in_a_team_run(tmp_path: Path) -> None:
    async def main() -> None:
        with (
            (tmp_path / "server.log").open("w") as log,
            Journal(tmp_path / "j.db") as journal,
        ):
            async with MCPTools(f"stdio:{sys.executable} {SERVER} stdio", errlog=log) as server:
                backend = FunctionBackend(model)
                agent = Agent("ops", backend=backend, skills={"ops": 1.0}, tools=[server])
                team = Team(
                    [agent], journal=journal, run_id="m1", settings=Settings(idle_timeout_s=60)
                )
                report = await asyncio.wait_for(
                    team.run([TaskSpec(task_id="t", skill="ops", max_attempts=1)]), 60
                )
                offered = sorted(s.name for s in backend.calls[0].tools)
                calls = [a.detail for a in journal.actions("m1", "t") if a.action == "tool"]
        (task,) = report.tasks
        assert task.status == "accepted", task.reason
        assert task.output == (
            '{"result":42} | error: Error executing tool fail: failed on purpose: testing | '
            '{"result":"THE SUM IS 42"}'
        )
        assert offered == ["add", "crash", "fail", "slow", "text_upper"]
        assert [(c["tool"], c["status"]) for c in calls] == [
            ("add", "ok"),
            ("fail", "error"),
            ("text_upper", "ok"),
        ]
        # "add" is not marked read-only: a side effect, recorded in the journal's file;
        # "text.upper" is read-only (readOnlyHint): no effect id
        add, _, upper = calls
        assert add["effect_id"] and upper["effect_id"] is None
        ledger = SQLiteEffectLedger(tmp_path / "j.db")
        try:
            (effect,) = [r for r in ledger.records("m1") if r.tool == "add"]
        finally:
            ledger.close()
        assert (effect.effect_id, effect.status, effect.result) == (
            add["effect_id"],
            "done",
            {"result": 42},
        )

    asyncio.run(main())
