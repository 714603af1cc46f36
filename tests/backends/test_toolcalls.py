"""Tool-call values: Request/Response validation, shared rules, argument decoding, doubles."""

from __future__ import annotations

import pytest

import smesh.tools.messages as tool_messages
from smesh.backends.base import (
    Message,
    Request,
    Response,
    TruncatedResponse,
    estimate_tokens,
    finish_response,
)
from smesh.backends.toolcalls import (
    AssistantTurn,
    ToolCall,
    ToolResult,
    ToolSpec,
    arguments_object,
    arguments_text,
    decode_arguments,
    wire_call,
)
from smesh.errors import BadResponse, UsageError
from smesh.testing import FunctionBackend, ScriptedBackend

ADD = ToolSpec(
    name="add",
    description="Add two integers.",
    parameters={
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    },
)
SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
USER = Message(role="user", content="add 1 and 2")


def _finish(request: Request, text: str = "", **kw: object) -> Response:
    options: dict[str, object] = {"finish_reason": "stop", **kw}
    return finish_response(
        request,
        text=text,
        model="m",
        backend="b",
        input_tokens=1,
        output_tokens=1,
        latency_s=0.1,
        **options,  # type: ignore[arg-type]
    )


def test_tools_messages_reexports_the_backend_values() -> None:
    assert tool_messages.ToolCall is ToolCall
    assert tool_messages.ToolSpec is ToolSpec
    assert tool_messages.AssistantTurn is AssistantTurn
    assert tool_messages.ToolResult is ToolResult


def test_every_turn_has_a_role_and_content() -> None:
    turn = AssistantTurn(text="thinking", tool_calls=(ToolCall(id="c", name="add"),))
    result = ToolResult(call_id="c", name="add", content="3")
    assert (turn.role, turn.content) == ("assistant", "thinking")
    assert (result.role, result.content) == ("tool", "3")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tools": (ADD, ADD)}, "two tools in one request are named 'add'"),
        ({"tools": ({"name": "add"},)}, "ToolSpec"),
        (
            {"tools": (ToolSpec(name="add two", description="", parameters={}),)},
            "must match",
        ),
        (
            {"tools": (ToolSpec(name="add", description="", parameters={"type": "array"}),)},
            "object schema",
        ),
        ({"tool_choice": "always"}, "tool_choice must be one of"),
        ({"tool_choice": "required"}, "needs at least one tool"),
        (
            {"messages": (USER, ToolResult(call_id="nope", name="add", content="3"))},
            "answers call id 'nope', which no earlier assistant turn made",
        ),
        ({"messages": (USER, {"role": "user", "content": "x"})}, "not dict"),
    ],
)
def test_request_rejects_bad_tool_values(kwargs: dict[str, object], match: str) -> None:
    base: dict[str, object] = {"messages": (USER,)}
    with pytest.raises(UsageError, match=match):
        Request(**{**base, **kwargs})  # type: ignore[arg-type]


def test_a_result_must_follow_its_call() -> None:
    call = ToolCall(id="c1", name="add", arguments={"a": 1, "b": 2})
    result = ToolResult(call_id="c1", name="add", content="3")
    with pytest.raises(UsageError, match="c1"):
        Request(messages=(USER, result, AssistantTurn(tool_calls=(call,))))
    ok = Request(messages=(USER, AssistantTurn(tool_calls=(call,)), result), tools=(ADD,))
    assert ok.tools == (ADD,)


def test_chat_messages_render_tool_turns_in_the_openai_shape() -> None:
    calls = (
        ToolCall(id="c1", name="add", arguments={"a": 1, "b": 2}),
        ToolCall(id="c2", name="add", arguments="{oops"),
    )
    request = Request(
        messages=(
            USER,
            AssistantTurn(tool_calls=calls),
            ToolResult(call_id="c1", name="add", content="3"),
            ToolResult(call_id="c2", name="add", content="invalid arguments", is_error=True),
        ),
        system="be brief",
    )
    assert request.chat_messages() == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "add 1 and 2"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'},
                },
                {"id": "c2", "type": "function", "function": {"name": "add", "arguments": "{oops"}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "3"},
        {"role": "tool", "tool_call_id": "c2", "content": "Error: invalid arguments"},
    ]


def test_prompt_estimate_is_unchanged_for_plain_requests_and_counts_tools() -> None:
    plain = Request(messages=(USER, Message(role="assistant", content="3")), system="sys")
    old = sum(estimate_tokens(m["content"]) for m in plain.chat_messages())
    assert plain.estimated_prompt_tokens() == old
    with_tools = Request(messages=plain.messages, system="sys", tools=(ADD,))
    assert with_tools.estimated_prompt_tokens() > old


def test_a_reply_with_calls_is_finish_tool_and_skips_the_schema() -> None:
    request = Request(messages=(USER,), tools=(ADD,), json_schema=SCHEMA)
    call = ToolCall(id="c1", name="add", arguments={"a": 1, "b": 2})
    response = _finish(request, "not json at all", tool_calls=[call])
    assert response.finish_reason == "tool"
    assert response.tool_calls == (call,) and response.parsed is None
    assert response.turn() == AssistantTurn(text="not json at all", tool_calls=(call,))
    final = _finish(request, '{"n": 3}')
    assert final.parsed == {"n": 3} and final.turn().is_final
    with pytest.raises(BadResponse, match="schema"):
        _finish(request, '{"n": "three"}')


def test_shared_rules_for_tool_calls() -> None:
    required = Request(messages=(USER,), tools=(ADD,), tool_choice="required")
    with pytest.raises(BadResponse, match="tool_choice='required'"):
        _finish(required, "I refuse")
    twice = [ToolCall(id="x", name="add"), ToolCall(id="x", name="add")]
    with pytest.raises(BadResponse, match="used twice"):
        _finish(required, tool_calls=twice)
    with pytest.raises(BadResponse, match="no tool name"):
        _finish(required, tool_calls=[ToolCall(id="x", name="")])
    with pytest.raises(TruncatedResponse):  # a cut reply is never returned as calls
        _finish(required, finish_reason="length", tool_calls=[ToolCall(id="x", name="add")])


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ({"a": 1}, {"a": 1}),
        ('{"a": 1}', {"a": 1}),
        ("", {}),
        ("  ", {}),
        (None, {}),
        ("{not json", "{not json"),
        ("[1, 2]", "[1, 2]"),
        ('"text"', '"text"'),
        ([1, 2], "[1, 2]"),
        (7, "7"),
    ],
)
def test_decode_arguments_keeps_what_is_not_an_object_as_text(raw: object, decoded: object) -> None:
    assert decode_arguments(raw) == decoded


def test_argument_encodings_for_the_wires() -> None:
    assert arguments_text({"a": 1}) == '{"a": 1}'
    assert arguments_text("{oops") == "{oops"
    assert arguments_object('{"a": 1}') == {"a": 1}
    assert arguments_object("{oops") == {}


def test_wire_call_needs_a_name_and_fills_a_missing_id() -> None:
    call = wire_call(None, "add", '{"a": 1}', backend="b", fallback_id="call_1_0")
    assert call == ToolCall(id="call_1_0", name="add", arguments={"a": 1})
    for name in (None, "", "  ", 3):
        with pytest.raises(BadResponse, match="no tool name"):
            wire_call("id", name, "{}", backend="b", fallback_id="x")


@pytest.mark.asyncio
async def test_scripted_backend_scripts_tool_calls() -> None:
    def second(request: Request) -> AssistantTurn:
        last = request.messages[-1]
        assert isinstance(last, ToolResult)
        return AssistantTurn(text=f"the sum is {last.content}")

    backend = ScriptedBackend(
        [
            AssistantTurn(tool_calls=(ToolCall(id="", name="add", arguments={"a": 1, "b": 2}),)),
            second,
        ]
    )
    first = await backend.complete(Request(messages=(USER,), tools=(ADD,)))
    assert first.finish_reason == "tool"
    assert first.tool_calls == (ToolCall(id="call_1_0", name="add", arguments={"a": 1, "b": 2}),)
    follow = Request(
        messages=(USER, first.turn(), ToolResult(call_id="call_1_0", name="add", content="3")),
        tools=(ADD,),
    )
    final = await backend.complete(follow)
    assert (final.text, final.tool_calls, final.finish_reason) == ("the sum is 3", (), "stop")
    assert final.input_tokens > 0
    await backend.aclose()


@pytest.mark.asyncio
async def test_function_backend_returns_tool_calls_and_keeps_the_shared_rules() -> None:
    backend = FunctionBackend(lambda request: AssistantTurn(text="no call"))
    with pytest.raises(BadResponse, match="required"):
        await backend.complete(Request(messages=(USER,), tools=(ADD,), tool_choice="required"))
    calls = FunctionBackend(
        lambda request: AssistantTurn(tool_calls=(ToolCall(id="k", name="add"),))
    )
    response = await calls.complete(Request(messages=(USER,), tools=(ADD,)))
    assert response.tool_calls == (ToolCall(id="k", name="add"),)
