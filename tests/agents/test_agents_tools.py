"""Agents that act: ``Agent(tools=...)`` runs the tool loop in ``perform``, within the run's
budgets, pressure and cancellation, journals every call, and honours the task's grant."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from _agentkit import approve_all, virtual

from smesh.agents import (
    Agent,
    Budget,
    FunctionAgent,
    Settings,
    TaskSpec,
    Team,
    VerifySpec,
    WorkContext,
)
from smesh.agents.journal import Journal
from smesh.agents.records import attempts
from smesh.backends.base import Request
from smesh.backends.toolcalls import AssistantTurn, ToolCall, ToolResult
from smesh.errors import RateLimited, UnknownName, UsageError
from smesh.testing import FunctionBackend
from smesh.testing.tools import ScriptedTool
from smesh.testing.virtual_time import LoopClock
from smesh.tools import SQLiteEffectLedger, ToolGrant, tool
from smesh.tools.mcp import MCPTools


@tool
async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
async def shout(text: str) -> str:
    """Upper-case a text."""
    return text.upper()


def results(request: Request) -> list[ToolResult]:
    return [t for t in request.messages if isinstance(t, ToolResult)]


def adder(request: Request) -> Any:
    """A model that adds 2 and 3 with the tool, then answers from the result."""
    done = results(request)
    if not done:
        return AssistantTurn(tool_calls=(ToolCall(id="", name="add", arguments={"a": 2, "b": 3}),))
    return f"the sum is {done[-1].content}"


def _team(agents: list[Agent], **options: Any) -> Team:
    options.setdefault("settings", Settings(idle_timeout_s=60.0))
    return Team(agents, clock=LoopClock(), **options)


# -- the loop inside perform -------------------------------------------------------------


def test_an_agent_calls_its_tool_and_answers_from_the_result(tmp_path: Path) -> None:
    backend = FunctionBackend(adder)

    async def main() -> None:
        with Journal(tmp_path / "j.db") as journal:
            agent = Agent("w", backend=backend, skills={"s": 1.0}, tools=[add, shout])
            team = _team([agent], journal=journal, run_id="r1")
            report = await team.run([TaskSpec(task_id="t", skill="s")])
            (task,) = report.tasks
            assert (task.status, task.output) == ("accepted", "the sum is 5")
            assert report.llm_calls == 2  # two model turns; the tool call is not an LLM call
            actions = journal.actions("r1", "t")
        (call,) = [a for a in actions if a.action == "tool"]
        d = call.detail
        assert (d["tool"], d["args"], d["ok"], d["status"], d["output"]) == (
            "add",
            {"a": 2, "b": 3},
            True,
            "ok",
            "5",
        )
        assert d["attempt"] == 1 and d["step"] == 1 and d["call_id"] == "call_1_0"
        assert d["duration_ms"] >= 0 and d["effect_id"] is None and d["replayed"] is False
        # the signals behind the work: the task signal and the agent's lease on it
        kinds = [t["kind"] for t in d["triggers"]]
        assert kinds == ["task", "claim"]
        claim = next(a for a in actions if a.action == "claim")
        assert d["triggers"][0]["address"] == claim.detail["triggers"][0]["address"]
        assert attempts(actions)[0]["tool_calls"][0]["tool"] == "add"

    virtual(main())
    # what the backend saw: the tools, then the conversation with the call and its result,
    # with matching ids (a Request refuses a result whose call no earlier turn made)
    first, second = backend.calls
    assert [s.name for s in first.tools] == ["add", "shout"]
    turn = second.messages[1]
    assert isinstance(turn, AssistantTurn) and turn.tool_calls[0].id == "call_1_0"
    assert second.messages[2] == ToolResult(call_id="call_1_0", name="add", content="5")


def test_the_task_grant_narrows_the_agents_tools() -> None:
    seen: list[list[str]] = []

    def model(request: Request) -> Any:
        seen.append([s.name for s in request.tools])
        return "plain answer"

    async def main() -> None:
        agent = Agent("w", backend=FunctionBackend(model), skills={"s": 1.0}, tools=[add, shout])
        tasks = [
            TaskSpec(task_id="only-shout", skill="s", tools=["shout", "delete_everything"]),
            TaskSpec(task_id="none", skill="s", tools=[]),
            TaskSpec(task_id="any", skill="s"),
        ]
        report = await _team([agent]).run(tasks)
        assert {t.status for t in report.tasks} == {"accepted"}

    virtual(main())
    # a task that names tools gets the intersection; [] grants none (a plain request);
    # None puts no limit on the agent's own
    assert sorted(seen, key=len) == [[], ["shout"], ["add", "shout"]]


def test_a_granted_name_the_agent_lacks_gives_it_nothing_new() -> None:
    seen: list[list[str]] = []

    def model(request: Request) -> Any:
        seen.append([s.name for s in request.tools])
        return "ok"

    async def main() -> None:
        plain = Agent("w", backend=FunctionBackend(model), skills={"s": 1.0})
        await _team([plain]).run([TaskSpec(task_id="t", skill="s", tools=["add"])])

    virtual(main())
    assert seen == [[]]


def test_a_subtask_never_gets_more_than_its_parent() -> None:
    parent = WorkContext(task=TaskSpec(task_id="p", skill="s", tools=["a", "b"]), attempt=1)
    assert parent.grant == ToolGrant(frozenset({"a", "b"}))
    assert parent.subtask_tools(["b", "c"]) == ["b"]
    assert parent.subtask_tools(None) == ["a", "b"]  # asking for nothing inherits the grant
    assert parent.subtask_tools([]) == []
    free = WorkContext(task=TaskSpec(task_id="q", skill="s"), attempt=1)
    assert free.grant.allowed is None and free.subtask_tools(None) is None
    assert free.subtask_tools(["x"]) == ["x"]
    # unset tools leave the task's payload (and so its signal address) as before
    assert "tools" not in TaskSpec(task_id="q", skill="s").payload()
    assert TaskSpec.from_payload(TaskSpec(task_id="p", skill="s", tools=["a"]).payload()).tools == [
        "a"
    ]


SUM = {"type": "object", "properties": {"sum": {"type": "integer"}}, "required": ["sum"]}


def checker() -> FunctionAgent:
    return FunctionAgent("v", judge=approve_all, verifies={"s": 1.0}, authoritative=True)


def test_a_schema_task_returns_the_parsed_final_answer() -> None:
    seen: list[tuple[Any, str]] = []

    def model(request: Request) -> Any:
        seen.append((request.json_schema, request.tool_choice))
        if not results(request):
            return AssistantTurn(
                tool_calls=(ToolCall(id="", name="add", arguments={"a": 1, "b": 1}),)
            )
        return {"sum": int(results(request)[-1].content)}

    async def main() -> None:
        agent = Agent("w", backend=FunctionBackend(model), skills={"s": 1.0}, tools=[add])
        spec = TaskSpec(task_id="t", skill="s", verify=VerifySpec(schema=SUM, timeout_s=5))
        report = await _team([agent, checker()]).run([spec])
        assert report.tasks[0].output == {"sum": 2}
        assert report.llm_calls == 2

    virtual(main())
    # the turn that may call a tool goes without the schema (a grammar would leave no room
    # for a call); once results are in, the answer is constrained to it
    assert seen == [(None, "auto"), (SUM, "auto")]


def test_an_answer_that_misses_the_schema_is_asked_for_again_constrained() -> None:
    seen: list[tuple[Any, str]] = []

    def model(request: Request) -> Any:
        seen.append((request.json_schema, request.tool_choice))
        return {"sum": 7} if request.json_schema else "it is seven"

    async def main() -> None:
        agent = Agent("w", backend=FunctionBackend(model), skills={"s": 1.0}, tools=[add])
        spec = TaskSpec(task_id="t", skill="s", verify=VerifySpec(schema=SUM, timeout_s=5))
        report = await _team([agent, checker()]).run([spec])
        assert report.tasks[0].output == {"sum": 7}
        assert report.llm_calls == 2  # the re-ask is an LLM call like any other

    virtual(main())
    assert seen == [(None, "auto"), (SUM, "none")]


# -- tool strings and providers -------------------------------------------------------


def test_tool_strings_are_resolved_when_the_agent_is_built(tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
    conn.close()
    (tmp_path / "notes.txt").write_text("hello")
    agent = Agent("w", skills={"s": 1.0}, tools=[f"sqlite:{db}", f"files:{tmp_path}", add])
    assert agent.tools.current().names == ("sql_query", "list_files", "read_file", "grep", "add")
    with pytest.raises(UnknownName, match="unknown tool kind 'nope'"):
        Agent("w", tools=["nope:x"])
    with pytest.raises(UsageError, match="no SQLite database"):
        Agent("w", tools=[f"sqlite:{tmp_path / 'missing.db'}"])
    with pytest.raises(UsageError, match="two tools are named 'add'"):
        Agent("w", tools=[add, add])
    with pytest.raises(UsageError, match="not 42"):
        Agent("w", tools=[42])  # type: ignore[list-item]
    with pytest.raises(UsageError, match="max_tool_steps"):
        Agent("w", tools=[add], max_tool_steps=0)


def test_an_unconnected_mcp_server_is_a_clear_task_error() -> None:
    server = MCPTools("stdio:python server.py")  # never entered: no tools

    async def main() -> None:
        agent = Agent("w", backend=FunctionBackend(adder), skills={"s": 1.0}, tools=[server])
        report = await _team([agent]).run([TaskSpec(task_id="t", skill="s", max_attempts=1)])
        (task,) = report.tasks
        assert task.status == "failed"
        assert task.reason is not None and "connect it (async with ...)" in task.reason

    virtual(main())


# -- budgets, pressure, cancellation ----------------------------------------------------


def test_every_model_turn_is_charged_and_tools_stop_with_the_budget() -> None:
    runs: list[int] = []

    @tool
    async def step(n: int) -> int:
        """Count a step."""
        runs.append(n)
        return n

    def forever(request: Request) -> Any:  # a model that never stops calling the tool
        n = len(results(request))
        return AssistantTurn(tool_calls=(ToolCall(id="", name="step", arguments={"n": n}),))

    async def main() -> None:
        agent = Agent(
            "w",
            backend=FunctionBackend(forever),
            skills={"s": 1.0},
            tools=[step],
            max_tool_steps=50,
        )
        team = _team([agent], budget=Budget(calls=3))
        report = await team.run([TaskSpec(task_id="t", skill="s")])
        assert report.stopped_by == "budget" and report.llm_calls == 3
        assert report.tasks[0].status == "failed"

    virtual(main())
    # turns 1 and 2 ran their tool; turn 3 was the last call the budget allowed, and its
    # tools never ran (the run was over)
    assert runs == [0, 1]


def test_a_rate_limited_turn_signals_pressure_and_is_retried() -> None:
    calls: list[float] = []

    def limited(request: Request) -> Any:
        calls.append(asyncio.get_running_loop().time())
        if len(calls) == 2:  # the turn after the tool call is rate limited once
            raise RateLimited("slow down", backend="function", retry_after=7.0)
        return adder(request)

    async def main() -> None:
        agent = Agent("w", backend=FunctionBackend(limited), skills={"s": 1.0}, tools=[add])
        team = _team([agent])
        report = await team.run([TaskSpec(task_id="t", skill="s")])
        assert report.tasks[0].output == "the sum is 5"

    virtual(main())
    assert len(calls) == 3
    assert calls[2] - calls[1] >= 7.0  # the retry waited out the pressure it signalled


def test_a_stopped_run_cancels_the_tool_in_flight() -> None:
    state: dict[str, Any] = {}

    @tool(timeout_s=3600)
    async def wait_forever() -> str:
        """Never returns."""
        state["started"] = True
        try:
            await asyncio.sleep(10_000)
        except asyncio.CancelledError:
            state["cancelled"] = True
            raise
        return "never"

    def model(request: Request) -> Any:
        return AssistantTurn(tool_calls=(ToolCall(id="", name="wait_forever", arguments={}),))

    async def main() -> None:
        agent = Agent("w", backend=FunctionBackend(model), skills={"s": 1.0}, tools=[wait_forever])
        team = _team([agent], settings=Settings(work_timeout_s=30.0, idle_timeout_s=600.0))
        report = await team.run([TaskSpec(task_id="t", skill="s", max_attempts=1)])
        assert report.tasks[0].status == "failed"
        assert "no result within 30 s" in (report.tasks[0].reason or "")

    virtual(main())
    assert state == {"started": True, "cancelled": True}


# -- effects ---------------------------------------------------------------------------


def test_side_effects_go_to_the_ledger_in_the_journal_file(tmp_path: Path) -> None:
    sent = ScriptedTool(
        "send",
        ["sent"],
        side_effect=True,
        parameters={"type": "object", "properties": {"to": {"type": "string"}}},
    )

    def model(request: Request) -> Any:
        if not results(request):
            return AssistantTurn(
                tool_calls=(ToolCall(id="", name="send", arguments={"to": "ada"}),)
            )
        return "done"

    async def main() -> None:
        with Journal(tmp_path / "j.db") as journal:
            agent = Agent("w", backend=FunctionBackend(model), skills={"s": 1.0}, tools=[sent])
            await _team([agent], journal=journal, run_id="r9").run(
                [TaskSpec(task_id="t", skill="s")]
            )
            (call,) = [a for a in journal.actions("r9", "t") if a.action == "tool"]
        effect = call.detail["effect_id"]
        assert effect and sent.calls[0][1].effect_id == effect  # the tool got its key
        ledger = SQLiteEffectLedger(tmp_path / "j.db")
        try:
            (record,) = ledger.records("r9")
        finally:
            ledger.close()
        assert (record.effect_id, record.status, record.result) == (effect, "done", "sent")
        assert (record.task_id, record.attempt, record.step) == ("t", 1, 1)

    virtual(main())


def test_without_a_journal_effect_ids_are_still_given_per_run() -> None:
    sent = ScriptedTool("send", ["sent"], side_effect=True)

    def model(request: Request) -> Any:
        return (
            "done"
            if results(request)
            else AssistantTurn(tool_calls=(ToolCall(id="", name="send"),))
        )

    async def main() -> None:
        for _ in range(2):
            agent = Agent("w", backend=FunctionBackend(model), skills={"s": 1.0}, tools=[sent])
            await _team([agent]).run([TaskSpec(task_id="t", skill="s")])

    virtual(main())
    first, second = (ctx.effect_id for _, ctx in sent.calls)
    assert first and second and first != second  # two runs, two effects


# -- the journal as trace reads it -----------------------------------------------------


def test_trace_json_lists_each_attempts_tool_calls(tmp_path: Path) -> None:
    import subprocess
    import sys

    flaky = ScriptedTool("flaky", [ValueError("first try fails"), "fine"])

    def model(request: Request) -> Any:
        done = results(request)
        if len(done) < 2:
            return AssistantTurn(tool_calls=(ToolCall(id="", name="flaky"),))
        return "ok"

    async def main() -> None:
        with Journal(tmp_path / "j.db") as journal:
            agent = Agent("w", backend=FunctionBackend(model), skills={"s": 1.0}, tools=[flaky])
            await _team([agent], journal=journal, run_id="r2").run(
                [TaskSpec(task_id="t", skill="s")]
            )

    virtual(main())
    out = subprocess.run(
        [sys.executable, "-m", "smesh", "trace", "r2", "t", "--json", "--journal", "j.db"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
        timeout=60,
    )
    (attempt,) = json.loads(out.stdout)["attempts"]
    assert [(c["tool"], c["ok"], c["status"]) for c in attempt["tool_calls"]] == [
        ("flaky", False, "error"),
        ("flaky", True, "ok"),
    ]
    assert attempt["tool_calls"][0]["result"] == "ValueError: first try fails"


def test_trace_prints_a_models_markup_as_text(tmp_path: Path) -> None:
    import subprocess
    import sys

    hostile = "[/] [bold red]boom[/bold red] [link=http://x]"

    def model(request: Request) -> Any:
        if not results(request):
            args = {"text": hostile}
            return AssistantTurn(tool_calls=(ToolCall(id="", name="shout", arguments=args),))
        return "done"

    async def main() -> None:
        with Journal(tmp_path / "j.db") as journal:
            agent = Agent("w", backend=FunctionBackend(model), skills={"s": 1.0}, tools=[shout])
            team = _team([agent], journal=journal, run_id="r3")
            await team.run([TaskSpec(task_id="t", skill="s")])

    virtual(main())
    out = subprocess.run(
        [sys.executable, "-m", "smesh", "trace", "r3", "t", "--journal", "j.db"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "400", "NO_COLOR": "1"},
        check=False,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert f"called shout(text={hostile!r})" in out.stdout
    assert hostile.upper() in out.stdout  # the result, as text
