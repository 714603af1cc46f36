"""Reproducible simulations of signals diffusing over a network (``smesh sim``).

A simulation builds a topology, emits signals from distinct random nodes at tick 0, and then
ticks a virtual clock: each tick expires what is due, relays every signal one hop layer, and
lets every node that holds a strong enough signal reinforce it with some probability. All
randomness comes from one seeded RNG, so the same configuration gives the same trace.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import msgspec

from smesh.clock import VirtualClock
from smesh.decay import DEFAULT_DECAY, Decay
from smesh.diffusion import NetworkField
from smesh.errors import InvalidValue
from smesh.network import Network
from smesh.topology import canonical_name

__all__ = ["SimConfig", "SimResult", "SimTick", "run_simulation"]


class SimConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Parameters of a simulation.

    Attributes:
        nodes: number of nodes (>= 1).
        topology: a built-in topology name.
        ticks: number of ticks to run (>= 0).
        signals: number of signals emitted at tick 0 (>= 0).
        seed: seed of the one RNG.
        dt: virtual seconds per tick.
        ttl: signal ttl in seconds.
        radius: maximum hops.
        decay: the signals' decay.
        reinforce_prob: chance per tick that a node holding a signal at or above its
            reinforcement threshold reinforces it.
    """

    nodes: int = 50
    topology: str = "small_world"
    ticks: int = 100
    signals: int = 10
    seed: int = 1
    dt: float = 0.1
    ttl: float = 60.0
    radius: int = 5
    decay: Decay = DEFAULT_DECAY
    reinforce_prob: float = 0.02

    def validated(self) -> SimConfig:
        """Return the config with a canonical topology name, or raise InvalidValue."""
        if self.nodes < 1:
            raise InvalidValue(f"nodes must be >= 1, got {self.nodes}")
        if self.ticks < 0:
            raise InvalidValue(f"ticks must be >= 0, got {self.ticks}")
        if self.signals < 0:
            raise InvalidValue(f"signals must be >= 0, got {self.signals}")
        if not self.dt > 0:
            raise InvalidValue(f"dt must be > 0, got {self.dt}")
        if not 0.0 <= self.reinforce_prob <= 1.0:
            raise InvalidValue(f"reinforce_prob must be in [0, 1], got {self.reinforce_prob}")
        return msgspec.structs.replace(self, topology=canonical_name(self.topology))


class SimTick(msgspec.Struct, frozen=True, kw_only=True):
    """The state after one tick."""

    tick: int
    time: float
    coverage: float
    mean_intensity: float
    active_signals: int
    reinforcements: int
    expired: int
    relays: int
    max_hops: int


class SimResult(msgspec.Struct, frozen=True, kw_only=True):
    """Summary of a run; the first keys are the stable ``smesh sim --json`` contract."""

    nodes: int
    edges: int
    topology: str
    ticks: int
    coverage: float
    max_hops: int
    ticks_to_50: int | None
    ticks_to_90: int | None
    active_signals: int
    reinforcements: int
    expired: int
    seed: int
    trace: list[SimTick]


def run_simulation(
    config: SimConfig,
    on_tick: Callable[[SimTick], None] | None = None,
    on_start: Callable[[Network, NetworkField], None] | None = None,
) -> SimResult:
    """Run a simulation and return its summary and per-tick trace.

    Args:
        config: the parameters.
        on_tick: called after every tick (for live views).
        on_start: called with the network and the field before the first emission (for
            recorders that follow the field).
    """
    config = config.validated()
    rng = random.Random(config.seed)
    network = Network.build(config.topology, config.nodes, rng=rng)
    clock = VirtualClock()
    field = NetworkField(network, clock, rng=rng)
    if on_start is not None:
        on_start(network, field)
    n = config.nodes
    origins = (
        rng.sample(range(n), config.signals)
        if config.signals <= n
        else [rng.randrange(n) for _ in range(config.signals)]
    )
    addresses: list[str] = []
    for k, origin in enumerate(origins):
        signal = field.emit(
            "sim",
            {"signal": k},
            origin=network.ids[origin],
            ttl=config.ttl,
            radius=config.radius,
            decay=config.decay,
        )
        addresses.append(signal.address)
    # best reach of every emitted signal, kept after it expires
    reached = dict.fromkeys(addresses, 1)
    max_hops = 0
    trace: list[SimTick] = []
    ticks_to: dict[float, int | None] = {0.5: None, 0.9: None}
    threshold = field.network.node(network.ids[0]).reinforce_threshold if n else 0.5
    for tick in range(1, config.ticks + 1):
        now = clock.advance(config.dt)
        before = field.stats()
        relays_before = field.relays
        field.tick(now)
        _reinforce(field, rng, config.reinforce_prob, threshold, now)
        intensities: list[float] = []
        for address in addresses:
            live = field.get(address, now)
            if live is not None:
                spread = field.spread(address)
                reached[address] = max(reached[address], spread.reached)
                max_hops = max(max_hops, spread.max_hops)
                intensities.append(live.effective(now))
        after = field.stats()
        coverage = sum(reached.values()) / (n * len(addresses)) if addresses else 0.0
        for level, first in ticks_to.items():
            if first is None and addresses and coverage >= level:
                ticks_to[level] = tick
        step = SimTick(
            tick=tick,
            time=now,
            coverage=coverage,
            mean_intensity=sum(intensities) / len(intensities) if intensities else 0.0,
            active_signals=after.live,
            reinforcements=after.reinforcements - before.reinforcements,
            expired=after.expired - before.expired,
            relays=field.relays - relays_before,
            max_hops=max_hops,
        )
        trace.append(step)
        if on_tick is not None:
            on_tick(step)
    stats = field.stats()
    final_coverage = sum(reached.values()) / (n * len(addresses)) if addresses else 0.0
    return SimResult(
        nodes=n,
        edges=network.edge_count,
        topology=network.topology,
        ticks=config.ticks,
        coverage=final_coverage,
        max_hops=max_hops,
        ticks_to_50=ticks_to[0.5],
        ticks_to_90=ticks_to[0.9],
        active_signals=stats.live,
        reinforcements=stats.reinforcements,
        expired=stats.expired,
        seed=config.seed,
        trace=trace,
    )


def _reinforce(
    field: NetworkField, rng: random.Random, prob: float, threshold: float, now: float
) -> None:
    """Nodes holding a signal at or above ``threshold`` reinforce it with probability prob."""
    if prob <= 0.0:
        return
    for signal in field.signals():
        for node in field.holders(signal.address, threshold, now):
            if rng.random() < prob:
                field.reinforce(signal.address, by=node)
