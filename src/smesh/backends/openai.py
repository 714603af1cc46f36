"""``openai:MODEL`` (any OpenAI-compatible server) and ``openrouter:MODEL``.

Speaks ``POST {base}/chat/completions``. ``OPENAI_BASE_URL`` points it at vLLM, llama.cpp,
LM Studio or the embedded model's own endpoint; ``OPENAI_API_KEY`` is optional for local
servers. ``openrouter:`` is the same protocol with OpenRouter's URL and
``OPENROUTER_API_KEY``.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from smesh.backends._http import DEFAULT_MAX_RESPONSE_BYTES, HTTPBackend, decode_line, require
from smesh.backends.base import Request, Response, TruncatedResponse, finish_response
from smesh.errors import AuthenticationFailed, BadResponse, UsageError

__all__ = [
    "OPENAI_URL",
    "OPENROUTER_URL",
    "OpenAIBackend",
    "chat_body",
    "create_openai",
    "create_openrouter",
    "parse_chat_completion",
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
    return body


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
        """Yield the reply as server-sent events arrive (``stream: true``)."""
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
