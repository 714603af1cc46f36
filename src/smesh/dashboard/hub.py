"""Fan one run's feed out to every open page, throttled and batched.

A :class:`Hub` owns a source and a :class:`~smesh.dashboard.model.RunModel`. Its loop:

* **polls** the source every ``poll_s`` (50 ms; a journal poll that finds nothing costs one
  ``PRAGMA data_version``), applying at most one chunk of rows per turn so a long replay
  never blocks the server;
* **coalesces** for ``batch_s`` (100 ms): one batch carries the raw events of that window,
  capped at ``max_events`` (50: the newest are kept; a ``dropped`` event counts the rest),
  every changed task once, as its *latest* state (a task changed ten times in a window is
  sent once): the ``max_tasks`` (20) most recent in full, the others as compact status
  rows, so no status change is lost however fast the run; the intensity samples; counters;
* **encodes once** and puts the same bytes in every client's queue, so ten tabs cost ten
  socket writes, not ten encodings;
* **drops to snapshot** when a client lags: a client whose queue holds ``queue_batches``
  unread batches (3 s) has it emptied and gets one fresh snapshot instead, built there and
  then so that every batch after it is newer.

So a page receives at most ten messages a second, each bounded in size, whatever the rate
of the run, and a batch leaves within ``poll_s + batch_s`` (≤ 150 ms) of the journal commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from smesh.dashboard.events import FeedEvent, encode_json
from smesh.dashboard.model import RunModel
from smesh.dashboard.sources import Source

__all__ = ["Client", "Hub", "sse_frame"]

_WALL_CLOCK_SLACK = 24 * 3600.0  # a run clock this close to time.time() is wall time


def sse_frame(event: str, data: bytes) -> bytes:
    """One Server-Sent Events frame (``data`` is compact JSON, so one line)."""
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


class Client:
    """One page following a hub: a bounded queue of encoded frames."""

    __slots__ = ("queue", "resyncs")

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=size)
        self.resyncs = 0

    async def next(self, timeout: float) -> bytes | None:
        """The next frame, ``b""`` after ``timeout`` with nothing to send, None at close."""
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return b""


class Hub:
    """One run's model, its source, and the clients that follow it."""

    def __init__(
        self,
        run_id: str,
        source: Source,
        *,
        poll_s: float = 0.05,
        batch_s: float = 0.1,
        max_events: int = 50,
        max_tasks: int = 20,
        queue_batches: int = 30,
    ) -> None:
        self.run_id = run_id
        self.source = source
        self.model = RunModel(run_id, max_events=max_events)
        self.poll_s = poll_s
        self.batch_s = batch_s
        self.max_tasks = max_tasks
        self.queue_batches = queue_batches
        self.clients: set[Client] = set()
        self.batches = 0
        self.dropped = 0
        self.resyncs = 0
        self.last_client = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._synced = asyncio.Event()  # set once the source has nothing more waiting

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start following the source (on the running loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.run_id)

    async def stop(self) -> None:
        """Stop the loop, close every client's stream and the source."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for client in self.clients:
            _force(client, None)
        self.clients.clear()
        self.source.close()

    def end_streams(self) -> None:
        """End every client's stream (the server is going away); the hub keeps running."""
        for client in self.clients:
            _force(client, None)

    async def wait_synced(self, timeout: float) -> bool:
        """Wait until the source has caught up (a replay fully read); False on timeout."""
        try:
            await asyncio.wait_for(self._synced.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def _run(self) -> None:
        last_batch = time.monotonic()
        while not self._stopping:
            more = self.source.poll(self.model)
            if not more:
                self._synced.set()
            now = time.monotonic()
            if now - last_batch >= self.batch_s:
                last_batch = now
                self.flush()
            await asyncio.sleep(0 if more else self.poll_s)

    # -- clients ---------------------------------------------------------------------------

    def connect(self) -> Client:
        """A new client, whose first frame is a snapshot of the run."""
        client = Client(self.queue_batches)
        client.queue.put_nowait(self.snapshot_frame())
        self.clients.add(client)
        self.last_client = time.monotonic()
        return client

    def disconnect(self, client: Client) -> None:
        """Forget ``client``."""
        self.clients.discard(client)
        self.last_client = time.monotonic()

    def snapshot_frame(self) -> bytes:
        """The whole (bounded) state, as one ``snapshot`` frame."""
        return sse_frame("snapshot", encode_json(self.model.snapshot()))

    # -- batching --------------------------------------------------------------------------

    def run_now(self) -> float:
        """The run's clock now: its latest event time, moved on by the wall clock while a
        live run on wall time is quiet (so decay shows between events)."""
        model = self.model
        wall = time.time()
        if model.finished is None and abs(wall - model.now) < _WALL_CLOCK_SLACK:
            return max(model.now, wall)
        return model.now

    def flush(self) -> bytes | None:
        """Build one batch from what changed and queue it for every client."""
        model = self.model
        if model.finished is None and self.clients:
            model.sample(self.run_now())
        events, dropped = model.take_events()  # (kept for a new page's snapshot)
        if not self.clients:
            model.discard_output()  # a new page's snapshot holds all of it
            return None
        tasks = model.take_state() + model.take_tasks(self.max_tasks)
        if not events and not tasks:
            return None  # taken anyway: the model never holds more than one window
        if dropped:
            self.dropped += dropped
            events.append(FeedEvent(type="dropped", kind="events", payload={"count": dropped}))
        message: dict[str, Any] = {
            "now": self.run_now(),
            "seq": model.last_seq,
            "finished": model.finished,
            "stats": model.stats(),
            "events": events + tasks,
        }
        if model.finished is not None and model.page_report is not None:
            message["report"] = model.page_report
        frame = sse_frame("batch", encode_json(message))
        self.batches += 1
        for client in list(self.clients):
            if client.queue.full():
                # lagging: what it has not read is stale; one snapshot replaces all of it
                client.resyncs += 1
                self.resyncs += 1
                _force(client, self.snapshot_frame())
            else:
                client.queue.put_nowait(frame)
        return frame


def _force(client: Client, frame: bytes | None) -> None:
    """Empty ``client``'s queue and put ``frame`` (None: end of stream) in it."""
    while not client.queue.empty():
        client.queue.get_nowait()
    client.queue.put_nowait(frame)
