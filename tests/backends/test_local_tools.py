"""The embedded model's tool strategies, without the model: what goes to llama.cpp and how
its replies are read (the real model runs in test_local_llm.py and the benchmark)."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import msgspec
import pytest
from _toolwire import ADD_SPEC, CAPITAL_SPEC

from smesh.backends.base import Message, Request, TruncatedResponse
from smesh.backends.local import LocalBackend
from smesh.backends.local_tools import (
    add_tool_deltas,
    check_tool_mode,
    json_tool_body,
    native_tool_response,
    parse_json_reply,
    plan_tools,
    reply_schema,
    rounds_since_user,
    text_tool_calls,
)
from smesh.backends.openai import chat_body
from smesh.backends.toolcalls import AssistantTurn, ToolCall, ToolResult
from smesh.errors import BadResponse, UsageError
from smesh.tools import tool

USER = Message(role="user", content="add 1 and 2")
CALL = ToolCall(id="call_1_0", name="add", arguments={"a": 1, "b": 2})
AFTER_CALL = (
    USER,
    AssistantTurn(tool_calls=(CALL,)),
    ToolResult(call_id="call_1_0", name="add", content="3"),
)
WITH_TOOLS = Request(messages=(USER,), tools=(ADD_SPEC, CAPITAL_SPEC))


def completion(content: str, finish: str = "stop", **message: Any) -> dict[str, Any]:
    return {
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, **message},
                "finish_reason": finish,
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 4},
    }


def read_json(content: str, request: Request = WITH_TOOLS, finish: str = "stop") -> Any:
    return parse_json_reply(
        completion(content, finish), request, backend="local", model="m", latency_s=0.1
    )


def read_native(data: dict[str, Any], request: Request = WITH_TOOLS) -> Any:
    return native_tool_response(data, request, backend="local", model="m", latency_s=0.1)


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "add", "arguments": {"a": 1, "b": 2}}',
        '```json\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n```',
        '<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>',
        '[{"name": "add", "arguments": {"a": 1, "b": 2}}]',
        '{"name": "add", "parameters": {"a": 1, "b": 2}}',
    ],
)
def test_calls_written_as_text_are_read(text: str) -> None:
    assert text_tool_calls(text, WITH_TOOLS) == (CALL,)


def test_several_calls_and_unknown_names_written_as_text() -> None:
    text = '{"name": "add", "arguments": {"a": 1, "b": 2}}\n{"name": "shout", "arguments": {}}'
    calls = text_tool_calls(text, WITH_TOOLS)
    assert [(c.id, c.name) for c in calls] == [("call_1_0", "add"), ("call_1_1", "shout")]


@pytest.mark.parametrize(
    "text",
    [
        "The sum is 3.",
        '{"answer": 3}',
        '{"name": "Ada", "age": 36}',
        '{"name": "add", "arguments": {"a": 1}} and then some prose',
        '{"name": "add", "arguments": {"a": 1}, "extra": true}',
        "",
    ],
)
def test_anything_else_is_not_a_call(text: str) -> None:
    assert text_tool_calls(text, WITH_TOOLS) == ()
    assert text_tool_calls('{"name": "add", "arguments": {}}', Request(messages=(USER,))) == ()


def test_native_reply_prefers_llama_cpp_calls_and_falls_back_to_the_text() -> None:
    parsed = completion(
        "",
        "tool_calls",
        tool_calls=[
            {
                "id": "srv_1",
                "type": "function",
                "function": {"name": "add", "arguments": '{"a":1,"b":2}'},
            }
        ],
    )
    assert read_native(parsed).tool_calls == (msgspec.structs.replace(CALL, id="srv_1"),)
    written = read_native(completion('{"name": "add", "arguments": {"a": 1, "b": 2}}'))
    assert (written.tool_calls, written.text, written.finish_reason) == ((CALL,), "", "tool")
    prose = read_native(completion("Three."))
    assert (prose.tool_calls, prose.text) == ((), "Three.")
    none = Request(messages=(USER,), tools=(ADD_SPEC,), tool_choice="none")
    assert read_native(completion('{"name": "add", "arguments": {}}'), none).tool_calls == ()


def test_streamed_tool_call_deltas_assemble() -> None:
    calls: dict[int, dict[str, Any]] = {}
    add_tool_deltas(
        calls,
        [
            {
                "index": 0,
                "id": "c1",
                "type": "function",
                "function": {"name": "add", "arguments": ""},
            }
        ],
    )
    add_tool_deltas(calls, [{"index": 0, "function": {"arguments": '{"a": 1, '}}])
    add_tool_deltas(
        calls,
        [
            {"index": 0, "function": {"arguments": '"b": 2}'}},
            {"index": 1, "id": "c2", "function": {"name": "get_capital"}},
        ],
    )
    add_tool_deltas(calls, None)
    assert calls == {
        0: {
            "id": "c1",
            "type": "function",
            "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'},
        },
        1: {"id": "c2", "type": "function", "function": {"name": "get_capital", "arguments": ""}},
    }


def test_reply_schema_allows_exactly_calls_to_the_tools_or_an_answer() -> None:
    schema = reply_schema(WITH_TOOLS)
    jsonschema.Draft202012Validator.check_schema(schema)
    ok = jsonschema.Draft202012Validator(schema)
    assert ok.is_valid({"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}]})
    assert ok.is_valid({"answer": "3"})
    assert not ok.is_valid({"tool_calls": [{"name": "shout", "arguments": {}}]})
    assert not ok.is_valid({"tool_calls": [{"name": "add", "arguments": {"a": "one", "b": 2}}]})
    assert not ok.is_valid({"tool_calls": []})
    assert not ok.is_valid({"answer": "3", "tool_calls": []})
    required = reply_schema(msgspec.structs.replace(WITH_TOOLS, tool_choice="required"))
    assert not jsonschema.Draft202012Validator(required).is_valid({"answer": "3"})
    answer_only = reply_schema(Request(messages=AFTER_CALL, tools=(ADD_SPEC,), tool_choice="none"))
    assert answer_only["properties"] == {"answer": {"type": "string"}}
    shaped = reply_schema(
        Request(messages=(USER,), tools=(ADD_SPEC,), json_schema={"type": "integer"})
    )
    assert jsonschema.Draft202012Validator(shaped).is_valid({"answer": 3})


class Point(msgspec.Struct):
    x: int
    y: int


@tool
def plot(point: Point, label: str) -> str:
    """Plot a point."""
    return label


def test_nested_argument_schemas_keep_working_references() -> None:
    request = Request(messages=(USER,), tools=(plot.spec(), ADD_SPEC))
    schema = reply_schema(request)
    assert "$ref" in json.dumps(plot.spec().parameters)  # msgspec writes nested structs so
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid(
        {"tool_calls": [{"name": "plot", "arguments": {"point": {"x": 1, "y": 2}, "label": "p"}}]}
    )
    assert not validator.is_valid(
        {"tool_calls": [{"name": "plot", "arguments": {"point": {"x": "1"}, "label": "p"}}]}
    )


def test_json_body_lists_the_tools_and_renders_the_history_as_json() -> None:
    request = Request(
        messages=AFTER_CALL, tools=(ADD_SPEC,), system="be brief", max_tokens=64, temperature=0
    )
    body = json_tool_body(request, "m")
    assert "tools" not in body and "tool_choice" not in body  # nothing reaches the template
    system, user, assistant, result = body["messages"]
    assert system["role"] == "system" and system["content"].startswith(
        "be brief\n\nYou can call these tools:"
    )
    assert "- add: Add two integers." in system["content"]
    assert user == {"role": "user", "content": "add 1 and 2"}
    assert json.loads(assistant["content"]) == {
        "tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}]
    }
    assert result == {"role": "user", "content": "Tool add (call call_1_0) returned:\n3"}
    assert body["response_format"]["json_schema"]["schema"] == reply_schema(request)
    assert (body["max_tokens"], body["temperature"]) == (64, 0)


def test_json_replies_are_read() -> None:
    calls = read_json('{"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}]}')
    assert (calls.tool_calls, calls.finish_reason) == ((CALL,), "tool")
    answer = read_json('{"answer": "three"}')
    assert (answer.text, answer.tool_calls, answer.finish_reason) == ("three", (), "stop")
    shaped = Request(messages=(USER,), tools=(ADD_SPEC,), json_schema={"type": "object"})
    assert read_json('{"answer": {"n": 3}}', shaped).parsed == {"n": 3}
    with pytest.raises(BadResponse, match="neither tool calls nor an answer"):
        read_json('{"something": 1}')
    with pytest.raises(BadResponse, match="neither"):
        read_json("not json")
    with pytest.raises(BadResponse, match="no tool name"):
        read_json('{"tool_calls": [{"arguments": {}}]}')
    with pytest.raises(TruncatedResponse):
        read_json('{"tool_calls": [{"name": "add", "argu', finish="length")


def test_rounds_and_the_way_each_request_goes() -> None:
    first = Request(messages=(USER,), tools=(ADD_SPEC,))
    after = Request(messages=AFTER_CALL, tools=(ADD_SPEC,))
    assert rounds_since_user(first) == 0 and rounds_since_user(after) == 1
    again = Request(
        messages=(*AFTER_CALL, Message(role="user", content="and 2+2?")), tools=(ADD_SPEC,)
    )
    assert rounds_since_user(again) == 0
    assert plan_tools(first, "native", 1) == (first, False)
    assert plan_tools(first, "json", 1) == (first, True)
    for mode in ("native", "json"):
        sent, json_way = plan_tools(after, mode, 1)  # type: ignore[arg-type]
        assert (sent.tool_choice, json_way) == ("none", True)
    assert plan_tools(after, "native", None) == (after, False)
    assert plan_tools(after, "native", 2) == (after, False)
    required = msgspec.structs.replace(after, tool_choice="required")
    assert plan_tools(required, "native", 1) == (required, False)  # the caller's word wins


def test_tool_mode_and_rounds_are_checked() -> None:
    assert check_tool_mode("native") == "native"
    assert check_tool_mode("auto") in {"native", "json"}
    with pytest.raises(UsageError, match="tool_mode"):
        LocalBackend(tool_mode="grammar")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="tool_rounds"):
        LocalBackend(tool_rounds=0)
    assert LocalBackend(tool_rounds=None).tool_rounds is None


def test_native_body_is_the_openai_body_with_tools() -> None:
    body = chat_body(Request(messages=AFTER_CALL, tools=(ADD_SPEC,)), "m")
    assert body["tools"][0]["function"]["name"] == "add" and body["tool_choice"] == "auto"
    assert body["messages"][-1] == {"role": "tool", "tool_call_id": "call_1_0", "content": "3"}


# --- LocalBackend.complete end to end, with a stand-in for xllamacpp's server -------------


class ScriptedServer:
    """Streams scripted chunk lists through xllamacpp's callback; records each body."""

    def __init__(self, replies: list[list[dict[str, Any]]]) -> None:
        self.replies = replies
        self.bodies: list[dict[str, Any]] = []
        self.listening_address = "http://127.0.0.1:9"

    def handle_chat_completions(self, body: dict[str, Any], callback: Any) -> None:
        self.bodies.append(body)
        for chunk in self.replies.pop(0):
            callback(chunk)


def delta(finish: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": fields, "finish_reason": finish}]}


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Any:
    from smesh.backends import local as local_module

    class Params:
        def __init__(self) -> None:
            self.model = type("M", (), {"path": ""})()
            self.cpuparams = type("C", (), {"n_threads": 0})()
            self.cpuparams_batch = type("C", (), {"n_threads": 0})()
            self.n_ubatch = 512

    holder: dict[str, ScriptedServer] = {}

    def make(replies: list[list[dict[str, Any]]], **options: Any) -> LocalBackend:
        server = ScriptedServer(replies)
        holder["server"] = server
        fake = type(
            "xllamacpp", (), {"CommonParams": Params, "Server": staticmethod(lambda p: server)}
        )
        monkeypatch.setattr(local_module, "_import_xllamacpp", lambda: fake)
        path = tmp_path / "fake.gguf"
        path.write_bytes(b"GGUF")
        return LocalBackend(str(path), n_parallel=1, **options)

    make.holder = holder  # type: ignore[attr-defined]
    return make


@pytest.mark.asyncio
async def test_native_mode_assembles_streamed_tool_calls(scripted: Any) -> None:
    chunks = [
        delta(role="assistant", content=None),
        delta(
            tool_calls=[
                {
                    "index": 0,
                    "id": "srv",
                    "type": "function",
                    "function": {"name": "add", "arguments": '{"a": 1,'},
                }
            ]
        ),
        delta(tool_calls=[{"index": 0, "function": {"arguments": ' "b": 2}'}}]),
        delta("tool_calls"),
        {"choices": [], "usage": {"prompt_tokens": 30, "completion_tokens": 9}},
    ]
    async with scripted([chunks], tool_mode="native") as backend:
        response = await backend.complete(WITH_TOOLS)
        body = scripted.holder["server"].bodies[0]
    assert response.tool_calls == (msgspec.structs.replace(CALL, id="srv"),)
    assert (response.finish_reason, response.input_tokens, response.output_tokens) == (
        "tool",
        30,
        9,
    )
    assert [t["function"]["name"] for t in body["tools"]] == ["add", "get_capital"]
    assert body["tool_choice"] == "auto" and "response_format" not in body


@pytest.mark.asyncio
async def test_json_mode_constrains_the_reply_and_answers_after_the_results(scripted: Any) -> None:
    first = [
        delta(content='{"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}]}'),
        delta("stop"),
    ]
    second = [delta(content='{"answer": "1 + 2 = 3"}'), delta("stop")]
    async with scripted([first, second], tool_mode="json") as backend:
        call = await backend.complete(Request(messages=(USER,), tools=(ADD_SPEC,)))
        answer = await backend.complete(Request(messages=AFTER_CALL, tools=(ADD_SPEC,)))
        bodies = scripted.holder["server"].bodies
    assert call.tool_calls == (CALL,)
    assert (answer.text, answer.tool_calls) == ("1 + 2 = 3", ())
    assert "tools" not in bodies[0]
    assert "anyOf" in bodies[0]["response_format"]["json_schema"]["schema"]
    # one round was made: the second request may only answer
    assert bodies[1]["response_format"]["json_schema"]["schema"]["required"] == ["answer"]


@pytest.mark.asyncio
async def test_native_mode_answers_after_the_results_the_json_way(scripted: Any) -> None:
    async with scripted(
        [[delta(content='{"answer": "3"}'), delta("stop")]], tool_mode="native"
    ) as backend:
        answer = await backend.complete(Request(messages=AFTER_CALL, tools=(ADD_SPEC,)))
        body = scripted.holder["server"].bodies[0]
    assert answer.text == "3"
    assert "tools" not in body and body["messages"][-1]["content"].startswith("Tool add")


@pytest.mark.asyncio
async def test_stream_refuses_tools(scripted: Any) -> None:
    async with scripted([]) as backend:
        with pytest.raises(UsageError, match="complete"):
            async for _ in backend.stream(WITH_TOOLS):
                pass
