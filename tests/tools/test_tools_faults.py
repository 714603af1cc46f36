"""Fault tests: every failing call becomes a clear error record and the loop goes on or ends.

A tool that raises, hangs past its timeout, returns 10 MB or gets arguments that do not
match its schema; a model that sends malformed arguments or never stops calling tools.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from smesh.testing.tools import ScriptedModel, call
from smesh.tools import CallContext, Tool, ToolCall, ToolLoop, ToolResult, tool
from smesh.tools.execute import render_result

pytestmark = pytest.mark.asyncio


def _results(turns: object) -> list[ToolResult]:
    return [t for t in turns if isinstance(t, ToolResult)]  # type: ignore[attr-defined]


async def test_a_tool_that_raises_becomes_an_error_result() -> None:
    @tool
    def explode(reason: str) -> str:
        raise RuntimeError(f"boom: {reason}")

    model = ScriptedModel([call("explode", reason="disk full"), "sorry, it failed"])
    result = await ToolLoop([explode]).run(model, "x")
    (record,) = result.calls
    assert not record.ok and record.status == "error"
    assert record.result == "RuntimeError: boom: disk full"
    (fed_back,) = _results(result.turns)
    assert fed_back.is_error and "boom: disk full" in fed_back.content
    assert result.text == "sorry, it failed"


async def test_a_hanging_async_tool_times_out_and_is_cancelled() -> None:
    cancelled = asyncio.Event()

    @tool(timeout_s=0.2)
    async def hang() -> str:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    started = time.perf_counter()
    result = await ToolLoop([hang]).run(ScriptedModel([call("hang"), "gave up"]), "x")
    assert time.perf_counter() - started < 2
    (record,) = result.calls
    assert record.status == "timeout" and not record.ok
    assert record.result == "hang did not finish within 0.2 s"
    assert 150 <= record.duration_ms < 2000
    assert cancelled.is_set()
    assert result.text == "gave up"


async def test_a_hanging_sync_tool_times_out_without_blocking_the_loop() -> None:
    release = threading.Event()

    @tool(timeout_s=0.2)
    def block() -> str:
        release.wait(10)  # a thread cannot be killed; it is released below
        return "late"

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    side = asyncio.create_task(ticker())
    try:
        result = await ToolLoop([block]).run(ScriptedModel([call("block"), "ok"]), "x")
    finally:
        side.cancel()
        release.set()
    assert result.calls[0].status == "timeout"
    assert ticks >= 5  # the event loop kept running while the thread hung


async def test_a_timeout_error_raised_by_the_tool_itself_is_an_error_not_a_timeout() -> None:
    @tool(timeout_s=5)
    async def upstream() -> str:
        raise TimeoutError("upstream API timed out")

    result = await ToolLoop([upstream]).run(ScriptedModel([call("upstream"), "ok"]), "x")
    assert result.calls[0].status == "error"
    assert "upstream API timed out" in result.calls[0].result


async def test_a_10_mb_result_is_truncated_with_a_note() -> None:
    @tool
    def dump() -> str:
        return "é" * (5 * 1024 * 1024)  # 10 MiB of UTF-8, two bytes a character

    loop = ToolLoop([dump], max_result_bytes=16 * 1024)
    result = await loop.run(ScriptedModel([call("dump"), "ok"]), "x")
    (fed_back,) = _results(result.turns)
    assert not fed_back.is_error
    body, _, note = fed_back.content.rpartition("\n")
    assert len(body.encode()) <= 16 * 1024 and set(body) == {"é"}  # cut on a char boundary
    assert note == "[truncated: the result was 10,485,760 bytes; the first 16,384 shown]"
    assert len(result.calls[0].result) <= 200


async def test_large_structured_results_are_truncated_too() -> None:
    text = render_result({"rows": list(range(100_000))}, max_bytes=1000)
    assert text.startswith('{"rows":[0,1,2')
    assert text.endswith("the first 1,000 shown]")
    assert render_result({"a": 1}) == '{"a":1}'
    assert render_result(object()).startswith('"<object object')  # unknown types: repr


async def test_arguments_not_matching_the_schema_never_reach_the_tool() -> None:
    calls: list[int] = []

    @tool
    def square(n: int) -> int:
        calls.append(n)
        return n * n

    bad = [
        call("square", n="seven"),
        call("square"),
        call("square", n=2, extra=1),
        ToolCall(id="raw1", name="square", arguments='{"n": 3'),  # malformed JSON
        ToolCall(id="raw2", name="square", arguments="[1, 2]"),  # not an object
        ToolCall(id="raw3", name="square", arguments='{"n": 4}'),  # fine, as text
    ]
    result = await ToolLoop([square]).run(ScriptedModel([bad, "done"]), "x")
    statuses = [r.status for r in result.calls]
    assert statuses == ["invalid"] * 5 + ["ok"]
    assert calls == [4]
    messages = [r.result for r in result.calls]
    assert "Expected `int`, got `str` - at `$.n`" in messages[0]
    assert "missing required field `n`" in messages[1]
    assert "unknown field `extra`" in messages[2]
    assert "not valid JSON" in messages[3]
    assert "a JSON object is needed, not list" in messages[4]
    assert all(m.startswith("invalid arguments for square") for m in messages[:5])


async def test_an_unknown_tool_is_an_error_result() -> None:
    result = await ToolLoop([]).run(ScriptedModel([call("nope"), "ok"]), "x")
    assert result.calls[0].status == "unknown"
    assert result.calls[0].result == "no tool named 'nope' is available here"


async def test_a_model_that_never_stops_calling_tools_ends_at_the_step_limit() -> None:
    count = 0

    @tool
    def again() -> int:
        nonlocal count
        count += 1
        return count

    model = ScriptedModel([call("again")], repeat_last=True)
    result = await ToolLoop([again], max_steps=4).run(model, "x")
    assert not result.ok and result.text is None and result.stop == "step_limit"
    assert count == 4  # four turns' calls ran; the fifth turn's did not
    assert len(model.seen) == 5 and result.steps == 5
    assert result.error == (
        "the model was still calling tools (again) after 4 step(s); "
        "stopped at the step limit without a final answer"
    )
    assert [r.status for r in result.calls] == ["ok"] * 4 + ["skipped"]
    assert "step limit" in result.calls[-1].result


async def test_faults_in_one_call_do_not_disturb_its_siblings() -> None:
    @tool(timeout_s=0.1)
    async def slow() -> str:
        await asyncio.sleep(5)
        return "never"

    @tool
    def fails() -> str:
        raise ValueError("bad")

    @tool
    def works() -> str:
        return "fine"

    model = ScriptedModel([[call("slow"), call("fails"), call("works"), call("ghost")], "ok"])
    result = await ToolLoop([slow, fails, works]).run(model, "x")
    assert [r.status for r in result.calls] == ["timeout", "error", "ok", "unknown"]
    assert result.text == "ok"


async def test_hung_sync_tools_starve_neither_the_default_executor_nor_the_ledger(
    tmp_path: object,
) -> None:
    from pathlib import Path

    from smesh.tools import EffectScope, SQLiteEffectLedger

    release = threading.Event()
    names: list[str] = []

    @tool(timeout_s=0.2)
    def hang() -> str:
        names.append(threading.current_thread().name)
        release.wait(10)
        return "late"

    @tool(side_effect=True)
    def effect() -> str:
        return "done"

    loop = asyncio.get_running_loop()
    blockers = [loop.run_in_executor(None, release.wait, 10) for _ in range(40)]  # saturated
    try:
        async with SQLiteEffectLedger(Path(str(tmp_path)) / "j.db") as ledger:
            model = ScriptedModel([[call("hang")] * 8, call("effect"), "ok"])
            scope = EffectScope(run_id="r", task_id="t")
            started = time.perf_counter()
            result = await ToolLoop([hang, effect], ledger=ledger).run(model, "x", scope=scope)
            assert time.perf_counter() - started < 5
    finally:
        release.set()
        await asyncio.gather(*blockers)
    assert [r.status for r in result.calls] == ["timeout"] * 8 + ["ok"]
    assert names and all(n.startswith("smesh-tool") for n in names)


async def test_unrenderable_results_and_failing_custom_validation_are_contained() -> None:
    @tool
    def cyclic() -> Any:
        loop_list: list[Any] = []
        loop_list.append(loop_list)
        return loop_list

    class Picky(Tool):
        name = "picky"

        def validate(self, args: dict[str, Any]) -> dict[str, Any]:
            raise ValueError("picky about everything")

        async def invoke(self, args: dict[str, Any], ctx: CallContext) -> Any:
            return "unreachable"

    model = ScriptedModel([[call("cyclic"), call("picky")], "ok"])
    result = await ToolLoop([cyclic, Picky()]).run(model, "x")
    assert [r.status for r in result.calls] == ["ok", "invalid"]
    assert result.calls[0].result.startswith("[[")  # the repr, not a crash
    assert "picky about everything" in result.calls[1].result


async def test_schema_keywords_echoed_into_the_arguments_are_dropped() -> None:
    # the 0.5B model copies "required" and "additionalProperties" from the tool's schema
    # into its arguments; those are never arguments, so they are dropped, not refused
    @tool
    def query(sql: str) -> str:
        """Run a query."""
        return f"ran {sql}"

    @tool
    def declare(type: str) -> str:  # a real parameter named like a keyword
        """Declare a type."""
        return type

    echoed = call("query", sql="SELECT 1", required=["sql"], additionalProperties=False)
    extra = call("query", sql="SELECT 1", limit=5)  # any other unknown field: refused
    own = call("declare", type="int", required=["type"])
    model = ScriptedModel([[echoed, extra, own], "done"])
    result = await ToolLoop([query, declare]).run(model, "x")
    first, second, third = result.calls
    assert (first.status, first.result) == ("ok", "ran SELECT 1")
    assert first.args == {"sql": "SELECT 1", "required": ["sql"], "additionalProperties": False}
    assert second.status == "invalid" and "limit" in second.result
    assert (third.status, third.result) == ("ok", "int")
