"""Provenance: the signed operations behind a live signal, and their re-verification.

A signal's provenance is the emit that gives it its content and origin, one operation per
reinforcer (a reinforcement, or a concurrent emit of the same content), and the renewal
that set its age, each with the node that signed it and the batch that carries it. Anyone
holding the replica's batches can re-check the chain: each batch verifies (its own
signature, or a signature note that lists it), under the link's node key, carries the
link's operation, and that operation names an agent of the signing node.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from smesh.errors import InvalidSignal
from smesh.mesh.codec import DroppedMessage, signal_of
from smesh.mesh.identity import speaks_for
from smesh.mesh.merge import Entry, Resolved
from smesh.mesh.wire import EmitOp, Op, ReinforceOp, RenewOp, Sealed, SigNote, WithdrawOp
from smesh.signal import Signal

if TYPE_CHECKING:
    from smesh.mesh.channel import LiveChannel

__all__ = ["Provenance", "ProvenanceLink", "check_link", "trace"]


class ProvenanceLink(msgspec.Struct, frozen=True, kw_only=True):
    """One signed operation in a signal's history.

    Attributes:
        role: ``emit``, ``reinforce`` (or a concurrent emit that counts as one) or ``renew``.
        by: the agent (origin or reinforcer) it speaks for.
        node: the node that signed it.
        at: its time (``created_at`` for emits).
        batch: the id of the signed batch that carries it (None while not yet sealed).
    """

    role: str
    by: str
    node: str
    at: float
    batch: str | None


class Provenance(msgspec.Struct, frozen=True, kw_only=True):
    """Who said a signal, and who corroborated it: each link is a signed operation.

    Attributes:
        address: the signal's address.
        kind: its kind.
        emitter: the emit that gives the signal its content and origin.
        reinforcers: one link per reinforcer, in the signal's order.
        renewal: the renewal that set the current ``created_at``, if any.
    """

    address: str
    kind: str
    emitter: ProvenanceLink
    reinforcers: list[ProvenanceLink]
    renewal: ProvenanceLink | None = None


def trace(address: str, signal: Signal, entry: Entry, state: Resolved) -> Provenance | None:
    """The provenance of the live ``signal`` from its replica ``entry`` (resolved)."""
    if state.base is None or state.record is None:
        return None
    (origin, created_at, signer), cut = state.base, state.cut
    emitter = ProvenanceLink(
        role="emit", by=origin, node=signer, at=created_at, batch=state.record.batch
    )
    first: dict[str, ProvenanceLink] = {}
    renewal: ProvenanceLink | None = None
    for (o, at, s), record in entry.emits.items():
        if at > cut and o != origin and (o not in first or at < first[o].at):
            first[o] = ProvenanceLink(role="emit", by=o, node=s, at=at, batch=record.batch)
    for (_tag, by, at, s), mark in entry.marks.items():
        if at <= cut:
            continue
        if isinstance(mark.op, ReinforceOp) and by != origin:
            if by not in first or at < first[by].at:
                first[by] = ProvenanceLink(role="reinforce", by=by, node=s, at=at, batch=mark.batch)
        elif isinstance(mark.op, RenewOp) and at == signal.created_at and s == signer:
            renewal = ProvenanceLink(role="renew", by=by, node=s, at=at, batch=mark.batch)
    return Provenance(
        address=address,
        kind=signal.kind,
        emitter=emitter,
        reinforcers=[first[r] for r in signal.reinforcers if r in first],
        renewal=renewal,
    )


def check_link(
    address: str,
    link: ProvenanceLink,
    proof: tuple[Sealed, SigNote | None],
    channel: LiveChannel,
) -> bool:
    """Whether ``proof`` (a kept batch and the note that signs it) proves ``link``."""
    codec = channel.codec
    sealed, note = proof
    try:
        _, batch_id = codec.message(sealed)
        if sealed.sig:
            codec.verify(sealed)
        elif note is None or note.signer != sealed.signer or note.epoch != sealed.epoch:
            return False
        else:
            codec.verify_note(note)
            if bytes.fromhex(batch_id) not in note.ids:
                return False
        signer = channel.node_id(sealed.signer)
        ops = codec.ops(sealed, signer)
    except DroppedMessage:
        return False
    if batch_id != link.batch or signer != link.node or not speaks_for(signer, link.by):
        return False
    return any(_carries(op, address, link) for op in ops)


def _carries(op: Op, address: str, link: ProvenanceLink) -> bool:
    if isinstance(op, EmitOp):
        if link.role != "emit" or op.origin != link.by or op.created_at != link.at:
            return False
        try:
            return signal_of(op).address == address
        except InvalidSignal:
            return False
    role = {ReinforceOp: "reinforce", RenewOp: "renew", WithdrawOp: "withdraw"}[type(op)]
    return role == link.role and op.address == address and op.by == link.by and op.at == link.at
