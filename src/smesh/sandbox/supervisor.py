"""The supervisor that runs *inside* a smesh sandbox (standard library only).

The host starts ``python -I -S supervisor.py CONFIG`` as the first command of a
bubblewrap sandbox (see :mod:`smesh.sandbox`). This script is not imported by smesh:
it is bind-mounted read-only into the sandbox and runs there, so it may only use the
standard library. It:

1. copies the project (bound read-only at ``source``) into the writable, size-capped tmpfs
   at ``dir`` and records what it copied (size and mtime of each file);
2. when started as root (the host runs as root), hands the writable mounts to a fresh
   unprivileged uid and drops to it, so that ``RLIMIT_NPROC`` counts (the kernel exempts
   uid 0 from it) and nothing in the sandbox holds a capability;
3. runs the command with the resource limits set in the child, in its own session, with a
   fresh environment, stdin from ``/dev/null`` and stdout and stderr on the host's pipe;
4. at the wall-clock limit, or as soon as the command exits, kills every other process in
   the sandbox's PID namespace (``kill(-1)``: setsid() grandchildren included) and waits
   until they are gone;
5. writes one JSON status line and then a tar stream of the new or changed files of
   ``dir`` on the control descriptor, which the command never inherits.

The host enforces what this process cannot guarantee against code running under the same
uid (which can stop or kill it): total memory, a hard deadline, bounded output.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import signal
import stat
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from typing import Any, BinaryIO

__all__ = ["main"]

_PR_SET_DUMPABLE = 4
_GRACE_S = 5.0


def _set_not_dumpable() -> None:
    """Keep code under the same uid out of this process (ptrace, /proc/PID/fd, environ)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)


def copy_in(source: str, dest: str, exclude: set[str]) -> dict[str, tuple[int, int]]:
    """Copy regular files, directories and symlinks of ``source`` into ``dest``.

    Returns the manifest ``{relative path: (size, mtime_ns)}`` of what ``dest`` holds
    afterwards (directories as ``(-1, 0)``), so that only new or changed files are copied
    back.
    """
    manifest: dict[str, tuple[int, int]] = {}
    for top, dirs, files in os.walk(source):
        dirs[:] = [d for d in dirs if d not in exclude]
        rel_top = os.path.relpath(top, source)
        target_top = dest if rel_top == "." else os.path.join(dest, rel_top)
        for name in list(dirs):
            src = os.path.join(top, name)
            if os.path.ismount(os.path.join(target_top, name)):
                dirs.remove(name)  # a read-only bind inside the project (a venv): leave it
            elif os.path.islink(src):
                os.symlink(os.readlink(src), os.path.join(target_top, name))
            else:
                os.makedirs(os.path.join(target_top, name), exist_ok=True)
                manifest[os.path.relpath(os.path.join(target_top, name), dest)] = (-1, 0)
        for name in files:
            src, dst = os.path.join(top, name), os.path.join(target_top, name)
            info = os.lstat(src)
            if stat.S_ISLNK(info.st_mode):
                os.symlink(os.readlink(src), dst)
            elif stat.S_ISREG(info.st_mode):
                with open(src, "rb") as fin, open(dst, "wb") as fout:
                    while chunk := fin.read(1 << 20):
                        fout.write(chunk)
                os.utime(dst, ns=(info.st_atime_ns, info.st_mtime_ns))
                copied = os.stat(dst)
                manifest[os.path.relpath(dst, dest)] = (copied.st_size, copied.st_mtime_ns)
    return manifest


def _chown_tree(path: str, uid: int) -> None:
    os.chown(path, uid, uid, follow_symlinks=False)
    for top, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if not os.path.ismount(os.path.join(top, d))]
        for name in dirs + files:
            os.chown(os.path.join(top, name), uid, uid, follow_symlinks=False)


def drop_privileges(uid: int, writable: list[str]) -> None:
    """Give the writable mounts to ``uid`` and become it (all capabilities are lost)."""
    for path in writable:
        _chown_tree(path, uid)
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)


def limiter(limits: dict[str, int]) -> Callable[[], None]:
    """The ``preexec_fn`` that sets the resource limits in the command's process."""
    pairs = [(getattr(resource, name), value) for name, value in limits.items()]

    def apply() -> None:
        for which, value in pairs:
            resource.setrlimit(which, (value, value))

    return apply


def _others() -> list[int]:
    """Live processes in this PID namespace other than its init (1) and this one."""
    me = os.getpid()
    live: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in (1, me):
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                state = fh.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in (b"Z", b"X"):
            live.append(int(entry))
    return live


def kill_everything(deadline_s: float = _GRACE_S) -> bool:
    """SIGKILL every other process of the sandbox until none is left (bounded)."""
    end = time.monotonic() + deadline_s
    while True:
        with contextlib.suppress(OSError):
            os.kill(-1, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        if not _others():
            return True
        if time.monotonic() > end:
            return False
        time.sleep(0.01)


def copy_out(
    dest: str, manifest: dict[str, tuple[int, int]], out: BinaryIO, max_entries: int
) -> tuple[int, int]:
    """Write the new or changed entries of ``dest`` to ``out`` as a tar stream.

    Returns ``(entries written, entries skipped)``; special files, unreadable files and
    anything past ``max_entries`` are skipped.
    """
    written = skipped = 0
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for top, dirs, files in os.walk(dest):
            # read-only binds inside the project (a virtual environment) are not its files
            dirs[:] = sorted(d for d in dirs if not os.path.ismount(os.path.join(top, d)))
            for name in dirs + sorted(files):
                path = os.path.join(top, name)
                rel = os.path.relpath(path, dest)
                try:
                    info = os.lstat(path)
                except OSError:
                    skipped += 1
                    continue
                if stat.S_ISREG(info.st_mode) and manifest.get(rel) == (
                    info.st_size,
                    info.st_mtime_ns,
                ):
                    continue  # unchanged
                if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
                    skipped += 1
                    continue
                if stat.S_ISDIR(info.st_mode) and rel in manifest:
                    continue
                if written >= max_entries:
                    skipped += 1
                    continue
                try:
                    tar.add(path, arcname=rel, recursive=False)
                except OSError:
                    skipped += 1
                    continue
                written += 1
    return written, skipped


def run(cfg: dict[str, Any], control: BinaryIO) -> int:
    """Do the whole run described by ``cfg``; report on ``control``."""
    status: dict[str, Any] = {"ok": False, "error": None, "exit_code": None}
    status["timed_out"] = False
    started = time.monotonic()
    try:
        manifest = copy_in(cfg["source"], cfg["dir"], set(cfg.get("exclude", ())))
    except OSError as exc:
        status["error"] = f"cannot copy the project into the sandbox: {exc.strerror or exc}"
        control.write(json.dumps(status).encode() + b"\n")
        return 1
    if cfg.get("uid") is not None:
        drop_privileges(int(cfg["uid"]), [cfg["dir"]])
    _set_not_dumpable()
    try:
        proc = subprocess.Popen(
            cfg["argv"],
            cwd=cfg["dir"],
            env=cfg["env"],
            stdin=subprocess.DEVNULL,
            stdout=sys.stdout.fileno(),
            stderr=subprocess.STDOUT,
            close_fds=True,
            start_new_session=True,
            preexec_fn=limiter(cfg["rlimits"]),  # noqa: PLW1509 - this process has one thread
        )
    except OSError as exc:
        status["error"] = f"cannot start {cfg['argv'][0]!r}: {exc.strerror or exc}"
        control.write(json.dumps(status).encode() + b"\n")
        return 1
    try:
        status["exit_code"] = proc.wait(timeout=float(cfg["timeout_s"]))
    except subprocess.TimeoutExpired:
        status["timed_out"] = True
    status["cleaned"] = kill_everything()
    if status["exit_code"] is None:
        status["exit_code"] = proc.wait()
    status["duration_s"] = round(time.monotonic() - started, 3)
    status["ok"] = True
    control.write(json.dumps(status).encode() + b"\n")
    control.flush()
    copy_out(cfg["dir"], manifest, control, int(cfg["max_entries"]))
    control.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``supervisor.py CONFIG_JSON``."""
    args = sys.argv[1:] if argv is None else argv
    cfg = json.loads(args[0])
    fd = int(cfg["control_fd"])
    os.set_inheritable(fd, False)
    with os.fdopen(fd, "wb") as control:
        return run(cfg, control)


if __name__ == "__main__":
    sys.exit(main())
