"""The sandbox: real pytest runs, counts, limits, copy-back, refusal without isolation.

The 21 escapes are in ``test_sandbox_escapes.py``.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
import time
import uuid
from pathlib import Path

import pytest
from _hostile import dump, processes_with, run_hostile

from smesh.cli import main
from smesh.errors import SandboxUnavailable, UsageError
from smesh.sandbox import Limits, Sandbox, TestRun, isolation, run_pytest

ISOLATION = isolation()
needs_sandbox = pytest.mark.skipif(
    not ISOLATION.available,
    reason=f"no sandbox on this machine ({ISOLATION.reason}); the refusal is tested instead",
)


def run(workdir: Path, body: str, **limits: float) -> TestRun:
    (workdir / "tests").mkdir(parents=True, exist_ok=True)
    (workdir / "tests" / "test_x.py").write_text(body)
    return asyncio.run(run_pytest(workdir, ["tests/test_x.py"], limits=Limits(**limits)))


@needs_sandbox
def test_passing_and_failing_tests_are_counted(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        "def test_a():\n    assert 1\n\ndef test_b():\n    assert 0\n\ndef test_c():\n    pass\n",
    )
    assert (result.tests_run, result.tests_passed, result.passed) == (3, 2, False)
    assert "assert 0" in result.output and result.isolated
    ok = run(tmp_path, "def test_a():\n    assert 1\n")
    assert (ok.tests_run, ok.tests_passed, ok.passed, ok.exit_code) == (1, 1, True, 0)


@needs_sandbox
def test_no_tests_is_not_a_pass(tmp_path: Path) -> None:
    result = run(tmp_path, "x = 1\n")
    assert result.tests_run == 0 and not result.passed


@needs_sandbox
def test_the_tests_run_in_the_project_and_what_they_write_comes_back(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("input")
    body = (
        "import os\n\ndef test_cwd():\n"
        f"    assert os.getcwd() == {str(tmp_path)!r}\n"
        "    assert open('data.txt').read() == 'input'\n"
        "    open('written.txt', 'w').write('x')\n"
        "    os.makedirs('sub/deeper')\n"
        "    open('data.txt', 'w').write('changed')\n"
    )
    assert run(tmp_path, body).passed
    assert (tmp_path / "written.txt").read_text() == "x"
    assert (tmp_path / "sub" / "deeper").is_dir()
    assert (tmp_path / "data.txt").read_text() == "changed"


@needs_sandbox
def test_a_hanging_test_is_killed_at_the_timeout(tmp_path: Path) -> None:
    started = time.monotonic()
    result = run(tmp_path, "import time\n\ndef test_hang():\n    time.sleep(60)\n", timeout_s=2)
    assert result.timed_out and not result.passed and result.killed_by == "timeout"
    assert time.monotonic() - started < 15


@needs_sandbox
def test_cpu_and_per_process_memory_are_limited(tmp_path: Path) -> None:
    body = "def test_big():\n    x = bytearray(1024 * 1024 * 1024)\n    assert x is not None\n"
    result = run(tmp_path, body, memory_bytes=512 * 1024**2)
    assert not result.passed and "MemoryError" in result.output
    spin = "def test_spin():\n    while True:\n        pass\n"
    result = run(tmp_path, spin, cpu_s=1, timeout_s=30)
    assert not result.passed and not result.timed_out
    assert result.exit_code != 0


@needs_sandbox
def test_the_root_is_read_only_and_nothing_holds_a_capability(tmp_path: Path) -> None:
    escape = run_hostile(
        tmp_path,
        """
        def test_escape():
            status = dict(
                line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines()
                if ":\\t" in line
            )
            record(
                root=attempt(lambda: open("/owned", "w")),
                usr=attempt(lambda: open("/usr/owned", "w")),
                dev=attempt(lambda: open("/dev/owned", "w")),
                cap=status["CapEff"].strip(),
                bounding=status["CapBnd"].strip(),
                nnp=status["NoNewPrivs"].strip(),
                uid=os.getuid(),
                hostname=os.uname().nodename,
            )
        """,
    )
    rec = escape.record
    assert rec is not None, dump(escape)
    for where in ("root", "usr", "dev"):
        assert rec[where].startswith("blocked"), (where, dump(escape))
    assert int(rec["cap"], 16) == 0 and rec["nnp"] == "1", dump(escape)
    assert rec["hostname"] == "smesh-sandbox"
    if os.geteuid() == 0:
        assert rec["uid"] != 0, "the sandbox runs as root"


@needs_sandbox
def test_copy_back_writes_plain_files_inside_the_project_only(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    project = tmp_path / "project"
    project.mkdir()
    (project / "link").symlink_to(outside)  # a host symlink out of the project
    escape = run_hostile(
        tmp_path,
        """
        import stat

        def test_escape():
            os.symlink("/etc", "abs")
            os.symlink("../outside", "rel")
            os.mkfifo("fifo")
            with open("suid", "w") as fh:
                fh.write("#!/bin/sh\\n")
            os.chmod("suid", 0o6777)
            os.remove("link")
            os.mkdir("link")  # inside: a plain directory; on the host: the symlink
            open("link/planted", "w").write("x")
            record(done=True)
        """,
    )
    assert escape.record == {"done": True}, dump(escape)
    assert not (outside / "planted").exists(), "copy-back followed a host symlink out"
    for name in ("abs", "rel", "fifo"):
        assert not os.path.lexists(project / name), name
    mode = (project / "suid").stat().st_mode
    assert not mode & (stat.S_ISUID | stat.S_ISGID | stat.S_IWGRP | stat.S_IWOTH), oct(mode)


@needs_sandbox
def test_a_project_larger_than_the_disk_cap_is_refused_clearly(tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(b"0" * (3 << 20))
    result = run(tmp_path, "def test_a():\n    assert 1\n", disk_bytes=2 << 20)
    assert not result.passed and "cannot copy the project into the sandbox" in result.output


@needs_sandbox
def test_cancelling_a_run_kills_the_whole_sandbox(tmp_path: Path) -> None:
    marker = f"smesh-canary-{uuid.uuid4().hex}"
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text(
        "import os, time\n\ndef test_x():\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        f"        os.execv('/bin/sh', ['sh', '-c', 'sleep 60', {marker!r}])\n"
        "    time.sleep(60)\n"
    )

    async def cancel_it() -> None:
        task = asyncio.create_task(run_pytest(tmp_path, ["tests/test_x.py"]))
        for _ in range(100):
            await asyncio.sleep(0.1)
            if processes_with(marker):
                break
        assert processes_with(marker), "the test never started"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_it())
    time.sleep(0.3)
    assert processes_with(marker) == []


@needs_sandbox
def test_the_sandbox_runs_any_command(tmp_path: Path) -> None:
    box = Sandbox(limits=Limits(timeout_s=10))
    result = asyncio.run(box.run(["/bin/sh", "-c", "echo hi; exit 3"], cwd=tmp_path))
    assert (result.exit_code, result.output.strip(), result.isolated) == (3, "hi", True)
    with pytest.raises(UsageError, match="not a directory"):
        asyncio.run(box.run(["/bin/true"], cwd=tmp_path / "missing"))


@needs_sandbox
def test_a_read_only_bind_inside_the_project_stays_read_only(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()  # e.g. a virtual environment inside the project
    (tmp_path / "lib" / "x.txt").write_text("data")
    box = Sandbox(ro_paths=[tmp_path / "lib"], limits=Limits(timeout_s=10))
    script = "cat lib/x.txt; echo new > lib/y.txt; echo ok > top.txt"
    result = asyncio.run(box.run(["/bin/sh", "-c", script], cwd=tmp_path))
    assert result.output.startswith("data") and "Read-only file system" in result.output
    assert (tmp_path / "top.txt").read_text() == "ok\n" and result.copied_back == 1
    assert sorted(os.listdir(tmp_path / "lib")) == ["x.txt"]


# --- no isolation layer -----------------------------------------------------------------


@pytest.mark.skipif(ISOLATION.available, reason="a sandbox works here; refusal is forced below")
def test_here_generated_code_is_refused(tmp_path: Path) -> None:
    (tmp_path / "test_x.py").write_text("def test_a():\n    assert 1\n")
    with pytest.raises(SandboxUnavailable, match="unsafe-local-exec"):
        asyncio.run(run_pytest(tmp_path, ["test_x.py"]))


def test_without_bwrap_generated_code_is_refused_unless_opted_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMESH_BWRAP", str(tmp_path / "no-bwrap"))
    assert not isolation().available
    (tmp_path / "test_x.py").write_text("def test_a():\n    open('ran', 'w')\n")
    with pytest.raises(SandboxUnavailable, match="no bwrap at SMESH_BWRAP"):
        asyncio.run(run_pytest(tmp_path, ["test_x.py"]))
    assert not (tmp_path / "ran").exists()
    unsafe = Sandbox(unsafe_local_exec=True)
    result = asyncio.run(run_pytest(tmp_path, ["test_x.py"], sandbox=unsafe))
    assert result.passed and not result.isolated and (tmp_path / "ran").exists()


def test_unsafe_local_exec_still_has_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMESH_BWRAP", str(tmp_path / "no-bwrap"))
    unsafe = Sandbox(unsafe_local_exec=True, limits=Limits(timeout_s=2))
    hang = asyncio.run(
        unsafe.run([sys.executable, "-c", "import time; time.sleep(30)"], cwd=tmp_path)
    )
    assert hang.killed_by == "timeout" and not hang.isolated
    flood = asyncio.run(
        unsafe.run(
            [sys.executable, "-c", "import os\nfor _ in range(64): os.write(1, b'z' * 2**20)"],
            cwd=tmp_path,
            limits=Limits(output_bytes=1000),
        )
    )
    assert flood.output_bytes == 64 * 2**20 and len(flood.output) < 1200


def test_smesh_code_refuses_without_a_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SMESH_BWRAP", str(tmp_path / "no-bwrap"))
    args = ["code", "a tool", "--out", str(tmp_path / "out"), "--journal", str(tmp_path / "j")]
    assert main([*args, "--backend", "no-such-backend"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "refusing to run generated code without a sandbox" in err[0]
    assert "--unsafe-local-exec" in err[0]
    assert not (tmp_path / "out").exists()


def test_smesh_code_with_unsafe_local_exec_runs_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from _coders import Team

    from smesh.backends import register_backend
    from smesh.testing import FunctionBackend

    register_backend("coders", lambda model=None, **kw: FunctionBackend(Team()), replace=True)
    monkeypatch.setenv("SMESH_BWRAP", str(tmp_path / "no-bwrap"))
    out = tmp_path / "out"
    args = ["code", "word statistics", "--out", str(out), "--backend", "coders", "--json"]
    args += ["--journal", str(tmp_path / "j"), "--unsafe-local-exec"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "generated tests run unsandboxed" in captured.err
    assert (out / "tests" / "test_counting.py").is_file()
