"""The dashboard's web application (Starlette).

Endpoints (all JSON unless said):

=======================================  ==================================================
``GET /``                                the page (assets under ``/static``, all packaged)
``GET /api/runs``                        runs in the journal and the live feed, newest first
``GET /api/runs/{run}/feed``             Server-Sent Events: one ``snapshot``, then
                                         ``batch`` messages (see hub.py); ``{run}`` may be
                                         ``latest``
``GET /api/runs/{run}/network``          a sim run's network and every frame so far
                                         (``network`` null, with a ``note``, for others)
``GET /api/runs/{run}/tasks/{task}``     one task in full, with its story (as smesh trace)
``POST /api/runs/{run}/tasks/{task}/{verb}``  approve, reject or cancel (see controls.py);
                                         body ``{"reason", "attempt"}`` (JSON)
``GET /metrics``                         Prometheus text format (see metrics.py)
=======================================  ==================================================

Posts are refused (403) unless they carry ``Content-Type: application/json`` and, when the
browser sends an ``Origin``, one equal to this server's: another site open in the same
browser cannot press the buttons through the user's loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from smesh.agents.story import describe
from smesh.dashboard.controls import VERBS, Control, ControlSink, JournalControls
from smesh.dashboard.events import encode_json
from smesh.dashboard.hub import Hub
from smesh.dashboard.metrics import metrics_registry
from smesh.dashboard.sources import DashboardFeed, JournalSource, JournalTail
from smesh.errors import SmeshError, UsageError

__all__ = ["Dashboard"]

STATIC = Path(__file__).parent / "static"
_IDLE_HUB_S = 60.0  # a hub nobody has watched for this long is closed (except pinned ones)
_PING_S = 15.0
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_TRACE_ROWS = 5000


class Dashboard:
    """The dashboard over a journal, a live in-process feed, or both.

    Args:
        journal: a journal file to follow (runs written by any process).
        run: the run to open first (default: the live feed's, else the newest).
        feed: an in-process feed (a run started with ``--dashboard``).
        controls: where approve/reject/cancel go (default: into the journal).
        hub_options: passed to every :class:`Hub` (poll_s, batch_s, max_events ...).
    """

    def __init__(
        self,
        *,
        journal: str | Path | None = None,
        run: str | None = None,
        feed: DashboardFeed | None = None,
        controls: ControlSink | None = None,
        **hub_options: Any,
    ) -> None:
        if journal is None and feed is None:
            raise UsageError("the dashboard needs a journal or a live feed")
        self.journal = Path(journal) if journal is not None else None
        self.tail = JournalTail(self.journal) if self.journal is not None else None
        self.feed = feed
        self.controls = controls
        if controls is None and self.journal is not None:
            self.controls = JournalControls(self.journal)
        live = feed is not None and feed.run_id == run
        if run is not None and self.tail is not None and self.tail.run(run) is None and not live:
            raise UsageError(f"no run {run!r} in journal {str(self.journal)!r}")
        self.default_run = run
        self.hub_options = hub_options
        self.hubs: dict[str, Hub] = {}
        self._pinned: set[str] = set()
        self._reaper: asyncio.Task[None] | None = None
        self.registry = metrics_registry(lambda: list(self.hubs.values()))
        self.app = Starlette(
            routes=[
                Route("/", self.index),
                Route("/api/runs", self.runs),
                Route("/api/runs/{run}/feed", self.stream),
                Route("/api/runs/{run}/network", self.network),
                Route("/api/runs/{run}/tasks/{task}", self.task),
                Route("/api/runs/{run}/tasks/{task}/{verb}", self.control, methods=["POST"]),
                Route("/metrics", self.metrics),
                Route("/healthz", self.health),
                Mount("/static", StaticFiles(directory=STATIC), name="static"),
            ],
            lifespan=self._lifespan,
        )

    # -- lifecycle -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        first = self.default_run or (self.feed.run_id if self.feed is not None else None)
        if first is None and self.tail is not None:
            first = self.tail.latest()
        if first is not None:
            self.hub(first)
            self._pinned.add(first)  # followed from the start: the page opens on it at once
        self._reaper = asyncio.get_running_loop().create_task(self._reap())
        try:
            yield
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop every hub (ending every stream) and close the journal."""
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        hubs, self.hubs = list(self.hubs.values()), {}
        for hub in hubs:
            await hub.stop()
        if self.tail is not None:
            self.tail.close()
            self.tail = None

    def end_streams(self) -> None:
        """End every open stream now (at shutdown, so that nothing is left to cut)."""
        for hub in list(self.hubs.values()):
            hub.end_streams()

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(5.0)
            now = time.monotonic()
            for run_id, hub in list(self.hubs.items()):
                idle = not hub.clients and now - hub.last_client > _IDLE_HUB_S
                if idle and run_id not in self._pinned:
                    del self.hubs[run_id]
                    await hub.stop()

    def resolve(self, run: str) -> str:
        """A run id (``latest``: the live feed's, else the newest in the journal)."""
        if run == "latest":
            if self.feed is not None:
                return self.feed.run_id
            latest = self.tail.latest() if self.tail is not None else None
            if latest is None:
                raise UsageError("the journal holds no runs yet")
            return latest
        return run

    def hub(self, run_id: str) -> Hub:
        """The hub following ``run_id``, started on first use."""
        hub = self.hubs.get(run_id)
        if hub is None:
            if self.feed is not None and run_id == self.feed.run_id:
                hub = Hub(run_id, self.feed, **self.hub_options)
            elif self.journal is not None:
                hub = Hub(run_id, JournalSource(self.journal, run_id), **self.hub_options)
            else:
                raise UsageError(f"no run {run_id!r}")
            self.hubs[run_id] = hub
            hub.start()
        return hub

    # -- endpoints -------------------------------------------------------------------------

    async def index(self, request: Request) -> Response:
        return FileResponse(
            STATIC / "index.html",
            headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-store"},
        )

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True, "hubs": sorted(self.hubs)})

    async def runs(self, request: Request) -> Response:
        runs = self.tail.runs() if self.tail is not None else []
        if self.feed is not None and all(r["run_id"] != self.feed.run_id for r in runs):
            runs.insert(0, {"run_id": self.feed.run_id, "started": None, "finished": None})
        return _json({"runs": runs, "default": self.default_run})

    async def stream(self, request: Request) -> Response:
        try:
            hub = self.hub(self.resolve(request.path_params["run"]))
        except SmeshError as exc:
            return _error(404, str(exc))
        client = hub.connect()

        async def frames() -> AsyncIterator[bytes]:
            try:
                yield b"retry: 1000\n\n"
                while True:
                    frame = await client.next(_PING_S)
                    if frame is None:  # the hub stopped
                        return
                    yield frame or b": ping\n\n"
            finally:
                hub.disconnect(client)

        return StreamingResponse(
            frames(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def network(self, request: Request) -> Response:
        try:
            hub = self.hub(self.resolve(request.path_params["run"]))
        except SmeshError as exc:
            return _error(404, str(exc))
        await hub.wait_synced(2.0)
        network = hub.model.meta.get("network")
        if network is None:  # not an error: most runs are not simulations
            note = "this run has no network: record one with smesh sim --record JOURNAL"
            return _json({"network": None, "frames": [], "note": note})
        return _json({"network": network, "frames": hub.model.frames})

    async def task(self, request: Request) -> Response:
        try:
            run_id = self.resolve(request.path_params["run"])
            hub = self.hub(run_id)
        except SmeshError as exc:
            return _error(404, str(exc))
        task_id = request.path_params["task"]
        view = hub.model.tasks.get(task_id)
        story = list(self._story(run_id, task_id))
        if view is None and not story:
            return _error(404, f"no task {task_id!r} in run {run_id}")
        body = view.to_json(hub.model.trust_of) if view is not None else None
        return _json({"run_id": run_id, "task": body, "story": story})

    def _story(self, run_id: str, task_id: str) -> Iterator[dict[str, Any]]:
        if self.tail is None:
            return
        for seq, t, agent, action, _, detail in self.tail.actions_after(
            run_id, 0, _TRACE_ROWS, task_id
        ):
            parsed = msgspec.json.decode(detail) if detail else {}
            text = describe(action, parsed) if isinstance(parsed, dict) else str(parsed)
            yield {"seq": seq, "t": t, "agent": agent, "action": action, "text": text}

    async def control(self, request: Request) -> Response:
        if not _same_origin(request):
            return _error(403, "refused: not a same-origin JSON request")
        verb = request.path_params["verb"]
        if verb not in VERBS:
            return _error(404, f"unknown control {verb!r} (one of {', '.join(VERBS)})")
        if self.controls is None:
            return _error(409, "this dashboard has nowhere to send controls")
        try:
            body = msgspec.json.decode(await request.body() or b"{}")
            run_id = self.resolve(request.path_params["run"])
            hub = self.hub(run_id)
            task_id = request.path_params["task"]
            if task_id not in hub.model.tasks:
                return _error(404, f"no task {task_id!r} in run {run_id}")
            control = Control(
                verb=verb,
                run_id=run_id,
                task_id=task_id,
                attempt=body.get("attempt") if isinstance(body, dict) else None,
                reason=str(body.get("reason", "")) if isinstance(body, dict) else "",
            )
            recorded = await asyncio.to_thread(self.controls.submit, control, hub.run_now())
        except (msgspec.DecodeError, msgspec.ValidationError, TypeError) as exc:
            return _error(400, f"bad request: {exc}")
        except SmeshError as exc:
            return _error(400, str(exc))
        return _json({"ok": True, "recorded": recorded})

    async def metrics(self, request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


def _json(value: Any, status: int = 200) -> Response:
    return Response(encode_json(value), status_code=status, media_type="application/json")


def _error(status: int, message: str) -> Response:
    return _json({"error": message}, status)


def _same_origin(request: Request) -> bool:
    """A JSON post from this server's own page (browsers cannot send cross-site JSON without
    a preflight we never answer, and they always send ``Origin`` on a cross-site post)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return False
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host")
