"""The host side of a sandbox run: bounded pipes, the process-tree watchdog, copy-back.

Nothing here trusts the code in the sandbox: its output is read into a fixed-size tail and
the rest discarded as it arrives; its control stream is spooled to a temporary file up to
a byte cap; the files it hands back are extracted only when they are plain files or
directories whose resolved path stays inside the project directory, with harmless modes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tarfile
from typing import IO, Any

__all__ = ["Spool", "Tail", "extract_back", "kill_tree", "read_pipe", "tree_memory"]

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
