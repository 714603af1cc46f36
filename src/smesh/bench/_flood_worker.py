"""Processes for the mesh flood benchmark (``python -m smesh.bench._flood_worker ROLE ...``).

Roles, each printing ``ready ...`` once it can take commands on stdin (one per line):

- ``victim``: a mesh peer bound to an event loop (as agents use it) that answers every
  ``ping`` signal with a ``pong``; ``stats`` prints its memory (current and peak RSS), peers,
  peer keys and counters as one JSON line.
- ``pinger``: an honest peer; ``start`` pings the victim every ``--interval`` seconds until
  ``stop``, then prints the round trips (ms; None for a ping never answered within 2 s).
- ``flood``: an attacker speaking the project's wire format from a raw zenoh session;
  ``go`` sends its flood (see :mod:`smesh.bench.floods`) and prints what it sent; ``stats``
  prints what it saw of the victim's own batches since.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from typing import Any

import msgspec


def _say(*parts: object) -> None:
    sys.stdout.write(" ".join(str(p) for p in parts) + "\n")
    sys.stdout.flush()


def _memory_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MB, from /proc."""
    found = {"VmRSS": 0.0, "VmHWM": 0.0}
    with open(f"/proc/{os.getpid()}/status", encoding="ascii") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in found:
                found[key] = int(value.split()[0]) / 1024
    return found["VmRSS"], found["VmHWM"]


def _config(args: argparse.Namespace) -> Any:
    from smesh.mesh import Limits, MeshConfig

    limits = Limits(hello_interval_s=args.hello_interval, peer_ttl_s=args.peer_ttl)
    return MeshConfig(
        mesh=args.name,
        listen=tuple(args.listen) or ("tcp/127.0.0.1:0",),
        connect=tuple(args.connect),
        limits=limits,
    )


class _LoopLag:
    """The event loop's worst lateness: a 5 ms sleep that takes longer says the loop was
    busy that much longer."""

    def __init__(self) -> None:
        self.worst_ms = 0.0
        self._task = asyncio.get_running_loop().create_task(self._probe())

    async def _probe(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(0.005)
            late = (time.perf_counter() - start - 0.005) * 1e3
            self.worst_ms = max(self.worst_ms, late)

    def take(self) -> float:
        worst, self.worst_ms = self.worst_ms, 0.0
        return round(worst, 2)


async def _lines() -> Any:
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        yield line.strip()


async def victim(args: argparse.Namespace) -> None:
    from smesh.mesh import MeshField

    field = MeshField(_config(args))
    await field.astart()
    echo = field.agent_name("echo")

    def on_ping(event: Any) -> None:
        if event.type == "emit":
            field.emit("pong", event.signal.payload, origin=echo, ttl=5.0)

    field.subscribe(on_ping, kinds=["ping"])
    if args.preload_bytes:  # a replica with something to serve late joiners
        holder, pad = field.agent_name("holder"), "x" * 2000
        with field.batch():
            for i in range(args.preload_bytes // 2000 + 1):
                field.emit("held", {"i": i, "pad": pad}, origin=holder, ttl=3600.0)
        while field.mesh_stats().unsigned:
            await asyncio.sleep(0.02)
    lag = _LoopLag()
    _say("ready", field.node_id)
    try:
        async for line in _lines():
            if line == "stats":
                rss, hwm = _memory_mb()
                stats = field.mesh_stats()
                report = {
                    "rss_mb": round(rss, 1),
                    "hwm_mb": round(hwm, 1),
                    "peers": stats.peers,
                    "keys": len(field.channel.keyring),
                    "batches": stats.batches,
                    "live": stats.live,
                    "loop_lag_ms": lag.take(),
                    "counters": stats.counters,
                }
                _say(json.dumps(report))
    finally:
        await field.aclose()


async def pinger(args: argparse.Namespace) -> None:
    from smesh.mesh import MeshField

    field = MeshField(_config(args))
    await field.astart()
    waiting: dict[int, asyncio.Future[float]] = {}

    def on_pong(event: Any) -> None:
        payload = event.signal.payload
        if event.type == "emit" and isinstance(payload, dict):
            future = waiting.pop(int(payload.get("i", -1)), None)
            if future is not None and not future.done():
                future.set_result(time.perf_counter())

    field.subscribe(on_pong, kinds=["pong"])
    deadline = time.monotonic() + 20
    while args.victim not in field.peers() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    _say("ready", field.node_id, args.victim in field.peers())
    lag = _LoopLag()
    me = field.agent_name("pinger")
    stop = asyncio.Event()
    rtts: list[float | None] = []

    async def ping_loop() -> None:
        n = 0
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            n += 1
            future: asyncio.Future[float] = loop.create_future()
            waiting[n] = future
            sent = time.perf_counter()
            field.emit("ping", {"i": n, "from": field.node_id}, origin=me, ttl=5.0)
            try:
                got = await asyncio.wait_for(future, 2.0)
                rtts.append(round((got - sent) * 1e3, 3))
            except TimeoutError:
                waiting.pop(n, None)
                rtts.append(None)
            await asyncio.sleep(args.interval)

    task: asyncio.Task[None] | None = None
    try:
        async for line in _lines():
            if line == "start":
                rtts.clear()
                stop.clear()
                task = asyncio.create_task(ping_loop())
            elif line == "stop" and task is not None:
                stop.set()
                await task
                task = None
                _say(json.dumps({"rtts": rtts, "loop_lag_ms": lag.take()}))
    finally:
        stop.set()
        if task is not None:
            await task
        await field.aclose()


def _emits(origin: str, count: int, start: int = 0) -> list[Any]:
    from smesh.mesh.wire import emit_op
    from smesh.signal import Signal

    now = time.time()
    return [
        emit_op(Signal.create("spam", {"i": i}, origin=origin, created_at=now, ttl=600.0))
        for i in range(start, start + count)
    ]


def flood(args: argparse.Namespace) -> None:
    import zenoh

    from smesh.mesh import Identity, MeshConfig
    from smesh.mesh.auth import Keyring
    from smesh.mesh.transport import zenoh_config
    from smesh.mesh.wire import VERSION, Envelope, Sealed, encode, seal

    mesh, kind, scale = args.name, args.kind, args.scale
    session: Any = zenoh.open(zenoh_config(MeshConfig(mesh=mesh, connect=tuple(args.connect))))
    root = f"smesh/{mesh}"
    seen: dict[str, int] = {"batches": 0, "max_macs": 0, "max_bytes": 0}
    go = threading.Event()

    def on_victim(sample: Any) -> None:
        data = sample.payload.to_bytes()
        if not go.is_set():
            return
        try:
            message = msgspec.msgpack.decode(data, type=Envelope)
        except msgspec.DecodeError:
            return
        if isinstance(message, Sealed):
            seen["batches"] += 1
            seen["max_macs"] = max(seen["max_macs"], len(message.macs))
            seen["max_bytes"] = max(seen["max_bytes"], len(data))

    entities: list[Any] = [session.declare_subscriber(f"{root}/ops/{args.victim}", on_victim)]
    me = Identity.generate()
    pub = session.declare_publisher(
        f"{root}/ops/{me.node_id}", congestion_control=zenoh.CongestionControl.BLOCK
    )
    got = [0]  # bytes of sync replies received

    def on_reply(reply: Any) -> None:
        if reply.ok is not None:
            got[0] += len(reply.ok.payload.to_bytes())

    messages: list[bytes] = []
    if kind == "pending":  # unsigned batches with no MAC for anyone: they wait for a note
        body = msgspec.msgpack.encode([os.urandom(1 << 20)])
        count = int(1000 * scale)
        messages = [
            encode(Sealed(VERSION, me.public_key, 1, seq, body, b"")) for seq in range(count)
        ]
    elif kind == "hellos":  # validly signed hellos from keys nobody runs
        count = int(2000 * scale)
        messages = [
            encode(Keyring(Identity.generate(), mesh, time.time_ns()).hello) for _ in range(count)
        ]
    elif kind == "quota":  # 100,000 signals from one identity, in its own agents' names
        count, per = int(100_000 * scale), 1000
        origin = f"{me.node_id}/spammer"
        epoch = time.time_ns()
        messages = [
            encode(seal(me, mesh, epoch, seq, _emits(origin, per, seq * per)))
            for seq in range(count // per)
        ]
    time.sleep(0.5)  # let the subscriptions reach this session
    _say("ready", len(messages))
    for line in sys.stdin:
        command = line.strip()
        if command == "go":
            go.set()
            started = time.perf_counter()
            sent = 0
            if kind == "tokens":
                liveliness = session.liveliness()
                for _ in range(int(300 * scale)):
                    node = Identity.generate().node_id
                    entities.append(liveliness.declare_token(f"{root}/peers/{node}"))
                    sent += 1
            elif kind == "sync":
                for _ in range(int(20 * scale)):
                    session.get(f"{root}/sync/{args.victim}/**", on_reply, timeout=5.0)
                    sent += 1
                time.sleep(5.0)
                seen["reply_bytes"] = got[0]
            else:
                for message in messages:
                    pub.put(message)
                    sent += 1
            _say(json.dumps({"sent": sent, "seconds": round(time.perf_counter() - started, 3)}))
        elif command == "stats":
            _say(json.dumps(seen))
    for entity in entities:
        entity.undeclare()
    session.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["victim", "pinger", "flood"])
    parser.add_argument("--name", required=True, help="mesh name")
    parser.add_argument("--listen", action="append", default=[])
    parser.add_argument("--connect", action="append", default=[])
    parser.add_argument("--victim", default="")
    parser.add_argument("--kind", default="quota")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--interval", type=float, default=0.02)
    parser.add_argument("--preload-bytes", type=int, default=0)
    parser.add_argument("--hello-interval", type=float, default=5.0)
    parser.add_argument("--peer-ttl", type=float, default=16.0)
    args = parser.parse_args()
    if args.role == "victim":
        asyncio.run(victim(args))
    elif args.role == "pinger":
        asyncio.run(pinger(args))
    else:
        flood(args)


if __name__ == "__main__":
    main()
