"""Running generated code: a sandbox built from the operating system's isolation layer.

:class:`Sandbox` runs a command on a copy of a project directory inside bubblewrap (see
:mod:`smesh.sandbox.bwrap` for the namespaces and mounts, and ``docs/sandbox.md`` for
what it does and does not protect against)::

    result = await Sandbox(limits=Limits(timeout_s=30)).run(argv, cwd=project)

- no network (an empty network namespace: loopback only, the host's is unreachable);
- a read-only root holding only the system, the Python installation and its virtual
  environment; the project's own directory is a size-capped tmpfs at the same path,
  filled with a copy of it and copied back (new and changed plain files only) at the end;
  a private ``/tmp``; a new PID namespace, so ``/proc`` shows no host process;
- a fresh environment: no API keys, no proxies;
- limits on processes, per-process address space, file size, total disk (the tmpfs
  sizes), CPU seconds and open files; the host watches the *total* resident memory of the
  whole process tree and kills the sandbox when it passes :attr:`Limits.memory_bytes`;
- at the wall-clock limit everything in the sandbox is killed, setsid() grandchildren
  included (the PID namespace dies with its init); output is read through pipes into a
  bounded tail, the rest discarded as it arrives.

Where the isolation layer is missing (no bwrap, user namespaces disabled) the sandbox
refuses to run anything (:class:`SandboxUnavailable`) unless built with
``unsafe_local_exec=True``, which runs the command as a plain subprocess with the same
limits but none of the isolation.

:func:`smesh.sandbox.run_pytest` runs pytest in one and counts the results from its JUnit
report.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import msgspec

from smesh.errors import SandboxUnavailable, UsageError
from smesh.sandbox.bwrap import (
    SOURCE,
    Isolation,
    SandboxMounts,
    bwrap_argv,
    fresh_uid,
    probe,
)
from smesh.sandbox.host import GRACE_S, Limits, SandboxResult, Spool, extract_back, supervise

__all__ = ["Sandbox", "base_env", "isolation"]

#: directories not copied into the sandbox
DEFAULT_EXCLUDE = (".git", ".hg", ".venv", "node_modules", "__pycache__", ".mypy_cache")
_MAX_ENTRIES = 10_000
_BWRAP_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def isolation(python: str = sys.executable) -> Isolation:
    """Whether (and how) the sandbox works on this machine; probed once, then cached."""
    return probe(python)


def base_env(python: str, workdir: str, *, isolated: bool) -> dict[str, str]:
    """The whole environment of the command: nothing inherited from the caller."""
    bindir = os.path.dirname(os.path.abspath(python))
    return {
        "PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp" if isolated else workdir,
        "TMPDIR": "/tmp" if isolated else tempfile.gettempdir(),
        "LANG": "C.UTF-8",
        "USER": "sandbox",
        "LOGNAME": "sandbox",
        "PYTHONPATH": workdir,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "PYTHONHASHSEED": "0",
    }


class Sandbox:
    """Runs commands on a project directory inside the OS isolation layer.

    Args:
        limits: default limits of each run.
        python: the interpreter the commands use (its installation and virtual
            environment are bound read-only into the sandbox).
        ro_paths: more host paths to bind read-only at the same place.
        exclude: directory names not copied into the sandbox.
        unsafe_local_exec: when the isolation layer is missing, run commands as plain
            subprocesses (same limits, no isolation) instead of refusing.
    """

    def __init__(
        self,
        *,
        limits: Limits | None = None,
        python: str = sys.executable,
        ro_paths: Sequence[str | Path] = (),
        exclude: Sequence[str] = DEFAULT_EXCLUDE,
        unsafe_local_exec: bool = False,
    ) -> None:
        self.limits = limits or Limits()
        self.python = python
        self.ro_paths = tuple(os.path.realpath(p) for p in ro_paths)
        self.exclude = tuple(exclude)
        self.unsafe_local_exec = unsafe_local_exec

    @property
    def isolation(self) -> Isolation:
        """The probed isolation layer (cached per interpreter)."""
        return probe(self.python)

    @property
    def isolated(self) -> bool:
        """Runs will be isolated (else they are refused, or unsafe when opted in)."""
        return self.isolation.available

    def check(self) -> None:
        """Raise unless runs can go ahead (isolated, or unsafe by explicit choice).

        Raises:
            SandboxUnavailable: no isolation layer and no ``unsafe_local_exec``.
        """
        iso = self.isolation
        if not iso.available and not self.unsafe_local_exec:
            raise SandboxUnavailable(
                f"refusing to run generated code without a sandbox: {iso.reason} "
                "(install bubblewrap, or pass --unsafe-local-exec to run it unsandboxed)"
            )

    async def run(
        self,
        argv: Sequence[str],
        *,
        cwd: str | Path,
        env: Mapping[str, str] | None = None,
        limits: Limits | None = None,
    ) -> SandboxResult:
        """Run ``argv`` with ``cwd`` (the project directory) as its writable directory.

        Args:
            argv: the command; ``argv[0]`` must exist inside the sandbox.
            cwd: the project directory; what the command writes there is copied back.
            env: variables added to the fresh environment.
            limits: this run's limits (default: the sandbox's).

        Raises:
            SandboxUnavailable: see :meth:`check`.
            UsageError: ``cwd`` is not a directory or cannot hold a sandbox.
        """
        self.check()
        if not argv:
            raise UsageError("nothing to run")
        workdir = os.path.realpath(cwd)
        if not os.path.isdir(workdir):
            raise UsageError(f"{str(cwd)!r} is not a directory")
        lim = limits or self.limits
        isolated = self.isolation.available
        environment = base_env(self.python, workdir, isolated=isolated)
        environment.update(env or {})
        bad = [k for k, v in environment.items() if not k or "=" in k or "\0" in k + v]
        if bad or any("\0" in a for a in argv):
            raise UsageError(f"invalid command or environment variable: {(bad or argv)[0]!r}")
        if isolated:
            if workdir in ("/", "/usr", "/proc", "/dev", "/tmp") or workdir.startswith("/usr/"):
                raise UsageError(f"{workdir!r} cannot be a sandbox's project directory")
            return await self._run_isolated(list(argv), workdir, environment, lim)
        return await self._run_local(list(argv), workdir, environment, lim)

    async def _run_isolated(
        self, argv: list[str], workdir: str, env: dict[str, str], lim: Limits
    ) -> SandboxResult:
        iso = self.isolation
        control_r, control_w = os.pipe()
        config = {
            "control_fd": control_w,
            "source": SOURCE,
            "dir": workdir,
            "argv": argv,
            "env": env,
            "uid": fresh_uid() if iso.mode == "setuid" else None,
            "timeout_s": lim.timeout_s,
            "rlimits": lim.rlimits(),
            "max_entries": _MAX_ENTRIES,
            "exclude": list(self.exclude),
        }
        mounts = SandboxMounts(
            workdir=workdir,
            disk_bytes=lim.disk_bytes,
            tmp_bytes=lim.tmp_bytes,
            ro_paths=self.ro_paths,
        )
        cmd = bwrap_argv(iso, mounts, python=self.python, config=json.dumps(config), source=workdir)
        with tempfile.TemporaryFile(prefix="smesh-sandbox-") as spool_file:
            spool = Spool(spool_file, lim.disk_bytes + 64 * 1024**2)
            raw = await supervise(
                cmd, None, _BWRAP_ENV, lim, lim.timeout_s + GRACE_S, spool, control_r, control_w
            )
            if spool.overflow:
                return msgspec.structs.replace(raw, error="the sandbox's copy-back was too large")
            spool_file.seek(0)
            head = spool_file.readline(64 * 1024)
            try:
                status = json.loads(head) if head.strip() else {}
            except ValueError:
                status = {}
            if not status:  # killed by the host, or the supervisor died
                if raw.killed_by:
                    return raw
                why = raw.error or f"the sandbox ended early (exit {raw.exit_code})"
                return msgspec.structs.replace(raw, error=why)
            if status.get("error"):
                return msgspec.structs.replace(raw, error=str(status["error"]))
            written, _ = await asyncio.to_thread(extract_back, spool_file, workdir)
        timed_out = bool(status.get("timed_out")) or raw.killed_by == "timeout"
        return msgspec.structs.replace(
            raw,
            exit_code=int(status.get("exit_code", raw.exit_code)),
            timed_out=timed_out,
            killed_by=raw.killed_by or ("timeout" if timed_out else ""),
            copied_back=written,
        )

    async def _run_local(
        self, argv: list[str], workdir: str, env: dict[str, str], lim: Limits
    ) -> SandboxResult:
        raw = await supervise(argv, workdir, env, lim, lim.timeout_s, None, None, None)
        return msgspec.structs.replace(raw, isolated=False)
