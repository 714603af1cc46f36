"""Helpers for the command-line tests: subprocess runs, backends that fail in known ways,
a port nothing listens on."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from smesh.apps.analyzers import ANALYZERS, RawFinding
from smesh.backends import register_backend
from smesh.backends.base import Request
from smesh.errors import AnalyzerFailed, BackendUnavailable
from smesh.testing import FunctionBackend

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
APPS_TESTS = ROOT / "tests" / "apps"
if str(APPS_TESTS) not in sys.path:  # the scripted review and coding "models" live there
    sys.path.insert(0, str(APPS_TESTS))


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def popen(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``smesh ARGS`` (with the fakes registered) as a real process."""
    full_env = {**os.environ, "PYTHONHASHSEED": "0", "COLUMNS": "100", "NO_COLOR": "1"}
    full_env.update(env or {})
    code = PRELUDE + "\nimport sys\nfrom smesh.cli import main\nsys.exit(main())\n"
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
    )


def wait_for_action(journal: Path, action: str, timeout: float = 120.0) -> float:
    """Wait until ``journal`` records an ``action`` (e.g. ``claim``; ``run``: the run's
    row exists); return when."""
    import sqlite3

    query = "SELECT count(*) FROM actions WHERE action = ?"
    args: tuple[str, ...] = (action,)
    if action == "run":
        query, args = "SELECT count(*) FROM runs", ()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(journal, timeout=1) as db:
                if db.execute(query, args).fetchone()[0]:
                    return time.monotonic()
        except sqlite3.Error:
            pass
        time.sleep(0.05)
    raise AssertionError(f"no {action!r} in {journal} within {timeout} s")


def smesh(
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 180,
    prelude: str = "",
) -> subprocess.CompletedProcess[str]:
    """Run ``smesh ARGS`` as a real process (``prelude``: Python run first, e.g. to
    register a backend; the process then runs ``smesh.cli.main()`` as the console script
    does)."""
    full_env = {**os.environ, "PYTHONHASHSEED": "0", "COLUMNS": "100", "NO_COLOR": "1"}
    full_env.update(env or {})
    if prelude:
        code = prelude + "\nimport sys\nfrom smesh.cli import main\nsys.exit(main())\n"
        cmd = [sys.executable, "-c", code, *args]
    else:
        cmd = [sys.executable, "-m", "smesh", *args]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd, check=False
    )


#: Python that registers the failing backends below in a subprocess
PRELUDE = (
    f"import sys\nsys.path.insert(0, {str(Path(__file__).resolve().parent)!r})\n"
    "from _clikit import register_fakes\nregister_fakes()\n"
)


def _down(model: str | None = None, **options: Any) -> FunctionBackend:
    def refuse(request: Request) -> str:
        raise BackendUnavailable("connection refused", backend="down")

    return FunctionBackend(refuse, name=f"down:{model}")


def _slow(model: str | None = None, **options: Any) -> FunctionBackend:
    return FunctionBackend(lambda r: "ok", name="slow", latency=float(model or 30))


def _slowdemo(model: str | None = None, **options: Any) -> FunctionBackend:
    """The demo's right answers, each after ``model`` seconds."""
    from smesh.apps.demo_script import demo_script_backend

    inner = demo_script_backend()
    return FunctionBackend(inner.complete, name="slowdemo", latency=float(model or 2))


def _stuck(model: str | None = None, **options: Any) -> FunctionBackend:
    """Blocks the event loop for ``model`` seconds per call (a misbehaving library):
    cancelling cannot reach it, only the watchdog or a second Ctrl-C ends the process."""

    def block(request: Request) -> str:
        time.sleep(float(model or 60))
        return "ok"

    return FunctionBackend(block, name="stuck")


class BrokenAnalyzer:
    """An analyzer that always fails."""

    name = "broken"

    async def run(self, root: Path, files: Sequence[str]) -> list[RawFinding]:
        raise AnalyzerFailed("broken: exited 2", backend="broken")


def register_fakes() -> None:
    """``down`` (every call: connection refused), ``slow:SECONDS`` (answers after that
    long), ``oracle`` (knows the samples' planted issues), ``coders`` (a good coding team),
    and the ``broken`` analyzer."""
    from _coders import Team
    from _oracle import SAMPLES as ORACLE_SAMPLES
    from _oracle import Oracle

    register_backend("down", _down, replace=True)
    register_backend("slow", _slow, replace=True)
    register_backend("slowdemo", _slowdemo, replace=True)
    register_backend("stuck", _stuck, replace=True)
    register_backend(
        "oracle", lambda model=None, **kw: FunctionBackend(Oracle(ORACLE_SAMPLES)), replace=True
    )
    register_backend("coders", lambda model=None, **kw: FunctionBackend(Team()), replace=True)
    ANALYZERS["broken"] = BrokenAnalyzer
