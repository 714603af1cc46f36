"""Watching a run while it runs: ``--dashboard``, ``--metrics-port`` and ``--otel``.

Every command that runs a team (``agents``, ``review``, ``swarm``, ``code``, ``node``) takes
the three flags (:func:`observe_options`, received as one ``observe`` argument, an
:class:`ObserveFlags`) and wraps its run in :func:`observing`:

- ``--dashboard`` serves the dashboard on 127.0.0.1 (a free port, printed on stderr) from a
  thread of its own, following the run's journal (``node``, which keeps none: its field and
  records, through a record sink); it stops with the run, Ctrl-C included;
- ``--metrics-port N`` serves the run's Prometheus metrics on 127.0.0.1:N, computed when
  scraped from the same journal (or sink);
- ``--otel`` (or ``SMESH_OTEL=1``) installs the OpenTelemetry sink of
  :mod:`smesh.telemetry` for the run's teams, exporting where the ``OTEL_*`` variables say.

A missing extra or a port that cannot be bound is a usage error before anything loads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.util
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from smesh.cli._stop import trace_stop

__all__ = ["ObserveFlags", "observe_options", "observing"]

T = TypeVar("T")
_UI_MODULES = ("starlette", "uvicorn", "prometheus_client")
_STOP_S = 2.0  # the dashboard's server gets this long to stop (Ctrl-C's hard stop is 4 s)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ObserveFlags:
    """``--dashboard``, ``--metrics-port`` and ``--otel`` as one value.

    Attributes:
        dashboard: serve the dashboard alongside the run.
        metrics_port: serve Prometheus metrics on this port (None: not at all).
        otel: export OpenTelemetry traces (``--otel`` or ``SMESH_OTEL=1``).
    """

    dashboard: bool = False
    metrics_port: int | None = None
    otel: bool = False

    def check(self) -> None:
        """Refuse, before anything loads, what cannot work: a missing extra, a busy port.

        Raises:
            click.UsageError: with one line saying what to do.
        """
        if self.dashboard or self.metrics_port is not None:
            missing = [m for m in _UI_MODULES if importlib.util.find_spec(m) is None]
            if missing:
                flag = "--dashboard" if self.dashboard else "--metrics-port"
                raise click.UsageError(
                    f"{flag} needs {', '.join(missing)}: pip install 'smesh[ui]'"
                )
        if self.metrics_port is not None:
            check_port("127.0.0.1", self.metrics_port)
        if self.otel and importlib.util.find_spec("opentelemetry.sdk") is None:
            raise click.UsageError("--otel needs the OpenTelemetry SDK: pip install 'smesh[otel]'")


def check_port(host: str, port: int) -> None:
    """Fail with one line before serving, not with a server's log, if ``port`` is busy."""
    if port == 0:
        return
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise click.UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def observe_options(func: Callable[..., T]) -> Callable[..., T]:
    """Add ``--dashboard``, ``--metrics-port`` and ``--otel``; the command receives them as
    one ``observe`` argument, an :class:`ObserveFlags` (already checked)."""

    @functools.wraps(func)
    def command(
        *args: Any, dashboard: bool, metrics_port: int | None, otel: bool, **kwargs: Any
    ) -> T:
        flags = ObserveFlags(
            dashboard=dashboard,
            metrics_port=metrics_port,
            otel=otel or os.environ.get("SMESH_OTEL", "").strip() in ("1", "true", "yes"),
        )
        flags.check()
        return func(*args, observe=flags, **kwargs)

    options = (
        click.option(
            "--dashboard",
            is_flag=True,
            help="Serve the live dashboard while the run runs (127.0.0.1, a free port; the "
            "URL is printed on stderr). It stops with the run. Needs smesh[ui].",
        ),
        click.option(
            "--metrics-port",
            type=click.IntRange(1, 65535),
            default=None,
            metavar="PORT",
            help="Serve the run's Prometheus metrics on 127.0.0.1:PORT/metrics while it runs. "
            "Needs smesh[ui].",
        ),
        click.option(
            "--otel",
            is_flag=True,
            help="Export OpenTelemetry traces of the run (GenAI conventions) to the exporter "
            "the OTEL_* variables name (default: OTLP over HTTP to localhost:4318); also "
            "SMESH_OTEL=1. Needs smesh[otel].",
        ),
    )
    decorated: Callable[..., T] = command
    for option in reversed(options):
        decorated = option(decorated)
    return decorated


@contextlib.contextmanager
def observing(
    flags: ObserveFlags, *, journal: Path | None = None, run_id: str | None = None
) -> Iterator[None]:
    """Serve the dashboard and the metrics and install telemetry for the block.

    Args:
        flags: what to do.
        journal: the run's journal (None: follow the run in-process, through a sink).
        run_id: the run's id (in the journal); the in-process feed's name otherwise.
    """
    if not (flags.dashboard or flags.metrics_port is not None or flags.otel):
        yield
        return
    with contextlib.ExitStack() as stack:
        if flags.otel:
            from smesh.telemetry import install_from_env

            stack.callback(install_from_env())
        if flags.metrics_port is not None:
            _serve_metrics(stack, flags.metrics_port, journal, run_id)
        if flags.dashboard:
            _serve_dashboard(stack, journal, run_id)
        yield
        trace_stop("stopping the dashboard")


def _feed(stack: contextlib.ExitStack, run_id: str | None) -> Any:
    """An in-process feed of the next run (a record sink following its field)."""
    from smesh.agents.sinks import install
    from smesh.dashboard.sources import DashboardFeed

    feed = DashboardFeed(run_id or "live")
    stack.callback(install(feed.follow))
    return feed


def _serve_metrics(
    stack: contextlib.ExitStack, port: int, journal: Path | None, run_id: str | None
) -> None:
    from smesh.dashboard.metrics import MetricsServer, RunMetrics
    from smesh.dashboard.sources import JournalSource

    if journal is not None and run_id is not None:
        metrics = RunMetrics(JournalSource(journal, run_id), run_id)
    else:
        feed = _feed(stack, run_id)
        metrics = RunMetrics(feed, feed.run_id, drain_s=1.0)
    stack.callback(metrics.close)
    server = MetricsServer(lambda: [metrics], port)
    stack.callback(server.stop)
    click.echo(f"smesh: metrics at {server.url}", err=True)


def _serve_dashboard(stack: contextlib.ExitStack, journal: Path | None, run_id: str | None) -> None:
    from smesh.dashboard.app import Dashboard
    from smesh.dashboard.server import DashboardServer

    if journal is not None:
        dashboard = Dashboard(journal=journal, run=run_id)
        later = f"; afterwards: smesh dashboard --journal {journal} --run {run_id}"
    else:
        feed = _feed(stack, run_id)
        dashboard = Dashboard(feed=feed, run=feed.run_id)
        later = ""
    server = DashboardServer(dashboard).start()
    stack.callback(server.stop, _STOP_S)
    click.echo(f"smesh: dashboard at {server.url}/ (it stops with the run{later})", err=True)
