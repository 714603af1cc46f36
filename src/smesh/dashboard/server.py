"""Serving the dashboard with uvicorn: in the foreground (the CLI) or from a thread.

:class:`DashboardServer` runs uvicorn on its own event loop in a daemon thread, so a run
(or a test) keeps its loop to itself; ``port=0`` picks a free port and :attr:`url` says
which. Stopping ends the streams first, so uvicorn's graceful shutdown has nothing to wait
for.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import time
from types import FrameType
from typing import Any

import uvicorn

from smesh.dashboard.app import Dashboard
from smesh.errors import SmeshError

__all__ = ["DashboardServer", "serve"]

_GRACE_S = 1  # open streams get this long at shutdown before they are cut
_GC_YOUNG = 50_000  # allocations between young collections in the dashboard's own process


def _config(dashboard: Dashboard, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        dashboard.app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=_GRACE_S,
    )


class _Server(uvicorn.Server):
    """uvicorn's server, ending the dashboard's streams as soon as it is told to exit (so
    open pages do not hold the shutdown until they are cut off)."""

    def __init__(self, config: uvicorn.Config, dashboard: Dashboard) -> None:
        super().__init__(config)
        self.dashboard = dashboard
        self.loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: Any = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.dashboard.end_streams)


def serve(dashboard: Dashboard, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve in the foreground until interrupted (Ctrl-C).

    The process is the dashboard's alone, so it tunes the garbage collector for a read
    model that grows by a few objects per journal row: what the imports left is frozen
    (never scanned again) and young collections run every 50,000 allocations rather than
    700 (with the defaults the collector took about a third of the feed's CPU on a
    10,000-agent run; see benchmarks/RESULTS.md).
    """
    gc.freeze()
    gc.set_threshold(_GC_YOUNG, *gc.get_threshold()[1:])
    server = _Server(_config(dashboard, host, port), dashboard)
    server.run()
    if not server.started:
        raise SmeshError(f"could not serve on {host}:{port} (is the port in use?)")


class DashboardServer:
    """The dashboard served from a background thread.

    Args:
        dashboard: the application.
        host: address to bind (loopback by default; the page has buttons).
        port: port, or 0 for a free one.
    """

    def __init__(self, dashboard: Dashboard, host: str = "127.0.0.1", port: int = 0) -> None:
        self.dashboard = dashboard
        self.host = host
        self.server = uvicorn.Server(_config(dashboard, host, port))
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.port = port

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:41234``."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> DashboardServer:
        """Start serving; returns once the socket listens."""

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self.server.serve())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="smesh-dashboard", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise SmeshError(f"the dashboard did not start on {self.host}:{self.port}")
            time.sleep(0.01)
        sockets: Any = self.server.servers[0].sockets
        self.port = int(sockets[0].getsockname()[1])
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """End every stream, stop the server and join its thread. Safe to call twice."""
        loop = self._loop
        if loop is not None and loop.is_running():
            future = asyncio.run_coroutine_threadsafe(self.dashboard.close(), loop)
            with contextlib.suppress(Exception):  # the server stops below anyway
                future.result(timeout)
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> DashboardServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
