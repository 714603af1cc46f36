"""Traces across mesh processes: two real ``smesh node`` processes, each exporting its spans
(``SMESH_OTEL=1``, the console exporter on stderr); a task's spans from both processes are
one tree, and a verifier's link reaches the result span made in the other process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from _meshkit import free_port

pytest.importorskip("opentelemetry.sdk")


def _spans(stderr: str) -> list[dict[str, Any]]:
    """The JSON spans the console exporter wrote among the other lines."""
    decoder = json.JSONDecoder()
    out, i = [], 0
    while (start := stderr.find("{\n", i)) != -1:
        try:
            value, end = decoder.raw_decode(stderr, start)
        except ValueError:
            i = start + 1
            continue
        if isinstance(value, dict) and "context" in value:
            out.append(value)
        i = end
    return out


def test_a_tasks_trace_is_one_tree_across_two_processes() -> None:
    port = free_port()
    env = {
        **os.environ,
        "SMESH_OTEL": "1",
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "NO_COLOR": "1",
    }
    common = ["--mesh", f"otel{port}", "--backend", "scripted", "--idle-timeout", "30"]
    node = [sys.executable, "-m", "smesh", "node", "--json", *common]
    poster = subprocess.Popen(
        [
            *node,
            "--listen",
            f"tcp/127.0.0.1:{port}",
            "--agents",
            "reviewer,tester,checker",
            "--post",
            "--wait-peers",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    worker = subprocess.Popen(
        [
            *node,
            "--listen",
            f"tcp/127.0.0.1:{free_port()}",
            "--connect",
            f"tcp/127.0.0.1:{port}",
            "--agents",
            "coder,analyst,writer",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        out_a, err_a = poster.communicate(timeout=150)
        _, err_b = worker.communicate(timeout=60)
    finally:
        for proc in (poster, worker):
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    report = json.loads(out_a)
    assert {t["status"] for t in report["run"]["tasks"]} == {"accepted"}, err_a[-2000:]
    a, b = _spans(err_a), _spans(err_b)
    assert a and b
    # the coder worked in the worker process; its attempt's parent is the task's root span
    # (on a mesh an agent's name is scoped under its node: "<node id>/coder")
    (attempt,) = [
        s
        for s in b
        if s["name"].startswith("invoke_agent ")
        and s["name"].endswith("/coder")
        and s["attributes"]["smesh.task.id"] == "code-palindrome"
    ]
    trace = attempt["context"]["trace_id"]
    (root,) = [s for s in a + b if s["name"] == "task code-palindrome"]
    assert root["context"]["trace_id"] == trace
    assert attempt["parent_id"] == root["context"]["span_id"]
    (result,) = [s for s in b if s["name"] == "signal result" and s["context"]["trace_id"] == trace]
    # a verifier in the poster's process judged it: its span is in the same trace, a child
    # of the same root, and links to the result span the other process made
    judges = [
        s for s in a if s["name"].startswith("invoke_agent ") and s["context"]["trace_id"] == trace
    ]
    assert judges
    for judge in judges:
        assert judge["parent_id"] == root["context"]["span_id"]
        linked = {link["context"]["span_id"] for link in judge["links"]}
        assert result["context"]["span_id"] in linked
