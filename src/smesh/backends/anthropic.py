"""``anthropic:MODEL``: Anthropic's Messages API (``POST /v1/messages``).

Structured output uses the documented forced-tool pattern: the schema becomes the input
schema of a single ``reply`` tool that the model must call, and the tool input is the
answer.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import Any

from smesh.backends._http import DEFAULT_MAX_RESPONSE_BYTES, HTTPBackend, require
from smesh.backends.base import Request, Response, finish_response
from smesh.errors import AuthenticationFailed, BadResponse, UsageError

__all__ = ["ANTHROPIC_URL", "API_VERSION", "AnthropicBackend", "create"]

ANTHROPIC_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
_TOOL = "reply"

#: Anthropic stop reasons -> the OpenAI-style words the rest of smesh uses.
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "stop"}


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
        turns = [
            {"role": m.role, "content": m.content} for m in request.messages if m.role != "system"
        ]
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
        if request.json_schema is not None:
            schema = request.json_schema
            if schema.get("type") != "object":
                # Tool inputs must be objects; wrap anything else and unwrap on the way back.
                schema = {"type": "object", "properties": {"value": schema}, "required": ["value"]}
            body["tools"] = [
                {"name": _TOOL, "description": "Give the answer.", "input_schema": schema}
            ]
            body["tool_choice"] = {"type": "tool", "name": _TOOL}
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
        text = self._text(blocks, request)
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
        )

    def _text(self, blocks: list[Any], request: Request) -> str:
        if request.json_schema is not None:
            for block in blocks:
                if isinstance(block, dict) and block.get("type") == "tool_use":
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
