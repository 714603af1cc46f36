"""MeshField: one field shared by many processes, with a full replica in each.

A :class:`MeshField` is a :class:`~smesh.field.Field`: agents, boards and teams use it
unchanged. Every local operation is applied to the local replica at once *and* queued for
publication as a signed operation; remote operations are verified, merged into the replica
(see :mod:`smesh.mesh.merge`) and surface as ordinary :class:`~smesh.field.FieldEvent`\\ s.

Threads. Zenoh calls back on its own threads, and a field is not thread-safe. A MeshField
decodes and verifies inbound messages on the zenoh thread (the expensive part, off the event
loop), then hands the verified batches over:

- **bound to an event loop** (:meth:`MeshField.astart`, the agents' case): through a queue
  drained on the loop by one ``loop.call_soon_threadsafe`` per burst, so the replica and
  every subscriber run on the loop thread only, like a local field;
- **without a loop** (:meth:`MeshField.start`): applied at once on the zenoh thread under
  the field's re-entrant lock, which every public method also takes; subscribers then run
  on zenoh threads.

Publication is batched: ops queue up and go out sealed and signed in one message, on the next
loop turn (bound) or at the end of the outermost operation (unbound; group many with
:meth:`MeshField.batch`). A batch never exceeds ``config.max_batch`` operations.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time

from smesh.clock import Clock, SystemClock
from smesh.errors import SmeshError, UsageError
from smesh.mesh.channel import LiveChannel
from smesh.mesh.identity import Identity
from smesh.mesh.inbound import Inbound, ReplicaPort
from smesh.mesh.local import LocalReplica
from smesh.mesh.members import Members
from smesh.mesh.presence import Presence
from smesh.mesh.provenance import Provenance, check_link, trace
from smesh.mesh.replica import Counters, MeshStats
from smesh.mesh.sync import Sync
from smesh.mesh.transport import MeshConfig, PeerLink, Transport

__all__ = ["MeshField"]

_log = logging.getLogger(__name__)


class MeshField(LocalReplica):
    """A field replicated over a zenoh mesh.

    Agent names are scoped under the node: the origin and reinforcer names of every
    operation this node publishes must be ``<node id>/<agent>`` (:meth:`agent_name`), and
    every receiver drops the operations of another node that are not (see
    :mod:`smesh.mesh.identity`). So a signal's origin and reinforcers, on every replica,
    name the node that signed them.

    Args:
        config: how to join the mesh (default: mesh ``smesh``, no endpoints).
        identity: this node's signing key (default: a fresh one; with TLS, it must be the
            key the node's certificate names).
        clock: time source; must be wall time shared by all peers (the default).
        history: how many expired or withdrawn signals to keep.

    Raises:
        UsageError: with TLS, the certificate does not name ``identity``'s key.
    """

    def __init__(
        self,
        config: MeshConfig | None = None,
        *,
        identity: Identity | None = None,
        clock: Clock | None = None,
        history: int = 1000,
    ) -> None:
        config = config if config is not None else MeshConfig()
        self.config = config
        self.identity = identity if identity is not None else Identity.generate()
        tls = config.tls
        self.members = Members(tls.ca if tls else None, allow=config.allow)
        cert = self.members.own(self.identity.public_key, tls.cert) if tls else b""
        channel = LiveChannel(self.identity, config, Counters(), members=self.members, cert=cert)
        super().__init__(
            clock if clock is not None else SystemClock(),
            channel=channel,
            max_batch=config.max_batch,
            history=history,
            gc_grace_s=config.gc_grace_s,
            max_skew_s=config.max_skew_s,
            held_ops=config.limits.signer_held_ops,
        )
        self.codec = channel.codec
        self.sync = Sync(channel)
        self.late_join_ms: float | None = None
        self._presence = Presence(channel.keyring.knows, config.limits, self.counters)
        self._transport: Transport | None = None
        self._synced = False
        port = ReplicaPort(
            loop=lambda: self._loop,
            apply=self._apply_remote,
            apply_part=self._apply_part,
            keep_notes=self._keep_notes,
            servable=self._servable,
            peer_joined=self._peer_joined,
            peer_greeted=self._peer_greeted,
            peer_left=self._peer_left,
        )
        self.inbound = Inbound(port, self.channel, self.sync, self.counters)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> MeshField:
        """Join the mesh without an event loop: open, catch up from replicas, announce.

        Remote operations are then applied on zenoh's threads under the field's lock.

        Raises:
            TransportError: the session could not be opened.
            UsageError: the field has already joined, or was closed.
        """
        self._check_startable()
        try:
            self._open_transport()
            self._catch_up()
            self._announce()
        except BaseException:
            self.close()  # nothing half-open stays behind
            raise
        return self

    async def astart(self) -> MeshField:
        """Join the mesh from a running event loop; remote operations are applied on it.

        Raises:
            TransportError: the session could not be opened.
            UsageError: the field has already joined, or was closed.
        """
        self._check_startable()
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        try:
            await asyncio.to_thread(self._open_transport)
            started = time.perf_counter()
            synced = await asyncio.to_thread(self.sync.fetch)
            self.inbound.apply_synced(synced)
            self.late_join_ms = (time.perf_counter() - started) * 1e3
            await asyncio.to_thread(self._announce)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(self.close))  # nothing half-open stays
            raise
        return self

    def _check_startable(self) -> None:
        # a second start would open a second session whose zenoh callback threads nothing
        # closes (they keep the interpreter from exiting); a closed field stays closed
        if self._transport is not None:
            raise UsageError(f"mesh field {self.node_id} has already joined the mesh")
        if self._closed:
            raise UsageError(f"mesh field {self.node_id} is closed; make a new one")

    def _open_transport(self) -> None:
        self._transport = Transport(
            self.config,
            self.node_id,
            on_batch=self.inbound.on_batch,
            on_query=self.inbound.on_query,
            on_peer=self.inbound.on_peer,
        )
        self._transport.open()
        self.channel.transport = self._transport
        self.channel.start_signer(self.inbound.on_own_note)

    def _announce(self) -> None:
        self._synced = True
        if self._transport is not None:
            self._transport.announce()
            self.channel.say_hello()

    def _catch_up(self) -> None:
        started = time.perf_counter()
        self.inbound.apply_synced(self.sync.fetch())
        self.late_join_ms = (time.perf_counter() - started) * 1e3

    def close(self) -> None:
        """Publish what is pending, leave the mesh and close the session; idempotent."""
        if self._closed:
            return
        with contextlib.suppress(SmeshError):
            self.flush()
        self.channel.stop_signer()  # sign and send what is still unsigned
        self._closed = True
        transport, self._transport = self._transport, None
        self.channel.transport = None
        if transport is not None:
            transport.close()
        self.inbound.join(self.config.sync_timeout_s + 1.0)
        with self._lock:
            self._presence.clear()  # a closed field sees no one

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run (the field takes nothing more from the mesh)."""
        return self._closed

    async def aclose(self) -> None:
        """:meth:`close` without blocking the event loop."""
        await asyncio.to_thread(self.close)

    def __enter__(self) -> MeshField:
        return self if self._transport is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> MeshField:
        return self if self._transport is not None else await self.astart()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- what Inbound may do (its port) ----------------------------------------------------

    def _peer_joined(self, node: str) -> bool:
        """A peer's liveliness token appeared; True if it is newly confirmed (it said hello
        too) to a synced field: ask it for its replica, it may hold what we missed."""
        if self._closed:
            return False
        self.channel.keyring.present(node, True)
        with self._lock:
            confirmed = self._presence.token(node, self.clock.now())
        return self._synced and confirmed

    def _peer_greeted(self, node: str) -> bool:
        """A peer said a new hello; True if that confirms it to a synced field."""
        if self._closed:
            return False
        with self._lock:
            confirmed = self._presence.greeted(node)
        return self._synced and confirmed

    def _peer_left(self, node: str) -> bool:
        """Forget a departed peer and lapse its leases; False once closed."""
        if self._closed:
            return False
        self._enter()
        try:
            self._presence.gone(node)
            self._lapse(node, self.config.lease_kinds)
        finally:
            self._exit()
        return True

    # -- introspection ---------------------------------------------------------------------

    def peers(self) -> list[str]:
        """Node ids of the peers present: their liveliness tokens are up and they said
        hello lately (see :mod:`smesh.mesh.presence`)."""
        with self._lock:
            return self._presence.peers(self.clock.now())

    def links(self) -> list[PeerLink]:
        """This node's live zenoh links."""
        transport = self._transport
        return transport.links() if transport is not None else []

    def mesh_stats(self) -> MeshStats:
        """Counters and sizes of this replica."""
        with self._lock:
            return MeshStats(
                node=self.node_id,
                mesh=self.config.mesh,
                peers=self._presence.peers(self.clock.now()),
                live=len(self),
                entries=len(self._entries),
                batches=len(self._store),
                unsigned=self._store.unsigned(),
                late_join_ms=None if self.late_join_ms is None else round(self.late_join_ms, 3),
                counters=self.counters.snapshot(),
            )

    def provenance(self, address: str) -> Provenance | None:
        """The signed operations behind the live signal at ``address``, or None."""
        with self._lock:
            signal = self._held(address)
            entry = self._entries.get(address)
            if signal is None or entry is None:
                return None
            return trace(address, signal, entry, self._state(address, entry))

    def verify_provenance(self, address: str) -> bool:
        """Re-check every signature behind the signal at ``address`` from the retained
        batches: each link's batch must verify, be signed by the link's node, and carry
        the link's operation. False if anything is missing or does not check."""
        self.flush()  # our own operations must be sealed, and signed, to be checked
        note = self.channel.sign_pending()
        if note is not None:
            self._keep_notes([note], True)
        record = self.provenance(address)
        if record is None:
            return False
        links = [record.emitter, *record.reinforcers]
        if record.renewal is not None:
            links.append(record.renewal)
        for link in links:
            with self._lock:
                proof = self._store.proof(link.batch) if link.batch is not None else None
            if proof is None or not check_link(address, link, proof, self.channel):
                return False
        return True
