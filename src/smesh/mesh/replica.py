"""The bookkeeping of a replica: event counters, replay windows, its stats.

Small, thread-safe pieces that :class:`smesh.mesh.field.MeshField` uses from zenoh's threads
as well as from its own.
"""

from __future__ import annotations

import threading

import msgspec

__all__ = ["Counters", "MeshStats", "ReplayGuard"]

_WINDOW = 1024  # how many recent sequence numbers per signer are remembered
_MAX_SIGNERS = 65536  # signers whose windows are kept (least recently new forgotten first)


class Counters:
    """Named event counters, safe to bump from any thread."""

    __slots__ = ("_counts", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def add(self, name: str, n: int = 1) -> None:
        """Add ``n`` to counter ``name``."""
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + n

    def get(self, name: str) -> int:
        """The value of counter ``name`` (0 if never bumped)."""
        with self._lock:
            return self._counts.get(name, 0)

    def snapshot(self) -> dict[str, int]:
        """All counters, sorted by name."""
        with self._lock:
            return dict(sorted(self._counts.items()))


class _Window:
    __slots__ = ("epoch", "mask", "top")

    def __init__(self, epoch: int, seq: int) -> None:
        self.epoch = epoch
        self.top = seq
        self.mask = 1


class ReplayGuard:
    """Remembers which ``(epoch, seq)`` each signer has used on the live channel.

    A signer numbers its batches within an *epoch* (one per process start, increasing). A
    batch whose sequence number was already seen, lies more than a window behind the
    newest, or belongs to an older epoch than the newest seen is a replay. Batches may
    arrive out of order within the window (several routes, several threads).
    """

    __slots__ = ("_capacity", "_lock", "_windows")

    def __init__(self, capacity: int = _MAX_SIGNERS) -> None:
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}
        self._capacity = capacity

    def accept(self, signer: str, epoch: int, seq: int) -> bool:
        """Record ``(epoch, seq)`` for ``signer``; False if it is a replay."""
        with self._lock:
            window = self._windows.get(signer)
            if window is None or epoch > window.epoch:
                if window is None and len(self._windows) >= self._capacity:
                    # bounded: signers are only those whose batches authenticated, but
                    # fresh keys cost nothing on a mesh without a CA
                    del self._windows[next(iter(self._windows))]
                self._windows[signer] = _Window(epoch, seq)
                return True
            if epoch < window.epoch:
                return False
            if seq > window.top:
                shift = seq - window.top
                window.mask = ((window.mask << shift) | 1) & ((1 << _WINDOW) - 1)
                window.top = seq
                return True
            behind = window.top - seq
            if behind >= _WINDOW:
                return False
            bit = 1 << behind
            if window.mask & bit:
                return False
            window.mask |= bit
            return True


class MeshStats(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of a node's mesh state.

    Attributes:
        node: this node's id.
        mesh: the mesh name.
        peers: node ids of the peers whose liveliness tokens are up.
        live: signals in the replica.
        entries: addresses with retained operations (live, withdrawn or recently expired).
        batches: signed batches retained (to answer late joiners and prove provenance).
        unsigned: retained batches whose signature has not arrived yet.
        late_join_ms: how long the initial sync took, if there was one.
        counters: received, applied, published and dropped counts (``dropped_<reason>``).
    """

    node: str
    mesh: str
    peers: list[str]
    live: int
    entries: int
    batches: int
    unsigned: int
    late_join_ms: float | None
    counters: dict[str, int]
