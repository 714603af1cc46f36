"""``smesh mesh ...``, ``smesh node`` and the mesh section of ``smesh status``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from _meshkit import Peer, eventually, free_port

from smesh.cli import main
from smesh.mesh import Identity


def smesh(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "120"}
    return subprocess.run(
        [sys.executable, "-m", "smesh", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def test_init_ca_issue_and_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca = tmp_path / "ca"
    assert main(["mesh", "init-ca", str(ca)]) == 0
    assert (ca / "ca.pem").is_file() and (ca / "ca.key").is_file()
    assert main(["mesh", "issue", "node-a", "--ca", str(ca), "--host", "10.1.2.3"]) == 0
    out = capsys.readouterr().out
    node_id = Identity.load(ca / "node-a.key").node_id
    assert f"node id:     {node_id}" in out
    assert main(["mesh", "id", str(ca / "node-a.key")]) == 0
    assert capsys.readouterr().out.strip() == node_id
    # a second CA in the same place, or a second certificate for a node: refused, exit 2
    assert main(["mesh", "init-ca", str(ca)]) == 2
    assert main(["mesh", "issue", "node-a", "--ca", str(ca)]) == 2
    assert "already has a certificate" in capsys.readouterr().err


def test_node_rejects_unknown_agents(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["node", "--agents", "coder,astronaut"]) == 2
    assert "no agent 'astronaut' on the roster" in capsys.readouterr().err


def test_the_agents_demo_split_over_three_processes() -> None:
    done = smesh("node", "--split", "3", "--json", timeout=120)
    assert done.returncode == 0, done.stderr
    reports = json.loads(done.stdout)
    assert [sorted(r["agents"]) for r in reports] == [
        ["coder", "tester"],
        ["checker", "reviewer"],
        ["analyst", "writer"],
    ]
    assert len({r["node"] for r in reports}) == 3
    for report in reports:
        run = report["run"]
        assert run["stopped_by"] == "quiescent"
        assert [t["status"] for t in run["tasks"]] == ["accepted"] * 7
        # the work really crossed processes: each node applied operations from the others
        counters = report["mesh"]["counters"]
        assert counters["applied_ops"] > 0 and counters["published_ops"] > 0
    # every agent is named under the node that hosts it, and only that node speaks for it
    hosts = {f"{r['node']}/{agent}": agent for r in reports for agent in r["agents"]}
    who = {t["id"]: hosts[t["claimed_by"]] for t in reports[0]["run"]["tasks"]}
    assert who == {
        "code-palindrome": "coder",
        "explain-bst": "writer",
        "math-2plus2": "analyst",
        "code-fizzbuzz": "coder",
        "explain-palindrome": "writer",
        "analysis-primes": "analyst",
        "analysis-sales": "analyst",  # with the SQL tool, in the analyst's process
    }
    # explain-palindrome depends on code-palindrome: a dependency across processes (the
    # writer's node woke it when the tests on the coder's node accepted the code)


def test_status_and_peers_list_the_mesh_peers(
    spawn: Callable[..., Peer], mesh_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    a = spawn("--mesh", mesh_name, "--listen", f"tcp/127.0.0.1:{port}")
    b = spawn("--mesh", mesh_name, "--connect", f"tcp/127.0.0.1:{port}")
    assert eventually(lambda: len(a.call("peers")["peers"]) == 1)
    assert main(["status", "--json", "--mesh", f"tcp/127.0.0.1:{port}"]) == 0
    report = json.loads(capsys.readouterr().out)
    mesh = report["mesh"]
    assert mesh["zenoh"] == "1.10.2"
    assert {(p["mesh"], p["node"]) for p in mesh["peers"]} == {
        (mesh_name, a.node_id),
        (mesh_name, b.node_id),
    }
    assert main(["mesh", "peers", "--connect", f"tcp/127.0.0.1:{port}", "--mesh", mesh_name]) == 0
    out = capsys.readouterr().out
    assert a.node_id in out and b.node_id in out
    # without an endpoint, status contacts nothing
    assert main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mesh"]["peers"] is None
