"""The host side of a sandbox run: its limits and result, starting and watching the
process tree (bounded pipes, total memory, deadline, kill), and the copy-back.

Nothing here trusts the code in the sandbox: its output is read into a fixed-size tail and
the rest discarded as it arrives; its control stream is spooled to a temporary file up to
a byte cap; the files it hands back are extracted only when they are plain files or
directories whose resolved path stays inside the project directory, with harmless modes.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import resource
import signal
import tarfile
import time
from collections.abc import Callable
from typing import IO, Any

import msgspec

__all__ = [
    "Limits",
    "SandboxResult",
    "Spool",
    "Tail",
    "extract_back",
    "kill_tree",
    "read_pipe",
    "supervise",
    "tree_memory",
]

#: seconds the host waits past the timeout for the supervisor to clean up and copy back
GRACE_S = 10.0
#: how often the host measures the sandbox's memory
WATCH_INTERVAL_S = 0.05

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
#: 0o777 without the setuid, setgid and sticky bits and without group/other write
_SAFE_MODE = 0o755


class Tail(asyncio.Protocol):
    """Keeps the last ``keep`` bytes of a pipe and counts the rest (memory stays bounded:
    at most ``2 * keep`` bytes plus one read)."""

    def __init__(self, keep: int) -> None:
        self.keep = max(0, keep)
        self.buffer = bytearray()
        self.total = 0
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.total += len(data)
        if self.keep == 0:
            return
        self.buffer += data[-self.keep :]
        if len(self.buffer) > 2 * self.keep:
            del self.buffer[: len(self.buffer) - self.keep]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def text(self) -> str:
        """The kept tail, decoded; says how much was left out."""
        kept = bytes(self.buffer[-self.keep :]) if self.keep else b""
        body = kept.decode("utf-8", errors="replace")
        dropped = self.total - len(kept)
        return f"[... {dropped} bytes of output not kept ...]\n{body}" if dropped > 0 else body


class Spool(asyncio.Protocol):
    """Writes a pipe into a file up to ``limit`` bytes; notes (and drops) any excess."""

    def __init__(self, file: IO[bytes], limit: int) -> None:
        self.file = file
        self.limit = limit
        self.total = 0
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @property
    def overflow(self) -> bool:
        """More than ``limit`` bytes arrived."""
        return self.total > self.limit

    def data_received(self, data: bytes) -> None:
        room = self.limit - self.total
        if room > 0:
            self.file.write(data[:room])
        self.total += len(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def read_pipe(fd: int, protocol: Tail | Spool) -> asyncio.ReadTransport:
    """Feed the read end ``fd`` of a pipe to ``protocol`` (the fd is owned afterwards)."""
    loop = asyncio.get_running_loop()
    pipe = os.fdopen(fd, "rb", buffering=0)
    transport, _ = await loop.connect_read_pipe(lambda: protocol, pipe)
    return transport


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for tid in tasks:
        with (
            contextlib.suppress(OSError, ValueError),
            open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as fh,
        ):
            kids += [int(x) for x in fh.read().split()]
    return kids


def descendants(root: int) -> list[int]:
    """``root`` and every process below it (a PID namespace's orphans stay below its init,
    which is below the outer bwrap process)."""
    seen: list[int] = []
    todo = [root]
    while todo and len(seen) < 100_000:
        pid = todo.pop()
        seen.append(pid)
        todo += _children(pid)
    return seen


def tree_memory(root: int) -> int:
    """Resident memory (bytes) of ``root`` and its descendants, shared pages counted in each
    process that maps them: an overestimate, never an underestimate."""
    total = 0
    for pid in descendants(root):
        with (
            contextlib.suppress(OSError, ValueError, IndexError),
            open(f"/proc/{pid}/statm", encoding="ascii") as fh,
        ):
            total += int(fh.read().split()[1]) * _PAGE
    return total


def kill_tree(root: int, *, group: bool = False) -> None:
    """SIGKILL ``root`` (and its process group when ``group``) and every descendant."""
    victims = descendants(root)
    if group:
        with contextlib.suppress(OSError):
            os.killpg(root, signal.SIGKILL)
    for pid in victims:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _inside(dest: str, name: str) -> str | None:
    """The resolved target of tar member ``name`` under ``dest``, or None if it escapes."""
    if not name or name.startswith("/") or ".." in name.split("/"):
        return None
    target = os.path.realpath(os.path.join(dest, name))
    if target != dest and not target.startswith(dest + os.sep):
        return None
    return target


def extract_back(stream: IO[bytes], dest: str) -> tuple[int, int]:
    """Extract the sandbox's tar stream from ``stream`` into ``dest``.

    Only regular files and directories are written, each only when its resolved path
    (host symlinks followed) lies inside ``dest``; modes lose setuid/setgid/sticky and
    group/other write bits; owners are the caller's. Returns ``(written, skipped)``.
    """
    dest = os.path.realpath(dest)
    written = skipped = 0
    extra: dict[str, Any] = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                if not (member.isreg() or member.isdir()) or _inside(dest, member.name) is None:
                    skipped += 1
                    continue
                member.mode &= _SAFE_MODE
                member.uid, member.gid = os.getuid(), os.getgid()
                member.uname = member.gname = ""
                try:
                    tar.extract(member, dest, set_attrs=member.isreg(), **extra)
                except (OSError, tarfile.TarError):
                    skipped += 1
                    continue
                written += 1
    except tarfile.TarError:
        skipped += 1  # a truncated or empty stream: keep what was extracted
    return written, skipped


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """Resource limits of a sandbox run.

    Attributes:
        timeout_s: wall-clock limit; everything in the sandbox is killed after it.
        cpu_s: CPU seconds per process (RLIMIT_CPU).
        memory_bytes: resident memory of the whole process tree (watched by the host,
            checked every 50 ms), and the address space of each process (RLIMIT_AS).
        file_bytes: largest file a process may write (RLIMIT_FSIZE).
        disk_bytes: size of the project directory's tmpfs (total disk it may fill).
        tmp_bytes: size of ``/tmp`` and of ``/dev/shm`` (each).
        processes: processes and threads at once (RLIMIT_NPROC).
        open_files: open file descriptors per process (RLIMIT_NOFILE).
        output_bytes: bytes of output kept (the tail); the rest is read and dropped.
    """

    timeout_s: float = 60.0
    cpu_s: int = 60
    memory_bytes: int = 2 * 1024**3
    file_bytes: int = 64 * 1024**2
    disk_bytes: int = 128 * 1024**2
    tmp_bytes: int = 64 * 1024**2
    processes: int = 64
    open_files: int = 256
    output_bytes: int = 256 * 1024

    def rlimits(self) -> dict[str, int]:
        """The per-process limits, by ``resource`` constant name."""
        return {
            "RLIMIT_CPU": max(1, int(self.cpu_s)),
            "RLIMIT_AS": self.memory_bytes,
            "RLIMIT_FSIZE": self.file_bytes,
            "RLIMIT_NOFILE": self.open_files,
            "RLIMIT_NPROC": self.processes,
            "RLIMIT_CORE": 0,
        }


class SandboxResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a sandbox run did.

    Attributes:
        exit_code: the command's exit status (negative: the signal that killed it; -9
            when the sandbox was killed).
        timed_out: stopped at the wall-clock limit.
        killed_by: ``""``, ``timeout`` or ``memory``: which limit ended the run.
        output: the tail of stdout and stderr (at most ``Limits.output_bytes``).
        output_bytes: bytes written to stdout and stderr in all.
        peak_memory_bytes: the largest total resident memory the host measured.
        duration_s: wall time of the run.
        copied_back: files and directories copied back into the project directory.
        isolated: run inside the isolation layer (False: ``unsafe_local_exec``).
        error: why the sandbox itself failed (empty when it worked).
    """

    exit_code: int
    timed_out: bool = False
    killed_by: str = ""
    output: str = ""
    output_bytes: int = 0
    peak_memory_bytes: int = 0
    duration_s: float = 0.0
    copied_back: int = 0
    isolated: bool = True
    error: str = ""

    @property
    def ok(self) -> bool:
        """The command exited 0 within its limits."""
        return self.exit_code == 0 and not self.killed_by and not self.error


async def supervise(
    cmd: list[str],
    cwd: str | None,
    env: dict[str, str],
    lim: Limits,
    deadline_s: float,
    spool: Spool | None,
    control_r: int | None,
    control_w: int | None,
) -> SandboxResult:
    """Start ``cmd`` and see it through: read its pipes bounded, watch its tree's memory
    and deadline, kill the whole tree at either limit or on cancellation.

    ``cwd`` set means the unsandboxed (local) mode: the limits are set in the child and
    its process group is killed too; otherwise ``cmd`` is bwrap, which sets them itself,
    and the control pipe (``control_r``, ``control_w``) is read into ``spool``.
    """
    started = time.monotonic()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    with contextlib.suppress(OSError, AttributeError):  # fewer wakeups under a flood
        fcntl.fcntl(out_w, fcntl.F_SETPIPE_SZ, 1 << 20)
    output, errors = Tail(lim.output_bytes), Tail(16 * 1024)
    local = cwd is not None
    limits = lim.rlimits()
    try:
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out_w,
            stderr=out_w if local else err_w,
            pass_fds=() if control_w is None else (control_w,),
            start_new_session=True,
            preexec_fn=limiter(limits) if local else None,
        )
    except OSError as exc:
        for fd in (out_r, err_r, control_r):
            if fd is not None:
                os.close(fd)
        return SandboxResult(exit_code=-1, error=f"cannot start {cmd[0]!r}: {exc.strerror}")
    finally:  # the child holds the write ends now; ours must go for EOF to come
        for fd in (out_w, err_w, control_w):
            if fd is not None:
                os.close(fd)
    transports = [await read_pipe(out_r, output), await read_pipe(err_r, errors)]
    if spool is not None and control_r is not None:
        transports.append(await read_pipe(control_r, spool))
    killed_by, peak = "", 0
    waiter = asyncio.ensure_future(proc.wait())
    try:
        while not waiter.done():
            await asyncio.wait({waiter}, timeout=WATCH_INTERVAL_S)
            if waiter.done():
                break
            used = tree_memory(proc.pid)
            peak = max(peak, used)
            if used > lim.memory_bytes:
                killed_by = "memory"
            elif time.monotonic() - started > deadline_s:
                killed_by = "timeout"
            if killed_by:
                kill_tree(proc.pid, group=local)
                await asyncio.wait({waiter}, timeout=GRACE_S)
                break
        closers = [output.closed, errors.closed] + ([spool.closed] if spool else [])
        await asyncio.wait(closers, timeout=GRACE_S)
    except BaseException:
        kill_tree(proc.pid, group=local)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(waiter), GRACE_S)
        raise
    finally:
        for transport in transports:
            transport.close()
    code = proc.returncode if proc.returncode is not None else -9
    text = output.text()
    if killed_by == "memory":
        text += f"\n(killed: the run used more than {lim.memory_bytes / 1024**2:.0f} MiB)"
    elif killed_by == "timeout":
        text += f"\n(killed after {lim.timeout_s:g} s)"
    return SandboxResult(
        exit_code=-9 if killed_by else code,
        timed_out=killed_by == "timeout",
        killed_by=killed_by,
        output=text,
        output_bytes=output.total,
        peak_memory_bytes=peak,
        duration_s=round(time.monotonic() - started, 3),
        error="" if code == 0 or local else errors.text().strip()[-500:],
    )


def limiter(limits: dict[str, int]) -> Callable[[], None]:
    """The ``preexec_fn`` setting ``limits`` (by ``resource`` name) in a local child."""
    pairs = [(getattr(resource, name), value) for name, value in limits.items()]

    def apply() -> None:  # in the child between fork and exec (unsafe mode only)
        for which, value in pairs:
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(which, (value, value))

    return apply
