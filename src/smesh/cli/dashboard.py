"""``smesh dashboard``: serve the live web view of the runs in a journal."""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path

import click

from smesh.agents.journal import DEFAULT_JOURNAL

_UI_MODULES = ("starlette", "uvicorn", "prometheus_client")


def _check_port(host: str, port: int) -> None:
    """Fail with one line before serving, not with uvicorn's log, if we cannot bind."""
    if port == 0:
        return
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise click.UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


@click.command("dashboard")
@click.option(
    "--journal",
    "journal_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_JOURNAL,
    show_default=True,
    help="The SQLite journal the runs write.",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind. The page has approve/reject buttons: keep it on loopback.",
)
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="Port."
)
@click.option("--run", "run_id", help="Run to open first (default: the newest).")
def command(journal_path: Path, host: str, port: int, run_id: str | None) -> None:
    """Serve a live web view of the runs in a journal.

    Follows a running run as it writes its journal (updates reach the page within a
    quarter of a second) and replays finished ones: the field's signals as they decay and
    are reinforced, the network of `smesh sim --record` runs, the task board with claims,
    leases, votes and decisions (approve / reject / cancel buttons), trust, the trace of
    every task, cost and pressure. Prometheus metrics are at /metrics. Press Ctrl-C to stop.
    """
    missing = [m for m in _UI_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise click.UsageError(f"the dashboard needs {', '.join(missing)}: pip install 'smesh[ui]'")
    if not journal_path.is_file():
        raise click.UsageError(
            f"no journal at {str(journal_path)!r}; run smesh agents (or smesh sim --record) first"
        )
    from smesh.dashboard.app import Dashboard
    from smesh.dashboard.server import serve

    _check_port(host, port)
    dashboard = Dashboard(journal=journal_path, run=run_id)
    click.echo(f"smesh dashboard on http://{host}:{port}/ (Ctrl-C to stop)", err=True)
    serve(dashboard, host, port)
