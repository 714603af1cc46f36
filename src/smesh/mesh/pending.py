"""Batches waiting for their signature, bounded in bytes, in count and in time.

A batch that reaches us with no MAC we can check (we joined a moment ago, or our key with
its sender expired) waits for the signature note that follows it within milliseconds. What
waits is bounded three ways, the oldest dropped first: in total bytes (``pending_bytes``,
``dropped_pending``), in batches (``pending_count``, ``dropped_pending``) and in time
(``pending_s``, ``dropped_unsigned``). A flood of unsigned batches, however large each one
is, holds at most ``pending_bytes`` here; and since nothing authenticates them yet, they
share a budget of ``pending_bytes_per_s`` (``dropped_pending_rate`` beyond), checked
before they cost even a hash.

Thread-safe: zenoh threads park and release batches concurrently.
"""

from __future__ import annotations

import threading
import time

from smesh.mesh.limits import Limits
from smesh.mesh.quota import Bucket
from smesh.mesh.replica import Counters
from smesh.mesh.wire import Sealed

__all__ = ["PendingBatches", "batch_bytes"]

_OVERHEAD = 160  # bytes a kept batch costs beyond its operations (keys, ids, the struct)


def batch_bytes(sealed: Sealed) -> int:
    """What holding ``sealed`` costs, roughly, in bytes."""
    return len(sealed.ops) + _OVERHEAD + 24 * len(sealed.macs)


class PendingBatches:
    """Parked batches by id, oldest first.

    Args:
        limits: the bounds.
        counters: where dropped batches are counted.
    """

    def __init__(self, limits: Limits, counters: Counters) -> None:
        self._limits = limits
        self._counters = counters
        self._lock = threading.Lock()
        self._batches: dict[str, tuple[Sealed, float, int]] = {}  # id -> (batch, since, size)
        self._bytes = 0
        self._budget = Bucket(limits.pending_bytes_per_s, limits.pending_bytes)

    def admits(self, size: int) -> bool:
        """Take ``size`` bytes from the budget of unauthenticated batches; False if spent."""
        return self._budget.take(size)

    def __len__(self) -> int:
        return len(self._batches)

    @property
    def held_bytes(self) -> int:
        """Bytes held now."""
        return self._bytes

    def park(self, batch_id: str, sealed: Sealed) -> None:
        """Hold a batch until its signature arrives (dropping what is too old, or the oldest
        when full)."""
        size = batch_bytes(sealed)
        limits = self._limits
        if size > limits.pending_bytes:
            self._counters.add("dropped_pending")
            return
        now = time.monotonic()
        stale = full = 0
        with self._lock:
            batches = self._batches
            if batch_id in batches:
                return
            while batches:
                oldest = next(iter(batches))
                _, since, held = batches[oldest]
                if now - since > limits.pending_s:
                    stale += 1
                elif (
                    len(batches) >= limits.pending_count
                    or self._bytes + size > limits.pending_bytes
                ):
                    full += 1
                else:
                    break
                del batches[oldest]
                self._bytes -= held
            batches[batch_id] = (sealed, now, size)
            self._bytes += size
        if stale:
            self._counters.add("dropped_unsigned", stale)
        if full:
            self._counters.add("dropped_pending", full)

    def take(self, batch_ids: list[bytes]) -> list[Sealed]:
        """Remove and return the parked batches among ``batch_ids`` (raw 16-byte ids)."""
        out: list[Sealed] = []
        with self._lock:
            for raw in batch_ids:
                entry = self._batches.pop(raw.hex(), None)
                if entry is not None:
                    out.append(entry[0])
                    self._bytes -= entry[2]
        return out

    def put_back(self, batches: list[tuple[str, Sealed]]) -> None:
        """Park again batches taken for a note that turned out forged."""
        for batch_id, sealed in batches:
            self.park(batch_id, sealed)
