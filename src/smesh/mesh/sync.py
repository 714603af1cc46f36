"""Late joiners: replicas answer in pages, capped in bytes; joiners verify what they get.

A node that joins (or sees a peer confirmed) queries ``sync/*`` (or ``sync/<peer>``); every
replica answers with one *page* of the signed batches it keeps: at most
``limits.sync_page_bytes`` of them, in chunks of about 1 MB, the last chunk carrying the
signature notes the page needs, the certificates of its signers (on a mesh with a CA) and
the cursor of the next page. The joiner asks each replica for its next page until it has
all, at most ``limits.sync_max_bytes`` in all and within a few sync timeouts.

A replica serves at most ``limits.sync_bytes_per_s`` of answers, all askers together (a
token bucket); over it, an asker gets a short *busy* reply and asks again a moment later. So
twenty queries at once cost a replica a few pages' worth of memory, not twenty copies of
its store. Queries are not authenticated (anyone may read a replica: everything in it is
signed, nothing in it is secret).

Every signature is checked by the joiner itself, each note once; a batch whose signer no
certificate admits (on a mesh with a CA) is dropped (``dropped_uncertified``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from smesh.mesh.codec import DroppedMessage
from smesh.mesh.pending import batch_bytes
from smesh.mesh.quota import Bucket
from smesh.mesh.store import Page
from smesh.mesh.wire import VERSION, Opened, Sealed, SigNote, SyncReply, encode

if TYPE_CHECKING:
    from smesh.mesh.channel import LiveChannel

__all__ = ["Sync"]

_REPLY_CHUNK = 1 << 20  # bytes of batches per sync-reply message
_BUSY_RETRY_S = 0.05
_ROUNDS = 4  # a whole sync takes at most this many sync timeouts


class Sync:
    """Answering sync queries, and syncing from replicas, for one node.

    Args:
        channel: the node's live channel (its transport, codec, members and counters).
    """

    def __init__(self, channel: LiveChannel) -> None:
        self.channel = channel
        limits = channel.config.limits
        # answers are paid after they are sent (a page's size is known then): a debt
        self._budget = Bucket(limits.sync_bytes_per_s, 2.0 * limits.sync_page_bytes)

    @property
    def page_bytes(self) -> int:
        """The most bytes of batches in one page."""
        return self.channel.config.limits.sync_page_bytes

    # -- answering -------------------------------------------------------------------------

    def admit(self) -> bool:
        """Whether the answer budget allows serving a page now."""
        return self._budget.positive()

    def busy(self, query: Any) -> None:
        """Tell an asker to come back later."""
        transport = self.channel.transport
        if transport is not None:
            transport.reply(query, encode(SyncReply(VERSION, [], busy=True)), 0)
        self.channel.counters.add("sync_busy")

    def answer(self, query: Any, page: Page) -> None:
        """Reply to a sync query with one page, in chunks; the last one carries the notes,
        the signers' certificates and the next cursor."""
        channel = self.channel
        transport = channel.transport
        if transport is None:
            return
        chunk: list[Sealed] = []
        size = total = number = 0
        for sealed in page.batches:
            chunk.append(sealed)
            cost = batch_bytes(sealed)
            size += cost
            total += cost
            if size >= _REPLY_CHUNK:
                transport.reply(query, encode(SyncReply(VERSION, chunk)), number)
                chunk, size, number = [], 0, number + 1
        certs: list[bytes] = []
        if channel.members.required:
            signers = [channel.node_id(sealed.signer) for sealed in page.batches]
            certs = channel.members.certificates(signers)
        last = SyncReply(VERSION, chunk, page.notes, certs, page.next)
        transport.reply(query, encode(last), number)
        self._budget.spend(total)
        channel.counters.add("sync_answers")
        channel.counters.add("sync_answered_bytes", total)

    # -- syncing ---------------------------------------------------------------------------

    def fetch(self, peer: str = "*") -> tuple[list[Opened], list[SigNote]]:
        """Ask replicas for their batches, page by page; verify every signature (each one
        once). Returns the verified batches, and the verified notes (to keep with them)."""
        channel = self.channel
        transport = channel.transport
        if transport is None:
            return [], []
        limits = channel.config.limits
        timeout = channel.config.sync_timeout_s
        deadline = time.monotonic() + _ROUNDS * timeout
        batches: dict[bytes, Sealed] = {}
        notes: dict[bytes, SigNote] = {}
        certs: dict[bytes, bytes] = {}
        total = 0
        asks: list[tuple[str, int]] = [(peer, 0)]
        while asks and time.monotonic() < deadline:
            node, after = asks.pop(0)
            for replier, data in transport.fetch(node, after=after, timeout_s=timeout):
                total += len(data)
                if total > limits.sync_max_bytes:
                    channel.counters.add("dropped_sync_overflow")
                    asks.clear()
                    break
                try:
                    reply = channel.codec.reply(data)
                except DroppedMessage as exc:
                    channel.counters.add("dropped_" + exc.reason)
                    continue
                for sealed in reply.batches:
                    batches.setdefault(sealed.ops + sealed.signer + sealed.sig, sealed)
                for note in reply.notes:
                    notes.setdefault(note.sig, note)
                for cert in reply.certs:
                    certs.setdefault(cert, cert)
                if replier and reply.busy:
                    time.sleep(_BUSY_RETRY_S)
                    asks.append((replier, after))
                elif replier and reply.next > after:
                    asks.append((replier, reply.next))
        return self._verify(list(batches.values()), list(notes.values()), list(certs))

    def _verify(
        self, batches: list[Sealed], notes: list[SigNote], certs: list[bytes]
    ) -> tuple[list[Opened], list[SigNote]]:
        channel = self.channel
        codec, counters, members = channel.codec, channel.counters, channel.members
        if members.required:
            for cert in certs:
                try:
                    members.admit_certificate(cert)
                except DroppedMessage as exc:
                    counters.add("dropped_sync_" + exc.reason)
        covered: set[tuple[bytes, int, bytes]] = set()
        good: list[SigNote] = []
        for note in notes:
            try:
                codec.verify_note(note)
            except DroppedMessage as exc:
                counters.add("dropped_" + exc.reason)
                continue
            good.append(note)
            covered.update((note.signer, note.epoch, raw) for raw in note.ids)
        opened: dict[str, Opened] = {}
        for sealed in batches:
            try:
                _, batch_id = codec.message(sealed)
                if batch_id in opened:
                    continue
                if sealed.sig:
                    batch_id, signer = codec.verify(sealed)
                elif (sealed.signer, sealed.epoch, bytes.fromhex(batch_id)) in covered:
                    signer = channel.node_id(sealed.signer)
                else:
                    raise DroppedMessage("unsigned", "a synced batch that nothing signs")
                if not members.knows(signer):
                    raise DroppedMessage("uncertified", f"a synced batch of {signer}")
                opened[batch_id] = Opened(sealed, batch_id, signer, codec.ops(sealed, signer))
            except DroppedMessage as exc:
                counters.add("dropped_" + exc.reason)
        counters.add("synced_batches", len(opened))
        return list(opened.values()), good
