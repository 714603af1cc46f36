"""The values that cross between a model and its tools.

A model that may use tools is shown :class:`ToolSpec`\\ s and answers with an
:class:`AssistantTurn`: text, and zero or more :class:`ToolCall`\\ s. Each call's outcome
goes back as a :class:`ToolResult`. A conversation with tools is a sequence of
:data:`Turn`\\ s: plain :class:`~smesh.backends.base.Message`\\ s (system, user, assistant
text), assistant turns that call tools, and tool results, oldest first. Every backend
renders these in its own wire format (``tool_calls``/``tool`` messages for OpenAI and
Ollama, ``tool_use``/``tool_result`` blocks for Anthropic).

:class:`ToolCallRecord` is what the loop reports for each call, for the journal and
``smesh trace``.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from smesh.backends.base import Message

__all__ = [
    "AssistantTurn",
    "CallStatus",
    "ToolCall",
    "ToolCallRecord",
    "ToolResult",
    "ToolSpec",
    "Turn",
]


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


#: One item of a conversation with tools.
Turn = Message | AssistantTurn | ToolResult

#: How a call ended: ``ok``; ``error`` (the tool raised); ``invalid`` (arguments do not
#: match the schema); ``unknown`` (no such tool, or not permitted here); ``timeout``;
#: ``uncertain`` (a side effect whose outcome was never recorded); ``skipped`` (over the
#: per-turn call cap).
CallStatus = Literal["ok", "error", "invalid", "unknown", "timeout", "uncertain", "skipped"]


class ToolCallRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What the loop reports about one call (journaled by the agent, shown by trace).

    Attributes:
        step: the model turn that asked for it, from 1.
        call_id: the call's id.
        tool: the tool's name as the model gave it.
        args: the arguments as the model gave them (raw text when not an object).
        ok: whether it succeeded.
        status: how it ended (:data:`CallStatus`).
        result: a short preview of the result, or the error message.
        duration_ms: wall time of the call, in milliseconds.
        effect_id: the side effect's id when the tool has one, else None.
        replayed: the result came from the effect ledger instead of running the tool.
    """

    step: int
    call_id: str
    tool: str
    args: dict[str, Any] | str
    ok: bool
    status: CallStatus
    result: str
    duration_ms: float
    effect_id: str | None = None
    replayed: bool = False
