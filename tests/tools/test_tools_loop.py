"""The tool-calling loop: turns, concurrency, ordering, records, cancellation, permissions."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from smesh.backends.base import Message, Request
from smesh.errors import ToolError, UsageError
from smesh.testing import UnexpectedCall
from smesh.testing.tools import ScriptedModel, ScriptedTool, call
from smesh.tools import (
    AssistantTurn,
    ToolCall,
    ToolCallRecord,
    ToolGrant,
    ToolLoop,
    ToolResult,
    ToolSet,
    run_tool_loop,
    tool,
)

pytestmark = pytest.mark.asyncio


@tool
async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


async def test_a_model_calls_a_tool_then_answers_with_its_result() -> None:
    model = ScriptedModel([[call("add", a=2, b=3)], "the sum is 5"])
    records: list[ToolCallRecord] = []
    result = await ToolLoop([add]).run(model, "add 2 and 3", on_record=records.append)
    assert result.ok and result.text == "the sum is 5" and result.answer() == "the sum is 5"
    assert result.stop == "final" and result.steps == 2
    (record,) = records
    assert result.calls == (record,)
    assert record.tool == "add" and record.args == {"a": 2, "b": 3} and record.ok
    assert record.status == "ok" and record.result == "5" and record.step == 1
    assert record.effect_id is None and not record.replayed and record.duration_ms >= 0
    # the model saw the prompt first, then its own call and the result
    first, _ = model.seen[0]
    second, names = model.seen[1]
    assert first == (Message(role="user", content="add 2 and 3"),)
    assert names == ("add",)
    assert isinstance(second[1], AssistantTurn)
    assert second[2] == ToolResult(call_id=record.call_id, name="add", content="5")
    model.assert_all_consumed()


async def test_no_tool_call_means_the_first_reply_is_final() -> None:
    model = ScriptedModel(["plain answer"])
    result = await run_tool_loop(model, [add], [Message(role="user", content="hi")])
    assert result.text == "plain answer" and result.steps == 1 and result.calls == ()


async def test_independent_calls_run_concurrently_and_results_keep_call_order() -> None:
    @tool
    async def nap(seconds: float, label: str) -> str:
        await asyncio.sleep(seconds)
        return label

    model = ScriptedModel(
        [[call("nap", seconds=0.4, label="slow"), call("nap", seconds=0.3, label="fast")], "ok"]
    )
    finished: list[str] = []
    started = time.perf_counter()
    result = await ToolLoop([nap]).run(model, "go", on_record=lambda r: finished.append(r.result))
    elapsed = time.perf_counter() - started
    assert elapsed < 0.6  # together (0.4 s), not one after the other (0.7 s)
    assert finished == ["fast", "slow"]  # records arrive as calls end
    assert [r.result for r in result.calls] == ["slow", "fast"]  # kept in call order
    results = [t for t in result.turns if isinstance(t, ToolResult)]
    assert [r.content for r in results] == ["slow", "fast"]
    assert len({r.call_id for r in results}) == 2


async def test_a_non_concurrent_tool_runs_one_call_at_a_time() -> None:
    active = 0
    peak = 0

    @tool(concurrent=False)
    async def exclusive(n: int) -> int:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.02)
        active -= 1
        return n

    @tool
    async def shared(n: int) -> int:
        nonlocal active, peak
        await asyncio.sleep(0.02)
        return n

    calls = [call("exclusive", n=i) for i in range(4)] + [call("shared", n=9)]
    result = await ToolLoop([exclusive, shared]).run(ScriptedModel([calls, "ok"]), "go")
    assert peak == 1
    assert [r.result for r in result.calls] == ["0", "1", "2", "3", "9"]


async def test_async_callbacks_are_awaited() -> None:
    seen: list[str] = []

    async def on_record(record: ToolCallRecord) -> None:
        await asyncio.sleep(0)
        seen.append(record.tool)

    await ToolLoop([add]).run(
        ScriptedModel([call("add", a=1, b=1), "ok"]), "x", on_record=on_record
    )
    assert seen == ["add"]


async def test_calls_without_ids_get_unique_ones() -> None:
    model = ScriptedModel([[call("add", a=1, b=1), call("add", a=1, b=1)], "ok"])
    result = await ToolLoop([add]).run(model, "x")
    assert [r.call_id for r in result.calls] == ["call_1_0", "call_1_1"]
    given = ScriptedModel([ToolCall(id="abc", name="add", arguments={"a": 1, "b": 2}), "ok"])
    assert (await ToolLoop([add]).run(given, "x")).calls[0].call_id == "abc"


async def test_a_conversation_with_made_up_ids_is_a_valid_request() -> None:
    # regression (phase 2a): the turn was appended with empty ids and the results quoted
    # call_<step>_<i>, so the conversation failed Request validation at a real backend
    model = ScriptedModel(
        [[call("add", a=1, b=1), call("add", a=2, b=2)], [call("add", a=3, b=3)], "ok"]
    )
    result = await ToolLoop([add]).run(model, "x")
    assert [r.call_id for r in result.calls] == ["call_1_0", "call_1_1", "call_2_0"]
    turns = [t for t in result.turns if isinstance(t, AssistantTurn) and t.tool_calls]
    assert [c.id for t in turns for c in t.tool_calls] == ["call_1_0", "call_1_1", "call_2_0"]
    request = Request(messages=result.turns)  # raises if a result answers an unknown id
    assert request.chat_messages()[1]["tool_calls"][0]["id"] == "call_1_0"
    # the model saw its own turn with the ids the results quote
    seen, _ = model.seen[1]
    assert isinstance(seen[1], AssistantTurn) and seen[1].tool_calls[1].id == "call_1_1"
    # an id taken earlier in the conversation is not made again
    earlier = AssistantTurn(
        tool_calls=(ToolCall(id="call_1_0", name="add", arguments={"a": 0, "b": 0}),)
    )
    history = [
        Message(role="user", content="x"),
        earlier,
        ToolResult(call_id="call_1_0", name="add", content="0"),
    ]
    again = await ToolLoop([add]).run(ScriptedModel([call("add", a=1, b=1), "ok"]), history)
    assert again.calls[0].call_id == "call_1_0_1"
    Request(messages=again.turns)


async def test_over_the_per_turn_cap_calls_are_skipped_with_a_reason() -> None:
    tool_double = ScriptedTool("ping", ["pong"])
    model = ScriptedModel([[call("ping")] * 5, "ok"])
    result = await ToolLoop([tool_double], max_calls_per_step=3).run(model, "x")
    assert [r.status for r in result.calls] == ["ok"] * 3 + ["skipped"] * 2
    assert "at most 3 tool calls" in result.calls[-1].result
    assert len(tool_double.calls) == 3


async def test_cancelling_the_loop_cancels_the_calls_in_flight() -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    @tool
    async def forever() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    model = ScriptedModel([[call("forever"), call("forever")], "never"])
    task = asyncio.create_task(ToolLoop([forever]).run(model, "x"))
    await asyncio.wait_for(started.wait(), 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2)
    assert cancelled.is_set()


async def test_model_failures_propagate_to_the_caller() -> None:
    with pytest.raises(UnexpectedCall):
        await ToolLoop([add]).run(ScriptedModel([call("add", a=1, b=2)]), "x")

    async def bad_model(turns: Any, specs: Any) -> Any:
        return "not a turn"

    with pytest.raises(UsageError, match="AssistantTurn"):
        await ToolLoop([add]).run(bad_model, "x")


async def test_limits_must_be_positive() -> None:
    with pytest.raises(UsageError):
        ToolLoop([add], max_steps=0)


async def test_the_model_sees_only_the_granted_tools_and_cannot_call_others() -> None:
    secret = ScriptedTool("delete_everything", ["gone"], side_effect=True)
    agent_tools = ToolSet([add, secret])
    usable = ToolGrant.of(["add", "search"]).apply(agent_tools)
    assert usable.names == ("add",)
    model = ScriptedModel([[call("delete_everything"), call("add", a=1, b=1)], "ok"])
    result = await ToolLoop(usable).run(model, "x")
    assert model.seen[0][1] == ("add",)
    assert [r.status for r in result.calls] == ["unknown", "ok"]
    assert secret.calls == []


async def test_answer_raises_when_there_is_none() -> None:
    model = ScriptedModel([call("add", a=1, b=1)], repeat_last=True)
    result = await ToolLoop([add], max_steps=2).run(model, "x")
    with pytest.raises(ToolError, match="step limit"):
        result.answer()
