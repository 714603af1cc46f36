"""The mesh half of the ``faults`` suite: real peer processes, killed with SIGKILL.

One poster process (no agents) posts the tasks and watches; worker processes, each with a
few agents that work and verify, share the field over the mesh on 127.0.0.1
(:mod:`smesh.eval._mesh_peer`). Whole peers are killed at random moments of the run, so
the kill rates are multiples of one peer's share of the agents. Measured at the poster:
completion, tasks accepted twice (on two attempts: deciders on two nodes may each emit
the decision on one attempt, citing the votes each saw, and that is one acceptance), and
the run's duration against the no-fault run's.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import random
import socket
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

from smesh.errors import RuntimeFailure

__all__ = ["mesh_curve", "mesh_run"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Proc:
    """A peer process whose stdout lines are read with a timeout."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "RUST_LOG": "error"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "smesh.eval._mesh_peer", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def read(self, key: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(0.01, left))
            except queue.Empty:
                raise RuntimeFailure(f"mesh peer gave no {key!r} within {timeout:g} s") from None
            if line is None:
                raise RuntimeFailure(f"mesh peer exited ({self.proc.poll()}) before {key!r}")
            with contextlib.suppress(ValueError):
                data: dict[str, Any] = json.loads(line)
                if key in data:
                    return data

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)


def mesh_run(
    *,
    kill: int,
    horizon_s: float,
    seed: int,
    peers: int = 4,
    agents: int = 5,
    tasks: int = 200,
    latency_s: float = 0.5,
    timeout_s: float = 180.0,
) -> dict[str, Any]:
    """One run with ``kill`` worker peers killed at moments uniform in ``horizon_s``."""
    name = f"eval-{uuid.uuid4().hex[:8]}"
    endpoint = f"tcp/127.0.0.1:{_free_port()}"
    common = ["--mesh", name, "--latency", str(latency_s), "--seed", str(seed)]
    procs: list[_Proc] = []
    try:
        poster = _Proc(
            *common,
            "--listen",
            endpoint,
            "--prefix",
            "poster",
            "--agents",
            "0",
            "--post",
            str(tasks),
            "--wait-peers",
            str(peers),
        )
        procs.append(poster)
        poster.read("ready", 60)
        workers = [
            _Proc(*common, "--connect", endpoint, "--prefix", f"p{i}", "--agents", str(agents))
            for i in range(peers)
        ]
        procs.extend(workers)
        for w in workers:
            w.read("ready", 60)
        poster.read("posting", 60)
        started = time.monotonic()
        rng = random.Random(f"{seed}/{kill}")
        victims = rng.sample(workers, kill)
        moments = sorted((rng.uniform(0.0, horizon_s), v) for v in victims)
        killed_at = []
        for moment, victim in moments:
            delay = started + moment - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            victim.kill()
            killed_at.append(round(time.monotonic() - started, 3))
        done = poster.read("report", timeout_s)
    finally:
        for p in procs:
            p.kill()
    report = done["report"]
    accepted = sum(1 for t in report["tasks"] if t["status"] == "accepted")
    return {
        "killed_peers": kill,
        "killed_at_s": killed_at,
        "completion": accepted / tasks,
        "accepted_twice": sum(1 for n in done["accepted"].values() if n > 1),
        "duration_s": float(report["duration_s"]),
        "stopped_by": report["stopped_by"],
    }


def mesh_curve(
    *, seed: int, peers: int = 4, agents: int = 5, tasks: int = 200, repeats: int = 2
) -> list[dict[str, Any]]:
    """No kills, then one peer and half the peers killed (0, 1/peers and 1/2 of the agents),
    each ``repeats`` times with different kill moments; one row per run."""
    base = mesh_run(kill=0, horizon_s=0.0, seed=seed, peers=peers, agents=agents, tasks=tasks)
    points = [{**base, "rate": 0.0, "duration_ratio": 1.0}]
    for kill in sorted({1, peers // 2}):
        for r in range(repeats):
            run = mesh_run(
                kill=kill,
                horizon_s=base["duration_s"],
                seed=seed * 1000 + r,
                peers=peers,
                agents=agents,
                tasks=tasks,
            )
            run["rate"] = kill / peers
            run["duration_ratio"] = round(run["duration_s"] / base["duration_s"], 4)
            points.append(run)
    return points
