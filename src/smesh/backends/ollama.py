"""``ollama:MODEL``: Ollama's native ``POST /api/chat``, honouring ``OLLAMA_HOST``.

Tool calling: ``tools`` as ``{"type": "function", "function": {...}}``; the reply's
``message.tool_calls`` are ``{"function": {"name", "arguments"}}`` with the arguments as a
JSON *object* (recent versions add an ``id``; older ones none, so ids are made up then);
results go back as ``role: tool`` messages naming the tool (``tool_name``) and the call
(``tool_call_id``). Ollama has no ``tool_choice``: ``none`` leaves the tools out of the
request, and ``required`` is enforced on the reply (no call is a ``BadResponse``).
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
    result_text,
)
from smesh.backends.openai import openai_tools, parse_tool_calls
from smesh.backends.toolcalls import (
    AssistantTurn,
    ToolResult,
    arguments_object,
)
from smesh.errors import BadResponse, UsageError

__all__ = ["DEFAULT_HOST", "OllamaBackend", "create", "ollama_messages", "ollama_url"]

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


def ollama_messages(request: Request) -> list[dict[str, Any]]:
    """The conversation in ``/api/chat``'s shape, the system prompt first."""
    out: list[dict[str, Any]] = []
    if request.system:
        out.append({"role": "system", "content": request.system})
    for turn in request.messages:
        if isinstance(turn, AssistantTurn) and turn.tool_calls:
            calls = []
            for index, call in enumerate(turn.tool_calls):
                function = {
                    "index": index,
                    "name": call.name,
                    "arguments": arguments_object(call.arguments),
                }
                calls.append({"id": call.id, "type": "function", "function": function})
            out.append({"role": "assistant", "content": turn.text, "tool_calls": calls})
        elif isinstance(turn, ToolResult):
            out.append(
                {
                    "role": "tool",
                    "content": result_text(turn),
                    "tool_name": turn.name,
                    "tool_call_id": turn.call_id,
                }
            )
        else:
            out.append({"role": turn.role, "content": turn.content})
    return out


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
            "messages": ollama_messages(request),
            "stream": False,
            "options": options,
        }
        if request.json_schema is not None:
            body["format"] = request.json_schema
        if request.tools and request.tool_choice != "none":
            body["tools"] = openai_tools(request.tools)
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
        calls = parse_tool_calls(message.get("tool_calls"), request, backend=self.name)
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
            tool_calls=calls,
        )

    async def stream(self, request: Request) -> AsyncIterator[str]:
        """Yield the reply as Ollama's newline-delimited JSON chunks arrive.

        Raises:
            UsageError: the request has tools (a stream carries text only).
        """
        reject_tools_in_stream(request, self.name)
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
