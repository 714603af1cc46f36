"""``ollama:`` native tool calling against a real loopback HTTP server.

Shapes from Ollama's API docs (``/api/chat``): ``tools: [{"type": "function", "function":
{...}}]``; the reply's ``message.tool_calls: [{"function": {"name", "arguments": {...}}}]``
with the arguments as an *object* and, in older versions, no id; results as ``{"role":
"tool", "content", "tool_name"}``.
"""

from __future__ import annotations

from typing import Any

import pytest
from _loopback import Canned, FakeAPIServer
from _toolwire import ADD_SPEC, CAPITAL_SPEC, LOOP, over

from smesh.backends.base import Message, Request
from smesh.backends.ollama import OllamaBackend
from smesh.backends.toolcalls import AssistantTurn, ToolCall, ToolResult
from smesh.errors import BadResponse, UsageError


def chat(content: str = "", tool_calls: list[Any] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls is not None:
        message["tool_calls"] = tool_calls
    return {
        "model": "qwen2.5-coder:7b",
        "created_at": "2025-01-01T00:00:00Z",
        "message": message,
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": 90,
        "eval_count": 15,
    }


def fn(name: Any, arguments: Any, **extra: Any) -> dict[str, Any]:
    return {"function": {"name": name, "arguments": arguments}, **extra}


def backend_for(server: FakeAPIServer) -> OllamaBackend:
    return OllamaBackend("qwen2.5-coder:7b", host=server.url)


@pytest.mark.asyncio
async def test_request_with_tools_renders_the_documented_shape(api_server: FakeAPIServer) -> None:
    api_server.push(Canned(body=chat(tool_calls=[fn("add", {"a": 1, "b": 2})])))
    async with backend_for(api_server) as backend:
        response = await backend.complete(
            Request.of("add 1 and 2", system="terse", tools=(ADD_SPEC, CAPITAL_SPEC))
        )
    seen = api_server.seen[0]
    assert seen.path == "/api/chat"
    assert seen.body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "add",
                "description": "Add two integers.",
                "parameters": ADD_SPEC.parameters,
            },
        },
        {
            "type": "function",
            "function": {
                "name": "get_capital",
                "description": "Look up the capital city of a country.",
                "parameters": CAPITAL_SPEC.parameters,
            },
        },
    ]
    assert "tool_choice" not in seen.body  # Ollama has none
    assert seen.body["messages"] == [
        {"role": "system", "content": "terse"},
        {"role": "user", "content": "add 1 and 2"},
    ]
    # no id from Ollama: one is made up, unique in the conversation
    assert response.tool_calls == (ToolCall(id="call_1_0", name="add", arguments={"a": 1, "b": 2}),)
    assert (response.finish_reason, response.input_tokens, response.output_tokens) == (
        "tool",
        90,
        15,
    )


@pytest.mark.asyncio
async def test_multi_turn_conversation_renders_tool_messages(api_server: FakeAPIServer) -> None:
    api_server.push(Canned(body=chat("3, Lima")))
    calls = (
        ToolCall(id="call_1_0", name="add", arguments={"a": 1, "b": 2}),
        ToolCall(id="call_1_1", name="get_capital", arguments='{"country": "Peru"}'),
    )
    request = Request(
        messages=(
            Message(role="user", content="two things"),
            AssistantTurn(tool_calls=calls),
            ToolResult(call_id="call_1_0", name="add", content="3"),
            ToolResult(call_id="call_1_1", name="get_capital", content="down", is_error=True),
        ),
        tools=(ADD_SPEC, CAPITAL_SPEC),
    )
    async with backend_for(api_server) as backend:
        response = await backend.complete(request)
    assert (response.text, response.finish_reason) == ("3, Lima", "stop")
    assert api_server.seen[0].body["messages"] == [
        {"role": "user", "content": "two things"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_1_0",
                    "type": "function",
                    "function": {"index": 0, "name": "add", "arguments": {"a": 1, "b": 2}},
                },
                {
                    "id": "call_1_1",
                    "type": "function",
                    # arguments always go back as an object on this wire
                    "function": {
                        "index": 1,
                        "name": "get_capital",
                        "arguments": {"country": "Peru"},
                    },
                },
            ],
        },
        {"role": "tool", "content": "3", "tool_name": "add", "tool_call_id": "call_1_0"},
        {
            "role": "tool",
            "content": "Error: down",
            "tool_name": "get_capital",
            "tool_call_id": "call_1_1",
        },
    ]


@pytest.mark.asyncio
async def test_a_loop_over_the_wire_with_malformed_then_good_arguments(
    api_server: FakeAPIServer,
) -> None:
    api_server.push(
        Canned(body=chat(tool_calls=[fn("get_capital", "{country: Peru}")])),
        Canned(body=chat(tool_calls=[fn("get_capital", {"country": "Peru"}, id="call_x")])),
        Canned(body=chat("Lima")),
    )
    async with backend_for(api_server) as backend:
        result = await LOOP.run(over(backend), "capital of Peru?")
    assert result.answer() == "Lima"
    assert [(c.call_id, c.status, c.args) for c in result.calls] == [
        ("call_1_0", "invalid", "{country: Peru}"),
        ("call_x", "ok", {"country": "Peru"}),
    ]
    error = api_server.seen[1].body["messages"][-1]
    assert (error["role"], error["tool_name"], error["tool_call_id"]) == (
        "tool",
        "get_capital",
        "call_1_0",
    )
    assert error["content"].startswith("Error: invalid arguments for get_capital")
    # the second turn's made-up ids cannot clash with the first turn's
    assert api_server.seen[2].body["messages"][-1]["tool_call_id"] == "call_x"


@pytest.mark.parametrize(
    ("tool_calls", "match"),
    [
        ([fn(None, {})], "no tool name"),
        ([{"name": "add", "arguments": {}}], "no function object"),
        ({"function": {"name": "add"}}, "not a list"),
    ],
)
@pytest.mark.asyncio
async def test_malformed_tool_calls_are_bad_responses(
    api_server: FakeAPIServer, tool_calls: Any, match: str
) -> None:
    api_server.push(Canned(body=chat(tool_calls=tool_calls)))
    async with backend_for(api_server) as backend:
        with pytest.raises(BadResponse, match=match):
            await backend.complete(Request.of("x", tools=(ADD_SPEC,)))


@pytest.mark.asyncio
async def test_tool_choice_none_and_required(api_server: FakeAPIServer) -> None:
    api_server.push(Canned(body=chat("fine")), Canned(body=chat("no call")))
    async with backend_for(api_server) as backend:
        plain = await backend.complete(Request.of("x", tools=(ADD_SPEC,), tool_choice="none"))
        with pytest.raises(BadResponse, match="required"):
            await backend.complete(Request.of("x", tools=(ADD_SPEC,), tool_choice="required"))
        with pytest.raises(UsageError, match="complete"):
            async for _ in backend.stream(Request.of("x", tools=(ADD_SPEC,))):
                pass
    assert plain.text == "fine"
    assert "tools" not in api_server.seen[0].body  # no tool_choice on this wire: left out
    assert api_server.seen[1].body["tools"][0]["function"]["name"] == "add"
    assert len(api_server.seen) == 2
