"""The core benchmark suite: SMESH-Rust's published workloads, reproduced in Python.

Every figure is a median over repeated runs of the same workload. Creation includes the
address hash; emit, tick and expiry of the field are measured separately, as SPEC §6 asks.
"""

from __future__ import annotations

import gc
import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from smesh.bench import BenchResult
from smesh.clock import VirtualClock
from smesh.field import Field
from smesh.network import Network
from smesh.signal import Signal

__all__ = ["run"]

Progress = Callable[[str], None] | None

# SMESH-Rust's published figures (seed 000), in the unit we report each one in
_RUST = {
    "signal_creation": 216.0,  # ns
    "effective_intensity": 16.0,  # ns
    "reinforcement": 48.0,  # ns
    "field_emit_1000": 414.0,  # µs
    "field_emit_batch_1000": 414.0,  # µs
    "field_tick_10000": 1200.0,  # µs
    "network_tick_100_5": 14.0,  # µs
    "topology_ring_50": 32.0,
    "topology_ring_100": 63.0,
    "topology_ring_500": 300.0,
    "topology_small_world_50": 51.0,
    "topology_small_world_100": 98.0,
    "topology_small_world_500": 500.0,
    "topology_full_mesh_50": 336.0,
    "topology_full_mesh_100": 1300.0,
    "topology_full_mesh_500": 30000.0,
}

_TARGETS = {
    "signal_creation": 1000.0,
    "effective_intensity": 500.0,
    "effective_intensity_vectorized": 20.0,
    "reinforcement": 1000.0,
    "field_emit_1000": 1000.0,
    "field_emit_batch_1000": 400.0,
    "field_tick_10000": 300.0,
    "network_tick_100_5": 50.0,
    "network_tick_100_1000": 5000.0,
    "topology_small_world_500": 2000.0,
    "topology_full_mesh_500": 30000.0,
    "field_1m_rss": 1024.0,
}


def _median_per_op(body: Callable[[], int], repeats: int) -> float:
    """Median seconds per operation; ``body`` runs a batch and returns its op count."""
    samples: list[float] = []
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection in the middle of a sample measures the collector, not us
    try:
        for _ in range(repeats):
            start = time.perf_counter()
            ops = body()
            samples.append((time.perf_counter() - start) / ops)
    finally:
        if gc_was_enabled:
            gc.enable()
    return statistics.median(samples)


def _payloads(n: int) -> list[dict[str, object]]:
    return [{"task": f"t{i}", "skill": "code", "priority": i % 10} for i in range(n)]


def _signals(n: int, *, created_at: float = 0.0) -> list[Signal]:
    return [Signal.create("task", p, origin="bench", created_at=created_at) for p in _payloads(n)]


def bench_signal_creation(repeats: int) -> float:
    payloads = _payloads(10_000)
    create = Signal.create

    def body() -> int:
        for p in payloads:
            create("task", p, origin="bench", created_at=0.0)
        return len(payloads)

    return _median_per_op(body, repeats) * 1e9


def bench_effective(repeats: int) -> float:
    signal = Signal.create("task", {"x": 1}, origin="bench", created_at=0.0)
    times = [i * 0.001 for i in range(10_000)]

    def body() -> int:
        eff = signal.effective
        for t in times:
            eff(t)
        return len(times)

    return _median_per_op(body, repeats) * 1e9


def bench_effective_vectorized(repeats: int, n: int) -> float:
    from smesh.vectorized import SignalArray

    rng = random.Random(7)
    signals = [
        Signal.create("task", {"i": i}, origin="bench", created_at=rng.uniform(0, 30))
        for i in range(n)
    ]
    array = SignalArray(signals)

    def body() -> int:
        array.effective(31.0)
        return n

    return _median_per_op(body, repeats) * 1e9


def bench_reinforcement(repeats: int) -> float:
    clock = VirtualClock()
    field = Field(clock)
    signals = _signals(1000)
    field.emit_many(signals)
    addresses = [s.address for s in signals]
    round_ = iter(range(10**9))

    def body() -> int:
        by = f"r{next(round_)}"  # a new reinforcer each round, so every call counts
        reinforce = field.reinforce
        for a in addresses:
            reinforce(a, by=by)
        return len(addresses)

    return _median_per_op(body, repeats) * 1e9


def bench_emit(repeats: int, *, batch: bool) -> float:
    clock = VirtualClock()
    signals = _signals(1000)
    samples: list[float] = []
    for _ in range(repeats):
        field = Field(clock)
        gc.disable()
        start = time.perf_counter()
        if batch:
            field.emit_many(signals)
        else:
            emit = field.emit
            for s in signals:
                emit(s)
        samples.append(time.perf_counter() - start)
        gc.enable()
    return statistics.median(samples) * 1e6


def bench_tick(repeats: int) -> float:
    clock = VirtualClock()
    field = Field(clock)
    field.emit_many(_signals(10_000))

    def body() -> int:
        field.tick(1.0)  # nothing is due at t=1: the lazy tick touches no signal
        return 1

    assert len(field) == 10_000
    return _median_per_op(body, repeats * 50) * 1e6


def bench_expire(repeats: int) -> float:
    clock = VirtualClock()
    signals = _signals(10_000)
    samples: list[float] = []
    for _ in range(repeats):
        field = Field(clock)
        field.emit_many(signals)
        start = time.perf_counter()
        expired = field.tick(1000.0)
        samples.append(time.perf_counter() - start)
        assert len(expired) == 10_000
    return statistics.median(samples) * 1e6


def bench_network_tick(repeats: int, live: int, nodes: int = 100) -> float:
    """Median tick while ``live`` fresh signals spread over a small world.

    Ticks are timed during the spreading phase (the first ticks after emission), when relays
    actually happen; a network whose signals have all settled ticks for free.
    """
    from smesh.diffusion import NetworkField

    network = Network.build("small_world", nodes, seed=1)
    samples: list[float] = []
    for rep in range(repeats):
        clock = VirtualClock()
        field = NetworkField(network, clock, seed=rep)
        rng = random.Random(rep)
        for k in range(live):
            field.emit("bench", {"k": k}, origin=network.ids[rng.randrange(nodes)])
        for _ in range(8):
            now = clock.advance(0.1)
            start = time.perf_counter()
            field.tick(now)
            samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


def bench_topology(repeats: int, topology: str, n: int) -> float:
    def body() -> int:
        Network.build(topology, n, seed=1)
        return 1

    return _median_per_op(body, repeats) * 1e6


_RSS_SCRIPT = """
import json, resource
from smesh.field import Field
from smesh.signal import Signal
from smesh.clock import VirtualClock
field = Field(VirtualClock())
create = Signal.create
field.emit_many(
    create("task", {"task": i, "skill": "code"}, origin="bench", created_at=0.0)
    for i in range(N)
)
assert len(field) == N
print(json.dumps({"rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def bench_rss(n: int) -> float:
    """Peak RSS, in MB, of a fresh process holding ``n`` live signals in one field."""
    script = _RSS_SCRIPT.replace("N", str(n)).replace("range(" + str(n), "range(" + str(n))
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1])["rss_kb"]) / 1024.0


def run(*, quick: bool = False, progress: Progress = None) -> list[BenchResult]:
    """Run the core suite. ``quick`` uses fewer repeats (and a smaller memory test)."""
    r = 5 if quick else 15

    def say(name: str) -> None:
        if progress is not None:
            progress(name)

    results: list[BenchResult] = []

    def add(name: str, value: float, unit: str, detail: str) -> None:
        results.append(
            BenchResult(
                name=name,
                value=round(value, 3),
                unit=unit,
                reference=_RUST.get(name),
                target=_TARGETS.get(name),
                detail=detail,
            )
        )

    say("signal_creation")
    add("signal_creation", bench_signal_creation(r), "ns", "Signal.create incl. blake2b address")
    say("effective_intensity")
    add("effective_intensity", bench_effective(r), "ns", "Signal.effective, one signal")
    say("effective_intensity_vectorized")
    add(
        "effective_intensity_vectorized",
        bench_effective_vectorized(r, 100_000),
        "ns",
        "SignalArray.effective over 100k signals, per signal",
    )
    say("reinforcement")
    add("reinforcement", bench_reinforcement(r), "ns", "Field.reinforce by a new node")
    say("field_emit_1000")
    add("field_emit_1000", bench_emit(r, batch=False), "µs", "1,000 Field.emit calls")
    say("field_emit_batch_1000")
    add("field_emit_batch_1000", bench_emit(r, batch=True), "µs", "one Field.emit_many of 1,000")
    say("field_tick_10000")
    add("field_tick_10000", bench_tick(r), "µs", "tick with 10,000 live, none due")
    say("field_expire_10000")
    add("field_expire_10000", bench_expire(r), "µs", "tick that expires all 10,000")
    say("network_tick_100_5")
    add(
        "network_tick_100_5",
        bench_network_tick(r, 5),
        "µs",
        "100-node small world, 5 spreading signals",
    )
    say("network_tick_100_1000")
    add(
        "network_tick_100_1000",
        bench_network_tick(max(3, r // 3), 1000),
        "µs",
        "100-node small world, 1,000 spreading signals",
    )
    for topology in ("ring", "small_world", "full_mesh"):
        for n in (50, 100, 500):
            name = f"topology_{topology}_{n}"
            say(name)
            reps = r * 4 if not (topology == "full_mesh" and n == 500) else r
            add(name, bench_topology(reps, topology, n), "µs", f"Network.build {topology} {n}")
    n_rss = 1_000_000
    say("field_1m_rss")
    add("field_1m_rss", bench_rss(n_rss), "MB", f"peak RSS of a process holding {n_rss:,} signals")
    return results
