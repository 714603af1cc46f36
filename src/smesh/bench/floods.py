"""Floods against a mesh peer: its peak memory, and its service to an honest peer meanwhile.

Each flood runs three processes on 127.0.0.1: a *victim* peer (bound to an event loop, as
agents use it), an *honest* peer that pings it every 20 ms (a ``ping`` signal answered by a
``pong`` signal: one round trip through both replicas), and an *attacker* that speaks the
project's wire format from a raw zenoh session. The floods are those of issue 10 (found-5):

- ``pending``: 1,000 batches of 1 MB with no MAC and no signature (each waits for a
  signature note that never comes);
- ``hellos``: 2,000 validly signed hellos from keys nobody runs (each a MAC key to keep);
- ``quota``: 100,000 signals from one identity, validly signed, in its own agents' names;
- ``tokens``: 300 liveliness tokens of nodes that do not exist;
- ``sync``: 20 sync queries at once to a replica holding ~20 MB of batches.

Figures: the victim's peak RSS (``VmHWM``) and the honest round trips (p50, p99, max, lost)
while the flood lasts, and the counters that show where the flood went. Targets (issue 10):
peak RSS ≤ 300 MB, honest round trip ≤ 50 ms. ``benchmarks/mesh_floods.py`` runs them all.
"""

from __future__ import annotations

import json
import socket
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

import msgspec

__all__ = ["FLOODS", "FloodResult", "run_flood"]

FLOODS = ("pending", "hellos", "quota", "tokens", "sync")
_WORKER = [sys.executable, "-m", "smesh.bench._flood_worker"]


class FloodResult(msgspec.Struct, frozen=True, kw_only=True):
    """What one flood did to the victim.

    Attributes:
        flood: which flood.
        sent: messages (or tokens, or queries) the attacker sent.
        flood_s: how long sending took.
        rss_before_mb: the victim's RSS before the flood.
        peak_rss_mb: the victim's peak RSS (VmHWM) after it.
        rtt_ms: the honest peer's round trips during the flood (None: lost).
        peers_seen: the most peers the victim listed while it lasted.
        victim: the victim's stats after the flood (peers, keys, counters).
        attacker: what the attacker saw of the victim's batches (and sync replies).
    """

    flood: str
    sent: int
    flood_s: float
    rss_before_mb: float
    peak_rss_mb: float
    rtt_ms: list[float | None]
    peers_seen: int
    victim: dict[str, Any]
    attacker: dict[str, Any]

    def rtt_summary(self) -> dict[str, float | int | None]:
        """p50, p99 and max of the answered round trips, and how many were lost."""
        answered = sorted(r for r in self.rtt_ms if r is not None)
        if not answered:
            return {"p50": None, "p99": None, "max": None, "lost": len(self.rtt_ms)}
        p99 = answered[min(len(answered) - 1, int(len(answered) * 0.99))]
        return {
            "p50": round(statistics.median(answered), 2),
            "p99": round(p99, 2),
            "max": round(answered[-1], 2),
            "lost": len(self.rtt_ms) - len(answered),
        }


class _Proc:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*_WORKER, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._lines: list[str] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self._lines.append(line.strip())
                self._cond.notify_all()
        with self._cond:
            self._lines.append("")
            self._cond.notify_all()

    def line(self, timeout: float = 60.0) -> str:
        with self._cond:
            if not self._cond.wait_for(lambda: bool(self._lines), timeout):
                raise TimeoutError("a flood worker went silent")
            line = self._lines.pop(0)
        if not line:
            raise RuntimeError(f"a flood worker exited ({self.proc.poll()})")
        return line

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def ask(self, command: str, timeout: float = 60.0) -> dict[str, Any]:
        self.send(command)
        data: dict[str, Any] = json.loads(self.line(timeout))
        return data

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(5)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_flood(flood: str, *, scale: float = 1.0, settle_s: float = 0.5) -> FloodResult:
    """Run one flood (see the module docstring) and measure the victim.

    Args:
        flood: one of :data:`FLOODS`.
        scale: multiplies the flood's size (1.0: the sizes of issue 10).
        settle_s: honest pings go on this long after the attacker is done.
    """
    if flood not in FLOODS:
        raise ValueError(f"unknown flood {flood!r} (known: {', '.join(FLOODS)})")
    port, name = _free_port(), f"flood{time.time_ns()}"
    victim_args = ["victim", "--name", name, "--listen", f"tcp/127.0.0.1:{port}"]
    honest_args: list[str] = []
    if flood == "sync":
        victim_args += ["--preload-bytes", str(int(20_000_000 * scale))]
    if flood == "tokens":  # a short TTL (for both), so that the tokens are soon forgotten
        honest_args = ["--hello-interval", "1", "--peer-ttl", "3"]
        victim_args += honest_args
    procs: list[_Proc] = []
    try:
        victim = _Proc(*victim_args)
        procs.append(victim)
        node = victim.line(120).split()[1]
        connect = ["--name", name, "--connect", f"tcp/127.0.0.1:{port}", "--victim", node]
        honest = _Proc("pinger", *connect, *honest_args)
        attacker = _Proc("flood", *connect, "--kind", flood, "--scale", str(scale))
        procs += [honest, attacker]
        honest.line(60)
        attacker.line(120)
        time.sleep(0.5)
        before = victim.ask("stats")
        honest.send("start")
        time.sleep(0.3)
        attacker.send("go")
        peers_seen = 0
        outcome: dict[str, Any] | None = None
        while outcome is None:  # watch the victim's peer list while the flood lasts
            try:
                outcome = json.loads(attacker.line(0.25))
            except TimeoutError:
                peers_seen = max(peers_seen, len(victim.ask("stats")["peers"]))
        time.sleep(settle_s)
        pinged = honest.ask("stop")
        rtts = pinged["rtts"]
        after = victim.ask("stats")
        peers_seen = max(peers_seen, len(after["peers"]))
        seen = attacker.ask("stats")
        return FloodResult(
            flood=flood,
            sent=int(outcome["sent"]),
            flood_s=float(outcome["seconds"]),
            rss_before_mb=float(before["rss_mb"]),
            peak_rss_mb=float(after["hwm_mb"]),
            rtt_ms=rtts,
            peers_seen=peers_seen,
            victim=after,
            attacker={**seen, "honest_loop_lag_ms": pinged.get("loop_lag_ms")},
        )
    finally:
        for proc in reversed(procs):
            proc.stop()
