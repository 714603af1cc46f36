"""Per-signer quotas on the live channel: operations and bytes per second, token buckets.

Each signer (a node id, after its batch authenticated: a forger cannot spend someone else's
quota) has two buckets, one of operations and one of bytes, that refill at a steady rate up
to a depth (a burst). A batch that would overdraw either is dropped whole, before it costs
the replica anything (``dropped_quota`` batches, ``dropped_quota_ops`` operations), before
its operations are even decoded (their count is read from the encoding's header). Honest
nodes stay far below the defaults (:class:`~smesh.mesh.limits.Limits`); a node that floods
keeps its burst and its rate, and loses the rest.

The table of signers is bounded (the longest followed forgotten first) and thread-safe.
"""

from __future__ import annotations

import threading
import time

from smesh.mesh.limits import Limits

__all__ = ["Bucket", "Quotas"]

_MAX_SIGNERS = 65536


class Bucket:
    """One token bucket: ``rate`` tokens a second, at most ``depth`` saved (thread-safe).

    Args:
        rate: tokens added per second.
        depth: most tokens held (it starts full).
    """

    __slots__ = ("_depth", "_lock", "_rate", "_tokens", "_when")

    def __init__(self, rate: float, depth: float) -> None:
        self._rate = rate
        self._depth = depth
        self._tokens = depth
        self._when = time.monotonic()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self._depth, self._tokens + (now - self._when) * self._rate)
        self._when = now

    def take(self, n: float = 1.0) -> bool:
        """Take ``n`` tokens; False (and none taken) if there are not that many."""
        with self._lock:
            self._refill()
            if self._tokens < n:
                return False
            self._tokens -= n
            return True

    def positive(self) -> bool:
        """Whether any token is left (a debt may be run up with :meth:`spend`)."""
        with self._lock:
            self._refill()
            return self._tokens > 0

    def spend(self, n: float) -> None:
        """Take ``n`` tokens even if that leaves the bucket in debt."""
        with self._lock:
            self._refill()
            self._tokens -= n


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
        buckets = self._signers.get(signer)
        if buckets is None:
            if len(self._signers) >= self._capacity:
                del self._signers[next(iter(self._signers))]  # the longest followed
            buckets = self._signers[signer] = _Buckets(
                limits.signer_ops_burst, limits.signer_bytes_burst, now
            )
        else:
            elapsed = now - buckets.when
            buckets.ops = min(
                limits.signer_ops_burst, buckets.ops + elapsed * limits.signer_ops_per_s
            )
            buckets.bytes = min(
                limits.signer_bytes_burst, buckets.bytes + elapsed * limits.signer_bytes_per_s
            )
            buckets.when = now
        return buckets

    def affords(self, signer: str, ops: int, size: int) -> bool:
        """Whether ``signer`` has ``ops`` operations and ``size`` bytes left (charges
        nothing: the batch has not authenticated yet)."""
        # no lock: a stale read only makes a pre-check (the charge itself is locked) a
        # moment early or late
        limits = self._limits
        buckets = self._signers.get(signer)
        if buckets is None:
            return ops <= limits.signer_ops_burst and size <= limits.signer_bytes_burst
        elapsed = time.monotonic() - buckets.when
        return (
            buckets.ops + elapsed * limits.signer_ops_per_s >= ops
            and buckets.bytes + elapsed * limits.signer_bytes_per_s >= size
        )

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
