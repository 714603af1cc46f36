r"""LLM (and other) backends behind one async interface.

``resolve_backend("local")`` gives the embedded model; ``ollama:MODEL``, ``openai:MODEL``,
``openrouter:MODEL`` and ``anthropic:MODEL`` give remote ones. Wrap any backend in
:func:`resilient` (timeouts, retries, circuit breaker, rate limits) and :class:`Accounting`
(tokens and cost per agent and per run).

Native tool calling: ``Request(tools=..., tool_choice=...)`` with :class:`ToolSpec`\ s, the
model's :class:`ToolCall`\ s in ``Response.tool_calls``, and the conversation's
:class:`AssistantTurn`\ s and :class:`ToolResult`\ s rendered in each provider's wire format.

Importing this package is cheap: httpx and xllamacpp load only when a backend that needs
them is resolved or used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from smesh.backends.accounting import (
    DEFAULT_PRICES,
    Accounting,
    Budget,
    Ledger,
    Price,
    PriceTable,
    Usage,
)
from smesh.backends.base import (
    Backend,
    BackendBase,
    Message,
    Request,
    Response,
    StreamingBackend,
    TruncatedResponse,
    Turn,
    aclose_backend,
)
from smesh.backends.doubles import FunctionBackend, ScriptedBackend
from smesh.backends.registry import (
    backend_kinds,
    parse_backend,
    register_backend,
    resolve_backend,
)
from smesh.backends.resilience import (
    CircuitBreaker,
    CircuitOpen,
    RateLimit,
    RateLimiter,
    Retry,
    Timeout,
    resilient,
)
from smesh.backends.toolcalls import AssistantTurn, ToolCall, ToolChoice, ToolResult, ToolSpec

if TYPE_CHECKING:
    from smesh.backends.probe import probe_backends

__all__ = [
    "DEFAULT_PRICES",
    "Accounting",
    "AssistantTurn",
    "Backend",
    "BackendBase",
    "Budget",
    "CircuitBreaker",
    "CircuitOpen",
    "FunctionBackend",
    "Ledger",
    "Message",
    "Price",
    "PriceTable",
    "RateLimit",
    "RateLimiter",
    "Request",
    "Response",
    "Retry",
    "ScriptedBackend",
    "StreamingBackend",
    "Timeout",
    "ToolCall",
    "ToolChoice",
    "ToolResult",
    "ToolSpec",
    "TruncatedResponse",
    "Turn",
    "Usage",
    "aclose_backend",
    "backend_kinds",
    "parse_backend",
    "probe_backends",
    "register_backend",
    "resilient",
    "resolve_backend",
]


def __getattr__(name: str) -> Any:
    # probe pulls in the Ollama/model helpers; load it only when status asks.
    if name == "probe_backends":
        from smesh.backends.probe import probe_backends

        return probe_backends
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
