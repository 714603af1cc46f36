"""Backend doubles: :class:`ScriptedBackend` and :class:`FunctionBackend`.

Deterministic stand-ins for a real backend: the fast bulk of the tests runs on them, and so
does production code that needs a backend whose answers are known in advance (the scripted
demo, the benchmarks). :mod:`smesh.testing` re-exports them.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import msgspec

from smesh.backends.base import BackendBase, Request, Response, estimate_tokens, finish_response
from smesh.backends.toolcalls import AssistantTurn, ToolCall
from smesh.errors import UsageError

__all__ = [
    "FunctionBackend",
    "Reply",
    "ScriptedBackend",
    "UnconsumedReplies",
    "UnexpectedCall",
]

#: What a double may answer: text, a JSON-able dict/list (sent as JSON text), a finished
#: :class:`Response` (``tool_calls`` included), an :class:`AssistantTurn` (text and tool
#: calls; calls without an id get ``call_<turn>_<index>``), or an exception instance to raise.
#: A :class:`ScriptedBackend` also takes a callable of the request returning one of these.
Reply = str | dict[str, Any] | list[Any] | Response | AssistantTurn | BaseException

Sleep = Callable[[float], Awaitable[None]]


class UnexpectedCall(AssertionError):
    """A double was called with no reply left to give (or a call it was told to refuse)."""


class UnconsumedReplies(AssertionError):
    """A :class:`ScriptedBackend` was closed with canned replies nobody asked for."""


def _summary(request: Request) -> str:
    last = request.messages[-1].content
    return f"{len(request.messages)} message(s), last {last[:60]!r}"


def _to_response(reply: Reply, request: Request, *, name: str, model: str) -> Response:
    if isinstance(reply, BaseException):
        raise reply
    if isinstance(reply, Response):
        return reply
    calls: tuple[ToolCall, ...] = ()
    if isinstance(reply, AssistantTurn):
        turn = 1 + sum(1 for t in request.messages if t.role == "assistant")
        calls = tuple(
            c if c.id else msgspec.structs.replace(c, id=f"call_{turn}_{i}")
            for i, c in enumerate(reply.tool_calls)
        )
        text = reply.text
    else:
        text = reply if isinstance(reply, str) else json.dumps(reply)
    prompt = "".join(m["content"] or "" for m in request.chat_messages())
    # finish_response applies the same schema checks a real backend would, so a test that
    # scripts invalid JSON for a schema request sees the same BadResponse.
    return finish_response(
        request,
        text=text,
        model=model,
        backend=name,
        input_tokens=estimate_tokens(prompt),
        output_tokens=estimate_tokens(text),
        latency_s=0.0,
        finish_reason="stop",
        tool_calls=calls,
    )


class ScriptedBackend(BackendBase):
    """Replays canned replies in order and records every request.

    A call with no reply left raises :class:`UnexpectedCall`; closing (or
    :meth:`assert_all_consumed`) with replies left raises :class:`UnconsumedReplies`.

    Args:
        replies: the replies, in the order they will be given.
        name: backend name reported in responses.
        model: model name reported in responses.
        strict: whether :meth:`aclose` complains about unconsumed replies.
        keep: how many of the latest requests :attr:`calls` keeps (memory stays bounded in
            a long-lived process); :attr:`call_count` counts them all.

    Example::

        backend = ScriptedBackend(["hello", BackendTimeout("slow", backend="x")])
    """

    def __init__(
        self,
        replies: Iterable[Reply | Callable[[Request], Reply]] = (),
        *,
        name: str = "scripted",
        model: str = "scripted",
        strict: bool = True,
        keep: int = 1000,
    ) -> None:
        self.name = name
        self.model = model
        self.strict = strict
        self._replies: deque[Reply | Callable[[Request], Reply]] = deque(replies)
        self.calls: deque[Request] = deque(maxlen=keep)
        self.call_count = 0

    def add(self, *replies: Reply | Callable[[Request], Reply]) -> ScriptedBackend:
        """Queue more replies; returns self so calls chain."""
        self._replies.extend(replies)
        return self

    @property
    def remaining(self) -> int:
        """How many replies are still queued."""
        return len(self._replies)

    async def complete(self, request: Request) -> Response:
        """Record ``request`` and give the next canned reply."""
        self.calls.append(request)
        self.call_count += 1
        if not self._replies:
            raise UnexpectedCall(
                f"{self.name}: unexpected call #{self.call_count} ({_summary(request)}); "
                "no scripted reply left"
            )
        reply = self._replies.popleft()
        if callable(reply):
            reply = reply(request)
        return _to_response(reply, request, name=self.name, model=self.model)

    def assert_all_consumed(self) -> None:
        """Raise :class:`UnconsumedReplies` if any canned reply was never asked for."""
        if self._replies:
            left = ", ".join(repr(r)[:40] for r in list(self._replies)[:3])
            raise UnconsumedReplies(
                f"{self.name}: {len(self._replies)} scripted repl(ies) never used: {left}"
            )

    async def aclose(self) -> None:
        """Close; in strict mode, complain about unconsumed replies."""
        if self.strict:
            self.assert_all_consumed()


class FunctionBackend(BackendBase):
    """A callable decides each reply; optional simulated latency.

    Args:
        fn: ``fn(request)`` returning a :data:`Reply` (or raising); may be async.
        name: backend name reported in responses.
        model: model name reported in responses.
        latency: seconds to "think" before replying, or a callable of the request.
        sleep: how to wait out the latency (inject a fake for tests on virtual time).
        keep: how many of the latest requests :attr:`calls` keeps (memory stays bounded in
            a long-lived process); :attr:`call_count` counts them all.
    """

    def __init__(
        self,
        fn: Callable[[Request], Reply | Awaitable[Reply]],
        *,
        name: str = "function",
        model: str = "function",
        latency: float | Callable[[Request], float] = 0.0,
        sleep: Sleep = asyncio.sleep,
        keep: int = 1000,
    ) -> None:
        self.name = name
        self.model = model
        self._fn = fn
        self._latency = latency
        self._sleep = sleep
        self.calls: deque[Request] = deque(maxlen=keep)
        self.call_count = 0

    async def complete(self, request: Request) -> Response:
        """Record ``request``, wait the simulated latency, and return what ``fn`` says."""
        self.calls.append(request)
        self.call_count += 1
        started = time.perf_counter()
        delay = self._latency(request) if callable(self._latency) else self._latency
        if delay > 0:
            await self._sleep(delay)
        reply = self._fn(request)
        if inspect.isawaitable(reply):
            reply = await reply
        response = _to_response(reply, request, name=self.name, model=self.model)
        if isinstance(reply, Response):
            return response
        # Report the simulated latency even when the injected sleep did not really wait.
        elapsed = max(delay, time.perf_counter() - started)
        return msgspec.structs.replace(response, latency_s=elapsed)


def create_scripted(model: str | None = None, **options: Any) -> ScriptedBackend:
    """Registry factory for ``scripted`` (an empty script unless ``replies=`` is given)."""
    return ScriptedBackend(model=model or "scripted", **options)


def create_function(model: str | None = None, **options: Any) -> FunctionBackend:
    """Registry factory for ``function``; needs ``fn=``."""
    if "fn" not in options:
        raise UsageError("the 'function' backend needs fn=callable(request) -> reply")
    return FunctionBackend(model=model or "function", **options)
