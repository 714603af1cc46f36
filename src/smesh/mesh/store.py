"""The signed batches a replica keeps: to answer late joiners and to prove provenance.

Each batch is kept as it was signed, with either its own signature or the
:class:`~smesh.mesh.wire.SigNote` that lists its id (see :mod:`smesh.mesh.channel`). A
batch whose signature has not arrived yet is kept too, but not served. Batches that no
retained operation refers to any more are swept away.

Not thread-safe: :class:`~smesh.mesh.field.MeshField` holds its lock around every call.
"""

from __future__ import annotations

import msgspec

from smesh.mesh.wire import Sealed, SigNote

__all__ = ["BatchStore"]


class BatchStore:
    """Batches by id, and the signature notes that cover them."""

    __slots__ = ("_batches", "_note_of", "_notes", "_verified")

    def __init__(self) -> None:
        self._batches: dict[str, Sealed] = {}
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

    def servable(self) -> tuple[list[Sealed], list[SigNote], set[bytes]]:
        """The signed batches, the notes they need, and which of those are unchecked."""
        batches: list[Sealed] = []
        needed: dict[bytes, SigNote] = {}
        for batch_id, sealed in self._batches.items():
            if sealed.sig:
                batches.append(sealed)
                continue
            key = self._note_of.get(batch_id)
            if key is not None:
                batches.append(sealed)
                needed[key] = self._notes[key]
        return batches, list(needed.values()), set(needed) - self._verified

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
            self._note_of.pop(batch_id, None)
        used = set(self._note_of.values())
        for key in [k for k in self._notes if k not in used]:
            del self._notes[key]
            self._verified.discard(key)
