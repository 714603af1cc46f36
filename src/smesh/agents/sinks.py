"""Where the runtime's typed records go besides the journal: record sinks.

:meth:`Runtime.record <smesh.agents.runtime.Runtime.record>` builds each agent action's record
once (a :class:`~smesh.agents.records.Detail`, see :mod:`smesh.agents.records`) and hands it
to the journal and to every *sink* of the run: a tee. A sink is anything with one method,
``record(now, agent, action, task_id, detail)``. OpenTelemetry spans
(:mod:`smesh.telemetry`), the dashboard's in-process feed and the live metrics of
``--metrics-port`` are sinks; none of them is called from the agents themselves.

Sinks are installed for a whole process, the way OpenTelemetry installs a global tracer
provider: :func:`install` registers a *factory*, and every :class:`~smesh.agents.runtime.Runtime`
created afterwards calls it with itself and keeps the sink it returns (None: nothing for
this run). The factory gets the runtime so that its sink can follow the run's field
(``runtime.field.subscribe``) and read its board. Without a factory installed (the default)
a run has no sinks, and a run without a journal builds no records at all.

A sink's ``record`` runs synchronously on the run's thread, inside the agent's task: it must
be quick and must not raise (an exception would fail the agent's step).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Protocol

from smesh.agents.records import Detail

if TYPE_CHECKING:
    from smesh.agents.runtime import Runtime

__all__ = ["RecordSink", "SinkFactory", "install", "installed", "open_sinks"]


class RecordSink(Protocol):
    """Takes the typed record of every agent action of a run."""

    def record(
        self, now: float, agent: str, action: str, task_id: str | None, detail: Detail
    ) -> None:
        """One action: when (the run's clock), who, what, about which task, and its detail."""
        ...


#: builds the sink of one run (None: no sink for it)
SinkFactory = Callable[["Runtime"], "RecordSink | None"]

_lock = threading.Lock()
_factories: list[SinkFactory] = []


def install(factory: SinkFactory) -> Callable[[], None]:
    """Give every run created from now on the sink ``factory`` builds; returns the undo."""
    with _lock:
        _factories.append(factory)

    def uninstall() -> None:
        with _lock, contextlib.suppress(ValueError):
            _factories.remove(factory)

    return uninstall


@contextlib.contextmanager
def installed(factory: SinkFactory) -> Iterator[None]:
    """:func:`install` ``factory`` for the duration of a block."""
    uninstall = install(factory)
    try:
        yield
    finally:
        uninstall()


def open_sinks(runtime: Runtime) -> list[RecordSink]:
    """The sinks of a new run: what each installed factory builds for ``runtime``."""
    if not _factories:
        return []
    with _lock:
        factories = list(_factories)
    return [sink for factory in factories if (sink := factory(runtime)) is not None]
