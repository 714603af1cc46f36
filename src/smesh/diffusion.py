"""Per-hop diffusion of signals over a network.

A :class:`NetworkField` is a :class:`~smesh.field.Field` whose signals start at their
emitter and spread one hop layer per :meth:`~NetworkField.tick`. Each node a signal has
reached has its own *local intensity*: the signal's effective intensity times a gain that
shrinks at every hop. On each tick every reached node may relay each signal to each
neighbour not yet reached, with probability::

    confidence · local_intensity · trust(origin) · remaining_hops / radius

and the neighbour's gain is the sender's times the dampening (0.9 when the sender trusts the
origin above 0.7, else 0.7) times the edge strength. When several senders reach the same
node in one tick, the strongest relay wins. A node senses only what reached it, at its local
intensity.

The state is kept as numpy arrays, one row per live signal (hops, gain), so a tick is a few
array operations over the candidate edges of all spreading signals at once. A signal with no
candidate edge left (everything within its radius reached) leaves the active set for good.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import numpy.typing as npt

from smesh.clock import Clock
from smesh.errors import InvalidSignal
from smesh.field import Field
from smesh.network import Network
from smesh.signal import Signal
from smesh.trust import DEFAULT_TRUST

__all__ = ["HIGH_TRUST", "NetworkField", "Spread"]

#: a sender that trusts the origin above this relays with the gentler dampening
HIGH_TRUST = 0.7
DAMPENING_TRUSTED = 0.9
DAMPENING_DEFAULT = 0.7

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class Spread:
    """How far one signal has travelled: a read-only view for reports and tests."""

    __slots__ = ("gain", "hops")

    def __init__(self, hops: npt.NDArray[np.int16], gain: FloatArray) -> None:
        self.hops = hops
        self.gain = gain

    @property
    def reached(self) -> int:
        """Number of nodes reached."""
        return int(np.count_nonzero(self.hops >= 0))

    @property
    def max_hops(self) -> int:
        """Largest hop count among reached nodes."""
        return int(self.hops.max()) if self.hops.size else 0


class NetworkField(Field):
    """A field over a network: signals diffuse hop by hop instead of being ambient.

    Args:
        network: the topology.
        clock: time source (defaults to the system clock).
        rng: the seeded RNG every relay draw comes from.
        seed: seed for a fresh RNG when ``rng`` is not given.
        history: size of the expired-signal ring buffer.
    """

    def __init__(
        self,
        network: Network,
        clock: Clock | None = None,
        *,
        rng: random.Random | None = None,
        seed: int | None = None,
        history: int = 1000,
    ) -> None:
        super().__init__(clock, history=history)
        self.network = network
        rng = rng if rng is not None else random.Random(seed)
        # numpy draws in bulk; its generator is seeded from the one seeded RNG
        self._np_rng = np.random.Generator(np.random.PCG64(rng.getrandbits(64)))
        n = len(network)
        self._n = n
        src: list[int] = []
        dst: list[int] = []
        strength: list[float] = []
        for i, j, s in network.edges():
            src.append(i)
            dst.append(j)
            strength.append(s)
        self._src: IntArray = np.asarray(src, dtype=np.int64)
        self._dst: IntArray = np.asarray(dst, dtype=np.int64)
        self._strength: FloatArray = np.asarray(strength, dtype=np.float64)
        # a link of strength 0 carries nothing: it is never a relay candidate
        self._open = self._strength > 0.0
        capacity = 64
        self._hops = np.full((capacity, n), -1, dtype=np.int16)
        self._gain = np.zeros((capacity, n), dtype=np.float64)
        self._radius = np.zeros(capacity, dtype=np.int64)
        self._origin_col = np.zeros(capacity, dtype=np.int64)
        self._active = np.zeros(capacity, dtype=bool)
        self._row: dict[str, int] = {}
        self._signal_of_row: list[Signal | None] = [None] * capacity
        self._free: list[int] = list(range(capacity - 1, -1, -1))
        self._trust = np.full((n, n + 1), DEFAULT_TRUST)  # column n: origin outside the net
        self.relays = 0

    # -- rows ------------------------------------------------------------------------------

    @property
    def capacity(self) -> int:
        """Signal rows allocated (doubled when full; a gone signal's row is reused)."""
        return len(self._radius)

    def _grow(self) -> None:
        old = len(self._radius)
        new = old * 2
        n = self._n
        hops = np.full((new, n), -1, dtype=np.int16)
        hops[:old] = self._hops
        gain = np.zeros((new, n), dtype=np.float64)
        gain[:old] = self._gain
        self._hops, self._gain = hops, gain
        self._radius = np.concatenate([self._radius, np.zeros(old, dtype=np.int64)])
        self._origin_col = np.concatenate([self._origin_col, np.zeros(old, dtype=np.int64)])
        self._active = np.concatenate([self._active, np.zeros(old, dtype=bool)])
        self._signal_of_row.extend([None] * old)
        self._free.extend(range(new - 1, old - 1, -1))

    def _place(self, signal: Signal, at: int) -> None:
        """Mark the signal as present at node position ``at`` (an emitter)."""
        row = self._row.get(signal.address)
        if row is None:
            if not self._free:
                self._grow()
            row = self._free.pop()
            self._row[signal.address] = row
            self._hops[row] = -1
            self._gain[row] = 0.0
            self._radius[row] = signal.radius
            origin = self.network.position(signal.origin)
            self._origin_col[row] = self._n if origin is None else origin
        # a new emitter may open edges again for a signal that had settled
        self._active[row] = signal.radius > 0
        self._signal_of_row[row] = signal
        self._hops[row, at] = 0
        self._gain[row, at] = 1.0

    def _forget(self, address: str) -> None:
        row = self._row.pop(address, None)
        if row is not None:
            self._active[row] = False
            self._signal_of_row[row] = None
            self._free.append(row)

    # -- field API -------------------------------------------------------------------------

    def emit(
        self, signal: Signal | str, payload: Any = None, /, *, at: str | None = None, **options: Any
    ) -> Signal:
        """Emit at node ``at`` (default: the signal's origin, which must be in the network).

        A signal already live elsewhere is reinforced and now also present at ``at``.
        """
        if not isinstance(signal, Signal):
            signal = self.new_signal(signal, payload, **options)
        elif payload is not None or options:
            raise InvalidSignal("emit(Signal) takes no payload or options")
        emitter = at if at is not None else signal.origin
        if emitter not in self.network:  # check before the field changes
            raise InvalidSignal(
                f"emitter {emitter!r} is not a node of this network; pass at= a node id",
                node=emitter,
                signal=signal.address,
            )
        live = super().emit(signal)
        self._place(live, self.network.index(emitter))
        return live

    def emit_many(self, signals: Any) -> int:
        """Emit each signal at its origin (see :meth:`emit`)."""
        count = 0
        for signal in signals:
            before = len(self)
            self.emit(signal)
            count += len(self) - before
        return count

    def reinforce(self, address: str, *, by: str) -> bool:
        counted = super().reinforce(address, by=by)
        if counted:
            row = self._row.get(address)
            if row is not None:
                self._signal_of_row[row] = self._get_live(address)
        return counted

    def renew(self, address: str, *, by: str) -> Signal:
        renewed = super().renew(address, by=by)
        row = self._row.get(address)
        if row is not None:
            self._signal_of_row[row] = renewed
        return renewed

    def intensity_at(self, signal: Signal, node: str, now: float) -> float:
        """Local intensity of ``signal`` at ``node`` (0 if it has not reached it)."""
        row = self._row.get(signal.address)
        i = self.network.position(node)
        if row is None or i is None or self._hops[row, i] < 0:
            return 0.0
        return signal.effective(now) * float(self._gain[row, i])

    def spread(self, address: str) -> Spread:
        """Hops and gains of a live signal across the network (copies)."""
        row = self._row.get(address)
        if row is None:
            self._get_live(address)  # raises SignalNotFound
            raise AssertionError("unreachable")  # pragma: no cover
        return Spread(self._hops[row].copy(), self._gain[row].copy())

    def holders(self, address: str, threshold: float = 0.0, now: float | None = None) -> list[str]:
        """Ids of the nodes where the signal's local intensity is at least ``threshold``."""
        row = self._row.get(address)
        if row is None:
            return []
        signal = self._get_live(address)
        now = self.clock.now() if now is None else now
        local = signal.effective(now) * self._gain[row]
        at = np.flatnonzero((self._hops[row] >= 0) & (local >= threshold))
        ids = self.network.ids
        return [ids[i] for i in at.tolist()]

    def coverage(self, address: str) -> float:
        """Share of nodes the live signal at ``address`` has reached."""
        return self.spread(address).reached / self._n

    def tick(self, now: float | None = None) -> list[Signal]:
        """Expire what is due, then relay every live signal one hop layer."""
        if now is None:
            now = self.clock.now()
        expired = super().tick(now)
        self.relays += self._diffuse(now)
        return expired

    # -- diffusion -------------------------------------------------------------------------

    def _refresh_trust(self, now: float) -> bool:
        """Load nodes' trust in origins into the matrix; False if every value is the default
        (the common case in simulations, which then skips the per-relay trust lookup)."""
        uniform = True
        for i, node in self.network.configured_nodes().items():
            if len(node.trust):
                uniform = False
                row = self._trust[i]
                row[:] = DEFAULT_TRUST
                for peer, value in node.trust.snapshot(now).items():
                    j = self.network.position(peer)
                    if j is not None:
                        row[j] = value
        return not uniform

    def _diffuse(self, now: float) -> int:
        rows = np.flatnonzero(self._active)
        if rows.size == 0:
            return 0
        signals = self._signal_of_row
        live: list[Signal] = [signals[r] for r in rows]  # type: ignore[misc]
        eff = np.fromiter((s.effective(now) for s in live), dtype=np.float64, count=len(live))
        conf = np.fromiter((s.confidence for s in live), dtype=np.float64, count=len(live))
        radius = self._radius[rows]
        hops = self._hops[rows]
        hs = hops[:, self._src]
        # Unreached is -1, which reads as 65535 unsigned: one comparison then tests both
        # "the sender is reached" and "it has hops left".
        candidate = hs.view(np.uint16) < radius[:, None]
        candidate &= hops[:, self._dst] < 0
        candidate &= self._open
        spreading = candidate.any(axis=1)
        if not spreading.all():
            self._active[rows[~spreading]] = False  # nothing left to reach, ever
        si, ei = np.nonzero(candidate)
        if si.size == 0:
            return 0
        r = rows[si]
        u = self._src[ei]
        gain_u = self._gain[r, u]
        hops_u = hs[si, ei].astype(np.float64)
        rad = radius[si].astype(np.float64)
        p = conf[si] * eff[si] * gain_u * (rad - hops_u) / rad
        if self._refresh_trust(now):
            trust = self._trust[u, self._origin_col[r]]
            p *= trust
        else:
            trust = None
            p *= DEFAULT_TRUST
        ok = self._np_rng.random(p.size) < p
        if not ok.any():
            return 0
        r, ei, gain_u, hops_u = r[ok], ei[ok], gain_u[ok], hops_u[ok]
        v = self._dst[ei]
        if trust is None:
            damp: FloatArray | float = (
                DAMPENING_TRUSTED if DEFAULT_TRUST > HIGH_TRUST else DAMPENING_DEFAULT
            )
        else:
            damp = np.where(trust[ok] > HIGH_TRUST, DAMPENING_TRUSTED, DAMPENING_DEFAULT)
        gain_v = gain_u * damp * self._strength[ei]
        # several senders may reach the same node: keep the strongest relay
        key = r * self._n + v
        order = np.lexsort((-gain_v, key))
        ordered = key[order]
        first = np.ones(order.size, dtype=bool)
        first[1:] = ordered[1:] != ordered[:-1]
        pick = order[first]
        self._hops[r[pick], v[pick]] = hops_u[pick] + 1
        self._gain[r[pick], v[pick]] = gain_v[pick]
        return int(pick.size)
