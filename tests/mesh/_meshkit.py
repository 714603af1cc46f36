"""Helpers for the mesh tests: peer processes driven over pipes, free ports, polling."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PEER = Path(__file__).with_name("_peer.py")
REPLY_TIMEOUT = 15.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Peer:
    """One peer process, driven line by line (see ``_peer.py``; ``_wfpeer.py`` runs a team)."""

    def __init__(
        self, args: list[str], *, prefix: list[str] | None = None, script: Path = PEER
    ) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "RUST_LOG": "error"}
        self.proc = subprocess.Popen(
            [*(prefix or []), sys.executable, str(script), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()
        self.node_id = ""
        self.late_join_ms: float | None = None

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _pump_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    def read(self, timeout: float = REPLY_TIMEOUT) -> dict[str, Any]:
        """The next JSON line from the peer."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"peer silent for {timeout} s; stderr: {self.stderr()}") from None
        if line is None:
            raise AssertionError(f"peer exited ({self.proc.poll()}); stderr: {self.stderr()}")
        data: dict[str, Any] = json.loads(line)
        return data

    def stderr(self) -> str:
        return "".join(self._stderr[-30:])

    def wait_ready(self, timeout: float = REPLY_TIMEOUT) -> Peer:
        hello = self.read(timeout)
        assert "ready" in hello, hello
        self.node_id = hello["ready"]
        self.late_join_ms = hello.get("late_join_ms")
        return self

    def call(self, op: str, timeout: float = REPLY_TIMEOUT, **args: Any) -> dict[str, Any]:
        """Send one command and return its answer."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        answer = self.read(timeout)
        assert "error" not in answer, answer
        return answer

    def kill(self) -> None:
        """kill -9."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)

    def stop(self) -> None:
        """Ask the peer to quit; kill it if it does not within a few seconds."""
        if self.proc.poll() is not None:
            return
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.proc.stdin.flush()
            self.proc.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            self.kill()


def eventually(check: Callable[[], bool], timeout: float = 10.0, step: float = 0.05) -> bool:
    """Poll ``check`` until it is true or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return check()
