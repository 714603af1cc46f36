"""``ollama:MODEL``: Ollama's native ``POST /api/chat``, honouring ``OLLAMA_HOST``."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from smesh.backends._http import DEFAULT_MAX_RESPONSE_BYTES, HTTPBackend, decode_line, require
from smesh.backends.base import Request, Response, TruncatedResponse, finish_response
from smesh.errors import BadResponse, UsageError

__all__ = ["DEFAULT_HOST", "OllamaBackend", "create", "ollama_url"]

DEFAULT_HOST = "http://127.0.0.1:11434"


def ollama_url(host: str | None = None) -> str:
    """Normalise ``OLLAMA_HOST`` the way the ollama CLI does (scheme and port optional)."""
    raw = (host if host is not None else os.environ.get("OLLAMA_HOST", "")).strip()
    if not raw:
        return DEFAULT_HOST
    if "://" not in raw:
        raw = f"http://{raw}"
    scheme, _, rest = raw.partition("://")
    hostport, slash, path = rest.partition("/")
    # An IPv6 literal ("[::1]") has colons of its own; its port follows "]:".
    has_port = "]:" in hostport if hostport.startswith("[") else ":" in hostport
    if not has_port:
        hostport = f"{hostport}:11434"
    # A server bound to every interface is reached on loopback.
    hostport = hostport.replace("0.0.0.0", "127.0.0.1", 1)
    return f"{scheme}://{hostport}{slash}{path}".rstrip("/")


class OllamaBackend(HTTPBackend):
    """A model served by Ollama.

    Args:
        model: the Ollama model tag, e.g. ``qwen2.5-coder:7b``.
        host: server URL; default ``$OLLAMA_HOST`` or ``http://127.0.0.1:11434``.
        name: backend name; default ``ollama:MODEL``.
        timeout: deadline for the whole HTTP exchange, streams included, seconds (the
            first call may load the model).
        max_response_bytes: the most bytes of one answer that are read.
        keep_alive: how long Ollama keeps the model loaded after a call.
        transport: an httpx transport (tests).
    """

    def __init__(
        self,
        model: str,
        *,
        host: str | None = None,
        name: str | None = None,
        timeout: float = 300.0,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        keep_alive: str | None = None,
        headers: Mapping[str, str] | None = None,
        transport: Any = None,
    ) -> None:
        if not model:
            raise UsageError("ollama backend needs a model: ollama:MODEL")
        super().__init__(
            name=name or f"ollama:{model}",
            base_url=ollama_url(host),
            timeout=timeout,
            max_response_bytes=max_response_bytes,
            headers=headers,
            transport=transport,
        )
        self.model = model
        self.keep_alive = keep_alive

    def _model_missing_hint(self) -> str:
        return f"run: ollama pull {self.model}"

    def body(self, request: Request) -> dict[str, Any]:
        """The ``/api/chat`` body for ``request``."""
        options: dict[str, Any] = {
            "temperature": request.temperature,
            "num_predict": request.max_tokens,
        }
        if request.stop:
            options["stop"] = list(request.stop)
        body: dict[str, Any] = {
            "model": self.model,
            "messages": request.chat_messages(),
            "stream": False,
            "options": options,
        }
        if request.json_schema is not None:
            body["format"] = request.json_schema
        if self.keep_alive is not None:
            body["keep_alive"] = self.keep_alive
        return body

    async def complete(self, request: Request) -> Response:
        """POST the request to ``/api/chat``."""
        started = time.perf_counter()
        data = await self.post_json("/api/chat", self.body(request))
        latency = time.perf_counter() - started
        if "error" in data:
            raise BadResponse(f"{self.name}: {data['error']}", backend=self.name)
        message = require(data, "message", dict, backend=self.name)
        content = message.get("content", "")
        if not isinstance(content, str):
            raise BadResponse(f"{self.name}: message content is not text", backend=self.name)
        if data.get("done") is False:
            raise BadResponse(f"{self.name}: reply not done (streaming?)", backend=self.name)
        reported = data.get("model")
        return finish_response(
            request,
            text=content,
            model=reported if isinstance(reported, str) and reported else self.model,
            backend=self.name,
            input_tokens=_int(data.get("prompt_eval_count")),
            output_tokens=_int(data.get("eval_count")),
            latency_s=latency,
            finish_reason=str(data.get("done_reason") or "stop"),
        )

    async def stream(self, request: Request) -> AsyncIterator[str]:
        """Yield the reply as Ollama's newline-delimited JSON chunks arrive."""
        body = self.body(request)
        body["stream"] = True
        finish = "stop"
        pieces: list[str] = []
        async for line in self.post_lines("/api/chat", body):
            chunk = decode_line(line, backend=self.name)
            if "error" in chunk:
                raise BadResponse(f"{self.name}: {chunk['error']}", backend=self.name)
            message = chunk.get("message")
            piece = message.get("content") if isinstance(message, dict) else None
            if isinstance(piece, str) and piece:
                pieces.append(piece)
                yield piece
            if chunk.get("done"):
                finish = str(chunk.get("done_reason") or "stop")
                break
        if finish == "length" and not request.allow_truncated:
            raise TruncatedResponse(
                f"{self.name}: streamed reply cut off at max_tokens={request.max_tokens}",
                partial="".join(pieces),
                max_tokens=request.max_tokens,
                backend=self.name,
            )


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def create(model: str | None = None, **options: Any) -> OllamaBackend:
    """Registry factory for ``ollama:MODEL``."""
    if not model:
        raise UsageError("ollama backend needs a model: ollama:MODEL (e.g. ollama:qwen2.5-coder)")
    return OllamaBackend(model, **options)
