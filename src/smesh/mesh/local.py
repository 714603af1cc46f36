"""The local side of a replica: what this node's agents do, checked and published.

:class:`LocalReplica` is the part of :class:`~smesh.mesh.field.MeshField` that takes the
:class:`~smesh.field.Field` operations of the agents it hosts (emit, reinforce, withdraw,
renew), applies each to the replica at once (with the semantics of a local field) and
queues it for publication (:mod:`smesh.mesh.outbox`). Every name it speaks for must be one
of this node's agents, ``<node id>/<agent>`` (:meth:`LocalReplica.agent_name`): receivers
would drop anything else, so it is refused here, as a :class:`~smesh.errors.NotPermitted`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import msgspec

from smesh.clock import Clock
from smesh.errors import InvalidSignal, NotPermitted, SignalNotFound
from smesh.mesh.channel import LiveChannel
from smesh.mesh.identity import agent_name, speaks_for
from smesh.mesh.merge import EmitRecord, Entry, merge_op
from smesh.mesh.outbox import Outbox
from smesh.mesh.replica_field import ReplicaField
from smesh.mesh.wire import Op, ReinforceOp, RenewOp, Sealed, WithdrawOp, emit_op
from smesh.signal import Signal

__all__ = ["LocalReplica"]


class LocalReplica(ReplicaField):
    """A replica that also takes and publishes its own node's operations.

    Args:
        clock: time source.
        channel: the live channel its batches go out on (and its counters).
        max_batch: most operations per published batch.
        history: how many expired or withdrawn signals to keep.
        gc_grace_s: how long the operations of a dead signal are kept.
        max_skew_s: how far ahead of our clock a remote timestamp may be.
        held_ops: most operations of one remote signer kept at once.

    For subclasses (protected): ``_loop`` and ``_loop_thread``, the event loop the field
    is bound to (None: unbound) and its thread, which decide when queued operations go out.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        channel: LiveChannel,
        max_batch: int,
        history: int,
        gc_grace_s: float,
        max_skew_s: float,
        held_ops: int,
    ) -> None:
        super().__init__(
            clock,
            history=history,
            gc_grace_s=gc_grace_s,
            max_skew_s=max_skew_s,
            held_ops=held_ops,
            counters=channel.counters,
        )
        self.channel = channel
        self.node_id: str = channel.identity.node_id
        self._speaker = agent_name(self.node_id, "")  # "<node id>/": our agents' names
        self._max_batch = max_batch
        self._depth = 0
        self._batching = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._outbox = Outbox(
            channel,
            self.counters,
            max_batch=max_batch,
            lock=self._lock,
            keep=self._keep_sealed,
            closed=lambda: self._closed,
        )

    # -- names -----------------------------------------------------------------------------

    def agent_name(self, agent: str) -> str:
        """The mesh-wide name of this node's agent ``agent``: ``<node id>/<agent>``."""
        return agent_name(self.node_id, agent)

    def owns(self, name: str) -> bool:
        """Whether ``name`` is one of this node's agents (it may speak for it)."""
        return speaks_for(self.node_id, name)

    def _speak_as(self, name: str) -> None:
        if not speaks_for(self.node_id, name):
            raise NotPermitted(
                f"{name!r} is not an agent of this node: on a mesh, agent names are scoped "
                f"under the node id ({self.agent_name('<agent>')}, see agent_name())",
                node=self.node_id,
            )

    # -- local operations ------------------------------------------------------------------

    def _enter(self) -> None:
        self._lock.acquire()
        self._depth += 1

    def _exit(self) -> None:
        self._depth -= 1
        outer = self._depth == 0
        self._lock.release()
        # (inside batch(), only a full batch goes out: most emits there need nothing)
        if (
            outer
            and (queued := len(self._outbox))
            and (queued >= self._max_batch or not self._batching)
        ):
            self._outbox.settle(
                batching=self._batching > 0,
                loop=self._loop,
                on_loop=threading.get_ident() == self._loop_thread,
            )

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
            self._outbox.add(op, record)
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
        origin, speaker = signal.origin, self._speaker
        if not (origin.startswith(speaker) and len(origin) > len(speaker)):  # the hot path
            self._speak_as(origin)
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
                self._outbox.add(op, record)
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
        """As :meth:`Field.reinforce`; the reinforcement is signed and published.

        Raises:
            SignalNotFound: no live signal has this address.
            NotPermitted: ``by`` is not an agent of this node.
        """
        self._speak_as(by)
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
        self._speak_as(by)
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

    # -- publishing ------------------------------------------------------------------------

    def flush(self) -> int:
        """Seal, sign and publish the queued operations now; return how many went out."""
        return self._outbox.flush()

    def _keep_sealed(self, batch_id: str, sealed: Sealed, records: list[Any]) -> None:
        with self._lock:
            self._store.add(batch_id, sealed)
            for record in records:
                record.batch = batch_id


def _after(cut: float, when: float) -> float:
    """The first float after ``cut`` (and not before ``when``)."""
    return max(when, math.nextafter(cut, math.inf))
