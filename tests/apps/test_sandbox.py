"""The test sandbox: real pytest runs, counts, timeout, resource limits, no network."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from smesh.apps.sandbox import Limits, TestRun, run_pytest


def run(workdir: Path, body: str, **limits: float) -> TestRun:
    (workdir / "tests").mkdir(parents=True, exist_ok=True)
    (workdir / "tests" / "test_x.py").write_text(body)
    return asyncio.run(run_pytest(workdir, ["tests/test_x.py"], limits=Limits(**limits)))


def test_passing_and_failing_tests_are_counted(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        "def test_a():\n    assert 1\n\ndef test_b():\n    assert 0\n\ndef test_c():\n    pass\n",
    )
    assert (result.tests_run, result.tests_passed, result.passed) == (3, 2, False)
    assert "assert 0" in result.output
    ok = run(tmp_path, "def test_a():\n    assert 1\n")
    assert (ok.tests_run, ok.tests_passed, ok.passed, ok.exit_code) == (1, 1, True, 0)


def test_no_tests_is_not_a_pass(tmp_path: Path) -> None:
    result = run(tmp_path, "x = 1\n")
    assert result.tests_run == 0 and not result.passed


def test_the_tests_run_inside_the_work_directory(tmp_path: Path) -> None:
    body = (
        "import os\n\ndef test_cwd():\n"
        f"    assert os.getcwd() == {str(tmp_path)!r}\n"
        "    open('written.txt', 'w').write('x')\n"
    )
    assert run(tmp_path, body).passed
    assert (tmp_path / "written.txt").is_file()


def test_a_hanging_test_is_killed_at_the_timeout(tmp_path: Path) -> None:
    result = run(tmp_path, "import time\n\ndef test_hang():\n    time.sleep(60)\n", timeout_s=3)
    assert result.timed_out and not result.passed


def test_cpu_and_memory_are_limited(tmp_path: Path) -> None:
    body = "def test_big():\n    x = bytearray(1024 * 1024 * 1024)\n    assert x is not None\n"
    result = run(tmp_path, body, memory_bytes=512 * 1024**2)
    assert not result.passed and "MemoryError" in result.output
    spin = "def test_spin():\n    while True:\n        pass\n"
    result = run(tmp_path, spin, cpu_s=1, timeout_s=30)
    assert not result.passed and not result.timed_out
    assert result.exit_code != 0


@pytest.fixture
def listener() -> Iterator[int]:
    """A loopback TCP server the sandboxed test must not reach."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(5)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                conn.close()
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        server.close()
        thread.join(timeout=5)


def test_the_network_is_unreachable(tmp_path: Path, listener: int) -> None:
    body = (
        "import socket, pytest\n\n"
        "def test_connect():\n"
        "    with pytest.raises(OSError, match='disabled'):\n"
        f"        socket.create_connection(('127.0.0.1', {listener}), timeout=2)\n"
        "    s = socket.socket()\n"
        "    with pytest.raises(OSError, match='disabled'):\n"
        f"        s.connect(('127.0.0.1', {listener}))\n"
        "    with pytest.raises(OSError):\n"
        "        socket.getaddrinfo('example.com', 80)\n"
    )
    assert run(tmp_path, body).passed


def test_the_environment_carries_no_proxies_or_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    body = (
        "import os\n\ndef test_env():\n"
        "    assert 'HTTPS_PROXY' not in os.environ\n"
        "    assert 'OPENAI_API_KEY' not in os.environ\n"
    )
    assert run(tmp_path, body).passed
