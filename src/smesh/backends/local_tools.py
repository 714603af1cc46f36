"""Tool calling on the embedded model: llama.cpp's native support, or schema-constrained JSON.

Two strategies, chosen by ``LocalBackend(tool_mode=...)``:

``native``
    The tools go to llama.cpp's chat completion (``tools``, ``tool_choice``) and the GGUF's
    own Jinja chat template renders them (Qwen2.5's template asks for
    ``<tool_call>{"name": ..., "arguments": ...}</tool_call>``); llama.cpp parses what it
    recognises into ``tool_calls``. The 0.5B model writes the call's JSON *without* the
    tags, which llama.cpp (this build) then leaves as text, so a reply whose whole text is
    such calls (bare, fenced, tagged, one after another) is read as those calls.
``json``
    No tools reach the template. The system prompt lists them and the reply is
    constrained (llama.cpp turns the JSON schema into a grammar) to
    ``{"tool_calls": [{"name": <one of the tools>, "arguments": <that tool's schema>}]}``
    or ``{"answer": ...}``; the conversation's earlier calls and results are rendered in
    the same JSON and plain text. Works with any GGUF, whatever its template.

``auto`` is :data:`DEFAULT_TOOL_MODE`, the one measured more reliable on
Qwen2.5-Coder-0.5B (``benchmarks/local_tool_modes.py``; figures in docs/backends.md).

In both, once the model has made ``tool_rounds`` rounds of calls since the last user
message (default 1), the next reply is constrained to an answer, rendered the JSON way:
through the chat template the small model repeats its own earlier call instead of
answering (0 of 10 follow-ups answered, against 8 of 10 this way).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from smesh.backends.base import Message, Request, Response, TruncatedResponse, finish_response
from smesh.backends.openai import chat_body, parse_chat_completion
from smesh.backends.toolcalls import (
    AssistantTurn,
    ToolCall,
    ToolResult,
    ToolSpec,
    arguments_object,
    wire_call,
)
from smesh.errors import BadResponse, UsageError

__all__ = [
    "DEFAULT_TOOL_MODE",
    "TOOL_MODES",
    "ToolMode",
    "add_tool_deltas",
    "check_tool_mode",
    "json_tool_body",
    "native_tool_response",
    "parse_json_reply",
    "plan_tools",
    "reply_schema",
    "rounds_since_user",
    "text_tool_calls",
]

ToolMode = Literal["auto", "native", "json"]
TOOL_MODES: tuple[ToolMode, ...] = ("auto", "native", "json")
#: What ``auto`` means: the strategy measured more reliable on the default model (native:
#: 20/20 calls and 7/10 plain answers on the probe set, json 20/20 and 0/10).
DEFAULT_TOOL_MODE: Literal["native", "json"] = "native"


def check_tool_mode(mode: object) -> Literal["native", "json"]:
    """Resolve ``auto`` and reject unknown modes.

    Raises:
        UsageError: not one of :data:`TOOL_MODES`.
    """
    if mode not in TOOL_MODES:
        raise UsageError(f"tool_mode must be one of {list(TOOL_MODES)}, not {mode!r}")
    return DEFAULT_TOOL_MODE if mode == "auto" else mode


def rounds_since_user(request: Request) -> int:
    """Assistant turns that called tools since the conversation's last user message."""
    rounds = 0
    for turn in reversed(request.messages):
        if isinstance(turn, Message) and turn.role == "user":
            break
        if isinstance(turn, AssistantTurn) and turn.tool_calls:
            rounds += 1
    return rounds


def plan_tools(
    request: Request, mode: Literal["native", "json"], tool_rounds: int | None
) -> tuple[Request, bool]:
    """How a request is put to the embedded model: ``(request as sent, the JSON way?)``.

    With ``tool_choice="auto"`` and ``tool_rounds`` rounds of calls already made since the
    last user message, the model must now answer (``tool_choice`` becomes ``none``). A
    conversation with tool turns that must be answered goes the JSON way whatever the mode:
    rendered through the chat template, the model's own earlier ``<tool_call>`` makes it
    call again, while the JSON rendering with the answer-only schema gets the answer.
    """
    if (
        tool_rounds is not None
        and request.tools
        and request.tool_choice == "auto"
        and rounds_since_user(request) >= tool_rounds
    ):
        request = msgspec.structs.replace(request, tool_choice="none")
    has_turns = any(isinstance(t, AssistantTurn | ToolResult) for t in request.messages)
    if mode == "json":
        return request, bool(request.tools) or has_turns
    return request, has_turns and (request.tool_choice == "none" or not request.tools)


def _turn_number(request: Request) -> int:
    return 1 + sum(1 for t in request.messages if t.role == "assistant")


# --- native ---------------------------------------------------------------------------

_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_FENCE = re.compile(r"^```[a-zA-Z]*\s*(.*?)\s*```$", re.DOTALL)
_decoder = json.JSONDecoder()


def _json_values(text: str) -> list[Any] | None:
    """The JSON values ``text`` consists of, one after another, or None if it holds more."""
    values: list[Any] = []
    position = 0
    while True:
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        if position == len(text):
            return values
        try:
            value, position = _decoder.raw_decode(text, position)
        except ValueError:
            return None
        values.append(value)


def _is_call(item: object) -> bool:
    return (
        isinstance(item, dict)
        and isinstance(item.get("name"), str)
        and bool(item["name"].strip())
        and ("arguments" in item or "parameters" in item)
        and not set(item) - {"name", "arguments", "parameters"}
    )


def text_tool_calls(text: str, request: Request) -> tuple[ToolCall, ...]:
    """Calls written as text: the whole reply is ``{"name", "arguments"}`` objects, bare, in
    a code fence, a JSON list, ``<tool_call>`` blocks or one after another.

    Anything else (prose, a JSON answer of another shape) gives no calls: a reply is never
    half text, half calls. A name that is no tool of the request is still a call (the tool
    loop answers it as unknown, as it does for any provider's), never an answer.
    """
    stripped = text.strip()
    if not request.tools or not stripped:
        return ()
    pieces = _TAGGED.findall(stripped) if "<tool_call>" in stripped else [stripped]
    items: list[Any] = []
    for piece in pieces:
        fenced = _FENCE.match(piece)
        values = _json_values(fenced.group(1) if fenced else piece)
        if not values:
            return ()
        for value in values:
            items.extend(value if isinstance(value, list) else [value])
    if not all(_is_call(item) for item in items):
        return ()
    turn = _turn_number(request)
    return tuple(
        wire_call(
            None,
            item["name"],
            item.get("arguments", item.get("parameters")),
            backend="",
            fallback_id=f"call_{turn}_{index}",
        )
        for index, item in enumerate(items)
    )


def add_tool_deltas(calls: dict[int, dict[str, Any]], deltas: object) -> None:
    """Merge one streamed chunk's ``delta.tool_calls`` into ``calls`` (by index).

    Ids and names arrive once, the arguments' JSON text in pieces; the result has the
    non-streamed ``message.tool_calls`` shape.
    """
    if not isinstance(deltas, list):
        return
    for position, delta in enumerate(deltas):
        if not isinstance(delta, dict):
            continue
        index = delta.get("index", position)
        entry = calls.setdefault(
            index if isinstance(index, int) else position,
            {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
        )
        if isinstance(delta.get("id"), str) and delta["id"]:
            entry["id"] = delta["id"]
        function = delta.get("function")
        if isinstance(function, dict):
            if isinstance(function.get("name"), str) and function["name"]:
                entry["function"]["name"] = function["name"]
            if isinstance(function.get("arguments"), str):
                entry["function"]["arguments"] += function["arguments"]


def native_tool_response(
    data: Mapping[str, Any], request: Request, *, backend: str, model: str, latency_s: float
) -> Response:
    """Read a native reply: llama.cpp's ``tool_calls``, else calls written as the text."""
    try:
        message = data["choices"][0]["message"]
    except (KeyError, IndexError, TypeError):
        message = None
    if (
        request.tools
        and request.tool_choice != "none"
        and isinstance(message, dict)
        and not message.get("tool_calls")
        and isinstance(message.get("content"), str)
    ):
        found = text_tool_calls(message["content"], request)
        if found:
            calls = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in found
            ]
            choice = {
                **data["choices"][0],
                "message": {**message, "content": "", "tool_calls": calls},
            }
            data = {**data, "choices": [choice]}
    return parse_chat_completion(data, request, backend=backend, model=model, latency_s=latency_s)


# --- json -----------------------------------------------------------------------------


def _hoist_defs(name: str, schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``$defs`` moved into ``defs`` under ``name``-prefixed keys.

    A tool's parameters may use ``{"$ref": "#/$defs/X"}`` (msgspec writes nested structs so);
    inside the reply schema those references must point at the reply schema's root.
    """
    local = schema.get("$defs")
    if not isinstance(local, dict):
        return schema
    prefix = f"{name}__"

    def rewrite(value: Any) -> Any:
        if isinstance(value, dict):
            out = {k: rewrite(v) for k, v in value.items() if k != "$defs"}
            ref = out.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                out["$ref"] = f"#/$defs/{prefix}{ref[len('#/$defs/') :]}"
            return out
        if isinstance(value, list):
            return [rewrite(v) for v in value]
        return value

    for key, sub in local.items():
        defs[f"{prefix}{key}"] = rewrite(sub)
    result: dict[str, Any] = rewrite(schema)
    return result


def reply_schema(request: Request) -> dict[str, Any]:
    """The JSON schema a json-mode reply is constrained to.

    ``{"tool_calls": [...]}`` (each item one tool's name and *its* argument schema) or
    ``{"answer": ...}`` (a string, or the request's own ``json_schema``); only the calls
    when the request requires one, only the answer when it allows none.
    """
    defs: dict[str, Any] = {}
    variants = [
        {
            "type": "object",
            "properties": {
                "name": {"const": spec.name},
                "arguments": _hoist_defs(spec.name, spec.parameters, defs),
            },
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for spec in request.tools
    ]
    calls = {
        "type": "object",
        "properties": {
            "tool_calls": {"type": "array", "items": {"anyOf": variants}, "minItems": 1}
        },
        "required": ["tool_calls"],
        "additionalProperties": False,
    }
    answer = {
        "type": "object",
        "properties": {"answer": request.json_schema or {"type": "string"}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    if not request.tools or request.tool_choice == "none":
        schema: dict[str, Any] = answer
    elif request.tool_choice == "required":
        schema = calls
    else:
        schema = {"anyOf": [calls, answer]}
    if defs:
        schema = {**schema, "$defs": defs}
    return schema


def _instructions(tools: tuple[ToolSpec, ...]) -> str:
    lines = ["You can call these tools:"]
    for spec in tools:
        lines.append(f"- {spec.name}: {spec.description.strip() or spec.name}")
        lines.append(f"  arguments (JSON Schema): {json.dumps(spec.parameters)}")
    lines.append(
        "Reply with one JSON object and nothing else: "
        '{"tool_calls": [{"name": <tool name>, "arguments": {...}}]} to call tools, or '
        '{"answer": <your answer>} when no tool is needed or the tool results already '
        "give the answer."
    )
    return "\n".join(lines)


def _json_messages(request: Request, offer_tools: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    system = [request.system] if request.system else []
    if offer_tools:
        system.append(_instructions(request.tools))
    if system:
        out.append({"role": "system", "content": "\n\n".join(system)})
    for turn in request.messages:
        if isinstance(turn, Message):
            out.append({"role": turn.role, "content": turn.content})
        elif isinstance(turn, AssistantTurn):
            if turn.tool_calls:
                calls = [
                    {"name": c.name, "arguments": arguments_object(c.arguments)}
                    for c in turn.tool_calls
                ]
                content = json.dumps({"tool_calls": calls})
            else:
                content = json.dumps({"answer": turn.text})
            out.append({"role": "assistant", "content": content})
        else:
            status = "failed" if turn.is_error else "returned"
            out.append(
                {
                    "role": "user",
                    "content": f"Tool {turn.name} (call {turn.call_id}) {status}:\n{turn.content}",
                }
            )
    return out


def _untooled(request: Request) -> Request:
    return msgspec.structs.replace(request, tools=(), tool_choice="auto", json_schema=None)


def json_tool_body(request: Request, model: str) -> dict[str, Any]:
    """The chat-completion body of a json-mode request (no ``tools`` reach the template)."""
    offer = bool(request.tools) and request.tool_choice != "none"
    # sampling settings as for any request; messages and the format are this mode's own
    body = chat_body(_untooled(request), model)
    body["messages"] = _json_messages(request, offer)
    body["response_format"] = {
        "type": "json_schema",
        "json_schema": {"name": "reply", "schema": reply_schema(request)},
    }
    return body


def parse_json_reply(
    data: Mapping[str, Any], request: Request, *, backend: str, model: str, latency_s: float
) -> Response:
    """Read a json-mode reply into a :class:`Response` (calls, or the answer's text).

    Raises:
        TruncatedResponse: the reply hit ``max_tokens`` (half a JSON reply is never usable).
        BadResponse: the reply is not one of the two shapes.
    """
    raw = parse_chat_completion(
        data,
        msgspec.structs.replace(_untooled(request), allow_truncated=True),
        backend=backend,
        model=model,
        latency_s=latency_s,
    )
    if raw.finish_reason == "length":
        raise TruncatedResponse(
            f"{backend}: reply cut off at max_tokens={request.max_tokens} "
            f"({raw.output_tokens} tokens generated)",
            partial=raw.text,
            max_tokens=request.max_tokens,
            backend=backend,
        )
    try:
        value = json.loads(raw.text)
    except ValueError:
        value = None
    calls: tuple[ToolCall, ...] = ()
    if isinstance(value, dict) and isinstance(value.get("tool_calls"), list):
        turn = _turn_number(request)
        calls = tuple(
            wire_call(
                None,
                item.get("name") if isinstance(item, dict) else None,
                item.get("arguments") if isinstance(item, dict) else None,
                backend=backend,
                fallback_id=f"call_{turn}_{index}",
            )
            for index, item in enumerate(value["tool_calls"])
        )
        text = ""
    elif isinstance(value, dict) and "answer" in value:
        answer = value["answer"]
        text = (
            answer
            if request.json_schema is None and isinstance(answer, str)
            else json.dumps(answer)
        )
    else:
        raise BadResponse(
            f"{backend}: reply is neither tool calls nor an answer: {raw.text[:80]!r}",
            backend=backend,
        )
    return finish_response(
        request,
        text=text,
        model=raw.model,
        backend=backend,
        input_tokens=raw.input_tokens,
        output_tokens=raw.output_tokens,
        latency_s=latency_s,
        finish_reason="stop",
        tool_calls=calls,
    )
