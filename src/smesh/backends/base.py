"""The backend interface and the values that cross it.

A backend is anything with ``name`` and one async method, ``complete(request) -> Response``:
an LLM server, a tool, a static analyzer or a human at a terminal. Streaming is optional
(:class:`StreamingBackend`). Wrappers (timeouts, retries, rate limits, accounting) are
themselves backends, so they compose by nesting.

Native tool calling travels in the same two values: ``Request.tools`` and a conversation
that may hold :class:`~smesh.backends.toolcalls.AssistantTurn`\\ s and
:class:`~smesh.backends.toolcalls.ToolResult`\\ s, and ``Response.tool_calls``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import msgspec

from smesh.backends.schema import check_schema
from smesh.backends.toolcalls import (
    AssistantTurn,
    ToolCall,
    ToolChoice,
    ToolResult,
    ToolSpec,
    arguments_text,
    check_tool_calls,
    check_tool_spec,
)
from smesh.errors import BadResponse, TruncatedResponse, UsageError

__all__ = [
    "Backend",
    "BackendBase",
    "Message",
    "Request",
    "Response",
    "StreamingBackend",
    "TruncatedResponse",
    "Turn",
    "aclose_backend",
    "check_schema",
    "estimate_tokens",
    "finish_response",
    "reject_tools_in_stream",
    "result_text",
]

Role = Literal["system", "user", "assistant"]
_ROLES = frozenset({"system", "user", "assistant"})


class Message(msgspec.Struct, frozen=True, kw_only=True):
    """One chat turn.

    Attributes:
        role: ``user``, ``assistant`` or ``system``.
        content: the text of the turn.
    """

    role: Role
    content: str

    def __post_init__(self) -> None:
        if self.role not in _ROLES:
            raise UsageError(f"message role must be one of {sorted(_ROLES)}, not {self.role!r}")
        if not isinstance(self.content, str):
            raise UsageError("message content must be a string")


#: One item of a conversation: a plain message (system, user, assistant text), an
#: assistant turn that calls tools, or a tool's result.
Turn = Message | AssistantTurn | ToolResult
_TOOL_CHOICES = frozenset({"auto", "required", "none"})


class Request(msgspec.Struct, frozen=True, kw_only=True):
    """What every backend is asked.

    Attributes:
        messages: the conversation, oldest first; at least one turn. Besides plain
            :class:`Message`\\ s it may hold the model's earlier
            :class:`~smesh.backends.toolcalls.AssistantTurn`\\ s and the
            :class:`~smesh.backends.toolcalls.ToolResult`\\ s that answer their calls.
        system: system prompt, if any.
        temperature: sampling temperature, >= 0.
        max_tokens: cap on generated tokens, >= 1.
        stop: stop sequences.
        json_schema: when set, the reply must be a JSON value matching this schema;
            :attr:`Response.parsed` then holds it. With tools, it constrains the final
            answer (a reply that calls tools is not checked against it).
        agent: id of the agent asking, for accounting; not sent to the provider.
        allow_truncated: return a reply cut off at ``max_tokens`` instead of raising
            :class:`TruncatedResponse` (ignored when a schema is set: half a JSON value is
            never valid).
        tools: the tools the model may call (names unique); the reply's calls come back
            in :attr:`Response.tool_calls`.
        tool_choice: ``auto`` (the model decides), ``required`` (it must call a tool: a
            reply without a call is a :class:`~smesh.errors.BadResponse`; needs tools) or
            ``none`` (it must not call one).
    """

    messages: tuple[Turn, ...]
    system: str | None = None
    temperature: float = 0.2
    max_tokens: int = 512
    stop: tuple[str, ...] = ()
    json_schema: dict[str, Any] | None = None
    agent: str | None = None
    allow_truncated: bool = False
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: ToolChoice = "auto"

    def __post_init__(self) -> None:
        if not self.messages:
            raise UsageError("a request needs at least one message")
        if not (isinstance(self.temperature, int | float) and 0 <= self.temperature <= 2):
            raise UsageError(f"temperature must be in [0, 2], not {self.temperature!r}")
        if isinstance(self.max_tokens, bool) or not isinstance(self.max_tokens, int):
            raise UsageError(f"max_tokens must be an integer, not {self.max_tokens!r}")
        if self.max_tokens < 1:
            raise UsageError(f"max_tokens must be >= 1, not {self.max_tokens}")
        if self.json_schema is not None and not isinstance(self.json_schema, dict):
            raise UsageError("json_schema must be a JSON Schema object (a dict)")
        self._check_tools()
        self._check_turns()

    def _check_tools(self) -> None:
        if self.tool_choice not in _TOOL_CHOICES:
            raise UsageError(
                f"tool_choice must be one of {sorted(_TOOL_CHOICES)}, not {self.tool_choice!r}"
            )
        names: set[str] = set()
        for spec in self.tools:
            check_tool_spec(spec)
            if spec.name in names:
                raise UsageError(f"two tools in one request are named {spec.name!r}")
            names.add(spec.name)
        if self.tool_choice == "required" and not self.tools:
            raise UsageError("tool_choice='required' needs at least one tool")

    def _check_turns(self) -> None:
        called: set[str] = set()
        for turn in self.messages:
            if isinstance(turn, AssistantTurn):
                called.update(call.id for call in turn.tool_calls)
            elif isinstance(turn, ToolResult):
                if turn.call_id not in called:
                    raise UsageError(
                        f"the result for {turn.name!r} answers call id {turn.call_id!r}, "
                        "which no earlier assistant turn made"
                    )
            elif not isinstance(turn, Message):
                raise UsageError(
                    f"a request's messages are Message, AssistantTurn or ToolResult values, "
                    f"not {type(turn).__name__}"
                )

    @classmethod
    def of(
        cls,
        prompt: str,
        *,
        system: str | None = None,
        **options: Any,
    ) -> Request:
        """Build a one-turn request from a user prompt."""
        return cls(messages=(Message(role="user", content=prompt),), system=system, **options)

    def chat_messages(self) -> list[dict[str, Any]]:
        """Return the OpenAI-style message list, the system prompt first.

        Plain messages are ``{"role", "content"}``; an assistant turn with calls carries
        ``tool_calls`` (``content`` None when it has no text, arguments as JSON text); a
        tool result is ``{"role": "tool", "tool_call_id", "content"}``, its content led by
        ``Error:`` when the call failed (the wire has no error flag).
        """
        out: list[dict[str, Any]] = []
        if self.system:
            out.append({"role": "system", "content": self.system})
        for turn in self.messages:
            if isinstance(turn, Message):
                out.append({"role": turn.role, "content": turn.content})
            elif isinstance(turn, AssistantTurn):
                out.append(_openai_assistant(turn))
            else:
                out.append(
                    {"role": "tool", "tool_call_id": turn.call_id, "content": result_text(turn)}
                )
        return out

    def estimated_prompt_tokens(self) -> int:
        """A rough prompt size: :func:`estimate_tokens` of each turn, calls and tools included."""
        total = sum(estimate_tokens(text) for text in _turn_texts(self.messages))
        total += estimate_tokens(self.system or "")
        if self.tools:
            total += sum(
                estimate_tokens(f"{s.name} {s.description} {json.dumps(s.parameters)}")
                for s in self.tools
            )
        return total


def result_text(result: ToolResult) -> str:
    """A tool result's text for wires without an error flag (``Error: ...`` when it failed)."""
    return f"Error: {result.content}" if result.is_error else result.content


def _openai_assistant(turn: AssistantTurn) -> dict[str, Any]:
    if not turn.tool_calls:
        return {"role": "assistant", "content": turn.text}
    return {
        "role": "assistant",
        "content": turn.text or None,
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": arguments_text(call.arguments)},
            }
            for call in turn.tool_calls
        ],
    }


def _turn_texts(turns: Sequence[Turn]) -> list[str]:
    texts: list[str] = []
    for turn in turns:
        if isinstance(turn, Message | ToolResult):
            texts.append(turn.content)
        else:
            texts.append(turn.text)
            texts.extend(f"{c.name} {arguments_text(c.arguments)}" for c in turn.tool_calls)
    return texts


class Response(msgspec.Struct, frozen=True, kw_only=True):
    """What a backend answered.

    Attributes:
        text: the reply text (may be empty when the reply only calls tools).
        parsed: the decoded JSON value when the request had a schema (and the reply called
            no tool), else None.
        input_tokens: prompt tokens the provider counted.
        output_tokens: generated tokens.
        latency_s: wall time of the call, in seconds.
        model: the model that answered.
        finish_reason: ``stop``, ``length``, ``tool`` (the reply calls tools, whatever the
            provider's own word) or the provider's own word.
        backend: name of the backend that answered.
        tool_calls: the tools the model asks to call, in its order; empty for a final
            answer. Arguments that are not a JSON object are kept as raw text.
    """

    text: str
    model: str
    backend: str
    input_tokens: int = 0
    output_tokens: int = 0
    latency_s: float = 0.0
    finish_reason: str = "stop"
    parsed: Any = None
    tool_calls: tuple[ToolCall, ...] = ()

    @property
    def tokens_per_s(self) -> float:
        """Generated tokens per second of latency (0 when unknown)."""
        return self.output_tokens / self.latency_s if self.latency_s > 0 else 0.0

    def turn(self) -> AssistantTurn:
        """This reply as the :class:`~smesh.backends.toolcalls.AssistantTurn` a tool loop
        appends to the conversation."""
        return AssistantTurn(text=self.text, tool_calls=self.tool_calls)


@runtime_checkable
class Backend(Protocol):
    """Anything that can answer a :class:`Request`.

    Attributes:
        name: a stable name for logs, errors and accounting (e.g. ``ollama:qwen2.5``).
    """

    name: str

    async def complete(self, request: Request) -> Response:
        """Answer ``request``; raise a :class:`~smesh.errors.BackendError` on failure."""
        ...


@runtime_checkable
class StreamingBackend(Backend, Protocol):
    """A backend that can also yield the reply as it is generated."""

    def stream(self, request: Request) -> AsyncIterator[str]:
        """Yield pieces of the reply text as they arrive."""
        ...


class BackendBase:
    """Convenience base: async context manager and a no-op :meth:`aclose`.

    Subclasses set :attr:`name` and implement :meth:`complete`.
    """

    name: str = "backend"

    async def complete(self, request: Request) -> Response:  # pragma: no cover - abstract
        """Answer ``request``."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release resources (HTTP clients, servers). Safe to call twice."""

    async def __aenter__(self) -> BackendBase:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


def estimate_tokens(text: str) -> int:
    """Rough token count (about four characters a token) for providers that report none."""
    return (len(text) + 3) // 4


async def aclose_backend(backend: object) -> None:
    """Close ``backend`` if it has an ``aclose`` method (the interface does not require one)."""
    closer = getattr(backend, "aclose", None)
    if closer is not None:
        await closer()


def finish_response(
    request: Request,
    *,
    text: str,
    model: str,
    backend: str,
    input_tokens: int,
    output_tokens: int,
    latency_s: float,
    finish_reason: str,
    tool_calls: Iterable[ToolCall] = (),
) -> Response:
    """Build a :class:`Response`, enforcing the rules shared by all backends.

    A reply with tool calls gets ``finish_reason="tool"`` and skips the schema check (the
    schema is for the final answer).

    Raises:
        TruncatedResponse: the reply hit ``max_tokens`` (unless allowed and schema-less).
        BadResponse: a schema was given and the text is not valid JSON matching it; the
            request required a tool call and the reply has none; a tool call without a
            name, or two with one id.
    """
    if finish_reason == "length" and (
        request.json_schema is not None or not request.allow_truncated
    ):
        raise TruncatedResponse(
            f"{backend}: reply cut off at max_tokens={request.max_tokens} "
            f"({output_tokens} tokens generated)",
            partial=text,
            max_tokens=request.max_tokens,
            backend=backend,
        )
    calls = check_tool_calls(tool_calls, backend=backend)
    parsed: Any = None
    if calls:
        finish_reason = "tool"
    elif request.tool_choice == "required":
        raise BadResponse(
            f"{backend}: the model answered without calling a tool although the request "
            f"requires one (tool_choice='required'): {text[:80]!r}",
            backend=backend,
        )
    elif request.json_schema is not None:
        try:
            parsed = json.loads(text)
        except ValueError as exc:
            raise BadResponse(
                f"{backend}: reply is not valid JSON ({exc}): {text[:80]!r}", backend=backend
            ) from None
        problem = check_schema(parsed, request.json_schema)
        if problem is not None:
            raise BadResponse(f"{backend}: reply violates the schema: {problem}", backend=backend)
    return Response(
        text=text,
        parsed=parsed,
        model=model,
        backend=backend,
        input_tokens=max(0, int(input_tokens)),
        output_tokens=max(0, int(output_tokens)),
        latency_s=latency_s,
        finish_reason=finish_reason,
        tool_calls=calls,
    )


def reject_tools_in_stream(request: Request, backend: str) -> None:
    """Refuse to stream a request with tools: a stream carries text, so calls would be lost.

    Raises:
        UsageError: the request has tools (use ``complete``).
    """
    if request.tools:
        raise UsageError(
            f"{backend}: stream() yields text only; a request with tools needs complete()"
        )
