"""The backend interface and the values that cross it.

A backend is anything with ``name`` and one async method, ``complete(request) -> Response``:
an LLM server, a tool, a static analyzer or a human at a terminal. Streaming is optional
(:class:`StreamingBackend`). Wrappers (timeouts, retries, rate limits, accounting) are
themselves backends, so they compose by nesting.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import msgspec

from smesh.errors import BadResponse, TruncatedResponse, UsageError

__all__ = [
    "Backend",
    "BackendBase",
    "Message",
    "Request",
    "Response",
    "StreamingBackend",
    "TruncatedResponse",
    "aclose_backend",
    "check_schema",
    "estimate_tokens",
    "finish_response",
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


class Request(msgspec.Struct, frozen=True, kw_only=True):
    """What every backend is asked.

    Attributes:
        messages: the conversation, oldest first; at least one message.
        system: system prompt, if any.
        temperature: sampling temperature, >= 0.
        max_tokens: cap on generated tokens, >= 1.
        stop: stop sequences.
        json_schema: when set, the reply must be a JSON value matching this schema;
            :attr:`Response.parsed` then holds it.
        agent: id of the agent asking, for accounting; not sent to the provider.
        allow_truncated: return a reply cut off at ``max_tokens`` instead of raising
            :class:`TruncatedResponse` (ignored when a schema is set: half a JSON value is
            never valid).
    """

    messages: tuple[Message, ...]
    system: str | None = None
    temperature: float = 0.2
    max_tokens: int = 512
    stop: tuple[str, ...] = ()
    json_schema: dict[str, Any] | None = None
    agent: str | None = None
    allow_truncated: bool = False

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

    def chat_messages(self) -> list[dict[str, str]]:
        """Return the OpenAI-style message list, the system prompt first."""
        out: list[dict[str, str]] = []
        if self.system:
            out.append({"role": "system", "content": self.system})
        out.extend({"role": m.role, "content": m.content} for m in self.messages)
        return out


class Response(msgspec.Struct, frozen=True, kw_only=True):
    """What a backend answered.

    Attributes:
        text: the reply text.
        parsed: the decoded JSON value when the request had a schema, else None.
        input_tokens: prompt tokens the provider counted.
        output_tokens: generated tokens.
        latency_s: wall time of the call, in seconds.
        model: the model that answered.
        finish_reason: ``stop``, ``length``, ``tool`` or the provider's own word.
        backend: name of the backend that answered.
    """

    text: str
    model: str
    backend: str
    input_tokens: int = 0
    output_tokens: int = 0
    latency_s: float = 0.0
    finish_reason: str = "stop"
    parsed: Any = None

    @property
    def tokens_per_s(self) -> float:
        """Generated tokens per second of latency (0 when unknown)."""
        return self.output_tokens / self.latency_s if self.latency_s > 0 else 0.0


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
) -> Response:
    """Build a :class:`Response`, enforcing truncation and schema rules shared by all backends.

    Raises:
        TruncatedResponse: the reply hit ``max_tokens`` (unless allowed and schema-less).
        BadResponse: a schema was given and the text is not valid JSON matching it.
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
    parsed: Any = None
    if request.json_schema is not None:
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
    )


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def check_schema(value: object, schema: Mapping[str, Any], path: str = "$") -> str | None:
    """Check ``value`` against the common subset of JSON Schema; return the first problem.

    Covers ``type``, ``enum``, ``const``, ``properties``, ``required``,
    ``additionalProperties: false``, ``items``, ``minItems``/``maxItems``,
    ``minimum``/``maximum`` and ``minLength``/``maxLength``. Unknown keywords are ignored
    (the model was already constrained by a grammar; this guards providers that were not).
    """
    types = schema.get("type")
    if types is not None:
        names: Sequence[str] = [types] if isinstance(types, str) else list(types)
        ok = False
        for name in names:
            allowed = _JSON_TYPES.get(name)
            if allowed is None:
                ok = True
                break
            is_bool = isinstance(value, bool)
            if (name in {"integer", "number"} and is_bool) or not isinstance(value, allowed):
                continue
            if name == "number" and isinstance(value, float) and not math.isfinite(value):
                continue
            ok = True
            break
        if not ok:
            return f"{path}: expected {'/'.join(names)}, got {type(value).__name__}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{path}: {value!r} is not one of {schema['enum']!r}"
    if "const" in schema and value != schema["const"]:
        return f"{path}: expected {schema['const']!r}"
    if isinstance(value, dict):
        props: Mapping[str, Any] = schema.get("properties", {})
        for key in schema.get("required", ()):
            if key not in value:
                return f"{path}: missing required property {key!r}"
        for key, sub in value.items():
            if key in props:
                problem = check_schema(sub, props[key], f"{path}.{key}")
                if problem:
                    return problem
            elif schema.get("additionalProperties") is False:
                return f"{path}: unexpected property {key!r}"
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            return f"{path}: fewer than {schema['minItems']} items"
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            return f"{path}: more than {schema['maxItems']} items"
        items = schema.get("items")
        if isinstance(items, Mapping):
            for i, item in enumerate(value):
                problem = check_schema(item, items, f"{path}[{i}]")
                if problem:
                    return problem
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return f"{path}: {value} < minimum {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"{path}: {value} > maximum {schema['maximum']}"
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            return f"{path}: shorter than {schema['minLength']}"
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return f"{path}: longer than {schema['maxLength']}"
    return None
