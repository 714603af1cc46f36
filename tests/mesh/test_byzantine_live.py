"""A Byzantine minority on a live mesh (issue 10, found-2): five certified peers, two of
which vote against the truth and decide at once on their own votes (and again citing an
honest agent as a voter on their side). Their decisions are validly signed by certified
nodes and land first; every honest node still ends with the honest majority's outcome."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _meshkit import Peer, free_port

from smesh.mesh.pki import init_ca, issue

Spawn = Callable[..., Peer]
pytestmark = pytest.mark.slow

# three honest voters (1.5 at a stranger's 0.5 trust each) can decide; two liars (1.0) not
VERIFY = {"quorum": 1.2, "margin": 0.3, "timeout_s": 60.0}
HONEST_DELAY = 2.0  # the honest verifiers take their time, the liars do not


def test_a_certified_lying_minority_does_not_overturn_the_honest_majority(
    spawn: Spawn, mesh_name: str, tmp_path: Path
) -> None:
    ca = tmp_path / "ca"
    init_ca(ca)
    names = ["alpha", "beta", "gamma", "liar1", "liar2"]
    for name in names:
        issue(name, ca=ca)
    port = free_port()

    def team(name: str, spec: dict[str, Any], *where: str) -> Peer:
        spec = {"verify": VERIFY, "max_attempts": 1, "bad": ["t1"], "idle": 60.0, **spec}
        tls = ["--mesh", mesh_name, "--sync-timeout", "0.5", "--name", name]
        tls += ["--tls-ca", str(ca)]
        return spawn(*tls, *where, "--team", json.dumps(spec))

    honest = {"id": "judge", "judge": "honest", "delay": HONEST_DELAY}
    connect = ("--connect", f"tls/127.0.0.1:{port}")
    peers = {
        "beta": team("beta", {"agents": [honest]}, *connect),
        "gamma": team("gamma", {"agents": [honest]}, *connect),
        "liar1": team("liar1", {"agents": [{"id": "judge", "judge": "liar"}]}, *connect),
        "liar2": team("liar2", {"agents": [{"id": "judge", "judge": "liar"}]}, *connect),
    }
    worker = {"id": "worker", "affinity": 1.0}
    alpha = team(
        "alpha",
        {"agents": [worker, honest], "post": 2, "wait_peers": 4},
        "--listen",
        f"tls/127.0.0.1:{port}",
    )
    reports = {"alpha": alpha.read(timeout=30)}
    for name, peer in peers.items():
        assert peer.read(timeout=30)["started"] is True, name
    assert reports["alpha"]["started"] is True
    finals = {name: peer.read(timeout=90) for name, peer in {"alpha": alpha, **peers}.items()}
    truth = {"t0": "accepted", "t1": "failed"}  # t1's worker posted a bad output
    for name in ("alpha", "beta", "gamma"):
        report = finals[name]["report"]
        statuses = {t["id"]: t["status"] for t in report["tasks"]}
        assert statuses == truth, (name, report)
        assert report["stopped_by"] == "quiescent", (name, report)
        counts = report["decisions"]
        # the liars' decisions reached this node and were refused, each counted
        refused = sum(v for k, v in counts.items() if k.startswith("dropped_"))
        assert counts.get("dropped_insufficient_votes", 0) >= 2, (name, counts)
        assert refused + counts["waiting"] >= 4, (name, counts)
        assert counts["accepted"] == 2, (name, counts)
        # and the liars lost this node's trust, the honest verifiers gained it
        trust = report["trust"]
        for who in ("liar1", "liar2"):
            assert trust[f"{peers[who].node_id}/judge"] < 0.5, (name, trust)
        for who in ("beta", "gamma"):
            assert trust[f"{peers[who].node_id}/judge"] > 0.5, (name, trust)
