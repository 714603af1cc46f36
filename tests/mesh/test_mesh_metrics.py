"""Prometheus metrics of a real ``smesh node`` (``--metrics-port``): ops forged by an
outsider from a raw zenoh session are counted as rejected, by reason, on /metrics while the
node runs."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest
import zenoh
from _meshkit import free_port

from smesh.mesh import Identity
from smesh.mesh.transport import MeshConfig, zenoh_config
from smesh.mesh.wire import Op, emit_op, encode, seal
from smesh.signal import Signal

pytest.importorskip("prometheus_client")


def _scrape(port: int) -> str:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return ""


def _series(text: str, name: str) -> dict[str, float]:
    """``{labels: value}`` of one metric family's samples."""
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, value = line[len(name) :].rsplit(" ", 1)
            out[labels] = float(value)
    return out


def test_forged_ops_show_as_rejected_by_reason(mesh_name: str) -> None:
    port, metrics_port = free_port(), free_port()
    node = subprocess.Popen(
        [sys.executable, "-m", "smesh", "node", "--mesh", mesh_name,
         "--listen", f"tcp/127.0.0.1:{port}", "--post", "--idle-timeout", "30",
         "--max-seconds", "60", "--metrics-port", str(metrics_port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    session: Any = None
    try:
        deadline = time.monotonic() + 30
        while "smesh_mesh_live_signals" not in _scrape(metrics_port):
            assert node.poll() is None and time.monotonic() < deadline, "no mesh metrics"
            time.sleep(0.1)
        before = _series(_scrape(metrics_port), "smesh_mesh_messages_rejected_total")
        assert not any("foreign_origin" in labels for labels in before)
        forger = Identity.generate()  # a key of its own, signing for a name that is not its
        session = zenoh.open(
            zenoh_config(MeshConfig(mesh=mesh_name, connect=(f"tcp/127.0.0.1:{port}",)))
        )
        publisher = session.declare_publisher(f"smesh/{mesh_name}/ops/{forger.node_id}")
        time.sleep(0.5)  # let the node's subscription reach the forger's session
        forged: list[Op] = [
            emit_op(
                Signal.create(
                    "decision",
                    {"task_id": f"t{i}", "attempt": 1, "verdict": "accepted"},
                    origin="someone-else",
                    created_at=time.time(),
                    ttl=60.0,
                )
            )
            for i in range(5)
        ]
        publisher.put(encode(seal(forger, mesh_name, time.time_ns(), 0, forged)))
        rejected: dict[str, float] = {}
        while time.monotonic() < deadline + 15:
            rejected = _series(_scrape(metrics_port), "smesh_mesh_messages_rejected_total")
            if any("foreign_origin" in labels for labels in rejected):
                break
            time.sleep(0.2)
        (count,) = [v for labels, v in rejected.items() if 'reason="foreign_origin"' in labels]
        assert count == 5
        received = _series(_scrape(metrics_port), "smesh_mesh_events_total")
        assert any('counter="received"' in labels and v >= 1 for labels, v in received.items())
    finally:
        if session is not None:
            session.close()
        node.send_signal(signal.SIGINT)
        try:
            node.wait(30)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait()
    assert node.returncode == 130
