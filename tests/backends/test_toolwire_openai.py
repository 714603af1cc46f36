"""``openai:`` native tool calling against a real loopback HTTP server.

Shapes from the Chat Completions reference: ``tools: [{"type": "function", "function":
{name, description, parameters}}]``, ``tool_choice``, ``message.tool_calls: [{"id", "type":
"function", "function": {"name", "arguments": "<JSON text>"}}]`` with ``finish_reason:
"tool_calls"`` and ``content: null``; results as ``{"role": "tool", "tool_call_id",
"content"}``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from _loopback import Canned, FakeAPIServer
from _toolwire import ADD_SPEC, CAPITAL_SPEC, LOOP, over

from smesh.backends.base import Message, Request
from smesh.backends.openai import OpenAIBackend
from smesh.backends.toolcalls import AssistantTurn, ToolCall, ToolResult
from smesh.errors import BadResponse, UsageError

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


def completion(
    content: str | None = None,
    tool_calls: list[Any] | None = None,
    finish: str = "tool_calls",
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls is not None:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 12},
    }


def call(ident: str | None, name: Any, arguments: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "function", "function": {"name": name, "arguments": arguments}}
    if ident is not None:
        item["id"] = ident
    return item


def backend_for(server: FakeAPIServer) -> OpenAIBackend:
    return OpenAIBackend("gpt-4o-mini", base_url=server.url, api_key="sk-test")


@pytest.mark.asyncio
async def test_request_with_tools_renders_the_documented_shape(api_server: FakeAPIServer) -> None:
    api_server.push(Canned(body=completion(tool_calls=[call("call_a", "add", '{"a":1,"b":2}')])))
    request = Request.of(
        "add 1 and 2", system="terse", tools=(ADD_SPEC, CAPITAL_SPEC), tool_choice="required"
    )
    async with backend_for(api_server) as backend:
        response = await backend.complete(request)
    body = api_server.seen[0].body
    assert body["tools"] == [
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
    assert body["tool_choice"] == "required"
    assert body["messages"] == [
        {"role": "system", "content": "terse"},
        {"role": "user", "content": "add 1 and 2"},
    ]
    assert response.tool_calls == (ToolCall(id="call_a", name="add", arguments={"a": 1, "b": 2}),)
    assert (response.text, response.finish_reason) == ("", "tool")
    assert (response.input_tokens, response.output_tokens) == (50, 12)


@pytest.mark.asyncio
async def test_no_tools_no_tool_fields_and_none_is_sent(api_server: FakeAPIServer) -> None:
    api_server.push(Canned(body=completion("hi", finish="stop")))
    api_server.push(Canned(body=completion("hi", finish="stop")))
    async with backend_for(api_server) as backend:
        plain = await backend.complete(Request.of("hi"))
        await backend.complete(Request.of("hi", tools=(ADD_SPEC,), tool_choice="none"))
    assert "tools" not in api_server.seen[0].body and "tool_choice" not in api_server.seen[0].body
    assert api_server.seen[1].body["tool_choice"] == "none"
    assert (plain.text, plain.tool_calls, plain.finish_reason) == ("hi", (), "stop")


@pytest.mark.asyncio
async def test_multi_turn_conversation_renders_calls_and_results(api_server: FakeAPIServer) -> None:
    api_server.push(Canned(body=completion("3 and Lima", finish="stop")))
    calls = (
        ToolCall(id="call_a", name="add", arguments={"a": 1, "b": 2}),
        ToolCall(id="call_b", name="get_capital", arguments={"country": "Peru"}),
    )
    request = Request(
        messages=(
            Message(role="user", content="add 1 and 2, and the capital of Peru"),
            AssistantTurn(text="Let me look.", tool_calls=calls),
            ToolResult(call_id="call_a", name="add", content="3"),
            ToolResult(call_id="call_b", name="get_capital", content="boom", is_error=True),
            Message(role="user", content="and?"),
        ),
        tools=(ADD_SPEC, CAPITAL_SPEC),
    )
    async with backend_for(api_server) as backend:
        response = await backend.complete(request)
    assert response.text == "3 and Lima" and response.turn().is_final
    assert api_server.seen[0].body["messages"] == [
        {"role": "user", "content": "add 1 and 2, and the capital of Peru"},
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "get_capital", "arguments": '{"country": "Peru"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "3"},
        {"role": "tool", "tool_call_id": "call_b", "content": "Error: boom"},
        {"role": "user", "content": "and?"},
    ]


@pytest.mark.asyncio
async def test_a_loop_over_the_wire_feeds_results_back(api_server: FakeAPIServer) -> None:
    api_server.push(
        Canned(body=completion(tool_calls=[call("call_a", "add", '{"a": 20, "b": 22}')])),
        Canned(body=completion("42", finish="stop")),
    )
    async with backend_for(api_server) as backend:
        result = await LOOP.run(over(backend), "add 20 and 22")
    assert result.answer() == "42"
    assert [(c.tool, c.status) for c in result.calls] == [("add", "ok")]
    second = api_server.seen[1].body["messages"]
    assert second[-1] == {"role": "tool", "tool_call_id": "call_a", "content": "42"}
    assert second[-2]["tool_calls"][0]["function"]["arguments"] == '{"a": 20, "b": 22}'


@pytest.mark.parametrize(
    ("arguments", "kept", "why"),
    [
        ('{"a": 1, "b":', '{"a": 1, "b":', "not valid JSON"),
        ("[1, 2]", "[1, 2]", "a JSON object is needed"),
        ('{"a": "one", "b": 2}', {"a": "one", "b": 2}, "invalid arguments for add"),
    ],
)
@pytest.mark.asyncio
async def test_malformed_arguments_become_an_invalid_result_the_model_sees(
    api_server: FakeAPIServer, arguments: str, kept: object, why: str
) -> None:
    api_server.push(
        Canned(body=completion(tool_calls=[call("call_a", "add", arguments)])),
        Canned(body=completion("sorry", finish="stop")),
    )
    async with backend_for(api_server) as backend:
        result = await LOOP.run(over(backend), "add")
    record = result.calls[0]
    assert (record.status, record.args) == ("invalid", kept)
    sent_back = api_server.seen[1].body["messages"]
    # the raw text goes back exactly as the model wrote it, and the error right after it
    assert sent_back[-2]["tool_calls"][0]["function"]["arguments"] == arguments
    assert sent_back[-1]["role"] == "tool" and sent_back[-1]["tool_call_id"] == "call_a"
    assert sent_back[-1]["content"].startswith("Error: ") and why in sent_back[-1]["content"]
    assert result.answer() == "sorry"


@pytest.mark.asyncio
async def test_an_unknown_tool_is_a_call_the_loop_answers(api_server: FakeAPIServer) -> None:
    api_server.push(
        Canned(body=completion(tool_calls=[call("call_x", "rm_rf", "{}")])),
        Canned(body=completion("ok", finish="stop")),
    )
    async with backend_for(api_server) as backend:
        result = await LOOP.run(over(backend), "clean up")
    assert [(c.tool, c.status) for c in result.calls] == [("rm_rf", "unknown")]
    assert "no tool named 'rm_rf'" in api_server.seen[1].body["messages"][-1]["content"]


@pytest.mark.parametrize(
    ("tool_calls", "match"),
    [
        ([call("c1", None, "{}")], "no tool name"),
        ([call("c1", "", "{}")], "no tool name"),
        ([{"id": "c1", "type": "function"}], "no function object"),
        (["add"], "no function object"),
        ([{"id": "c1", "type": "custom", "function": {"name": "add"}}], "unsupported tool call"),
        ([call("c1", "add", "{}"), call("c1", "add", "{}")], "used twice"),
        ("add", "tool_calls is not a list"),
    ],
)
@pytest.mark.asyncio
async def test_malformed_tool_calls_are_bad_responses(
    api_server: FakeAPIServer, tool_calls: Any, match: str
) -> None:
    api_server.push(Canned(body=completion(tool_calls=tool_calls)))
    async with backend_for(api_server) as backend:
        with pytest.raises(BadResponse, match=match):
            await backend.complete(Request.of("x", tools=(ADD_SPEC,)))


@pytest.mark.asyncio
async def test_missing_ids_and_object_arguments_are_tolerated(api_server: FakeAPIServer) -> None:
    # Seen on OpenAI-compatible servers: no id, arguments already an object.
    api_server.push(
        Canned(
            body=completion(tool_calls=[call(None, "add", {"a": 1, "b": 2}), call("", "add", "")])
        )
    )
    async with backend_for(api_server) as backend:
        response = await backend.complete(Request.of("x", tools=(ADD_SPEC,)))
    assert response.tool_calls == (
        ToolCall(id="call_1_0", name="add", arguments={"a": 1, "b": 2}),
        ToolCall(id="call_1_1", name="add", arguments={}),
    )


@pytest.mark.asyncio
async def test_required_without_a_call_and_schema_with_tools(api_server: FakeAPIServer) -> None:
    api_server.push(
        Canned(body=completion("no thanks", finish="stop")),
        Canned(body=completion(json.dumps({"n": 3}), finish="stop")),
    )
    async with backend_for(api_server) as backend:
        with pytest.raises(BadResponse, match="required"):
            await backend.complete(Request.of("x", tools=(ADD_SPEC,), tool_choice="required"))
        final = await backend.complete(Request.of("x", tools=(ADD_SPEC,), json_schema=SCHEMA))
    assert final.parsed == {"n": 3}
    body = api_server.seen[1].body
    assert body["response_format"]["json_schema"]["schema"] == SCHEMA and body["tools"]


@pytest.mark.asyncio
async def test_stream_refuses_a_request_with_tools(api_server: FakeAPIServer) -> None:
    async with backend_for(api_server) as backend:
        with pytest.raises(UsageError, match="complete"):
            async for _ in backend.stream(Request.of("x", tools=(ADD_SPEC,))):
                pass
    assert api_server.seen == []
