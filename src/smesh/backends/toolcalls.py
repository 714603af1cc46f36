"""The values of native tool calling, shared by every backend and by :mod:`smesh.tools`.

A model that may use tools is shown :class:`ToolSpec`\\ s (``Request.tools``) and answers
with text and zero or more :class:`ToolCall`\\ s (``Response.tool_calls``, or as one
:class:`AssistantTurn` from ``Response.turn()``). Each call's outcome goes back in the next
request as a :class:`ToolResult`. Every backend renders these in its own wire format
(``tool_calls``/``tool`` messages for OpenAI, Ollama and llama.cpp; ``tool_use``/
``tool_result`` blocks for Anthropic; a JSON-constrained reply for the embedded model).

The helpers here turn what a provider sent into values: :func:`decode_arguments` keeps
arguments that are not a JSON object as raw text (the tool loop answers those with an
``invalid`` result the model can correct), :func:`wire_call` turns a call with no name into
a :class:`~smesh.errors.BadResponse`. This module imports nothing of the backends, so
:mod:`smesh.backends.base` can build on it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import msgspec

from smesh.errors import BadResponse, UsageError

__all__ = [
    "AssistantTurn",
    "ToolCall",
    "ToolChoice",
    "ToolResult",
    "ToolSpec",
    "arguments_object",
    "arguments_text",
    "check_tool_calls",
    "check_tool_spec",
    "decode_arguments",
    "wire_call",
]

#: ``auto``: the model decides; ``required``: it must call at least one tool; ``none``:
#: it must not call any (the tools may still appear in the conversation's history).
ToolChoice = Literal["auto", "required", "none"]
#: A tool name every provider accepts.
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ToolSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What a model is told about one tool.

    Attributes:
        name: the name the model calls it by (``[A-Za-z0-9_-]{1,64}``, as every provider
            accepts).
        description: what it does and when to use it.
        parameters: JSON Schema of its arguments: an object schema.
    """

    name: str
    description: str
    parameters: dict[str, Any]


class ToolCall(msgspec.Struct, frozen=True, kw_only=True):
    """One tool call a model asked for.

    Attributes:
        id: the provider's call id (results quote it back); unique within one turn.
        name: the tool's name.
        arguments: the decoded arguments, or the raw text when the model produced
            something that is not a JSON object (the loop answers that with an error
            result instead of failing).
    """

    id: str
    name: str
    arguments: dict[str, Any] | str = msgspec.field(default_factory=dict)


class AssistantTurn(msgspec.Struct, frozen=True, kw_only=True):
    """A model's reply in a tool loop: text, tool calls, or both.

    Attributes:
        text: the reply text (the final answer when there are no tool calls).
        tool_calls: the calls it asks for, in the order it gave them.
    """

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()

    @property
    def role(self) -> Literal["assistant"]:
        """``assistant``: every turn of a conversation has a role and a content."""
        return "assistant"

    @property
    def content(self) -> str:
        """The turn's text (the calls are in :attr:`tool_calls`)."""
        return self.text

    @property
    def is_final(self) -> bool:
        """Whether this turn ends the loop (no tool calls)."""
        return not self.tool_calls


class ToolResult(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of one call, as the model will see it.

    Attributes:
        call_id: the :attr:`ToolCall.id` it answers.
        name: the tool's name.
        content: the result as text (JSON for structured values), capped in size.
        is_error: whether the call failed; ``content`` then says why.
    """

    call_id: str
    name: str
    content: str
    is_error: bool = False

    @property
    def role(self) -> Literal["tool"]:
        """``tool``: every turn of a conversation has a role and a content."""
        return "tool"


def check_tool_spec(spec: object) -> ToolSpec:
    """Return ``spec`` if it is a :class:`ToolSpec` every provider accepts.

    Raises:
        UsageError: not a ToolSpec, a name outside ``[A-Za-z0-9_-]{1,64}``, or parameters
            that are not a JSON object schema.
    """
    if not isinstance(spec, ToolSpec):
        raise UsageError(f"request tools must be ToolSpec values, not {spec!r}")
    if not isinstance(spec.name, str) or not _TOOL_NAME.match(spec.name):
        raise UsageError(f"a tool name must match [A-Za-z0-9_-]{{1,64}}, not {spec.name!r}")
    if not isinstance(spec.parameters, dict) or spec.parameters.get("type", "object") != "object":
        raise UsageError(f"tool {spec.name}: parameters must be an object schema")
    return spec


def decode_arguments(raw: object) -> dict[str, Any] | str:
    """A provider's tool-call arguments as a dict, or as raw text when they are not one.

    A dict stays as it is; text that parses as a JSON object becomes that object; empty
    text or None (a call without arguments) becomes ``{}``; anything else (text that is
    not JSON, a JSON array, a number) is kept as text, so the caller can tell the model
    what was wrong instead of failing the whole reply.
    """
    if isinstance(raw, dict):
        return raw
    if raw is None:
        return {}
    if isinstance(raw, str):
        if not raw.strip():
            return {}
        try:
            value = json.loads(raw)
        except ValueError:
            return raw
        return value if isinstance(value, dict) else raw
    return json.dumps(raw)


def arguments_text(arguments: Mapping[str, Any] | str) -> str:
    """Arguments as the JSON text OpenAI-style wires carry (raw text goes back as it came)."""
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def arguments_object(arguments: Mapping[str, Any] | str) -> dict[str, Any]:
    """Arguments as the JSON object Anthropic and Ollama require in a conversation's history.

    Raw text that is not a JSON object has no faithful object form; it becomes ``{}`` (the
    tool result that follows already told the model its arguments were invalid).
    """
    decoded = decode_arguments(arguments)
    return dict(decoded) if isinstance(decoded, Mapping) else {}


def wire_call(
    call_id: object, name: object, arguments: object, *, backend: str, fallback_id: str
) -> ToolCall:
    """Build a :class:`ToolCall` from a provider's fields, checking what must be there.

    Args:
        call_id: the provider's id; a missing or empty one is replaced by ``fallback_id``
            (Ollama, and some OpenAI-compatible servers, send none).
        name: the tool's name; it must be non-empty text.
        arguments: as sent; see :func:`decode_arguments`.
        backend: the backend's name, for the error.
        fallback_id: the id to use when the provider gave none.

    Raises:
        BadResponse: the call has no name (nothing could answer it).
    """
    if not isinstance(name, str) or not name.strip():
        raise BadResponse(
            f"{backend}: malformed tool call: no tool name (got {name!r})", backend=backend
        )
    ident = call_id if isinstance(call_id, str) and call_id else fallback_id
    return ToolCall(id=ident, name=name, arguments=decode_arguments(arguments))


def check_tool_calls(calls: Iterable[ToolCall], *, backend: str) -> tuple[ToolCall, ...]:
    """Return ``calls`` as a tuple if every one has a name and the ids are distinct.

    Raises:
        BadResponse: a call without a name, or two calls with one id (their results could
            not be told apart).
    """
    out = tuple(calls)
    seen: set[str] = set()
    for call in out:
        if not call.name:
            raise BadResponse(f"{backend}: malformed tool call: no tool name", backend=backend)
        if call.id in seen:
            raise BadResponse(
                f"{backend}: malformed tool calls: the id {call.id!r} is used twice",
                backend=backend,
            )
        seen.add(call.id)
    return out
