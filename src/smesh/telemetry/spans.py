"""OpenTelemetry spans from a run's typed records: a record sink, not calls in the agents.

:class:`OtelSink` takes every record :meth:`Runtime.record
<smesh.agents.runtime.Runtime.record>` builds (see :mod:`smesh.agents.sinks`) and turns the
ones that are work into spans, per the OpenTelemetry GenAI semantic conventions:

==========================  ===============================================================
span                        from
==========================  ===============================================================
``task {task_id}``          the task's end (``decide`` accepted/failed, ``give-up``), in the
                            process that decided it; starts when the task was posted; the
                            root of the task's trace
``invoke_agent {agent}``    an attempt: its ``claim`` (lease won) to its ``result``,
                            ``lost-lease`` or ``budget``; a verification: its first LLM
                            call to its ``vote``, ``check`` or ``abstain``
``chat {model}``            each ``llm`` record (one LLM call), child of its attempt or
                            verification; ``gen_ai.provider.name``,
                            ``gen_ai.request.model``, ``gen_ai.response.model``,
                            ``gen_ai.usage.input_tokens`` / ``output_tokens``
``execute_tool {tool}``     each ``tool`` record, child of its attempt
``signal result``           the attempt's result signal (a point in time), so that votes
                            can link to it
==========================  ===============================================================

Every span carries ``smesh.task.id``, ``smesh.attempt`` and the ``smesh.signal.*`` of the
signal it is about; links go from an action's span to the spans of the signals that
triggered it (the record's ``triggers``: the task signal for a claim, the lease for a
result, the result for a vote), with what the agent saw of them as link attributes
(``smesh.signal.intensity``, ``smesh.trust.origin`` ...). Ids are derived
(:mod:`smesh.telemetry.ids`), so parents and links resolve across mesh processes.
Span times are the wall clock when the record arrives (durations from the records).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from msgspec import UNSET
from opentelemetry import trace
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from smesh.agents.records import Detail, Trigger
from smesh.telemetry.ids import ChosenIds, span_id, trace_id

__all__ = ["OtelSink", "provider_name"]

_FLAGS = TraceFlags(TraceFlags.SAMPLED)
_ENDS_ATTEMPT = frozenset({"result", "lost-lease", "budget"})
_BALLOTS = frozenset({"vote", "check", "abstain"})
_PROVIDERS = {"openai": "openai", "anthropic": "anthropic", "openrouter": "openrouter"}


def provider_name(backend: str) -> str:
    """``gen_ai.provider.name`` of a backend string (``ollama:qwen`` → ``ollama``)."""
    kind = backend.split(":", 1)[0]
    return _PROVIDERS.get(kind, kind)


def _model(backend: str) -> str:
    kind, _, model = backend.partition(":")
    return model or kind


def _set(attrs: dict[str, Any], key: str, value: Any) -> None:
    if value is not None and value is not UNSET:
        attrs[key] = value


class OtelSink:
    """Spans of one run (one per :class:`~smesh.agents.runtime.Runtime`).

    Args:
        tracer: where spans go.
        ids: the tracer's :class:`ChosenIds` (None: the tracer picks ids; links across
            processes then do not resolve).
        runtime: the run (its board finds the signals the records name).
    """

    def __init__(self, tracer: Any, ids: ChosenIds | None, runtime: Any) -> None:
        self.tracer = tracer
        self.ids = ids
        self.runtime = runtime
        self._attempts: dict[tuple[str, str], Any] = {}  # (agent, task) -> open span
        self._judging: dict[tuple[str, str, int], int] = {}  # -> start of the verification
        self._handlers: dict[str, Callable[[int, str, str, Detail], None]] = {
            "claim": self._claim,
            "llm": self._llm,
            "tool": self._tool,
            "decide": self._decide,
            "give-up": self._decide,
            **dict.fromkeys(_ENDS_ATTEMPT, self._end_attempt),
            **dict.fromkeys(_BALLOTS, self._ballot),
        }

    # -- the sink ----------------------------------------------------------------------------

    def record(
        self, now: float, agent: str, action: str, task_id: str | None, detail: Detail
    ) -> None:
        handler = self._handlers.get(action)
        if handler is not None and task_id is not None:
            handler(time.time_ns(), agent, task_id, detail)

    # -- ids -----------------------------------------------------------------------------

    def _task(self, task_id: str) -> tuple[int, Any]:
        """The task's trace id and its task signal (None if this process never saw it)."""
        state = self.runtime.board.tasks.get(task_id)
        if state is None:
            return trace_id(f"task:{task_id}", 0.0), None
        signal = state.signal
        return trace_id(signal.address, signal.created_at), state

    def _start(
        self, name: str, trace_: int, span: int, parent: int | None, start: int, **options: Any
    ) -> Any:
        context = None
        if parent is not None:
            remote = SpanContext(trace_, parent, is_remote=True, trace_flags=_FLAGS)
            context = trace.set_span_in_context(trace.NonRecordingSpan(remote))
        if self.ids is not None:
            return self.ids.start(
                self.tracer, span, name, context=context, start_time=start, trace=trace_, **options
            )
        return self.tracer.start_span(name, context=context, start_time=start, **options)

    def _links(self, trace_: int, triggers: Any) -> list[Link]:
        if not isinstance(triggers, list):
            return []
        links = []
        for t in triggers:
            if isinstance(t, Trigger):
                target = SpanContext(trace_, span_id(trace_, t.address), True, _FLAGS)
                attrs: dict[str, Any] = {
                    "smesh.signal.address": t.address,
                    "smesh.signal.kind": t.kind,
                }
                _set(attrs, "smesh.signal.intensity", t.intensity)
                _set(attrs, "smesh.trust.origin", t.trust_origin)
                _set(attrs, "smesh.signal.origin", t.worker)
                _set(attrs, "smesh.trust.worker", t.trust_worker)
                links.append(Link(target, attrs))
        return links

    # -- handlers ------------------------------------------------------------------------

    def _claim(self, now: int, agent: str, task_id: str, d: Detail) -> None:
        trace_, state = self._task(task_id)
        lease = state.claims.get(agent) if state is not None else None
        key = lease.address if lease is not None else f"attempt:{agent}:{d.attempt}"
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": agent,
            "gen_ai.agent.id": agent,
            "smesh.task.id": task_id,
            "smesh.signal.kind": "claim",
            "smesh.signal.address": key,
            "smesh.signal.origin": agent,
        }
        _set(attrs, "smesh.attempt", d.attempt)
        _set(attrs, "smesh.bid", d.bid)
        _set(attrs, "smesh.score", d.score)
        if state is not None:
            attrs["smesh.task.skill"] = state.spec.skill
        root = span_id(trace_, state.signal.address) if state is not None else None
        span = self._start(
            f"invoke_agent {agent}",
            trace_,
            span_id(trace_, key),
            root,
            now,
            kind=SpanKind.INTERNAL,
            attributes=attrs,
            links=self._links(trace_, d.triggers),
        )
        previous = self._attempts.pop((agent, task_id), None)
        if previous is not None:
            previous.end(now)
        self._attempts[(agent, task_id)] = span

    def _end_attempt(self, now: int, agent: str, task_id: str, d: Detail) -> None:
        span = self._attempts.pop((agent, task_id), None)
        if span is None:
            return
        for link in self._links(span.get_span_context().trace_id, d.triggers):
            span.add_link(link.context, link.attributes)
        if isinstance(d.error, str):
            span.set_status(Status(StatusCode.ERROR, d.error[:200]))
            span.set_attribute("error.type", d.error.split(":", 1)[0])
        elif isinstance(d.reason, str):  # budget
            span.set_status(Status(StatusCode.ERROR, d.reason[:200]))
        trace_, state = self._task(task_id)
        result = state.results.get(d.attempt) if state is not None else None
        if result is not None and result.origin == agent:
            point = self._start(
                "signal result",
                trace_,
                span_id(trace_, result.address),
                span.get_span_context().span_id,
                now,
                attributes={
                    "smesh.task.id": task_id,
                    "smesh.attempt": d.attempt,
                    "smesh.signal.kind": result.kind,
                    "smesh.signal.address": result.address,
                    "smesh.signal.origin": result.origin,
                },
            )
            point.end(now)
        span.end(now)

    def _parent_of_call(self, agent: str, task_id: str, d: Detail) -> tuple[int, int]:
        """(trace, parent span) of an LLM call: its attempt, or its verification."""
        trace_, _ = self._task(task_id)
        if d.purpose == "judge" and isinstance(d.attempt, int):
            return trace_, span_id(trace_, f"judge:{agent}:{d.attempt}")
        span = self._attempts.get((agent, task_id))
        if span is not None:
            return trace_, span.get_span_context().span_id
        return trace_, span_id(trace_, f"attempt:{agent}:{d.attempt}")

    def _llm(self, now: int, agent: str, task_id: str, d: Detail) -> None:
        trace_, parent = self._parent_of_call(agent, task_id, d)
        latency = d.latency_ms if isinstance(d.latency_ms, float | int) else 0.0
        start = now - int(latency * 1e6)
        if d.purpose == "judge" and isinstance(d.attempt, int):
            self._judging.setdefault((agent, task_id, d.attempt), start)
        backend = d.backend if isinstance(d.backend, str) else "backend"
        response_model = d.model if isinstance(d.model, str) else None
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider_name(backend),
            "gen_ai.request.model": _model(backend),
            "gen_ai.agent.name": agent,
            "smesh.task.id": task_id,
            "smesh.backend": backend,
        }
        _set(attrs, "smesh.attempt", d.attempt)
        _set(attrs, "gen_ai.response.model", response_model)
        _set(attrs, "gen_ai.usage.input_tokens", d.input_tokens)
        _set(attrs, "gen_ai.usage.output_tokens", d.output_tokens)
        _set(attrs, "smesh.cost_usd", d.cost_usd)
        _set(attrs, "smesh.purpose", d.purpose)
        span = self._start(
            f"chat {response_model or _model(backend)}",
            trace_,
            span_id(trace_, f"llm:{agent}:{task_id}:{start}"),
            parent,
            start,
            kind=SpanKind.CLIENT,
            attributes=attrs,
        )
        if d.status != "ok" and isinstance(d.error, str):
            span.set_status(Status(StatusCode.ERROR, d.error[:200]))
            span.set_attribute("error.type", d.error.split(":", 1)[0])
        span.end(now)

    def _tool(self, now: int, agent: str, task_id: str, d: Detail) -> None:
        trace_, parent = self._parent_of_call(agent, task_id, d)
        took = d.duration_ms if isinstance(d.duration_ms, float | int) else 0.0
        start = now - int(took * 1e6)
        tool = d.tool if isinstance(d.tool, str) else "tool"
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": tool,
            "gen_ai.agent.name": agent,
            "smesh.task.id": task_id,
        }
        _set(attrs, "gen_ai.tool.call.id", d.call_id)
        _set(attrs, "smesh.attempt", d.attempt)
        _set(attrs, "smesh.tool.step", d.step)
        _set(attrs, "smesh.tool.status", d.status)
        _set(attrs, "smesh.tool.replayed", d.replayed)
        span = self._start(
            f"execute_tool {tool}",
            trace_,
            span_id(trace_, f"tool:{agent}:{task_id}:{d.call_id}:{start}"),
            parent,
            start,
            kind=SpanKind.INTERNAL,
            attributes=attrs,
            links=self._links(trace_, d.triggers),
        )
        if d.ok is False:
            span.set_status(Status(StatusCode.ERROR, str(d.error)[:200]))
        span.end(now)

    def _ballot(self, now: int, agent: str, task_id: str, d: Detail) -> None:
        if not isinstance(d.attempt, int):
            return
        trace_, state = self._task(task_id)
        start = self._judging.pop((agent, task_id, d.attempt), now)
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": agent,
            "gen_ai.agent.id": agent,
            "smesh.task.id": task_id,
            "smesh.attempt": d.attempt,
            "smesh.action": "judge",
        }
        _set(attrs, "smesh.verdict", d.verdict)
        _set(attrs, "smesh.trust.self", d.trust_self)
        if isinstance(d.triggers, list) and len(d.triggers) > 1:
            own = d.triggers[1]
            attrs.update({"smesh.signal.kind": own.kind, "smesh.signal.address": own.address})
        root = span_id(trace_, state.signal.address) if state is not None else None
        span = self._start(
            f"invoke_agent {agent}",
            trace_,
            span_id(trace_, f"judge:{agent}:{d.attempt}"),
            root,
            start,
            kind=SpanKind.INTERNAL,
            attributes=attrs,
            links=self._links(trace_, d.triggers),
        )
        if isinstance(d.reason, str) and d.verdict is UNSET:  # abstained: the judge failed
            span.set_status(Status(StatusCode.ERROR, d.reason[:200]))
        span.end(now)

    def _decide(self, now: int, agent: str, task_id: str, d: Detail) -> None:
        verdict = d.verdict if isinstance(d.verdict, str) else "failed"
        if verdict not in ("accepted", "failed"):
            return  # a rejected attempt: the task goes on
        trace_, state = self._task(task_id)
        if state is None:
            return
        signal = state.signal
        attrs: dict[str, Any] = {
            "smesh.task.id": task_id,
            "smesh.task.skill": state.spec.skill,
            "smesh.task.outcome": verdict,
            "smesh.task.attempts": state.attempt,
            "smesh.signal.kind": signal.kind,
            "smesh.signal.address": signal.address,
            "smesh.signal.origin": signal.origin,
            "smesh.decided_by": agent,
        }
        _set(attrs, "smesh.decision.basis", d.basis)
        posted = int(signal.created_at * 1e9) if signal.created_at > 1e9 else now
        span = self._start(
            f"task {task_id}",
            trace_,
            span_id(trace_, signal.address),
            None,
            min(posted, now),
            kind=SpanKind.INTERNAL,
            attributes=attrs,
        )
        if verdict == "failed":
            span.set_status(Status(StatusCode.ERROR, str(d.reason or d.basis)[:200]))
        span.end(now)
