"""Peer processes for the mesh benchmarks (``python -m smesh.bench._mesh_worker ROLE ...``).

Each prints ``ready`` when it can take traffic and, for sinks, ``done <unix time>`` once it
has received everything; echoes and holders run until their stdin closes.

Roles: ``raw-sink`` / ``mesh-sink`` count messages or replicated signals;
``mesh-echo-sync`` / ``mesh-echo-loop`` answer each ping signal with a pong signal, and each
raw zenoh ping with a raw pong (so both are measured side by side); ``mesh-hold`` emits (or
receives) a number of long-lived signals and keeps its replica up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from typing import Any

RAW_KEY = "smesh-bench/{}/raw"


def _say(*parts: object) -> None:
    sys.stdout.write(" ".join(str(p) for p in parts) + "\n")
    sys.stdout.flush()


def _raw_session(args: argparse.Namespace) -> Any:
    import zenoh

    config = zenoh.Config()
    config.insert_json5("mode", '"peer"')
    config.insert_json5("listen/endpoints", json.dumps(["tcp/127.0.0.1:0"]))
    config.insert_json5("connect/endpoints", json.dumps(args.connect))
    config.insert_json5("scouting/multicast/enabled", "false")
    return zenoh.open(config)


def raw_sink(args: argparse.Namespace) -> None:
    session = _raw_session(args)
    done = threading.Event()
    count = [0]

    def on_sample(sample: Any) -> None:
        count[0] += 1
        if count[0] == args.count:
            _say("done", time.time())
            done.set()

    sub = session.declare_subscriber(RAW_KEY.format(args.name) + "/data", on_sample)
    _say("ready")
    done.wait(args.timeout)
    sub.undeclare()
    session.close()


def _raw_echo(args: argparse.Namespace, connect: list[str]) -> Any:
    """A session answering every raw ping with a pong, from zenoh's callback thread."""
    import zenoh

    session = _raw_session(argparse.Namespace(connect=connect))
    pong = session.declare_publisher(
        RAW_KEY.format(args.name) + "/pong",
        express=True,
        congestion_control=zenoh.CongestionControl.BLOCK,
    )
    session.declare_subscriber(
        RAW_KEY.format(args.name) + "/ping", lambda sample: pong.put(sample.payload.to_bytes())
    )
    return session


def _mesh(args: argparse.Namespace) -> Any:
    from smesh.mesh import MeshConfig, MeshField
    from smesh.mesh.limits import Limits

    listen = tuple(args.listen) or ("tcp/127.0.0.1:0",)
    limits = Limits.generous() if args.generous else Limits()
    config = MeshConfig(mesh=args.name, listen=listen, connect=tuple(args.connect), limits=limits)
    return MeshField(config)


async def mesh_sink(args: argparse.Namespace) -> None:
    """Done once the replica holds every signal: a replica with no subscriber, as the
    sinks of raw zenoh have nothing but a counter."""
    field = _mesh(args)
    await field.astart()
    _say("ready", field.node_id)
    try:
        async with asyncio.timeout(args.timeout):
            while len(field) < args.count:
                await asyncio.sleep(0.001)
        _say("done", time.time())
    finally:
        await field.aclose()


def _echo_events(field: Any) -> Any:
    def on_event(event: Any) -> None:
        if event.type == "emit":
            field.emit("pong", event.signal.payload, origin=echo, ttl=5.0)

    echo = field.agent_name("echo")
    return on_event


async def mesh_echo_loop(args: argparse.Namespace) -> None:
    field = _mesh(args)
    await field.astart()
    field.subscribe(_echo_events(field), kinds=["ping"])
    raw = _raw_echo(args, args.raw_connect)
    _say("ready", field.node_id)
    try:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    finally:
        raw.close()
        await field.aclose()


def mesh_echo_sync(args: argparse.Namespace) -> None:
    field = _mesh(args)
    field.start()
    field.subscribe(_echo_events(field), kinds=["ping"])
    raw = _raw_echo(args, args.raw_connect)
    _say("ready", field.node_id)
    sys.stdin.read()
    raw.close()
    field.close()


async def mesh_hold(args: argparse.Namespace) -> None:
    field = _mesh(args)
    await field.astart()
    if args.count:
        holder = field.agent_name("holder")
        with field.batch():
            for i in range(args.count):
                field.emit("held", {"i": i}, origin=holder, ttl=3600.0)
    deadline = time.monotonic() + args.timeout
    # ready once it holds every signal, each batch with its signature (a late joiner
    # only takes signed batches)
    while (len(field) < args.expect or field.mesh_stats().unsigned) and (
        time.monotonic() < deadline
    ):
        await asyncio.sleep(0.02)
    _say("ready", field.node_id, len(field))
    try:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    finally:
        await field.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role")
    parser.add_argument("--name", required=True, help="mesh name / key prefix")
    parser.add_argument("--listen", action="append", default=[])
    parser.add_argument("--connect", action="append", default=[])
    parser.add_argument("--raw-connect", action="append", default=[])
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--expect", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--generous", action="store_true", help="limits no workload reaches")
    args = parser.parse_args()
    role = args.role
    if role == "raw-sink":
        raw_sink(args)
    elif role == "mesh-sink":
        asyncio.run(mesh_sink(args))
    elif role == "mesh-echo-loop":
        asyncio.run(mesh_echo_loop(args))
    elif role == "mesh-echo-sync":
        mesh_echo_sync(args)
    elif role == "mesh-hold":
        asyncio.run(mesh_hold(args))
    else:
        raise SystemExit(f"unknown role {role}")


if __name__ == "__main__":
    main()
