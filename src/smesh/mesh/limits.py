"""The bounds on everything a peer can make a replica hold or do.

Every inbound path is bounded in bytes and in count, so that no peer, honest or not, can grow
a replica without limit or starve the peers it serves. What goes over a bound is dropped and
counted (``dropped_<reason>`` in :meth:`~smesh.mesh.field.MeshField.mesh_stats`), never
raised. The defaults sit far above what honest agents do (a busy node emits hundreds of
signals a second, not thousands) and keep a flooded peer under ~300 MB: see
``docs/mesh.md`` ("Bounds") and ``benchmarks/mesh_floods.py``.
"""

from __future__ import annotations

import msgspec

from smesh.errors import UsageError

__all__ = ["Limits"]


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """How much any peer may make this node hold or do.

    Attributes:
        pending_bytes: batches waiting for their signature (they came with no MAC for us),
            in total bytes; the oldest go first (``dropped_pending``).
        pending_count: the same, in batches.
        pending_bytes_per_s: bytes of such batches taken per second, all senders
            together (``dropped_pending_rate``): they authenticate only later.
        pending_s: how long such a batch may wait (``dropped_unsigned``).
        max_peers: pairwise keys (from hellos) and liveliness tokens kept, each; the
            least recently seen key and the oldest unconfirmed token go first.
        hello_interval_s: how often a node says hello again (it refreshes its key).
        hellos_per_s: new hellos checked per second (each costs two public-key
            operations; one already known costs none); over it, a hello is dropped
            (``dropped_hello_rate``) and its node heard at its next one.
        hellos_burst: the depth of that budget.
        peer_ttl_s: a key not refreshed by a hello for this long expires; a liveliness
            token whose node has not said hello within it is forgotten, never listed as a
            peer (``dropped_silent_peer``).
        signer_ops_per_s: operations per second a signer may have applied here (token
            bucket; ``dropped_quota_ops``).
        signer_ops_burst: the bucket's depth, in operations.
        signer_bytes_per_s: bytes of batches per second a signer may send us.
        signer_bytes_burst: the bucket's depth, in bytes.
        signer_held_ops: operations of one signer this replica keeps at once (its live
            signals and their history; ``dropped_held_quota``).
        inbox_ops: verified operations waiting for the event loop, all signers together
            (``dropped_inbox_full``).
        sync_page_bytes: the most bytes of batches in one page of a sync answer; a late
            joiner asks for the next page.
        sync_bytes_per_s: bytes of sync answers this node serves per second, all askers
            together; over it, an asker is told to come back (``sync_busy``).
        sync_max_bytes: the most bytes a joining node takes from replicas in one sync.
    """

    pending_bytes: int = 16 * 1024 * 1024
    pending_count: int = 4096
    pending_bytes_per_s: float = 8 * 1024 * 1024
    pending_s: float = 5.0
    max_peers: int = 256
    hello_interval_s: float = 5.0
    hellos_per_s: float = 50.0
    hellos_burst: float = 64.0
    peer_ttl_s: float = 16.0
    signer_ops_per_s: float = 5000.0
    signer_ops_burst: float = 20000.0
    signer_bytes_per_s: float = 4 * 1024 * 1024
    signer_bytes_burst: float = 24 * 1024 * 1024
    signer_held_ops: int = 100_000
    inbox_ops: int = 200_000
    sync_page_bytes: int = 4 * 1024 * 1024
    sync_bytes_per_s: float = 32 * 1024 * 1024
    sync_max_bytes: int = 256 * 1024 * 1024

    def __post_init__(self) -> None:
        numbers = [
            self.pending_bytes,
            self.pending_count,
            self.pending_bytes_per_s,
            self.pending_s,
            self.max_peers,
            self.hello_interval_s,
            self.hellos_per_s,
            self.hellos_burst,
            self.peer_ttl_s,
            self.signer_ops_per_s,
            self.signer_ops_burst,
            self.signer_bytes_per_s,
            self.signer_bytes_burst,
            self.signer_held_ops,
            self.inbox_ops,
            self.sync_page_bytes,
            self.sync_bytes_per_s,
            self.sync_max_bytes,
        ]
        if any(value <= 0 for value in numbers):
            raise UsageError("every mesh limit must be positive")
        if self.peer_ttl_s <= self.hello_interval_s:
            raise UsageError("peer_ttl_s must be longer than hello_interval_s")

    @classmethod
    def generous(cls) -> Limits:
        """Quotas that no single benchmark workload reaches (the bounds on what waits and
        on sync pages stay): for measuring the mesh's own throughput, not for a network
        with strangers on it."""
        return cls(
            signer_ops_per_s=1e9,
            signer_ops_burst=1e9,
            signer_bytes_per_s=1e12,
            signer_bytes_burst=1e12,
            signer_held_ops=10_000_000,
            inbox_ops=10_000_000,
        )
