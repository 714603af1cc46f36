"""The isolation layer of the sandbox: bubblewrap's command line, and a probe of whether it
works on this machine (run once per interpreter and cached).

Two modes, chosen by who runs smesh:

``userns`` (an ordinary user)
    bwrap creates a user namespace with the caller's uid mapped; the command gets no
    capability and may not create further user namespaces (``--disable-userns``).
    ``RLIMIT_NPROC`` then counts the processes of that namespace only.
``setuid`` (root, as in CI)
    the kernel exempts uid 0 from ``RLIMIT_NPROC`` even inside a user namespace, so bwrap
    runs without one and keeps only ``CAP_SETUID``, ``CAP_SETGID`` and ``CAP_CHOWN`` for
    the supervisor, which hands the writable mounts to a fresh unprivileged uid (random,
    never in ``/etc/passwd``, like systemd's ``DynamicUser``) and drops to it before it
    starts anything: the command holds no capability and no file outside the sandbox
    belongs to its uid.

Both: new PID, network, IPC, UTS and cgroup namespaces; a read-only root that holds only
``/usr`` (and the ``/bin``, ``/lib*`` links), the dynamic loader's cache, the Python
installation and virtual environment; a fresh ``/proc`` and a minimal ``/dev``; size-capped
tmpfs mounts on the project directory, ``/tmp`` and ``/dev/shm``; ``--die-with-parent``,
``--new-session`` and a cleared environment.
"""

from __future__ import annotations

import functools
import os
import secrets
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import msgspec

__all__ = ["Isolation", "SandboxMounts", "bwrap_argv", "probe", "python_roots"]

#: where the project is bound read-only (the supervisor copies it into the tmpfs)
SOURCE = "/.smesh/in"
#: where the supervisor script is bound
INIT = "/.smesh/init.py"
#: the supervisor script on the host
INIT_SCRIPT = Path(__file__).with_name("supervisor.py")
#: fresh uids for the ``setuid`` mode are drawn from [BASE, BASE + SPAN)
UID_BASE = 1_000_000_000
UID_SPAN = 1_000_000_000
_SYSTEM_TOPS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime")
_PROBE_TIMEOUT_S = 20.0


class Isolation(msgspec.Struct, frozen=True, kw_only=True):
    """Whether the sandbox can be used here, and how.

    Attributes:
        bwrap: path of the bwrap binary, or None.
        mode: ``userns`` or ``setuid`` (see the module docstring).
        reason: why the sandbox is unavailable (empty when it is available).
        disable_userns: bwrap supports ``--disable-userns``.
    """

    bwrap: str | None
    mode: str
    reason: str = ""
    disable_userns: bool = False

    @property
    def available(self) -> bool:
        """The sandbox works on this machine."""
        return self.bwrap is not None and not self.reason


class SandboxMounts(msgspec.Struct, frozen=True, kw_only=True):
    """What one sandbox run mounts.

    Attributes:
        workdir: the project directory (absolute, resolved): a tmpfs at the same path.
        disk_bytes: size of that tmpfs.
        tmp_bytes: size of the ``/tmp`` and ``/dev/shm`` tmpfs mounts (each).
        ro_paths: extra host paths bound read-only at the same place.
    """

    workdir: str
    disk_bytes: int
    tmp_bytes: int
    ro_paths: tuple[str, ...] = ()


def _prefix_of(python: str) -> list[str]:
    """Install prefixes an interpreter needs: its virtual environment, if it runs in one,
    and the installation it is made from."""
    out: list[str] = []
    venv = Path(os.path.abspath(python)).parent.parent
    if (venv / "pyvenv.cfg").is_file():
        out.append(str(venv))
    real = Path(os.path.realpath(python)).parent.parent
    if any((real / "lib").glob("python3*")):
        out.append(str(real))
    return out


def python_roots(python: str = sys.executable) -> list[str]:
    """The host directories to bind read-only so that ``python`` runs in the sandbox
    (with its site-packages), outermost first, never ``/`` or the home directory."""
    candidates = set(_prefix_of(python))
    if python == sys.executable:
        candidates |= {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
        paths = sysconfig.get_paths()
        candidates |= {paths["purelib"], paths["platlib"]}
    home = os.path.realpath(os.path.expanduser("~"))
    keep: list[str] = []
    for path in sorted({os.path.realpath(c) for c in candidates}, key=len):
        if path in ("/", home) or path == "/usr" or path.startswith("/usr/"):
            continue
        if not os.path.isdir(path) or any(path.startswith(k + "/") for k in keep):
            continue
        keep.append(path)
    return keep


def _system_mounts() -> list[tuple[str, list[str]]]:
    mounts: list[tuple[str, list[str]]] = [("/usr", ["--ro-bind", "/usr", "/usr"])]
    for top in _SYSTEM_TOPS:
        if os.path.islink(top):
            mounts.append((top, ["--symlink", os.readlink(top), top]))
        elif os.path.isdir(top):
            mounts.append((top, ["--ro-bind", top, top]))
    mounts += [(etc, ["--ro-bind", etc, etc]) for etc in _ETC if os.path.exists(etc)]
    return mounts


def bwrap_argv(
    iso: Isolation,
    mounts: SandboxMounts,
    *,
    python: str,
    config: str,
    source: str,
) -> list[str]:
    """The full bwrap command line that runs the supervisor with ``config``.

    Mounts go parents first (by path depth), so that a tmpfs on the project directory
    never hides a bind below it (a virtual environment inside the project) and a bind
    never hides the project's tmpfs.
    """
    assert iso.bwrap is not None
    args = [iso.bwrap, "--die-with-parent", "--new-session", "--clearenv", "--cap-drop", "ALL"]
    args += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
    args += ["--unshare-cgroup-try", "--hostname", "smesh-sandbox"]
    if iso.mode == "userns":
        args += ["--unshare-user"] + (["--disable-userns"] if iso.disable_userns else [])
    else:
        for cap in ("CAP_SETUID", "CAP_SETGID", "CAP_CHOWN"):
            args += ["--cap-add", cap]
    mounts_list = _system_mounts()
    for path in [*python_roots(python), *mounts.ro_paths]:
        mounts_list.append((path, ["--ro-bind", path, path]))
    tmp = str(mounts.tmp_bytes)
    mounts_list += [
        ("/dev", ["--dev", "/dev"]),
        ("/dev/shm", ["--perms", "1777", "--size", tmp, "--tmpfs", "/dev/shm"]),
        ("/proc", ["--proc", "/proc"]),
        ("/tmp", ["--perms", "1777", "--size", tmp, "--tmpfs", "/tmp"]),
        (mounts.workdir, ["--size", str(mounts.disk_bytes), "--tmpfs", mounts.workdir]),
        (SOURCE, ["--ro-bind", source, SOURCE]),
        (INIT, ["--ro-bind", str(INIT_SCRIPT), INIT]),
    ]
    mounts_list += _parents(mounts_list)
    mounts_list.sort(key=lambda m: m[0].rstrip("/").count("/"))
    for _, margs in mounts_list:
        args += margs
    args += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/"]
    return [*args, python, "-I", "-S", INIT, config]


def _parents(mounts: list[tuple[str, list[str]]]) -> list[tuple[str, list[str]]]:
    """``--dir`` entries (mode 0755) for every parent of a mount point that is not itself
    mounted or inside a read-only bind: bwrap would create them 0700, closing the path to
    the unprivileged uid of the ``setuid`` mode."""
    targets = {dest for dest, _ in mounts}
    binds = [dest for dest, margs in mounts if margs[0] == "--ro-bind"]
    parents: set[str] = set()
    for dest in targets:
        parent = os.path.dirname(dest)
        while parent not in ("/", ""):
            parents.add(parent)
            parent = os.path.dirname(parent)
    return [
        (p, ["--perms", "0755", "--dir", p])
        for p in sorted(parents - targets)
        if not any(p.startswith(b + "/") for b in binds)
    ]


def fresh_uid() -> int:
    """An unprivileged uid no account uses, for one run in the ``setuid`` mode."""
    return UID_BASE + secrets.randbelow(UID_SPAN)


def probe(python: str = sys.executable) -> Isolation:
    """Find bwrap (``$SMESH_BWRAP`` names it, else ``PATH``) and check once that it can
    build a sandbox here; the answer is cached per interpreter and bwrap path."""
    return _probe(python, os.environ.get("SMESH_BWRAP"))


@functools.cache
def _probe(python: str, override: str | None) -> Isolation:
    mode = "setuid" if os.geteuid() == 0 else "userns"
    if override is not None:
        bwrap = override if os.access(override, os.X_OK) and os.path.isfile(override) else None
        if bwrap is None:
            why = f"no bwrap at SMESH_BWRAP={override!r}"
            return Isolation(bwrap=None, mode=mode, reason=why)
    else:
        bwrap = shutil.which("bwrap") or next(
            (p for p in ("/usr/bin/bwrap", "/usr/local/bin/bwrap") if os.access(p, os.X_OK)),
            None,
        )
    if bwrap is None:
        return Isolation(bwrap=None, mode=mode, reason="bubblewrap (bwrap) is not installed")
    try:
        helptext = subprocess.run(
            [bwrap, "--help"],
            capture_output=True,
            text=True,
            timeout=_PROBE_TIMEOUT_S,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Isolation(bwrap=bwrap, mode=mode, reason=f"bwrap does not run: {exc}")
    if "--size" not in helptext:
        return Isolation(bwrap=bwrap, mode=mode, reason="bwrap is too old (0.8 or newer needed)")
    iso = Isolation(bwrap=bwrap, mode=mode, disable_userns="--disable-userns" in helptext)
    return _trial(iso, python)


def _trial(iso: Isolation, python: str) -> Isolation:
    """Run a real (empty) sandbox once: user namespaces may be disabled, mounts refused."""
    assert iso.bwrap is not None
    args = bwrap_argv(
        iso,
        SandboxMounts(workdir="/.smesh/probe", disk_bytes=1 << 20, tmp_bytes=1 << 20),
        python=python,
        config="{}",
        source="/usr",
    )
    # the supervisor is replaced by a no-op: only the isolation is under test
    args[-5:] = [python, "-I", "-S", "-c", "pass"]
    try:
        done = subprocess.run(
            args,
            capture_output=True,
            text=True,
            timeout=_PROBE_TIMEOUT_S,
            env={"PATH": "/usr/bin:/bin"},
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return msgspec.structs.replace(iso, reason=f"bwrap cannot start: {exc}")
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        why = lines[-1] if lines else f"exit status {done.returncode}"
        return msgspec.structs.replace(iso, reason=f"bwrap cannot build a sandbox here: {why}")
    return iso
