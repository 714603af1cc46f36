"""``anthropic:`` native tool calling against a real loopback HTTP server.

Shapes from the Messages API reference: ``tools: [{name, description, input_schema}]``,
``tool_choice: {"type": "auto" | "any" | "none" | "tool"}``; the reply's ``tool_use`` blocks
(``id``, ``name``, ``input`` object) with ``stop_reason: "tool_use"``; results as
``tool_result`` blocks (``tool_use_id``, ``content``, ``is_error``) first in the next user
message.
"""

from __future__ import annotations

from typing import Any

import pytest
from _loopback import Canned, FakeAPIServer
from _toolwire import ADD_SPEC, CAPITAL_SPEC, LOOP, over

from smesh.backends.anthropic import AnthropicBackend
from smesh.backends.base import Message, Request
from smesh.backends.toolcalls import AssistantTurn, ToolCall, ToolResult, ToolSpec
from smesh.errors import BadResponse, UsageError

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


def message(blocks: list[Any], stop: str = "tool_use") -> dict[str, Any]:
    return {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-5-haiku-20241022",
        "content": blocks,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 80, "output_tokens": 20},
    }


def use(ident: str, name: Any, value: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": ident, "name": name, "input": value}


def backend_for(server: FakeAPIServer) -> AnthropicBackend:
    return AnthropicBackend("claude-3-5-haiku-latest", api_key="sk-test", base_url=server.url)


@pytest.mark.parametrize(
    ("choice", "wire"), [("auto", "auto"), ("required", "any"), ("none", "none")]
)
@pytest.mark.asyncio
async def test_request_with_tools_renders_the_documented_shape(
    api_server: FakeAPIServer, choice: str, wire: str
) -> None:
    api_server.push(
        Canned(
            body=message(
                [
                    {"type": "text", "text": "Let me add."},
                    use("toolu_01", "add", {"a": 1, "b": 2}),
                ]
            )
        )
    )
    request = Request.of(
        "add 1 and 2", system="terse", tools=(ADD_SPEC, CAPITAL_SPEC), tool_choice=choice
    )
    async with backend_for(api_server) as backend:
        response = await backend.complete(request)
    body = api_server.seen[0].body
    assert body["tools"] == [
        {"name": "add", "description": "Add two integers.", "input_schema": ADD_SPEC.parameters},
        {
            "name": "get_capital",
            "description": "Look up the capital city of a country.",
            "input_schema": CAPITAL_SPEC.parameters,
        },
    ]
    assert body["tool_choice"] == {"type": wire}
    assert body["system"] == "terse"
    assert body["messages"] == [{"role": "user", "content": "add 1 and 2"}]
    assert response.tool_calls == (ToolCall(id="toolu_01", name="add", arguments={"a": 1, "b": 2}),)
    assert (response.text, response.finish_reason) == ("Let me add.", "tool")


@pytest.mark.asyncio
async def test_multi_turn_conversation_renders_tool_use_and_tool_result_blocks(
    api_server: FakeAPIServer,
) -> None:
    api_server.push(Canned(body=message([{"type": "text", "text": "3; Lima"}], "end_turn")))
    calls = (
        ToolCall(id="toolu_a", name="add", arguments={"a": 1, "b": 2}),
        ToolCall(id="toolu_b", name="get_capital", arguments="{broken"),
    )
    request = Request(
        messages=(
            Message(role="user", content="add 1 and 2; capital of Peru"),
            AssistantTurn(text="Looking.", tool_calls=calls),
            ToolResult(call_id="toolu_a", name="add", content="3"),
            ToolResult(call_id="toolu_b", name="get_capital", content="bad args", is_error=True),
            Message(role="user", content="go on"),
        ),
        tools=(ADD_SPEC, CAPITAL_SPEC),
    )
    async with backend_for(api_server) as backend:
        response = await backend.complete(request)
    assert (response.text, response.finish_reason, response.tool_calls) == ("3; Lima", "stop", ())
    assert api_server.seen[0].body["messages"] == [
        {"role": "user", "content": "add 1 and 2; capital of Peru"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Looking."},
                {"type": "tool_use", "id": "toolu_a", "name": "add", "input": {"a": 1, "b": 2}},
                # raw-text arguments have no object form: an empty input goes back
                {"type": "tool_use", "id": "toolu_b", "name": "get_capital", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": "3"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_b",
                    "content": "bad args",
                    "is_error": True,
                },
                {"type": "text", "text": "go on"},
            ],
        },
    ]


@pytest.mark.asyncio
async def test_a_loop_over_the_wire_and_a_malformed_input(api_server: FakeAPIServer) -> None:
    api_server.push(
        Canned(body=message([use("toolu_1", "add", "one and two")])),
        Canned(body=message([use("toolu_2", "add", {"a": 1, "b": 2})])),
        Canned(body=message([{"type": "text", "text": "3"}], "end_turn")),
    )
    async with backend_for(api_server) as backend:
        result = await LOOP.run(over(backend), "add 1 and 2")
    assert result.answer() == "3"
    assert [(c.status, c.args) for c in result.calls] == [
        ("invalid", '"one and two"'),
        ("ok", {"a": 1, "b": 2}),
    ]
    error_turn = api_server.seen[1].body["messages"][-1]
    assert error_turn["role"] == "user"
    block = error_turn["content"][0]
    assert (block["type"], block["tool_use_id"], block["is_error"]) == (
        "tool_result",
        "toolu_1",
        True,
    )
    assert "a JSON object is needed" in block["content"]
    assert api_server.seen[2].body["messages"][-1]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "3"}
    ]


@pytest.mark.parametrize(
    ("blocks", "match"),
    [
        ([use("toolu_1", None, {})], "no tool name"),
        ([{"type": "tool_use", "id": "toolu_1", "input": {}}], "no tool name"),
        ([use("t", "add", {}), use("t", "add", {})], "used twice"),
    ],
)
@pytest.mark.asyncio
async def test_malformed_tool_use_is_a_bad_response(
    api_server: FakeAPIServer, blocks: list[Any], match: str
) -> None:
    api_server.push(Canned(body=message(blocks)))
    async with backend_for(api_server) as backend:
        with pytest.raises(BadResponse, match=match):
            await backend.complete(Request.of("x", tools=(ADD_SPEC,)))


@pytest.mark.asyncio
async def test_schema_beside_tools_adds_the_answer_tool(api_server: FakeAPIServer) -> None:
    api_server.push(
        Canned(body=message([use("toolu_1", "add", {"a": 1, "b": 2})])),
        Canned(body=message([use("toolu_2", "reply", {"n": 3})])),
        Canned(body=message([use("toolu_3", "reply", {"n": 3})])),
    )
    async with backend_for(api_server) as backend:
        first = await backend.complete(Request.of("x", tools=(ADD_SPEC,), json_schema=SCHEMA))
        final = await backend.complete(Request.of("x", tools=(ADD_SPEC,), json_schema=SCHEMA))
        forced = await backend.complete(
            Request.of("x", tools=(ADD_SPEC,), json_schema=SCHEMA, tool_choice="none")
        )
    assert first.tool_calls[0].name == "add" and first.parsed is None
    assert (final.tool_calls, final.parsed, final.finish_reason) == ((), {"n": 3}, "stop")
    assert forced.parsed == {"n": 3}
    body = api_server.seen[0].body
    assert [t["name"] for t in body["tools"]] == ["add", "reply"]
    assert body["tool_choice"] == {"type": "any"}
    assert api_server.seen[2].body["tool_choice"] == {"type": "tool", "name": "reply"}


@pytest.mark.asyncio
async def test_a_user_tool_named_reply_cannot_be_combined_with_a_schema(
    api_server: FakeAPIServer,
) -> None:
    reply = ToolSpec(name="reply", description="send a reply", parameters={"type": "object"})
    async with backend_for(api_server) as backend:
        with pytest.raises(UsageError, match="reply"):
            await backend.complete(Request.of("x", tools=(reply,), json_schema=SCHEMA))
        assert backend.body(Request.of("x", tools=(reply,)))["tools"][0]["name"] == "reply"
    assert api_server.seen == []
