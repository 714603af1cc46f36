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
import math
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import msgspec

from smesh.clock import Clock, SystemClock
from smesh.errors import InvalidSignal, NotPermitted, SignalNotFound, SmeshError
from smesh.mesh.channel import LiveChannel
from smesh.mesh.identity import Identity
from smesh.mesh.inbound import Inbound, ReplicaPort
from smesh.mesh.merge import EmitRecord, Entry, MarkRecord, merge_op
from smesh.mesh.provenance import Provenance, check_link, trace
from smesh.mesh.replica import MeshStats
from smesh.mesh.replica_field import ReplicaField
from smesh.mesh.transport import MeshConfig, PeerLink, Transport
from smesh.mesh.wire import Op, ReinforceOp, RenewOp, WithdrawOp, emit_op
from smesh.signal import Signal

__all__ = ["MeshField"]

_log = logging.getLogger(__name__)


class MeshField(ReplicaField):
    """A field replicated over a zenoh mesh.

    Args:
        config: how to join the mesh (default: mesh ``smesh``, no endpoints).
        identity: this node's signing key (default: a fresh one).
        clock: time source; must be wall time shared by all peers (the default).
        history: how many expired or withdrawn signals to keep.
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
        super().__init__(
            clock if clock is not None else SystemClock(),
            history=history,
            gc_grace_s=config.gc_grace_s,
            max_skew_s=config.max_skew_s,
        )
        self.config = config
        self.identity = identity if identity is not None else Identity.generate()
        self.node_id = self.identity.node_id
        self.channel = LiveChannel(self.identity, self.config, self.counters)
        self.codec = self.channel.codec
        self.late_join_ms: float | None = None
        self._depth = 0
        self._batching = 0
        self._outbox: list[Op] = []
        self._unsealed: list[EmitRecord | MarkRecord] = []
        self._flush_scheduled = False
        self._peers: dict[str, float] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._transport: Transport | None = None
        self._synced = False
        port = ReplicaPort(
            loop=lambda: self._loop,
            apply=self._apply_remote,
            keep_notes=self._keep_notes,
            servable=self._servable,
            peer_joined=self._peer_joined,
            peer_left=self._peer_left,
        )
        self.inbound = Inbound(port, self.channel, self.counters)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> MeshField:
        """Join the mesh without an event loop: open, catch up from replicas, announce.

        Remote operations are then applied on zenoh's threads under the field's lock.

        Raises:
            TransportError: the session could not be opened.
        """
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
        """
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        try:
            await asyncio.to_thread(self._open_transport)
            started = time.perf_counter()
            synced = await asyncio.to_thread(self.channel.fetch)
            self.inbound.apply_synced(synced)
            self.late_join_ms = (time.perf_counter() - started) * 1e3
            await asyncio.to_thread(self._announce)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(self.close))  # nothing half-open stays
            raise
        return self

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
        self.inbound.apply_synced(self.channel.fetch())
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
            self._peers.clear()  # a closed field sees no one

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run (the field takes nothing more from the mesh)."""
        return self._closed

    async def aclose(self) -> None:
        """:meth:`close` without blocking the event loop."""
        await asyncio.to_thread(self.close)

    def __enter__(self) -> MeshField:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> MeshField:
        return await self.astart()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- local operations ------------------------------------------------------------------

    def _enter(self) -> None:
        self._lock.acquire()
        self._depth += 1

    def _exit(self) -> None:
        self._depth -= 1
        outer = self._depth == 0
        pending = len(self._outbox)
        self._lock.release()
        if outer and pending >= self.config.max_batch:
            self.flush()  # a full batch goes out at once, even inside batch()
        elif outer and pending and not self._batching:
            if self._loop is None:
                self.flush()
            elif not self._flush_scheduled:
                self._flush_scheduled = True
                if threading.get_ident() == self._loop_thread:
                    self._loop.call_soon(self._flush_soon)
                else:
                    self._loop.call_soon_threadsafe(self._flush_soon)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group the operations inside into as few signed batches as possible."""
        with self._lock:
            self._batching += 1
        try:
            yield
        finally:
            with self._lock:
                self._batching -= 1
                done = self._batching == 0
            if done:
                self.flush()

    def _local(self, address: str, op: Op, signal: Signal | None, by: str | None) -> None:
        entry = self._entry(address)
        record = merge_op(entry, op, self.node_id, None, signal)
        if record is not None:
            self._outbox.append(op)
            self._unsealed.append(record)
        self._settle(address, entry, by, local=True)

    def emit(self, signal: Signal | str, payload: Any = None, /, **options: Any) -> Signal:
        """As :meth:`Field.emit`; the emit is also published to the mesh.

        Raises:
            InvalidSignal: as for a local field, or a custom decay (it cannot travel).
        """
        if not isinstance(signal, Signal):
            signal = self.new_signal(signal, payload, **options)
        elif payload is not None or options:
            raise InvalidSignal("emit(Signal) takes no payload or options")
        self._enter()
        try:
            address = signal.address
            live = self._held(address)
            if live is not None and live.is_expired(self.clock.now()):
                # past its expiry, not yet ticked: gone, as in a local field; this is new
                self._settle(address, self._entry(address), None, local=True)
                live = None
            if live is not None and (
                signal.origin == live.origin or signal.origin in live.reinforcers
            ):
                return live  # a local field would count nothing either
            entry = self._entries.get(address)
            if entry is None:  # the common case: a new address, nothing to merge
                op = emit_op(signal)
                record = EmitRecord(signal, self.node_id, None)
                self._entries[address] = Entry(record)
                self._outbox.append(op)
                self._unsealed.append(record)
                self._admit(signal, local=True)
                return signal
            cut = self._state(address, entry).cut
            if signal.created_at <= cut:  # a re-emit must come after its withdrawal
                signal = msgspec.structs.replace(signal, created_at=_after(cut, signal.created_at))
            self._local(address, emit_op(signal), signal, signal.origin)
            current = self._held(address)
            return current if current is not None else signal
        finally:
            self._exit()

    def emit_many(self, signals: Iterable[Signal]) -> int:
        """Emit many signals in as few batches as possible; return how many were new."""
        fresh = 0
        with self.batch():
            for signal in signals:
                new = self._held(signal.address) is None
                self.emit(signal)
                fresh += new
        return fresh

    def reinforce(self, address: str, *, by: str) -> bool:
        """As :meth:`Field.reinforce`; the reinforcement is signed and published."""
        self._enter()
        try:
            signal = self._get_live(address)
            if by == signal.origin or by in signal.reinforcers:
                return False
            now = self.clock.now()
            self._local(address, ReinforceOp(address=address, by=by, at=now), None, by)
            return True
        finally:
            self._exit()

    def _own(self, address: str, by: str, action: str) -> tuple[Signal, Entry]:
        signal = self._get_live(address)
        if signal.is_expired(self.clock.now()):  # gone, as in a local field: expire it now
            self._settle(address, self._entry(address), None, local=True)
            raise SignalNotFound(f"no live signal at address {address}", signal=address)
        if by != signal.origin:
            raise NotPermitted(
                f"{by} cannot {action} a signal emitted by {signal.origin}",
                node=by,
                signal=address,
            )
        entry = self._entry(address)
        state = self._state(address, entry)
        if state.record is None or state.record.signer != self.node_id:
            signer = state.record.signer if state.record is not None else "?"
            raise NotPermitted(
                f"only node {signer}, which emitted it, may {action} this signal",
                node=self.node_id,
                signal=address,
            )
        return signal, entry

    def withdraw(self, address: str, *, by: str) -> Signal:
        """As :meth:`Field.withdraw`; the withdrawal is published as a tombstone.

        Raises:
            SignalNotFound: no live signal has this address.
            NotPermitted: ``by`` is not its origin, or another node emitted it.
        """
        self._enter()
        try:
            signal, entry = self._own(address, by, "withdraw")
            # the tombstone must cover every operation this replica has seen
            at = max(self.clock.now(), entry.latest_time())
            self._local(address, WithdrawOp(address=address, by=by, at=at), None, by)
            return signal
        finally:
            self._exit()

    def renew(self, address: str, *, by: str) -> Signal:
        """As :meth:`Field.renew`; the renewal is published.

        Raises:
            SignalNotFound: no live signal has this address.
            NotPermitted: ``by`` is not its origin, or another node emitted it.
        """
        self._enter()
        try:
            signal, _ = self._own(address, by, "renew")
            now = self.clock.now()
            self._local(address, RenewOp(address=address, by=by, at=now), None, by)
            current = self._held(address)
            return current if current is not None else signal
        finally:
            self._exit()

    def tick(self, now: float | None = None) -> list[Signal]:
        """As :meth:`Field.tick`, and forget operations of long-dead signals."""
        self._enter()
        try:
            if now is None:
                now = self.clock.now()
            expired = super().tick(now)
            self._collect(now)
            return expired
        finally:
            self._exit()

    expire = tick

    # -- what Inbound may do (its port) ----------------------------------------------------

    def _peer_joined(self, node: str) -> bool:
        """Record a present peer; True if it is new to a synced field (ask it for its
        replica: it may hold what we missed)."""
        if self._closed:
            return False
        with self._lock:
            known = node in self._peers
            self._peers[node] = self.clock.now()
        return self._synced and not known

    def _peer_left(self, node: str) -> bool:
        """Forget a departed peer and lapse its leases; False once closed."""
        if self._closed:
            return False
        self._enter()
        try:
            self._peers.pop(node, None)
            self._lapse(node, self.config.lease_kinds)
        finally:
            self._exit()
        return True

    # -- publishing ------------------------------------------------------------------------

    def _flush_soon(self) -> None:
        self._flush_scheduled = False
        if not self._closed:
            with contextlib.suppress(SmeshError):
                self.flush()

    def flush(self) -> int:
        """Seal, sign and publish the queued operations now; return how many went out."""
        with self._lock:
            ops, self._outbox = self._outbox, []
            records, self._unsealed = self._unsealed, []
            self._flush_scheduled = False
        if not ops:
            return 0
        step = self.config.max_batch
        for start in range(0, len(ops), step):
            chunk = ops[start : start + step]
            batch_id, sealed = self.channel.send(chunk)
            with self._lock:
                self._store.add(batch_id, sealed)
                for record in records[start : start + step]:
                    record.batch = batch_id
            self.counters.add("published_batches")
            self.counters.add("published_ops", len(chunk))
        return len(ops)

    # -- introspection ---------------------------------------------------------------------

    def peers(self) -> list[str]:
        """Node ids of the peers currently present (their liveliness tokens are up)."""
        with self._lock:
            return sorted(self._peers)

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
                peers=sorted(self._peers),
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


def _after(cut: float, when: float) -> float:
    """The first float after ``cut`` (and not before ``when``)."""
    return max(when, math.nextafter(cut, math.inf))
