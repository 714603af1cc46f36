"""Presence: which peers are here, from liveliness tokens confirmed by signed hellos.

A zenoh liveliness token is a key expression anyone on the network can declare; it proves
nothing. So a token makes a node a *peer* only once that node has also said a signed hello
(on a mesh with a CA: with a certificate that admits it) and while its key is live (see
:class:`~smesh.mesh.auth.Keyring`). A token whose node never says hello is forgotten after
``peer_ttl_s`` (``dropped_silent_peer``) and never listed; at most ``max_peers`` tokens are
followed at once: when full, a new token pushes out the oldest one whose node has not said
hello (honest nodes say it at once), and is dropped only when every token is confirmed
(``dropped_peer_tokens``). A peer is asked for its replica when it
is confirmed, not when its token appears: a token alone costs no sync query.

Not thread-safe: :class:`~smesh.mesh.field.MeshField` calls it under its lock.
"""

from __future__ import annotations

from collections.abc import Callable

from smesh.mesh.limits import Limits
from smesh.mesh.replica import Counters

__all__ = ["Presence"]


class Presence:
    """Liveliness tokens, and which of them are confirmed peers.

    Args:
        knows: whether we hold a live key with a node (it said hello lately).
        limits: the bounds.
        counters: where tokens dropped are counted.
    """

    __slots__ = ("_confirmed", "_counters", "_knows", "_limits", "_tokens")

    def __init__(self, knows: Callable[[str], bool], limits: Limits, counters: Counters) -> None:
        self._knows = knows
        self._limits = limits
        self._counters = counters
        self._tokens: dict[str, float] = {}  # node -> when its token appeared
        self._confirmed: set[str] = set()  # nodes already asked for their replica

    def __contains__(self, node: object) -> bool:
        return node in self._tokens

    def token(self, node: str, now: float) -> bool:
        """A node's token appeared; True if it is a newly confirmed peer (ask it to sync)."""
        if node not in self._tokens:
            if len(self._tokens) >= self._limits.max_peers:
                self.expire(now)
            if len(self._tokens) >= self._limits.max_peers:
                silent = next((n for n in self._tokens if not self._knows(n)), None)
                self._counters.add("dropped_peer_tokens")
                if silent is None:
                    return False
                del self._tokens[silent]  # the oldest that never said hello
                self._confirmed.discard(silent)
            self._tokens[node] = now
        return self._confirm(node)

    def greeted(self, node: str) -> bool:
        """A node said a new hello; True if it is a newly confirmed peer."""
        return node in self._tokens and self._confirm(node)

    def _confirm(self, node: str) -> bool:
        if node in self._confirmed or not self._knows(node):
            return False
        self._confirmed.add(node)
        return True

    def gone(self, node: str) -> bool:
        """A node's token went; True if we followed it."""
        self._confirmed.discard(node)
        return self._tokens.pop(node, None) is not None

    def expire(self, now: float) -> int:
        """Forget tokens whose node has not said hello within the TTL; return how many."""
        horizon = now - self._limits.peer_ttl_s
        silent = [
            node
            for node, since in self._tokens.items()
            if since < horizon and not self._knows(node)
        ]
        for node in silent:
            del self._tokens[node]
            self._confirmed.discard(node)
        if silent:
            self._counters.add("dropped_silent_peer", len(silent))
        return len(silent)

    def peers(self, now: float) -> list[str]:
        """The confirmed peers: a token up and a live key (sorted)."""
        self.expire(now)
        return sorted(node for node in self._tokens if self._knows(node))

    def clear(self) -> None:
        """Forget everyone (the field closed)."""
        self._tokens.clear()
        self._confirmed.clear()
