"""End to end on the real embedded model (marked ``llm``; one model shared by the session).

Structure only: non-empty text, valid JSON for a schema, truncation reported, a well-formed
tool call and an answer from a tool's result; and that a cancelled or timed-out call frees
its slot (checked through the server's ``/slots``).
Prompts are short and ``max_tokens`` small so the module runs in seconds on two cores.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from smesh.backends import Message, Request, Timeout, TruncatedResponse
from smesh.backends.openai import OpenAIBackend
from smesh.backends.toolcalls import AssistantTurn, ToolCall, ToolResult, ToolSpec
from smesh.errors import BackendTimeout

pytestmark = [pytest.mark.llm, pytest.mark.asyncio(loop_scope="session")]

SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "integer"}},
    "required": ["answer"],
}


async def test_plain_completion_is_non_empty(local_backend: Any) -> None:
    response = await local_backend.complete(
        Request.of("What is 2+2? Reply with just the number.", max_tokens=8, temperature=0)
    )
    assert response.text.strip()
    assert response.finish_reason == "stop"
    assert response.input_tokens > 0 and response.output_tokens > 0
    assert response.latency_s > 0
    assert response.backend == "local"


async def test_schema_constrained_reply_is_valid_json(local_backend: Any) -> None:
    response = await local_backend.complete(
        Request.of("What is 2+2? Reply as JSON.", max_tokens=24, temperature=0, json_schema=SCHEMA)
    )
    assert isinstance(response.parsed, dict)
    assert isinstance(response.parsed["answer"], int)


async def test_reply_cut_at_max_tokens_is_reported_not_returned(local_backend: Any) -> None:
    with pytest.raises(TruncatedResponse) as info:
        await local_backend.complete(
            Request.of("Write a long poem about the sea.", max_tokens=3, temperature=0)
        )
    assert info.value.max_tokens == 3


async def test_concurrent_calls_share_the_parallel_slots(local_backend: Any) -> None:
    prompts = [f"Name the number after {i}. Reply with the number only." for i in range(4)]
    async with asyncio.TaskGroup() as tg:
        tasks = [
            tg.create_task(local_backend.complete(Request.of(p, max_tokens=8, temperature=0)))
            for p in prompts
        ]
    assert all(t.result().text.strip() for t in tasks)


async def test_openai_backend_against_the_embedded_endpoint(local_backend: Any) -> None:
    url = local_backend.base_url
    assert url.startswith("http://127.0.0.1:")
    async with OpenAIBackend("qwen2.5-coder-0.5b", base_url=url) as backend:
        plain = await backend.complete(
            Request.of("Say hello.", max_tokens=12, temperature=0, allow_truncated=True)
        )
        structured = await backend.complete(
            Request.of(
                "What is 3+4? Reply as JSON.", max_tokens=24, temperature=0, json_schema=SCHEMA
            )
        )
    assert plain.text.strip() and plain.backend == "openai:qwen2.5-coder-0.5b"
    assert plain.output_tokens > 0
    assert isinstance(structured.parsed, dict) and isinstance(structured.parsed["answer"], int)


async def test_streaming_yields_pieces_and_can_stop_early(local_backend: Any) -> None:
    import contextlib

    pieces = [
        piece
        async for piece in local_backend.stream(
            Request.of("Say hello.", max_tokens=12, temperature=0, allow_truncated=True)
        )
    ]
    assert len(pieces) >= 2 and "".join(pieces).strip()
    started = asyncio.get_running_loop().time()
    async with contextlib.aclosing(
        local_backend.stream(Request.of("Write a long story.", max_tokens=400, temperature=0))
    ) as stream:
        async for _ in stream:
            break
    # closing early stopped the generation instead of waiting for 400 tokens (~10 s here)
    assert asyncio.get_running_loop().time() - started < 3


async def test_openai_streaming_against_the_embedded_endpoint(local_backend: Any) -> None:
    async with OpenAIBackend("qwen2.5-coder-0.5b", base_url=local_backend.base_url) as backend:
        request = Request.of("Say hi.", max_tokens=10, temperature=0, allow_truncated=True)
        pieces = [piece async for piece in backend.stream(request)]
    assert len(pieces) >= 2 and "".join(pieces).strip()


LONG = "Write a very long story about a lighthouse keeper, chapter by chapter."


async def _wait_for_slots(backend: Any, busy: Callable[[int], bool], limit: float) -> float:
    """Poll ``/slots`` until ``busy(count)`` holds; return the seconds it took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not busy(await backend.busy_slots()):
        if loop.time() - started > limit:
            raise AssertionError(f"slots did not settle within {limit} s")
        await asyncio.sleep(0.02)
    return loop.time() - started


async def test_a_cancelled_generation_frees_its_slot_promptly(local_backend: Any) -> None:
    loop = asyncio.get_running_loop()
    request = Request.of(LONG, max_tokens=2000, temperature=0, allow_truncated=True)
    task = asyncio.create_task(local_backend.complete(request))
    await _wait_for_slots(local_backend, lambda n: n >= 1, limit=60)
    await asyncio.sleep(1.0)  # well into the generation (the prompt is a few dozen tokens)
    cancelled = loop.time()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    returned = loop.time() - cancelled
    freed = await _wait_for_slots(local_backend, lambda n: n == 0, limit=10) + returned
    # 2,000 tokens take minutes here; the stop lands at the next token
    assert returned < 3 and freed < 5, (returned, freed)


async def test_a_timed_out_call_is_stopped_at_the_backend(local_backend: Any) -> None:
    request = Request.of(LONG, max_tokens=2000, temperature=0, allow_truncated=True)
    with pytest.raises(BackendTimeout):
        await Timeout(local_backend, 2.0).complete(request)
    # the retry that would follow finds every slot free: nothing generates on behind it
    await _wait_for_slots(local_backend, lambda n: n == 0, limit=5)


ADD = ToolSpec(
    name="add",
    description="Add two integers and return their sum.",
    parameters={
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    },
)


async def test_the_embedded_model_calls_a_tool(local_backend: Any) -> None:
    response = await local_backend.complete(
        Request.of("What is 1234 plus 4321?", tools=(ADD,), temperature=0, max_tokens=96)
    )
    assert response.finish_reason == "tool"
    call = response.tool_calls[0]
    assert call.name == "add" and call.id
    assert isinstance(call.arguments, dict) and set(call.arguments) == {"a", "b"}
    assert all(isinstance(v, int) for v in call.arguments.values())


async def test_the_embedded_model_answers_from_a_tool_result(local_backend: Any) -> None:
    call = ToolCall(id="call_1_0", name="add", arguments={"a": 1234, "b": 4321})
    request = Request(
        messages=(
            Message(role="user", content="What is 1234 plus 4321?"),
            AssistantTurn(tool_calls=(call,)),
            ToolResult(call_id=call.id, name="add", content="5555"),
        ),
        tools=(ADD,),
        temperature=0,
        max_tokens=96,
    )
    response = await local_backend.complete(request)
    assert response.tool_calls == () and "5555" in response.text
