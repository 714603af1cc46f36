"""The sandbox adapter: generated code runs in another process, limited, with no network.

Hostile candidates try to reach the network, hang, eat memory, fake a pass by exiting
early, and tamper with the harness's own process.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import uuid

from smesh.eval.execute import Outcome, run_candidate

TESTS = "from candidate import *\n\n\ndef test_one():\n    assert f() == 1\n"


def run(
    code: str, tests: str = TESTS, *, timeout_s: float = 10.0, memory: int = 1024**3
) -> Outcome:
    return asyncio.run(run_candidate(code, tests, timeout_s=timeout_s, memory_bytes=memory))


def test_a_correct_candidate_passes_and_a_wrong_one_fails_with_a_reason() -> None:
    good = run("def f():\n    return 1\n")
    assert good.passed and good.tests_passed == 1
    bad = run("def f():\n    return 2\n")
    assert not bad.passed
    assert "AssertionError" in bad.first_failure()


def test_the_candidate_cannot_reach_the_network() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        code = (
            "import socket\n"
            "def f():\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
            "    return 1\n"
        )
        outcome = run(code)
        assert not outcome.passed
        # an empty network namespace: loopback exists but nothing listens there
        assert "ConnectionRefusedError" in outcome.first_failure()
        server.settimeout(0.2)
        try:
            conn, _ = server.accept()
        except TimeoutError:
            conn = None
        assert conn is None, "the sandboxed code connected to a local server"
    finally:
        server.close()


def _alive(mark: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    if mark.encode() in fh.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


def test_an_endless_loop_is_killed_at_the_timeout_with_its_children() -> None:
    mark = f"smesh-eval-orphan-{uuid.uuid4().hex}"
    code = (
        "import subprocess, sys\n"
        "child = subprocess.Popen(\n"
        f"    [sys.executable, '-c', 'import time; time.sleep(60)', '{mark}']\n"
        ")\n"
        "def f():\n"
        "    while True:\n"
        "        pass\n"
    )
    started = time.monotonic()
    outcome = run(code, timeout_s=2.0)
    assert time.monotonic() - started < 10
    assert outcome.timed_out and not outcome.passed
    assert "timed out" in outcome.first_failure()
    deadline = time.monotonic() + 5
    while _alive(mark) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _alive(mark) == [], "a process the candidate started outlived the run"


def test_a_memory_bomb_hits_the_limit_instead_of_the_machine() -> None:
    code = "def f():\n    blob = bytearray(4 * 1024 ** 3)\n    return 1\n"
    outcome = run(code, memory=512 * 1024**2)
    assert not outcome.passed
    assert "MemoryError" in outcome.first_failure()


def test_exiting_early_with_status_zero_is_not_a_pass() -> None:
    code = "import os\nos._exit(0)\ndef f():\n    return 1\n"
    outcome = run(code)
    assert not outcome.passed and outcome.tests_passed == 0
    assert outcome.tests_total == 1


def test_code_that_does_not_load_fails_every_test() -> None:
    outcome = run("def f(:\n", TESTS + "\n\ndef test_two():\n    assert True\n")
    assert outcome.tests_total == 2 and outcome.tests_passed == 0
    assert "does not load" in outcome.first_failure()


def test_the_candidate_runs_in_another_process_and_cannot_touch_the_harness() -> None:
    marker = "_eval_sandbox_marker"
    code = (
        "import json, os, sys\n"
        f"json.{marker} = os.getpid()\n"
        "os.environ['SMESH_EVAL_TAMPERED'] = '1'\n"
        "def f():\n"
        "    return 1\n"
    )
    outcome = run(code)
    assert outcome.passed  # it did run, to completion
    assert not hasattr(json, marker)
    assert "SMESH_EVAL_TAMPERED" not in os.environ


def test_the_environment_holds_no_credentials() -> None:
    os.environ["OPENAI_API_KEY"] = "sk-secret-for-the-test"
    try:
        code = "import os\ndef f():\n    return 1 if 'OPENAI_API_KEY' not in os.environ else 0\n"
        assert run(code).passed
    finally:
        del os.environ["OPENAI_API_KEY"]
