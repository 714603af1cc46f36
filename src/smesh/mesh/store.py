"""The signed batches a replica keeps: to answer late joiners and to prove provenance.

Each batch is kept as it was signed, with either its own signature or the
:class:`~smesh.mesh.wire.SigNote` that lists its id (see :mod:`smesh.mesh.channel`). A
batch whose signature has not arrived yet is kept too, but not served. Batches that no
retained operation refers to any more are swept away.

Not thread-safe: :class:`~smesh.mesh.field.MeshField` holds its lock around every call.
"""

from __future__ import annotations

import itertools

import msgspec

from smesh.mesh.pending import batch_bytes
from smesh.mesh.wire import Sealed, SigNote

__all__ = ["BatchStore", "Page"]


class Page(msgspec.Struct, frozen=True):
    """One page of what a replica serves a late joiner.

    Attributes:
        batches: signed batches, in the order they were kept.
        notes: the signature notes they need.
        next: the cursor to ask the next page from (-1: this was the last).
        unchecked: signatures of the notes not checked yet here.
    """

    batches: list[Sealed]
    notes: list[SigNote]
    next: int
    unchecked: frozenset[bytes] = frozenset()


class BatchStore:
    """Batches by id (numbered in the order they were kept), and the signature notes that
    cover them."""

    __slots__ = ("_batches", "_counter", "_note_of", "_notes", "_serial", "_verified")

    def __init__(self) -> None:
        self._batches: dict[str, Sealed] = {}
        self._serial: dict[str, int] = {}  # batch id -> its number (a sync cursor)
        self._counter = itertools.count(1)
        self._notes: dict[bytes, SigNote] = {}  # by signature
        self._note_of: dict[str, bytes] = {}  # batch id -> the note that covers it
        self._verified: set[bytes] = set()  # notes already checked here

    def __len__(self) -> int:
        return len(self._batches)

    def __contains__(self, batch_id: object) -> bool:
        return batch_id in self._batches

    def add(self, batch_id: str, sealed: Sealed) -> None:
        """Keep a batch (its MACs were for the live hop only)."""
        if batch_id in self._batches and not sealed.sig:
            return  # never replace a signed copy with an unsigned one
        if sealed.macs:
            sealed = msgspec.structs.replace(sealed, macs=[])
        if batch_id not in self._batches:
            self._serial[batch_id] = next(self._counter)
        self._batches[batch_id] = sealed

    def cover(self, note: SigNote, *, verified: bool = False) -> int:
        """Record a signature note; return how many kept batches it now covers."""
        covered = 0
        key = note.sig
        for raw in note.ids:
            batch_id = raw.hex()
            held = self._batches.get(batch_id)
            if held is not None and not held.sig and batch_id not in self._note_of:
                self._note_of[batch_id] = key
                covered += 1
        if covered:
            self._notes[key] = note
            if verified:
                self._verified.add(key)
        return covered

    def proof(self, batch_id: str) -> tuple[Sealed, SigNote | None] | None:
        """A kept batch and the note that signs it (None when it is signed itself)."""
        sealed = self._batches.get(batch_id)
        if sealed is None:
            return None
        key = self._note_of.get(batch_id)
        return sealed, (self._notes.get(key) if key is not None else None)

    def unsigned(self) -> int:
        """Kept batches whose signature has not arrived."""
        return sum(1 for b, s in self._batches.items() if not s.sig and b not in self._note_of)

    def page(self, after: int = 0, max_bytes: int | None = None) -> Page:
        """The signed batches kept after cursor ``after``, up to ``max_bytes`` (at least
        one batch), with the notes they need and which of those are unchecked."""
        batches: list[Sealed] = []
        needed: dict[bytes, SigNote] = {}
        size = 0
        last = after
        serial = self._serial
        for batch_id, sealed in self._batches.items():
            number = serial[batch_id]
            if number <= after:
                continue
            key = self._note_of.get(batch_id)
            if not sealed.sig and key is None:
                continue  # its signature has not arrived: not servable yet
            cost = batch_bytes(sealed)
            if max_bytes is not None and batches and size + cost > max_bytes:
                return Page(batches, list(needed.values()), last, self._unchecked(needed))
            batches.append(sealed)
            if key is not None:
                needed[key] = self._notes[key]
            size += cost
            last = number
        return Page(batches, list(needed.values()), -1, self._unchecked(needed))

    def _unchecked(self, needed: dict[bytes, SigNote]) -> frozenset[bytes]:
        return frozenset(key for key in needed if key not in self._verified)

    def verified(self, key: bytes, ok: bool) -> None:
        """Record the check of a note: remember a good one, drop a bad one (and let a
        genuine note cover its batches later)."""
        if ok:
            self._verified.add(key)
            return
        self._notes.pop(key, None)
        for batch_id in [b for b, k in self._note_of.items() if k == key]:
            del self._note_of[batch_id]

    def sweep(self, keep: set[str]) -> None:
        """Drop the batches not in ``keep``, and notes that no longer cover anything."""
        for batch_id in [b for b in self._batches if b not in keep]:
            del self._batches[batch_id]
            del self._serial[batch_id]
            self._note_of.pop(batch_id, None)
        used = set(self._note_of.values())
        for key in [k for k in self._notes if k not in used]:
            del self._notes[key]
            self._verified.discard(key)
