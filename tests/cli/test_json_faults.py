"""``--json`` is exactly one JSON document on stdout, whatever goes wrong (issue 11): every
command that takes ``--json`` is run as a real process with a fault injected (a backend
that is down or absent, a missing journal, a broken analyzer, a bad argument, junk on a
mesh port with zenoh logging at debug level) and its stdout must parse as one document;
errors are on stderr, never on stdout."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest
from _clikit import PRELUDE, SAMPLES, closed_port, popen, smesh

#: command lines ({J}: --journal in the test's directory)
CASES: dict[str, str] = {
    "agents, backend down": "agents --demo --backend down --json {J}",
    "agents, no ollama": "agents --demo --backend ollama:q --json {J}",
    "agents, resume unknown": "agents --demo --backend scripted --json --resume x {J}",
    "review, backend down": "review --path {samples} --backend down --json {J}",
    "review, unwritable out": "review --path {samples} --format json --out /proc/x/r.json",
    "swarm, broken": "swarm --json --path {samples} --analyzers broken --specialists none {J}",
    "code, backend down": "code x --out {tmp}/p --backend down --unsafe-local-exec --json {J}",
    "compare, no such backend": "compare --backends nosuch:x,down:y --json",
    "trace, no journal": "trace --journal {tmp}/none.db --json",
    "runs, no journal": "runs --journal {tmp}/none.db --json",
    "sim, bad argument": "sim --nodes 0 --json",
    "status, ollama answers junk": "status --json",
    "bench, bad suite": "bench --suite nope --json",
    "mesh peers, nobody there": "mesh peers --connect tcp/127.0.0.1:{port} --timeout 0.5 --json",
    "eval, bad suite": "eval nope --json",
}  # fmt: skip


@pytest.fixture(scope="module")
def junk_http() -> tuple[str, threading.Event]:
    """A 127.0.0.1 server that answers every request with garbage (a broken Ollama)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{[}]junk!")
        server.close()

    threading.Thread(target=serve, daemon=True).start()
    return f"127.0.0.1:{server.getsockname()[1]}", stop


@pytest.mark.parametrize("case", list(CASES))
def test_json_is_one_document_under_faults(
    case: str, tmp_path: Path, junk_http: tuple[str, threading.Event]
) -> None:
    host, _ = junk_http
    journal = f"--journal {tmp_path / 'j.db'}"
    args = CASES[case].format(tmp=tmp_path, samples=SAMPLES, port=closed_port(), J=journal).split()
    env = {"OLLAMA_HOST": host, "RUST_LOG": "debug"}
    result = smesh(*args, prelude=PRELUDE, env=env)
    assert "Traceback" not in result.stdout + result.stderr
    doc = json.loads(result.stdout)  # exactly one document: json.loads rejects trailing text
    assert isinstance(doc, dict)
    if result.returncode != 0 and "error" in doc:
        assert doc["exit_code"] == result.returncode
        assert doc["error"] in result.stderr  # the same one line, on stderr too


def test_node_json_stays_clean_when_junk_reaches_its_port(tmp_path: Path) -> None:
    """Zenoh's own log goes to file descriptor 1; ``smesh`` points that at stderr."""
    port = closed_port()
    proc = popen(
        "node", "--listen", f"tcp/127.0.0.1:{port}", "--idle-timeout", "3", "--max-seconds", "20",
        "--json", env={"RUST_LOG": "debug"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as junk:
                    junk.sendall(b"\xff" * 512 + b"GET / HTTP/1.0\r\n\r\n")
                    break
            except OSError:
                time.sleep(0.1)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    doc = json.loads(out)
    assert doc["node"] and "mesh" in doc
    assert "zenoh" in err.lower()  # its log went somewhere: to stderr
