"""``anthropic:MODEL``: Anthropic's Messages API (``POST /v1/messages``).

Structured output uses the documented forced-tool pattern: the schema becomes the input
schema of a single ``reply`` tool that the model must call, and the tool input is the
answer.

Tool calling: ``tools`` as ``{name, description, input_schema}`` and ``tool_choice``
``{"type": "auto" | "any" | "none"}``; the model's calls are ``tool_use`` content blocks
(``id``, ``name``, ``input`` object) with ``stop_reason: tool_use``; results go back as
``tool_result`` blocks (``tool_use_id``, ``content``, ``is_error``) at the start of the
next user message. With tools *and* a schema, the ``reply`` tool joins the user's tools
and the model must call one of them (``any``); a ``reply`` call is the final answer.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import Any

from smesh.backends._http import DEFAULT_MAX_RESPONSE_BYTES, HTTPBackend, require
from smesh.backends.base import Message, Request, Response, finish_response
from smesh.backends.toolcalls import (
    AssistantTurn,
    ToolCall,
    ToolResult,
    arguments_object,
    wire_call,
)
from smesh.errors import AuthenticationFailed, BadResponse, UsageError

__all__ = ["ANTHROPIC_URL", "API_VERSION", "AnthropicBackend", "create"]

ANTHROPIC_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
_TOOL = "reply"

#: Anthropic stop reasons -> the OpenAI-style words the rest of smesh uses.
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "stop"}
_CHOICE = {"auto": "auto", "required": "any", "none": "none"}


def anthropic_messages(turns: tuple[Message | AssistantTurn | ToolResult, ...]) -> list[Any]:
    """User/assistant turns in the Messages API shape (system messages are left out).

    Plain messages keep string content. An assistant turn with calls becomes a list of
    blocks (its text, then one ``tool_use`` per call); tool results become ``tool_result``
    blocks of one user message, and a user message right after them joins that message
    as a text block (results must lead the user turn that follows the calls).
    """
    out: list[dict[str, Any]] = []
    for turn in turns:
        if isinstance(turn, ToolResult):
            block: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": turn.call_id,
                "content": turn.content,
            }
            if turn.is_error:
                block["is_error"] = True
            if out and out[-1]["role"] == "user" and isinstance(out[-1]["content"], list):
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
        elif isinstance(turn, AssistantTurn) and turn.tool_calls:
            blocks: list[dict[str, Any]] = (
                [{"type": "text", "text": turn.text}] if turn.text else []
            )
            blocks += [
                {
                    "type": "tool_use",
                    "id": call.id,
                    "name": call.name,
                    "input": arguments_object(call.arguments),
                }
                for call in turn.tool_calls
            ]
            out.append({"role": "assistant", "content": blocks})
        elif turn.role == "system":
            continue
        elif (
            turn.role == "user"
            and out
            and isinstance(out[-1]["content"], list)
            and (out[-1]["role"] == "user")
        ):
            out[-1]["content"].append({"type": "text", "text": turn.content})
        else:
            out.append({"role": turn.role, "content": turn.content})
    return out


class AnthropicBackend(HTTPBackend):
    """A Claude model through the Messages API.

    Args:
        model: e.g. ``claude-3-5-haiku-latest``.
        api_key: default ``$ANTHROPIC_API_KEY``.
        base_url: default ``$ANTHROPIC_BASE_URL`` or ``https://api.anthropic.com``.
        name: backend name; default ``anthropic:MODEL``.
        timeout: deadline for the whole HTTP exchange, streams included, seconds.
        max_response_bytes: the most bytes of one answer that are read.
        transport: an httpx transport (tests).
    """

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        name: str | None = None,
        timeout: float = 120.0,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        headers: Mapping[str, str] | None = None,
        transport: Any = None,
    ) -> None:
        if not model:
            raise UsageError("anthropic backend needs a model: anthropic:MODEL")
        key = api_key if api_key is not None else os.environ.get("ANTHROPIC_API_KEY", "")
        merged = {"anthropic-version": API_VERSION, **(headers or {})}
        if key:
            merged["x-api-key"] = key
        super().__init__(
            name=name or f"anthropic:{model}",
            base_url=base_url or os.environ.get("ANTHROPIC_BASE_URL") or ANTHROPIC_URL,
            timeout=timeout,
            max_response_bytes=max_response_bytes,
            headers=merged,
            transport=transport,
        )
        self.model = model
        self._has_key = bool(key)

    def body(self, request: Request) -> dict[str, Any]:
        """The ``/v1/messages`` body for ``request``."""
        # The Messages API takes the system prompt apart and wants user/assistant turns only.
        system = [request.system] if request.system else []
        system += [m.content for m in request.messages if m.role == "system"]
        turns = anthropic_messages(request.messages)
        if not turns:
            raise UsageError(f"{self.name}: needs at least one user message besides the system")
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "messages": turns,
            "temperature": min(1.0, request.temperature),  # Anthropic's range is [0, 1]
        }
        if system:
            body["system"] = "\n\n".join(system)
        if request.stop:
            body["stop_sequences"] = list(request.stop)
        tools = [
            {"name": s.name, "description": s.description, "input_schema": s.parameters}
            for s in request.tools
        ]
        choice: dict[str, Any] = {"type": _CHOICE[request.tool_choice]}
        if request.json_schema is not None and request.tool_choice != "required":
            if any(spec.name == _TOOL for spec in request.tools):
                raise UsageError(
                    f"{self.name}: a tool named {_TOOL!r} cannot be combined with json_schema "
                    "(that name carries the structured answer)"
                )
            schema = request.json_schema
            if schema.get("type") != "object":
                # Tool inputs must be objects; wrap anything else and unwrap on the way back.
                schema = {"type": "object", "properties": {"value": schema}, "required": ["value"]}
            tools.append({"name": _TOOL, "description": "Give the answer.", "input_schema": schema})
            # Alone (or when no tool may be called) the answer tool is forced; beside the
            # user's tools the model must call one of them: a real tool, or the answer.
            forced = len(tools) == 1 or request.tool_choice == "none"
            choice = {"type": "tool", "name": _TOOL} if forced else {"type": "any"}
        if tools:
            body["tools"] = tools
            body["tool_choice"] = choice
        return body

    async def complete(self, request: Request) -> Response:
        """POST the request to ``/v1/messages``."""
        if not self._has_key:
            raise AuthenticationFailed(
                f"{self.name}: no API key; set ANTHROPIC_API_KEY", backend=self.name
            )
        started = time.perf_counter()
        data = await self.post_json("/v1/messages", self.body(request))
        latency = time.perf_counter() - started
        if data.get("type") == "error":
            raise BadResponse(f"{self.name}: error reply: {data.get('error')}", backend=self.name)
        blocks = require(data, "content", list, backend=self.name)
        calls = self._calls(blocks, request)
        text = self._text(blocks, request, answered=not calls)
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        assert isinstance(usage, dict)
        stop = str(data.get("stop_reason") or "end_turn")
        reported = data.get("model")
        return finish_response(
            request,
            text=text,
            model=reported if isinstance(reported, str) and reported else self.model,
            backend=self.name,
            input_tokens=_int(usage.get("input_tokens")),
            output_tokens=_int(usage.get("output_tokens")),
            latency_s=latency,
            finish_reason=_FINISH.get(stop, stop),
            tool_calls=calls,
        )

    def _calls(self, blocks: list[Any], request: Request) -> tuple[ToolCall, ...]:
        """The ``tool_use`` blocks for the user's tools (the schema's ``reply`` excluded)."""
        schema_tool = request.json_schema is not None and request.tool_choice != "required"
        turn = 1 + sum(1 for t in request.messages if t.role == "assistant")
        calls: list[ToolCall] = []
        for block in blocks:
            if not (isinstance(block, dict) and block.get("type") == "tool_use"):
                continue
            if schema_tool and block.get("name") == _TOOL:
                continue
            value = block.get("input")
            calls.append(
                wire_call(
                    block.get("id"),
                    block.get("name"),
                    value if isinstance(value, dict) else json.dumps(value),
                    backend=self.name,
                    fallback_id=f"toolu_{turn}_{len(calls)}",
                )
            )
        return tuple(calls)

    def _text(self, blocks: list[Any], request: Request, *, answered: bool) -> str:
        if request.json_schema is not None and answered:
            for block in blocks:
                if (
                    isinstance(block, dict)
                    and block.get("type") == "tool_use"
                    and block.get("name", _TOOL) == _TOOL
                ):
                    value = block.get("input")
                    if request.json_schema.get("type") != "object" and isinstance(value, dict):
                        value = value.get("value")
                    return json.dumps(value)
            # No tool call: fall through and let the schema check judge the text.
        parts = [
            block.get("text", "")
            for block in blocks
            if isinstance(block, dict) and block.get("type") == "text"
        ]
        if not all(isinstance(p, str) for p in parts):
            raise BadResponse(f"{self.name}: text block is not text", backend=self.name)
        return "".join(parts)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def create(model: str | None = None, **options: Any) -> AnthropicBackend:
    """Registry factory for ``anthropic:MODEL``."""
    if not model:
        raise UsageError(
            "anthropic backend needs a model: anthropic:MODEL "
            "(e.g. anthropic:claude-3-5-haiku-latest)"
        )
    return AnthropicBackend(model, **options)
