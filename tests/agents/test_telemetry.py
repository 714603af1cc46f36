"""OpenTelemetry spans of a real run, checked with the SDK's in-memory exporter: names and
GenAI attributes, parents, links to the triggering signals, derived ids, and nothing at
all when telemetry is not configured."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from smesh.agents import Agent, Settings, TaskSpec, Team, VerifySpec
from smesh.backends.base import Request
from smesh.clock import SystemClock
from smesh.errors import BackendError
from smesh.field import Field
from smesh.telemetry import configure
from smesh.telemetry.ids import span_id, trace_id
from smesh.testing import FunctionBackend
from smesh.tools import tool

FAST = Settings(poll_s=0.05, tick_s=0.05, idle_timeout_s=10.0, lease_s=5.0)


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def _reply(failures: list[BaseException]) -> Any:
    from smesh.backends.toolcalls import AssistantTurn, ToolCall, ToolResult

    def reply(request: Request) -> Any:
        if failures:
            raise failures.pop(0)
        if request.json_schema is not None:
            return {"reason": "fine", "correct": True}
        if request.tools and not isinstance(request.messages[-1], ToolResult):
            call = ToolCall(id="", name="add", arguments={"a": 1, "b": 2})
            return AssistantTurn(tool_calls=(call,))
        return "3"

    return reply


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    stop = configure(provider)
    try:
        yield exporter
    finally:
        stop()
        provider.shutdown()


def _run(failures: list[BaseException] | None = None) -> Team:
    backend = FunctionBackend(_reply(failures or []), name="ollama:qwen2.5", model="qwen2.5:0.5b")
    agents = [
        Agent("coder", backend=backend, skills={"math": 1.0}, tools=[add]),
        Agent("rev-a", backend=backend, verifies={"math": 1.0}),
        Agent("rev-b", backend=backend, verifies={"math": 1.0}),
    ]
    team = Team(agents, field=Field(SystemClock()), settings=FAST, run_id="otel-1")
    verify = VerifySpec(quorum=0.9, margin=0.3)
    spec = TaskSpec(task_id="sum", skill="math", description="1 + 2?", verify=verify)
    report = asyncio.run(team.run([spec]))
    assert report.accepted == 1
    return team


def test_a_task_is_one_trace_of_genai_spans_with_parents_and_links(
    spans: InMemorySpanExporter,
) -> None:
    team = _run([BackendError("flaky")])
    got = spans.get_finished_spans()
    by_name: dict[str, list[Any]] = {}
    for s in got:
        by_name.setdefault(s.name, []).append(s)
    task = team.board.tasks["sum"]
    trace = trace_id(task.signal.address, task.signal.created_at)
    assert {s.context.trace_id for s in got} == {trace}  # one trace, derived from the task

    (root,) = by_name["task sum"]
    assert root.parent is None
    assert root.context.span_id == span_id(trace, task.signal.address)
    assert root.attributes["smesh.task.outcome"] == "accepted"
    assert root.attributes["smesh.signal.kind"] == "task"

    invokes = by_name["invoke_agent coder"]
    (attempt,) = invokes
    assert attempt.parent.span_id == root.context.span_id
    assert attempt.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert attempt.attributes["gen_ai.agent.name"] == "coder"
    assert attempt.attributes["smesh.attempt"] == 1
    # the claim's link: the task signal that triggered it, with what the agent saw of it
    (link,) = [lk for lk in attempt.links if lk.attributes["smesh.signal.kind"] == "task"]
    assert link.context.span_id == root.context.span_id
    assert 0 < link.attributes["smesh.signal.intensity"] <= 1

    chats = by_name["chat qwen2.5:0.5b"] + by_name.get("chat qwen2.5", [])
    work = [c for c in chats if c.attributes["smesh.purpose"] == "work"]
    # the failed try, the call asking for the tool, the answer
    assert len(work) == 3
    for chat in chats:
        assert chat.attributes["gen_ai.operation.name"] == "chat"
        assert chat.attributes["gen_ai.provider.name"] == "ollama"
        assert chat.attributes["gen_ai.request.model"] == "qwen2.5"
    for chat in work:
        assert chat.parent.span_id == attempt.context.span_id
        assert attempt.start_time <= chat.start_time <= chat.end_time <= attempt.end_time
    ok = [c for c in work if c.status.is_ok]
    assert sum(c.attributes["gen_ai.usage.output_tokens"] for c in ok) > 0
    assert all("gen_ai.usage.input_tokens" in c.attributes for c in ok)
    (failed,) = [c for c in work if not c.status.is_ok]
    assert failed.attributes["error.type"] == "BackendError"

    (call,) = by_name["execute_tool add"]
    assert call.parent.span_id == attempt.context.span_id
    assert call.attributes["gen_ai.tool.name"] == "add"
    assert call.attributes["gen_ai.operation.name"] == "execute_tool"

    (result,) = by_name["signal result"]
    assert result.parent.span_id == attempt.context.span_id
    for reviewer in ("rev-a", "rev-b"):
        (judge,) = by_name[f"invoke_agent {reviewer}"]
        assert judge.parent.span_id == root.context.span_id
        assert judge.attributes["smesh.verdict"] == "approve"
        # the vote links to the result it judged (provenance), resolved to its span
        targets = {lk.context.span_id for lk in judge.links}
        assert result.context.span_id in targets
        (judged,) = [c for c in chats if c.attributes["gen_ai.agent.name"] == reviewer]
        assert judged.parent.span_id == judge.context.span_id


def test_ids_are_the_same_in_every_process() -> None:
    # a worker in another process derives the same ids from the same signals
    t1 = trace_id("abc", 1700000000.25)
    assert t1 == trace_id("abc", 1700000000.25) != trace_id("abc", 1700000000.5)
    assert span_id(t1, "lease") == span_id(t1, "lease") != span_id(t1, "result")
    assert 0 < t1 < 2**128 and 0 < span_id(t1, "x") < 2**64


def test_nothing_is_traced_unless_configured() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    team = _run()
    assert team.runtime.sinks == []
    stop = configure(provider)
    stop()  # configured, then stopped: the next run is not traced either
    team = _run()
    assert team.runtime.sinks == [] and exporter.get_finished_spans() == ()
