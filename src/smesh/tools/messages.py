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

``ToolSpec``, ``ToolCall``, ``AssistantTurn``, ``ToolResult`` and ``Turn`` are defined in
:mod:`smesh.backends.toolcalls` and :mod:`smesh.backends.base` (the backends carry them in
their wire formats, and the backends sit below the tools) and re-exported here.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from smesh.backends.base import Turn
from smesh.backends.toolcalls import AssistantTurn, ToolCall, ToolResult, ToolSpec

__all__ = [
    "AssistantTurn",
    "CallStatus",
    "ToolCall",
    "ToolCallRecord",
    "ToolResult",
    "ToolSpec",
    "Turn",
]


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
