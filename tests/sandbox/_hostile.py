"""Helpers for the sandbox escape tests: hostile test files run through ``run_pytest`` and
listeners on the host that count what reaches them."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import textwrap
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

from smesh.sandbox import Limits, TestRun, run_pytest

#: put before every hostile test body: ``record`` leaves proof (in the project directory,
#: copied back) that the attempt ran and how it ended; ``attempt`` runs one try
PRELUDE = """\
import json, os, sys


def record(**facts):
    with open("escape.json", "w") as fh:
        json.dump(facts, fh)


def attempt(fn):
    try:
        return "succeeded: " + repr(fn())[:300]
    except BaseException as exc:  # noqa: BLE001 - the sandbox may raise anything
        return f"blocked: {type(exc).__name__}: {exc}"[:300]

"""


class Escape(NamedTuple):
    """A hostile run: pytest's result, what the hostile test recorded, its directory."""

    run: TestRun
    record: dict[str, Any] | None
    project: Path


def run_hostile(tmp_path: Path, body: str, **limits: Any) -> Escape:
    """Run ``body`` (a pytest test module, dedented) as generated tests in a sandbox."""
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True, exist_ok=True)
    source = PRELUDE + textwrap.dedent(body)
    (project / "tests" / "test_hostile.py").write_text(source, encoding="utf-8")
    limits.setdefault("timeout_s", 30)
    run = asyncio.run(run_pytest(project, ["tests/test_hostile.py"], limits=Limits(**limits)))
    path = project / "escape.json"
    record = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    return Escape(run, record, project)


class Listener:
    """A server on the host (127.0.0.1 TCP or UDP, or a Unix socket) that counts contacts.

    Args:
        kind: ``tcp``, ``udp`` or ``unix``.
        path: the Unix socket's address (``"\\0name"`` for the abstract namespace).
    """

    def __init__(self, kind: str, path: str = "") -> None:
        self.kind = kind
        self.contacts = 0
        family = socket.AF_UNIX if kind == "unix" else socket.AF_INET
        sock_type = socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
        self.sock = socket.socket(family, sock_type)
        self.sock.bind(path if kind == "unix" else ("127.0.0.1", 0))
        if kind != "udp":
            self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = 0 if kind == "unix" else int(self.sock.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                if self.kind == "udp":
                    self.sock.recvfrom(65536)
                else:
                    conn, _ = self.sock.accept()
                    conn.close()
            except TimeoutError:
                continue
            except OSError:
                return
            self.contacts += 1

    def __enter__(self) -> Listener:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


def processes_with(marker: str) -> list[int]:
    """Host processes whose command line contains ``marker``."""
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                if marker.encode() in fh.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def peak_rss_reset() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS; False if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def rss_kib(field: str) -> int:
    """``VmRSS`` or ``VmHWM`` of this process, in KiB."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


def dump(escape: Escape) -> str:
    """What to show when an escape assertion fails."""
    return json.dumps({"record": escape.record, "output": escape.run.output[-1500:]}, indent=1)
