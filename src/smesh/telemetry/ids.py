"""Trace and span ids derived from what every process of a run already shares.

A task's spans are made in several processes at once over a mesh: the poster's, the
worker's, each verifier's. Rather than carrying a trace context inside every signal (bytes
on the wire, a change of the signal format and of the mesh's signed operations), the ids
are *derived*:

* the task's **trace id** from the task signal's address and creation time (both part of
  the signal, identical in every replica and in the journal; the time tells two postings
  of the same task apart);
* a **span id** for any signal from the trace id and the signal's address: the span of the
  action that produced that signal carries it, so a span in one process can name (parent
  or link to) a span made in another without any message between them.

Derived span ids need the tracer to accept an id chosen by the caller; :class:`ChosenIds`
wraps an SDK tracer's id generator for that (a tracer without one, e.g. the API's no-op
tracer, keeps random ids: then links across processes do not resolve, nothing else
changes).
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

__all__ = ["ChosenIds", "span_id", "trace_id"]


def _digest(text: str, size: int) -> int:
    value = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=size).digest(), "big")
    return value or 1  # 0 is the invalid id


def trace_id(task_address: str, created_at: float) -> int:
    """The 128-bit trace id of one posting of a task."""
    return _digest(f"smesh-task:{task_address}:{created_at!r}", 16)


def span_id(trace: int, key: str) -> int:
    """The 64-bit id of the span that produced the signal at ``key`` (an address) in
    ``trace`` (or of another span named by a key: a verification)."""
    return _digest(f"smesh-span:{trace:032x}:{key}", 8)


class ChosenIds:
    """An SDK id generator that hands out one chosen span id when asked to.

    ``ids.start(tracer, span, ...)`` starts a span with the id ``span`` (and, for a span
    without a parent, the trace id ``trace``); any other span gets what the generator it
    wraps gives.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self._next: int | None = None
        self._trace: int | None = None

    @classmethod
    def install(cls, tracer: Any) -> ChosenIds | None:
        """Wrap ``tracer``'s id generator (an SDK tracer's public ``id_generator``); None
        when the tracer has none."""
        current = getattr(tracer, "id_generator", None)
        if current is None:
            return None
        if isinstance(current, ChosenIds):
            return current
        chosen = cls(current)
        tracer.id_generator = chosen
        return chosen

    def start(
        self, tracer: Any, span: int, /, *args: Any, trace: int | None = None, **kwargs: Any
    ) -> Any:
        """``tracer.start_span(*args, **kwargs)`` with the span id ``span`` (and the trace
        id ``trace`` when the span has no parent)."""
        with self._lock:
            self._next, self._trace = span, trace
            try:
                return tracer.start_span(*args, **kwargs)
            finally:
                self._next = self._trace = None

    def generate_span_id(self) -> int:
        chosen = self._next
        if chosen is not None:
            self._next = None
            return chosen
        return int(self.inner.generate_span_id())

    def generate_trace_id(self) -> int:
        chosen = self._trace
        if chosen is not None:
            self._trace = None
            return chosen
        return int(self.inner.generate_trace_id())

    def is_trace_id_random(self) -> bool:
        # derived trace ids are not random (W3C trace-context level 2's "random" flag)
        return False
