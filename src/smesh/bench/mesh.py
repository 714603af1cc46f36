"""The mesh benchmark suite: throughput, latency and late join between peer processes.

Every figure is measured against raw zenoh pub/sub *in the same run*, between the same
kind of processes on this machine, so the ratios say what the mesh costs on top of zenoh:

- **throughput**: one process emits N signals, two other processes receive them; raw zenoh
  puts N messages of the same size (one signal's encoding each) to two subscribers. Time
  runs from the first emit until both receivers have everything.
- **latency**: one process emits a ping signal, another answers with a pong signal;
  one-way latency is half the round trip. Raw zenoh: a put answered by a put from the
  subscriber's callback, by the same echo process, pinged alternately with the mesh so
  that both see the same load. The mesh answers from zenoh's thread (an unbound
  MeshField, the fastest path); a field bound to an event loop, as agents use it, is
  measured too.
- **late join**: a process emits 10,000 signals, a second one replicates them, the first is
  killed, and a newcomer joins from the replica: the time from its query to a replica of
  10,000 verified live signals.
"""

from __future__ import annotations

import gc
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from smesh.bench import BenchResult

__all__ = ["run"]

Progress = Callable[[str], None] | None
_WORKER = [sys.executable, "-m", "smesh.bench._mesh_worker"]


class _Worker:
    """A worker process; ``line()`` reads its next stdout line with a timeout."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*_WORKER, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._lines: list[str] = []
        self._ready = threading.Condition()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._ready:
                self._lines.append(line.strip())
                self._ready.notify_all()
        with self._ready:
            self._lines.append("")  # EOF
            self._ready.notify_all()

    def line(self, timeout: float = 60.0) -> str:
        with self._ready:
            if not self._ready.wait_for(lambda: bool(self._lines), timeout):
                raise TimeoutError("a mesh benchmark worker went silent")
            return self._lines.pop(0)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(5)


@contextmanager
def _workers(*specs: list[str]) -> Iterator[list[_Worker]]:
    workers = [_Worker(*spec) for spec in specs]
    try:
        for worker in workers:
            first = worker.line()
            if not first.startswith("ready"):
                raise RuntimeError(f"a mesh benchmark worker failed to start: {first!r}")
        yield workers
    finally:
        for worker in workers:
            worker.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _raw_session(port: int) -> Any:
    import json

    import zenoh

    config = zenoh.Config()
    config.insert_json5("mode", '"peer"')
    config.insert_json5("listen/endpoints", json.dumps([f"tcp/127.0.0.1:{port}"]))
    config.insert_json5("scouting/multicast/enabled", "false")
    return zenoh.open(config)


def _sample_payload() -> bytes:
    from smesh.mesh.wire import emit_op
    from smesh.signal import Signal

    # the same size as a mesh signal's emit: its origin is scoped under a 32-digit node id
    origin = "0" * 32 + "/emitter"
    signal = Signal.create("bench", 123456, origin=origin, created_at=time.time(), ttl=600)
    return bytes(__import__("msgspec").msgpack.encode(emit_op(signal)))


def raw_throughput(n: int) -> float:
    """Messages per second from one process to two subscribers over raw zenoh."""
    import zenoh

    port, name = _free_port(), f"raw{time.time_ns()}"
    session = _raw_session(port)
    try:
        pub = session.declare_publisher(
            f"smesh-bench/{name}/raw/data", congestion_control=zenoh.CongestionControl.BLOCK
        )
        spec = ["raw-sink", "--name", name, "--connect", f"tcp/127.0.0.1:{port}"]
        with _workers([*spec, "--count", str(n)], [*spec, "--count", str(n)]) as sinks:
            time.sleep(0.5)  # let the subscriptions propagate
            payload = _sample_payload()
            start = time.time()
            for _ in range(n):
                pub.put(payload)
            ends = [float(s.line().split()[1]) for s in sinks]
        return n / (max(ends) - start)
    finally:
        session.close()


def mesh_throughput(n: int) -> float:
    """Signals per second emitted by one process and received by two other replicas."""
    import asyncio

    from smesh.mesh import MeshConfig, MeshField

    port, name = _free_port(), f"mesh{time.time_ns()}"
    # one signer sends everything at full speed: far over the default per-signer quota
    # (which would drop most of it, by design), so the sinks take generous limits
    spec = ["mesh-sink", "--name", name, "--connect", f"tcp/127.0.0.1:{port}", "--generous"]

    async def emit_all(field: MeshField, sinks: list[_Worker]) -> float:
        while len(field.peers()) < 2:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        start = time.time()
        emitter = field.agent_name("emitter")
        for i in range(n):
            field.emit("bench", i, origin=emitter, ttl=600.0)
        field.flush()
        ends = await asyncio.to_thread(lambda: [float(s.line().split()[1]) for s in sinks])
        return n / (max(ends) - start)

    async def main() -> float:
        config = MeshConfig(mesh=name, listen=(f"tcp/127.0.0.1:{port}",))
        async with MeshField(config) as field:
            with _workers([*spec, "--count", str(n)], [*spec, "--count", str(n)]) as sinks:
                return await emit_all(field, sinks)

    return asyncio.run(main())


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def latency(pings: int, echo: str) -> tuple[list[float], list[float]]:
    """One-way latencies (seconds) of raw zenoh and of the mesh, pinged alternately.

    One echo process answers both: a raw ``put`` with a ``put`` from its callback, a ping
    signal with a pong signal. Alternating the two, ping by ping, puts them under the same
    load, which on a shared machine moves both by tens of microseconds.
    """
    import zenoh

    from smesh.mesh import MeshConfig, MeshField

    mesh_port, raw_port, name = _free_port(), _free_port(), f"lat{time.time_ns()}"
    session = _raw_session(raw_port)
    field = MeshField(MeshConfig(mesh=name, listen=(f"tcp/127.0.0.1:{mesh_port}",)))
    raw_got, mesh_got = threading.Event(), threading.Event()
    raw: list[float] = []
    mesh: list[float] = []
    try:
        field.start()
        field.subscribe(lambda event: mesh_got.set(), kinds=["pong"])
        session.declare_subscriber(f"smesh-bench/{name}/raw/pong", lambda sample: raw_got.set())
        ping = session.declare_publisher(
            f"smesh-bench/{name}/raw/ping",
            express=True,
            congestion_control=zenoh.CongestionControl.BLOCK,
        )
        spec = [
            echo, "--name", name, "--connect", f"tcp/127.0.0.1:{mesh_port}",
            "--raw-connect", f"tcp/127.0.0.1:{raw_port}",
        ]  # fmt: skip
        with _workers(spec):
            deadline = time.monotonic() + 10
            while not field.peers() and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.5)
            payload = _sample_payload()
            pinger = field.agent_name("pinger")
            for i in range(pings + 20):
                raw_got.clear()
                start = time.perf_counter()
                ping.put(payload)
                if not raw_got.wait(2.0):
                    raise TimeoutError("no pong from the raw echo")
                raw_rtt = time.perf_counter() - start
                mesh_got.clear()
                start = time.perf_counter()
                field.emit("ping", i, origin=pinger, ttl=5.0)
                if not mesh_got.wait(2.0):
                    raise TimeoutError("no pong from the mesh echo")
                mesh_rtt = time.perf_counter() - start
                if i >= 20:  # warm-up
                    raw.append(raw_rtt / 2)
                    mesh.append(mesh_rtt / 2)
        return raw, mesh
    finally:
        field.close()
        session.close()


def late_join(signals: int, joins: int) -> list[float]:
    """Milliseconds for a newcomer to catch up on ``signals`` live signals from a replica
    whose emitter has been killed."""
    from smesh.mesh import MeshConfig, MeshField

    name = f"join{time.time_ns()}"
    origin_port, replica_port = _free_port(), _free_port()
    emitter = ["mesh-hold", "--name", name, "--listen", f"tcp/127.0.0.1:{origin_port}"]
    replica = [
        "mesh-hold", "--name", name, "--listen", f"tcp/127.0.0.1:{replica_port}",
        "--connect", f"tcp/127.0.0.1:{origin_port}", "--expect", str(signals),
    ]  # fmt: skip
    times: list[float] = []
    source_spec = [*emitter, "--count", str(signals), "--expect", str(signals)]
    # the replica starts once the emitter holds every signal (with-items enter in order)
    with _workers(source_spec) as (source,), _workers(replica):
        source.proc.kill()  # only the replica can answer now
        source.proc.wait(5)
        time.sleep(0.5)
        for _ in range(joins):
            config = MeshConfig(mesh=name, connect=(f"tcp/127.0.0.1:{replica_port}",))
            field = MeshField(config)
            try:
                field.start()
                if len(field) != signals:
                    raise RuntimeError(f"late joiner got {len(field)} of {signals} signals")
                assert field.late_join_ms is not None
                times.append(field.late_join_ms)
            finally:
                field.close()
    return times


def run(*, quick: bool = False, progress: Progress = None) -> list[BenchResult]:
    """Run the mesh workloads and return their figures."""
    say = progress or (lambda _: None)
    rounds = 1 if quick else 3
    n = 20_000 if quick else 100_000
    pings = 300 if quick else 2000
    results: list[BenchResult] = []

    def add(name: str, value: float, unit: str, detail: str, **extra: Any) -> None:
        results.append(
            BenchResult(name=name, value=round(value, 4), unit=unit, detail=detail, **extra)
        )

    gc.collect()
    raw_tp: list[float] = []
    mesh_tp: list[float] = []
    for r in range(rounds):
        say(f"throughput, round {r + 1}/{rounds}")
        raw_tp.append(raw_throughput(n))
        mesh_tp.append(mesh_throughput(n))
    ratios = [m / r for m, r in zip(mesh_tp, raw_tp, strict=True)]
    add(
        "zenoh_raw_msgs_per_s",
        statistics.median(raw_tp),
        "msg/s",
        f"{n:,} puts of one signal's encoding, 1 → 2 processes, median of {rounds}",
    )
    add(
        "mesh_signals_per_s",
        statistics.median(mesh_tp),
        "signal/s",
        f"{n:,} signed emits, 1 → 2 replicas (field events delivered; receivers with "
        f"generous quotas), median of {rounds}",
    )
    add(
        "mesh_throughput_ratio",
        statistics.median(ratios),
        "x",
        "mesh signals/s over raw zenoh msgs/s, same run",
        target=0.5,
        higher_is_better=True,
    )

    say("latency, mesh and raw zenoh side by side")
    raw, mesh = latency(pings, "mesh-echo-sync")
    raw_p50, raw_p99 = _percentiles(raw)
    mesh_p50, mesh_p99 = _percentiles(mesh)
    say("latency, mesh on an event loop, and raw zenoh")
    raw_loop, on_loop = latency(pings, "mesh-echo-loop")
    loop_raw_p50, _ = _percentiles(raw_loop)
    loop_p50, loop_p99 = _percentiles(on_loop)
    add("zenoh_raw_latency_p50_us", raw_p50 * 1e6, "µs", f"one-way, half of {pings} round trips")
    add("zenoh_raw_latency_p99_us", raw_p99 * 1e6, "µs", "one-way")
    add("mesh_latency_p50_us", mesh_p50 * 1e6, "µs", "one-way: emit → signed → verified → event")
    add("mesh_latency_p99_us", mesh_p99 * 1e6, "µs", "one-way")
    add(
        "mesh_latency_p50_ratio",
        mesh_p50 / raw_p50,
        "x",
        "mesh p50 over raw zenoh p50, pinged alternately (applied on zenoh's thread)",
        target=2.0,
    )
    add("mesh_latency_p99_ratio", mesh_p99 / raw_p99, "x", "mesh p99 over raw zenoh p99")
    add(
        "mesh_latency_loop_p50_us",
        loop_p50 * 1e6,
        "µs",
        "one-way, the echo's field bound to an asyncio loop (as agents use it)",
    )
    add(
        "mesh_latency_loop_p50_ratio",
        loop_p50 / loop_raw_p50,
        "x",
        "over raw zenoh p50 pinged alternately with it",
    )
    add("mesh_latency_loop_p99_us", loop_p99 * 1e6, "µs", "one-way, asyncio-bound echo")

    say("late join, 10,000 signals")
    joins = late_join(10_000, 3 if quick else 5)
    add(
        "mesh_late_join_10k_ms",
        statistics.median(joins),
        "ms",
        f"query → 10,000 verified live signals from a replica (emitter killed), "
        f"median of {len(joins)}",
        target=200.0,
    )
    return results
