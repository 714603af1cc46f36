"""Record a ``smesh sim`` run into a journal, so the dashboard can play it back.

``smesh sim --record JOURNAL`` follows the simulation's field like any run (every emit,
reinforcement and expiry becomes a journal event) and adds, in the same tables:

* the run's meta: ``{"type": "sim", "network": {"ids", "edges", "layout", "topology"},
  "config": {...}}`` — ``layout`` is one ``[x, y]`` in [0, 1] per node;
* one action per tick, agent ``sim``, action ``frame``, detail ``{"tick", "t",
  "coverage", "relays", "signals": [{"i", "e", "new"}]}``: for every live signal, its index
  ``i`` (in order of first appearance), its effective intensity ``e``, and the nodes it
  reached during that tick as ``[node, hops, gain]``. A node's local intensity at a tick is
  ``e × gain``; frame 0 holds the emitters alone, so playback shows diffusion hop by hop.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from smesh.diffusion import NetworkField
from smesh.network import Network
from smesh.sim import SimConfig, SimResult, SimTick

__all__ = ["SimRecorder", "network_layout"]

_SPRING_MAX_NODES = 400  # above this a force layout costs seconds; a circle is instant


def network_layout(network: Network, seed: int = 1) -> dict[str, Any]:
    """Node ids, edges and a 2-D layout in [0, 1]² for drawing the network."""
    import networkx as nx

    graph = network.to_networkx()
    n = len(network)
    if 1 < n <= _SPRING_MAX_NODES:
        pos = nx.spring_layout(graph, seed=seed)
    else:
        pos = nx.circular_layout(graph)
    xy = np.array([pos[i] for i in network.ids] if n else np.zeros((0, 2)), dtype=float)
    if n:
        lo, hi = xy.min(axis=0), xy.max(axis=0)
        xy = (xy - lo) / np.where(hi - lo > 0, hi - lo, 1.0)
    return {
        "ids": list(network.ids),
        "edges": [[a, b] for a, b, _ in network.edges()],
        "layout": [[round(float(x), 4), round(float(y), 4)] for x, y in xy],
        "topology": network.topology,
    }


class SimRecorder:
    """Writes one simulation into a journal (pass :meth:`on_start` and :meth:`on_tick`
    to :func:`smesh.sim.run_simulation`, then call :meth:`finish`)."""

    def __init__(self, path: str | Path, config: SimConfig, run_id: str | None = None) -> None:
        from smesh.agents.journal import Journal

        self.journal = Journal(path)
        self.config = config
        self.run_id = run_id or "sim-" + uuid.uuid4().hex[:8]
        self._field: NetworkField | None = None
        self._index: dict[str, int] = {}
        self._hops: dict[str, npt.NDArray[np.int16]] = {}

    def on_start(self, network: Network, field: NetworkField) -> None:
        """Attach to the simulation's field before its first emission."""
        self._field = field
        meta = {
            "type": "sim",
            "network": network_layout(network, self.config.seed),
            "config": msgspec.to_builtins(self.config),
        }
        self.journal.attach(field, self.run_id, meta)

    def on_tick(self, step: SimTick) -> None:
        """Record the frame of one tick (and, before the first, frame 0)."""
        field = self._field
        if field is None:
            return
        if not self._index:
            self._frame(field, 0, step.time - self.config.dt, 0.0, 0, origins_only=True)
        self._frame(field, step.tick, step.time, step.coverage, step.relays, origins_only=False)

    def _frame(
        self,
        field: NetworkField,
        tick: int,
        t: float,
        coverage: float,
        relays: int,
        *,
        origins_only: bool,
    ) -> None:
        signals: list[dict[str, Any]] = []
        live = set()
        for signal in field.signals():
            address = signal.address
            live.add(address)
            index = self._index.setdefault(address, len(self._index))
            spread = field.spread(address)
            hops, gain = spread.hops, spread.gain
            reached = (hops == 0) if origins_only else (hops >= 0)
            before = self._hops.get(address)
            if before is not None:
                reached &= before < 0
            new = [
                [int(i), int(hops[i]), round(float(gain[i]), 3)] for i in np.flatnonzero(reached)
            ]
            self._hops[address] = np.where(hops == 0, hops, -1) if origins_only else hops
            signals.append({"i": index, "e": round(signal.effective(t), 4), "new": new})
        for address in [a for a in self._hops if a not in live]:
            signals.append({"i": self._index[address], "e": 0.0, "new": []})  # expired
            del self._hops[address]
        detail = {
            "tick": tick,
            "t": t,
            "coverage": round(coverage, 4),
            "relays": relays,
            "signals": signals,
        }
        self.journal.action(t, "sim", "frame", None, detail)
        self.journal.flush()  # a dashboard following the run sees each tick as it happens

    def finish(self, result: SimResult) -> None:
        """Record the summary (without the per-tick trace) and close the journal."""
        summary = msgspec.to_builtins(result)
        summary.pop("trace", None)
        self.journal.finish(self.run_id, summary)
        self.journal.close()
