"""The replica's merge: a state-based CRDT per signal address, pure and deterministic.

Every replica keeps, per address, the *set* of operations it has seen (emits, reinforcements,
renewals, withdrawals, each with the node that signed it) and derives the live signal from
that set alone. Sets merge by union, so the order in which operations arrive and any
duplicates make no difference: two replicas that have seen the same operations hold the same
signal, bit for bit. The derivation:

- **Tombstone.** ``T`` is the latest ``at`` of the withdrawals that are *authorized*: made by
  an origin, signed by the node that emitted under that origin, no earlier than that emit.
  A withdrawal removes everything at or before ``T``; a later emit starts afresh.
- **Base.** Among the emits after ``T``, the earliest (then lowest origin, then signer) gives
  the signal's content and origin. Concurrent emits of the same content by other origins
  count as reinforcements, as they do in a local :class:`~smesh.field.Field`.
- **Reinforcers.** The union of those other origins and the reinforcements after ``T``,
  without the origin, ordered by first time then id; confidence follows from their number.
- **Age.** ``created_at`` is the maximum over the base's own and its renewals by the same
  origin and signer (after ``T``). With a time (see :func:`resolve`), only the renewals
  made while the incarnation was alive count: a renewal after its expiry renews a later
  incarnation, never a dead one.

Expiry is not part of the merge: each replica applies the signal's own decay to
``created_at``, so replicas agree on it without talking.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeAlias

import msgspec

from smesh.mesh.codec import signal_of
from smesh.mesh.wire import EmitOp, Op, ReinforceOp, RenewOp, WithdrawOp
from smesh.signal import Signal

__all__ = [
    "EmitRecord",
    "Entry",
    "MarkRecord",
    "Resolved",
    "materialize",
    "merge_op",
    "replay",
    "resolve",
]

REINFORCE, RENEW, WITHDRAW = 2, 3, 4
_INF = float("inf")
_TAGS: dict[type, int] = {ReinforceOp: REINFORCE, RenewOp: RENEW, WithdrawOp: WITHDRAW}

EmitKey: TypeAlias = tuple[str, float, str]  # origin, created_at, signer
MarkKey: TypeAlias = tuple[int, str, float, str]  # tag, by, at, signer


class EmitRecord:
    """One emit as a replica keeps it: the signal, its signer and its batch (once sealed)."""

    __slots__ = ("batch", "signal", "signer")

    def __init__(self, signal: Signal, signer: str, batch: str | None) -> None:
        self.signal = signal
        self.signer = signer
        self.batch = batch


class MarkRecord:
    """One reinforcement, renewal or withdrawal as a replica keeps it."""

    __slots__ = ("batch", "op")

    def __init__(self, op: ReinforceOp | RenewOp | WithdrawOp, batch: str | None) -> None:
        self.op = op
        self.batch = batch


def _rank(signal: Signal) -> tuple[float, float, float, int, bytes]:
    # a total order on the parts an emit's key leaves out, so that two different emits
    # under one key (a buggy or hostile signer) resolve the same way on every replica
    return (
        signal.intensity,
        signal.confidence,
        signal.ttl,
        signal.radius,
        msgspec.msgpack.encode(signal.decay),
    )


class Entry:
    """Everything a replica knows about one address."""

    __slots__ = ("emits", "marks")

    def __init__(self, first: EmitRecord | None = None) -> None:
        self.emits: dict[EmitKey, EmitRecord] = {}
        self.marks: dict[MarkKey, MarkRecord] = {}
        if first is not None:
            signal = first.signal
            self.emits[(signal.origin, signal.created_at, first.signer)] = first

    def __len__(self) -> int:
        return len(self.emits) + len(self.marks)

    def batches(self) -> Iterator[str]:
        """The ids of the batches this entry's operations came in (sealed ones only)."""
        for emit in self.emits.values():
            if emit.batch is not None:
                yield emit.batch
        for mark in self.marks.values():
            if mark.batch is not None:
                yield mark.batch

    def signers(self) -> Iterator[str]:
        """The signer of each operation here (one per operation)."""
        for _origin, _created_at, signer in self.emits:
            yield signer
        for _tag, _by, _at, signer in self.marks:
            yield signer

    def latest_time(self) -> float:
        """The latest timestamp of any operation here (a withdrawal must cover them all)."""
        latest = -float("inf")
        for _origin, created_at, _signer in self.emits:
            latest = max(latest, created_at)
        for _tag, _by, at, _signer in self.marks:
            latest = max(latest, at)
        return latest

    def latest(self) -> float:
        """The latest time any operation here could keep a signal alive until (for GC)."""
        latest = -float("inf")
        for emit in self.emits.values():
            latest = max(latest, emit.signal.created_at + emit.signal.ttl)
        ttl = max((e.signal.ttl for e in self.emits.values()), default=0.0)
        for (tag, _by, at, _signer), _ in self.marks.items():
            latest = max(latest, at + ttl if tag == RENEW else at)
        return latest


def merge_op(
    entry: Entry, op: Op, signer: str, batch: str | None, signal: Signal | None = None
) -> EmitRecord | MarkRecord | None:
    """Add one operation to ``entry``; return its new record, or None if already known.

    Args:
        entry: the address's state.
        op: the operation.
        signer: node id of the node that signed it.
        batch: id of the batch it came in (None for a local operation not yet sealed).
        signal: for an emit, the validated signal (built from ``op`` if not given).
    """
    if isinstance(op, EmitOp):
        if signal is None:
            signal = signal_of(op)
        key: EmitKey = (signal.origin, signal.created_at, signer)
        known = entry.emits.get(key)
        if known is not None and _rank(known.signal) <= _rank(signal):
            return None
        record = EmitRecord(signal, signer, batch)
        entry.emits[key] = record
        return record
    mark_key: MarkKey = (_TAGS[type(op)], op.by, op.at, signer)
    if mark_key in entry.marks:
        return None
    mark = MarkRecord(op, batch)
    entry.marks[mark_key] = mark
    return mark


def tombstone(entry: Entry, lapsed: float | None = None) -> float:
    """The time up to which ``entry`` is withdrawn (``-inf`` if never); ``lapsed`` adds a
    local tombstone (a departed node's lease)."""
    cut = -float("inf") if lapsed is None else lapsed
    for (tag, by, at, signer), _ in entry.marks.items():
        if tag != WITHDRAW or at <= cut:
            continue
        # authorized: the withdrawer emitted under this origin, with this key, no later
        for origin, created_at, emitter in entry.emits:
            if origin == by and emitter == signer and created_at <= at:
                cut = at
                break
    return cut


def base_of(entry: Entry, cut: float) -> tuple[EmitKey, EmitRecord] | None:
    """The earliest emit after ``cut`` (it gives the signal its content), or None."""
    best: tuple[float, str, str] | None = None
    found: tuple[EmitKey, EmitRecord] | None = None
    for key, record in entry.emits.items():
        origin, created_at, signer = key
        if created_at <= cut:
            continue
        rank = (created_at, origin, signer)
        if best is None or rank < best:
            best, found = rank, (key, record)
    return found


def _renewed(entry: Entry, key: EmitKey, cut: float, life: float | None) -> float:
    """The ``created_at`` that the renewals of the emit at ``key`` give it.

    Without ``life`` (the timeless merge), the latest renewal. With it (the incarnation's
    expiry age), renewals count in time order only while the incarnation is still alive: a
    renewal at or after its expiry finds it dead and cannot revive it (it belongs to a
    later incarnation, as :meth:`smesh.field.Field.renew` would only ever see that one).
    """
    origin, created, signer = key
    times: list[float] | None = None  # most signals are never renewed: no list for them
    for tag, by, at, mark_signer in entry.marks:
        if tag == RENEW and at > created and at > cut and by == origin and mark_signer == signer:
            if times is None:
                times = []
            times.append(at)
    if times is None:
        return created
    if life is None:
        return max(times)
    for at in sorted(times):
        if at >= created + life:
            break  # it had expired by then: later renewals are not its own
        created = at
    return created


class Resolved(msgspec.Struct, frozen=True):
    """Where an entry stands: the cut below which everything is dead, and the live base.

    Attributes:
        cut: operations at or before this time belong to dead incarnations.
        base: the key of the emit that gives the live signal its content (None: not live).
        record: that emit.
        created: the live signal's ``created_at`` (after renewals).
    """

    cut: float
    base: EmitKey | None = None
    record: EmitRecord | None = None
    created: float = 0.0


def resolve(entry: Entry, lapsed: float | None = None, now: float | None = None) -> Resolved:
    """Find the live incarnation of ``entry``.

    With ``now``, an incarnation whose own decay has run out by ``now`` is dead like a
    withdrawn one, and so is everything that happened to it: a later emit starts afresh,
    as it does in a local field once the old signal has expired. A renewal made after an
    incarnation's expiry does not revive it (see :func:`_renewed`).
    """
    cut = tombstone(entry, lapsed)
    while True:
        found = base_of(entry, cut)
        if found is None:
            return Resolved(cut)
        key, record = found
        if now is None:
            return Resolved(cut, key, record, _renewed(entry, key, cut, None))
        signal = record.signal
        life = signal.decay.expiry_age(signal.intensity, signal.ttl)
        created = _renewed(entry, key, cut, life)
        end = created + life
        if end <= now:
            cut = end  # died of old age: what came before died with it
            continue
        return Resolved(cut, key, record, created)


def materialize(
    entry: Entry, lapsed: float | None = None, now: float | None = None
) -> Signal | None:
    """The live signal that ``entry``'s operations imply, or None.

    Args:
        entry: the address's state.
        lapsed: a local tombstone time (leases of a node that left the mesh).
        now: if given, incarnations that have expired by then are dead (see
            :func:`resolve`); without it the result ignores time altogether.
    """
    if lapsed is None and not entry.marks and len(entry.emits) == 1:
        signal = next(iter(entry.emits.values())).signal  # the common case: untouched
        if now is None or signal.expires_at() > now:
            return signal
        return None
    state = resolve(entry, lapsed, now)
    if state.base is None or state.record is None:
        return None
    origin = state.base[0]
    cut = state.cut
    first: dict[str, float] = {}
    for other_origin, other_at, _ in entry.emits:
        if other_at > cut and other_origin != origin and other_at < first.get(other_origin, _INF):
            first[other_origin] = other_at
    for tag, by, at, _signer in entry.marks:
        if tag == REINFORCE and at > cut and by != origin and at < first.get(by, _INF):
            first[by] = at
    signal = state.record.signal
    for by in sorted(first, key=lambda node: (first[node], node)):
        signal = signal.reinforced(by)
    if state.created != signal.created_at:
        signal = msgspec.structs.replace(signal, created_at=state.created)
    return signal


def replay(
    ops: Iterable[tuple[Op, str]], lapsed: float | None = None, now: float | None = None
) -> Signal | None:
    """Merge ``(operation, signer)`` pairs into a fresh entry and materialize it.

    The reference for the merge's properties: any order, any duplicates, same result.
    """
    entry = Entry()
    for op, signer in ops:
        merge_op(entry, op, signer, None)
    return materialize(entry, lapsed, now)
