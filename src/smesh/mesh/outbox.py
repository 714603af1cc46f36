"""Publication: a node's local operations, queued, then sealed, signed and sent in batches.

Local operations apply to the replica at once and wait here; they go out on the next loop
turn (a field bound to an event loop), at the end of the outermost operation (unbound), or
at once when ``max_batch`` of them are queued. :meth:`Outbox.flush` sends them in batches of
at most ``max_batch`` operations (see :meth:`smesh.mesh.channel.LiveChannel.send`) and hands
each sealed batch back to the field to keep with the records of its operations.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable

from smesh.errors import SmeshError
from smesh.mesh.channel import LiveChannel
from smesh.mesh.merge import EmitRecord, MarkRecord
from smesh.mesh.replica import Counters
from smesh.mesh.wire import Op, Sealed

__all__ = ["Outbox"]

Record = EmitRecord | MarkRecord


class Outbox:
    """The operations a field has yet to publish.

    Args:
        channel: the live channel that seals, signs and sends.
        counters: where published batches and operations are counted.
        max_batch: most operations per batch.
        lock: the field's lock (held by the caller of :meth:`add`).
        keep: called with each sealed batch's id, the batch and its operations' records.
        closed: whether the field has closed (a scheduled flush then does nothing).
    """

    def __init__(
        self,
        channel: LiveChannel,
        counters: Counters,
        *,
        max_batch: int,
        lock: threading.RLock,
        keep: Callable[[str, Sealed, list[Record]], None],
        closed: Callable[[], bool],
    ) -> None:
        self._channel = channel
        self._counters = counters
        self._max_batch = max_batch
        self._lock = lock
        self._keep = keep
        self._closed = closed
        self._ops: list[Op] = []
        self._records: list[Record] = []
        self._scheduled = False

    def __len__(self) -> int:
        return len(self._ops)

    def add(self, op: Op, record: Record) -> None:
        """Queue a local operation (the caller holds the field's lock)."""
        self._ops.append(op)
        self._records.append(record)

    def settle(
        self, *, batching: bool, loop: asyncio.AbstractEventLoop | None, on_loop: bool
    ) -> None:
        """After the outermost operation: send a full batch now, else send (unbound) or
        schedule a send on the loop's next turn, unless inside ``batch()``."""
        pending = len(self._ops)
        if pending >= self._max_batch:
            self.flush()  # a full batch goes out at once, even inside batch()
        elif pending and not batching:
            if loop is None:
                self.flush()
            elif not self._scheduled:
                self._scheduled = True
                if on_loop:
                    loop.call_soon(self._flush_soon)
                else:
                    loop.call_soon_threadsafe(self._flush_soon)

    def _flush_soon(self) -> None:
        self._scheduled = False
        if not self._closed():
            with contextlib.suppress(SmeshError):
                self.flush()

    def flush(self) -> int:
        """Seal, sign and publish the queued operations now; return how many went out."""
        with self._lock:
            ops, self._ops = self._ops, []
            records, self._records = self._records, []
            self._scheduled = False
        if not ops:
            return 0
        step = self._max_batch
        for start in range(0, len(ops), step):
            chunk = ops[start : start + step]
            batch_id, sealed = self._channel.send(chunk)
            self._keep(batch_id, sealed, records[start : start + step])
            self._counters.add("published_batches")
            self._counters.add("published_ops", len(chunk))
        return len(ops)
