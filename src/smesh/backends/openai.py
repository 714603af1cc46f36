"""``openai:MODEL`` (any OpenAI-compatible server) and ``openrouter:MODEL``.

Speaks ``POST {base}/chat/completions``. ``OPENAI_BASE_URL`` points it at vLLM, llama.cpp,
LM Studio or the embedded model's own endpoint; ``OPENAI_API_KEY`` is optional for local
servers. ``openrouter:`` is the same protocol with OpenRouter's URL and
``OPENROUTER_API_KEY``.

Tool calling uses the Chat Completions shape: ``tools`` as ``{"type": "function",
"function": {name, description, parameters}}`` and ``tool_choice``; the reply's
``message.tool_calls`` carry ``{"id", "type": "function", "function": {"name",
"arguments"}}`` with the arguments as JSON *text*; results go back as ``role: tool``
messages with the ``tool_call_id`` they answer.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from smesh.backends._http import DEFAULT_MAX_RESPONSE_BYTES, HTTPBackend, decode_line, require
from smesh.backends.base import (
    Request,
    Response,
    TruncatedResponse,
    finish_response,
    reject_tools_in_stream,
)
from smesh.backends.toolcalls import ToolCall, ToolSpec, wire_call
from smesh.errors import AuthenticationFailed, BadResponse, UsageError

__all__ = [
    "OPENAI_URL",
    "OPENROUTER_URL",
    "OpenAIBackend",
    "chat_body",
    "create_openai",
    "create_openrouter",
    "openai_tools",
    "parse_chat_completion",
    "parse_tool_calls",
]

OPENAI_URL = "https://api.openai.com/v1"
OPENROUTER_URL = "https://openrouter.ai/api/v1"


def chat_body(request: Request, model: str) -> dict[str, Any]:
    """The OpenAI ``/chat/completions`` body for ``request``."""
    body: dict[str, Any] = {
        "model": model,
        "messages": request.chat_messages(),
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
        "stream": False,
    }
    if request.stop:
        body["stop"] = list(request.stop)
    if request.json_schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "reply", "schema": request.json_schema},
        }
    if request.tools:
        body["tools"] = openai_tools(request.tools)
        body["tool_choice"] = request.tool_choice
    return body


def openai_tools(specs: tuple[ToolSpec, ...]) -> list[dict[str, Any]]:
    """Tool specs in the Chat Completions ``tools`` shape."""
    return [
        {
            "type": "function",
            "function": {
                "name": spec.name,
                "description": spec.description,
                "parameters": spec.parameters,
            },
        }
        for spec in specs
    ]


def parse_tool_calls(raw: object, request: Request, *, backend: str) -> tuple[ToolCall, ...]:
    """``message.tool_calls`` as :class:`ToolCall` values.

    Arguments that are not a JSON object stay raw text (the tool loop tells the model);
    a call without a function name, or in another shape, is a :class:`BadResponse`.
    """
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise BadResponse(f"{backend}: malformed reply: tool_calls is not a list", backend=backend)
    turn = 1 + sum(1 for t in request.messages if t.role == "assistant")
    calls: list[ToolCall] = []
    for index, item in enumerate(raw):
        function = item.get("function") if isinstance(item, dict) else None
        if not isinstance(function, dict):
            raise BadResponse(
                f"{backend}: malformed tool call #{index + 1}: no function object",
                backend=backend,
            )
        kind = item.get("type", "function")
        if kind != "function":
            raise BadResponse(
                f"{backend}: unsupported tool call type {kind!r} (only function tools are sent)",
                backend=backend,
            )
        calls.append(
            wire_call(
                item.get("id"),
                function.get("name"),
                function.get("arguments"),
                backend=backend,
                fallback_id=f"call_{turn}_{index}",
            )
        )
    return tuple(calls)


def parse_chat_completion(
    data: Mapping[str, Any],
    request: Request,
    *,
    backend: str,
    model: str,
    latency_s: float,
) -> Response:
    """Turn a ``chat.completion`` object into a :class:`Response` (validating its shape)."""
    choices = require(data, "choices", list, backend=backend)
    if not choices or not isinstance(choices[0], dict):
        raise BadResponse(f"{backend}: reply has no choices", backend=backend)
    choice = choices[0]
    message = require(choice, "message", dict, backend=backend)
    content = message.get("content")
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise BadResponse(f"{backend}: message content is not text", backend=backend)
    calls = parse_tool_calls(message.get("tool_calls"), request, backend=backend)
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    assert isinstance(usage, dict)
    finish = choice.get("finish_reason") or "stop"
    reported = data.get("model")
    return finish_response(
        request,
        text=content,
        model=reported if isinstance(reported, str) and reported else model,
        backend=backend,
        input_tokens=_int(usage.get("prompt_tokens")),
        output_tokens=_int(usage.get("completion_tokens")),
        latency_s=latency_s,
        finish_reason=str(finish),
        tool_calls=calls,
    )


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class OpenAIBackend(HTTPBackend):
    """A model behind an OpenAI-compatible ``/chat/completions`` endpoint.

    Args:
        model: the model id the server expects.
        base_url: API root including ``/v1``; default ``$OPENAI_BASE_URL`` or OpenAI's.
        api_key: bearer token; default ``$OPENAI_API_KEY``. Not needed by most local servers.
        name: backend name; default ``openai:MODEL``.
        timeout: deadline for the whole HTTP exchange, streams included, seconds.
        max_response_bytes: the most bytes of one answer that are read.
        require_key: fail with :class:`AuthenticationFailed` before calling when no key is set.
        headers: extra headers.
        transport: an httpx transport (tests).
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        name: str | None = None,
        timeout: float = 120.0,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        require_key: bool | None = None,
        headers: Mapping[str, str] | None = None,
        transport: Any = None,
        key_variable: str = "OPENAI_API_KEY",
    ) -> None:
        if not model:
            raise UsageError("openai backend needs a model: openai:MODEL")
        url = base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL
        key = api_key if api_key is not None else os.environ.get(key_variable)
        merged = dict(headers or {})
        if key:
            merged["Authorization"] = f"Bearer {key}"
        super().__init__(
            name=name or f"openai:{model}",
            base_url=url,
            timeout=timeout,
            max_response_bytes=max_response_bytes,
            headers=merged,
            transport=transport,
        )
        self.model = model
        self.key_variable = key_variable
        # Hosted APIs always need a key; a local server usually does not.
        hosted = self.base_url.startswith(("https://api.openai.com", "https://openrouter.ai"))
        self._missing_key = not key and (hosted if require_key is None else require_key)

    async def complete(self, request: Request) -> Response:
        """POST the request to ``/chat/completions``."""
        if self._missing_key:
            raise AuthenticationFailed(
                f"{self.name}: no API key; set {self.key_variable}", backend=self.name
            )
        started = time.perf_counter()
        data = await self.post_json("/chat/completions", chat_body(request, self.model))
        return parse_chat_completion(
            data,
            request,
            backend=self.name,
            model=self.model,
            latency_s=time.perf_counter() - started,
        )

    async def stream(self, request: Request) -> AsyncIterator[str]:
        """Yield the reply as server-sent events arrive (``stream: true``).

        Raises:
            UsageError: the request has tools (a stream carries text only).
        """
        reject_tools_in_stream(request, self.name)
        if self._missing_key:
            raise AuthenticationFailed(
                f"{self.name}: no API key; set {self.key_variable}", backend=self.name
            )
        body = chat_body(request, self.model)
        body["stream"] = True
        finish = "stop"
        pieces: list[str] = []
        async for line in self.post_lines("/chat/completions", body):
            if not line.startswith("data:"):
                continue  # SSE comments and other fields
            payload = line[5:].strip()
            if payload == "[DONE]":
                break
            chunk = decode_line(payload, backend=self.name)
            if "error" in chunk:
                raise BadResponse(f"{self.name}: stream error: {chunk['error']}", backend=self.name)
            for choice in chunk.get("choices") or ():
                if not isinstance(choice, dict):
                    continue
                finish = choice.get("finish_reason") or finish
                piece = (choice.get("delta") or {}).get("content")
                if isinstance(piece, str) and piece:
                    pieces.append(piece)
                    yield piece
        if finish == "length" and not request.allow_truncated:
            raise TruncatedResponse(
                f"{self.name}: streamed reply cut off at max_tokens={request.max_tokens}",
                partial="".join(pieces),
                max_tokens=request.max_tokens,
                backend=self.name,
            )


def create_openai(model: str | None = None, **options: Any) -> OpenAIBackend:
    """Registry factory for ``openai:MODEL``."""
    if not model:
        raise UsageError("openai backend needs a model: openai:MODEL")
    return OpenAIBackend(model, **options)


def create_openrouter(model: str | None = None, **options: Any) -> OpenAIBackend:
    """Registry factory for ``openrouter:MODEL``."""
    if not model:
        raise UsageError("openrouter backend needs a model: openrouter:MODEL")
    options.setdefault("base_url", OPENROUTER_URL)
    options.setdefault("key_variable", "OPENROUTER_API_KEY")
    options.setdefault("name", f"openrouter:{model}")
    return OpenAIBackend(model, **options)
