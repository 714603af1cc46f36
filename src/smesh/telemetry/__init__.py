"""OpenTelemetry traces of smesh runs (optional extra ``smesh[otel]``; off unless configured).

Nothing is traced, and nothing is sent anywhere, until one of these is done:

* in a program: ``smesh.telemetry.configure(tracer_provider)`` (or ``configure()`` for the
  global provider): every run (every :class:`~smesh.agents.Team`) created afterwards is
  traced through that provider, until the returned function is called;
* on the command line: ``--otel`` or ``SMESH_OTEL=1`` on a run command, which builds a
  provider from the standard ``OTEL_*`` variables (:func:`install_from_env`).

Spans are made from the run's typed records by a record sink (:mod:`smesh.telemetry.spans`;
see :mod:`smesh.agents.sinks`), with ids derived from the task and signal addresses so that
a task's trace is one tree across mesh processes (:mod:`smesh.telemetry.ids`).

Layer: applications (it reads the runtime's records; nothing below imports it).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from smesh.errors import ConfigurationError

__all__ = ["configure", "install_from_env"]

_SHUTDOWN_S = 2.0  # a command's exit waits this long at most for the last spans to go


def configure(tracer_provider: Any = None) -> Callable[[], None]:
    """Trace every run created from now on through ``tracer_provider`` (default: the
    global provider); returns the function that stops it (runs already going keep their
    sink until they end).

    With an SDK provider the span ids are chosen by smesh (its tracer's id generator is
    wrapped: other tracers are not touched), so parents and links resolve across
    processes; with another provider they are random.
    """
    from opentelemetry import trace

    from smesh._version import __version__
    from smesh.agents.sinks import install
    from smesh.telemetry.ids import ChosenIds
    from smesh.telemetry.spans import OtelSink

    provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    tracer = provider.get_tracer("smesh", __version__)
    ids = ChosenIds.install(tracer)
    return install(lambda runtime: OtelSink(tracer, ids, runtime))


def _exporter(name: str) -> Any:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(out=sys.stderr)  # stdout is the command's output
    if name == "otlp":
        protocol = os.environ.get(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        )
        try:
            if protocol == "grpc":
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                    OTLPSpanExporter,
                )
            else:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter,
                )
        except ImportError:
            raise ConfigurationError(
                f"no OTLP exporter for protocol {protocol!r}: pip install 'smesh[otel]'"
                + (" opentelemetry-exporter-otlp-proto-grpc" if protocol == "grpc" else "")
            ) from None
        return OTLPSpanExporter()  # endpoint, headers, timeout: the OTEL_EXPORTER_OTLP_* vars
    raise ConfigurationError(
        f"OTEL_TRACES_EXPORTER={name!r} is not supported here (otlp, console or none)"
    )


def install_from_env() -> Callable[[], None]:
    """Trace the runs of this process as the standard variables say; returns the undo,
    which also flushes what is left (waiting at most ~2 s, never holding up an exit).

    ``OTEL_TRACES_EXPORTER``: ``otlp`` (default; OTLP over HTTP to
    ``OTEL_EXPORTER_OTLP_ENDPOINT``, by default ``http://localhost:4318``), ``console``
    (on stderr) or ``none``; ``OTEL_SERVICE_NAME`` (default ``smesh``) and
    ``OTEL_RESOURCE_ATTRIBUTES`` name the process.

    Raises:
        ConfigurationError: an exporter that is not installed or not known.
    """
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    names = [
        n.strip()
        for n in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")
        if n.strip() and n.strip() != "none"
    ]
    exporters = [_exporter(name) for name in names]
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "smesh"}
    provider = TracerProvider(resource=Resource.create(attributes))
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    stop = configure(provider)

    def undo() -> None:
        stop()
        # an unreachable collector must not hold up the end of the command
        flusher = threading.Thread(target=provider.shutdown, name="smesh-otel", daemon=True)
        flusher.start()
        flusher.join(_SHUTDOWN_S)

    return undo
