"""Per-signer quotas on the live channel: operations and bytes per second, token buckets.

Each signer (a node id, after its batch authenticated: a forger cannot spend someone else's
quota) has two buckets, one of operations and one of bytes, that refill at a steady rate up
to a depth (a burst). A batch that would overdraw either is dropped whole, before it costs
the replica anything (``dropped_quota`` batches, ``dropped_quota_ops`` operations), before
its operations are even decoded (their count is read from the encoding's header). Honest
nodes stay far below the defaults (:class:`~smesh.mesh.limits.Limits`); a node that floods
keeps its burst and its rate, and loses the rest.

The table of signers is bounded (least recently charged forgotten first) and thread-safe.
"""

from __future__ import annotations

import threading
import time

from smesh.mesh.limits import Limits

__all__ = ["Quotas"]

_MAX_SIGNERS = 65536


class _Buckets:
    __slots__ = ("bytes", "ops", "when")

    def __init__(self, ops: float, size: float, when: float) -> None:
        self.ops = ops
        self.bytes = size
        self.when = when


class Quotas:
    """The live channel's per-signer token buckets.

    Args:
        limits: rates and depths.
        capacity: most signers followed at once.
    """

    def __init__(self, limits: Limits, *, capacity: int = _MAX_SIGNERS) -> None:
        self._limits = limits
        self._capacity = capacity
        self._lock = threading.Lock()
        self._signers: dict[str, _Buckets] = {}

    def _refill(self, signer: str, now: float) -> _Buckets:
        limits = self._limits
        buckets = self._signers.pop(signer, None)  # re-inserted last: least recent first
        if buckets is None:
            if len(self._signers) >= self._capacity:
                del self._signers[next(iter(self._signers))]
            buckets = _Buckets(limits.signer_ops_burst, limits.signer_bytes_burst, now)
        else:
            elapsed = now - buckets.when
            buckets.ops = min(
                limits.signer_ops_burst, buckets.ops + elapsed * limits.signer_ops_per_s
            )
            buckets.bytes = min(
                limits.signer_bytes_burst, buckets.bytes + elapsed * limits.signer_bytes_per_s
            )
            buckets.when = now
        self._signers[signer] = buckets
        return buckets

    def take(self, signer: str, ops: int, size: int) -> bool:
        """Charge a batch of ``ops`` operations and ``size`` bytes to ``signer``; False (and
        nothing charged) if either bucket has not got enough."""
        with self._lock:
            buckets = self._refill(signer, time.monotonic())
            if buckets.ops < ops or buckets.bytes < size:
                return False
            buckets.ops -= ops
            buckets.bytes -= size
            return True
