"""Running generated tests: pytest in a subprocess with limits and no network.

The tests run in a work directory inside the project (so a run's files stay with it),
with:

- a wall-clock timeout, after which the whole process group is killed and reaped;
- resource limits set in the child before it runs (``resource.setrlimit``): CPU seconds,
  address space, file size, open files, and no core dumps;
- no network: the environment is rebuilt from scratch (no proxies, no credentials) and a
  ``sitecustomize`` module makes every socket connect or DNS lookup raise, so code under
  test cannot reach anything, local servers included (Unix sockets still work);
- its own session, so nothing it spawns outlives the run.

The counts come from pytest's JUnit XML report, not from scraping its output.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from pathlib import Path

import msgspec

__all__ = ["Limits", "TestRun", "run_pytest"]

_SITECUSTOMIZE = '''\
"""Installed by smesh's sandbox: code under test gets no network."""
import socket as _socket


class _NoNetwork(OSError):
    pass


def _refuse(*args, **kwargs):
    raise _NoNetwork("network access is disabled in the smesh test sandbox")


_real_connect = _socket.socket.connect
_real_connect_ex = _socket.socket.connect_ex


def _connect(self, address, *args):
    if self.family == getattr(_socket, "AF_UNIX", None):
        return _real_connect(self, address, *args)
    _refuse()


def _connect_ex(self, address, *args):
    if self.family == getattr(_socket, "AF_UNIX", None):
        return _real_connect_ex(self, address, *args)
    _refuse()


_socket.socket.connect = _connect
_socket.socket.connect_ex = _connect_ex
_socket.create_connection = _refuse
_socket.getaddrinfo = _refuse
_socket.gethostbyname = _refuse
'''


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """Resource limits of a test run.

    Attributes:
        timeout_s: wall-clock limit; the process group is killed after it.
        cpu_s: CPU seconds (RLIMIT_CPU).
        memory_bytes: address space (RLIMIT_AS).
        file_bytes: largest file it may write (RLIMIT_FSIZE).
        open_files: open file descriptors (RLIMIT_NOFILE).
    """

    timeout_s: float = 60.0
    cpu_s: int = 60
    memory_bytes: int = 2 * 1024**3
    file_bytes: int = 64 * 1024**2
    open_files: int = 256


class TestRun(msgspec.Struct, frozen=True, kw_only=True):
    """What a test run did.

    Attributes:
        tests_run: tests collected and run.
        tests_passed: tests that passed.
        passed: every test passed and at least one ran.
        exit_code: pytest's exit status (-9 when killed).
        timed_out: killed at the wall-clock limit.
        output: the tail of pytest's output (for feedback).
    """

    __test__ = False  # not a pytest test class

    tests_run: int
    tests_passed: int
    passed: bool
    exit_code: int
    timed_out: bool = False
    output: str = ""


def _preexec(limits: Limits) -> Callable[[], None]:
    def apply() -> None:  # runs in the child, between fork and exec
        for name, value in (
            (resource.RLIMIT_CPU, limits.cpu_s),
            (resource.RLIMIT_AS, limits.memory_bytes),
            (resource.RLIMIT_FSIZE, limits.file_bytes),
            (resource.RLIMIT_NOFILE, limits.open_files),
            (resource.RLIMIT_CORE, 0),
        ):
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(name, (value, value))

    return apply


def sandbox_env(workdir: Path, extra_paths: tuple[Path, ...] = ()) -> dict[str, str]:
    """A clean environment: no proxies or credentials, the sandbox's ``sitecustomize``
    first on the path, then the work directory."""
    guard = workdir / ".sandbox"
    guard.mkdir(parents=True, exist_ok=True)
    (guard / "sitecustomize.py").write_text(_SITECUSTOMIZE, encoding="utf-8")
    paths = [str(guard), str(workdir), *map(str, extra_paths)]
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "LANG": "C.UTF-8",
        "PYTHONPATH": os.pathsep.join(paths),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "PYTHONHASHSEED": "0",
        "NO_PROXY": "*",
    }


def _counts(report: Path) -> tuple[int, int]:
    try:
        root = ET.parse(report).getroot()
    except (OSError, ET.ParseError):
        return 0, 0
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    run = failed = 0
    for suite in suites:
        tests = int(suite.get("tests", 0))
        skipped = int(suite.get("skipped", 0))
        run += tests - skipped
        failed += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    return run, max(0, run - failed)


async def run_pytest(
    workdir: Path,
    tests: list[str],
    *,
    limits: Limits | None = None,
    python: str = sys.executable,
    env: Mapping[str, str] | None = None,
) -> TestRun:
    """Run pytest on ``tests`` (paths relative to ``workdir``) inside ``workdir``."""
    lim = limits or Limits()
    report = workdir / ".sandbox" / "junit.xml"
    environment = dict(env) if env is not None else sandbox_env(workdir)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.unlink(missing_ok=True)
    argv = [
        python,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--rootdir",
        str(workdir),
        f"--junitxml={report}",
        *tests,
    ]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=workdir,
        env=environment,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_preexec(lim),
    )
    timed_out = False
    out = b""
    try:
        async with asyncio.timeout(lim.timeout_s):
            out, _ = await proc.communicate()
    except (TimeoutError, asyncio.CancelledError) as exc:
        timed_out = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proc.wait(), 5.0)
        if isinstance(exc, asyncio.CancelledError):
            raise
    run, passed = _counts(report)
    code = proc.returncode if proc.returncode is not None else -9
    text = out.decode("utf-8", errors="replace")
    if timed_out:
        text += f"\n(killed after {lim.timeout_s:g} s)"
    return TestRun(
        tests_run=run,
        tests_passed=passed,
        passed=code == 0 and run > 0 and passed == run and not timed_out,
        exit_code=code,
        timed_out=timed_out,
        output=text[-2000:],
    )
