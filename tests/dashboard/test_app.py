"""The dashboard over real HTTP on 127.0.0.1: feed, controls, metrics, the command."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from _kit import run_team, wait_for
from prometheus_client.parser import text_string_to_metric_families

from smesh.agents.journal import Journal
from smesh.clock import VirtualClock
from smesh.field import Field
from smesh.sim import SimConfig, run_simulation


def _frames(url: str, count: int, timeout: float = 10.0) -> list[tuple[str, Any]]:
    """The first ``count`` SSE frames of a feed, as (event, data)."""
    out: list[tuple[str, Any]] = []
    event = ""
    with httpx.stream("GET", url, timeout=timeout) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                out.append((event, json.loads(line[6:])))
                if len(out) >= count:
                    break
    return out


def test_it_binds_loopback_and_serves_the_page_with_a_strict_policy(
    tmp_path: Path, serve: Any
) -> None:
    path = tmp_path / "j.db"
    run_team(path, 1)
    server = serve(journal=path)
    assert server.host == "127.0.0.1"
    sockname = server.server.servers[0].sockets[0].getsockname()
    assert sockname[0] == "127.0.0.1"
    page = httpx.get(server.url + "/")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "unsafe-inline" not in page.headers["content-security-policy"]
    for asset in ("app.js", "views.js", "network.js", "style.css"):
        assert httpx.get(f"{server.url}/static/{asset}").status_code == 200
    # every asset is served from the package: nothing refers to another host
    html = page.text + "".join(
        httpx.get(f"{server.url}/static/{a}").text for a in ("app.js", "views.js", "network.js")
    )
    assert "https://" not in html and "http://" not in html


def test_the_feed_sends_a_snapshot_then_batches_as_the_journal_grows(
    tmp_path: Path, serve: Any
) -> None:
    path = tmp_path / "j.db"
    run_team(path, 2)
    server = serve(journal=path, run="run-1")
    frames: list[tuple[str, Any]] = []
    with httpx.stream("GET", server.url + "/api/runs/run-1/feed", timeout=10) as response:
        lines = response.iter_lines()
        event = ""
        for line in lines:
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                frames.append((event, json.loads(line[6:])))
                break
        # a new signal written into the run by another writer reaches this client
        with Journal(path) as journal:
            field = Field(VirtualClock(time.time()))
            journal.attach(field, "run-1")
            field.emit("beacon", {"hello": "page"}, origin="outsider")
        started = time.monotonic()
        for line in lines:
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                frames.append((event, json.loads(line[6:])))
                if any(e.get("kind") == "beacon" for e in frames[-1][1].get("events", [])):
                    break
        arrived = time.monotonic() - started
    assert frames[0][0] == "snapshot"
    snap = frames[0][1]
    assert snap["stats"]["tasks"] == {"accepted": 2}
    assert {t["id"] for t in snap["tasks"]} == {"t0", "t1"}
    last = frames[-1][1]
    assert frames[-1][0] == "batch"
    beacon = next(e for e in last["events"] if e.get("kind") == "beacon")
    assert beacon["type"] == "signal" and beacon["op"] == "emit"
    assert beacon["payload"] == {"hello": "page"} and beacon["origin"] == "outsider"
    assert arrived < 5.0  # functional bound; the latency figure is measured in benchmarks/


def test_runs_latest_and_unknown_runs(tmp_path: Path, serve: Any) -> None:
    path = tmp_path / "j.db"
    run_team(path, 1, run_id="first")
    run_team(path, 1, run_id="second")
    server = serve(journal=path)
    runs = httpx.get(server.url + "/api/runs").json()["runs"]
    assert [r["run_id"] for r in runs] == ["second", "first"]
    assert _frames(server.url + "/api/runs/latest/feed", 1)[0][1]["run_id"] == "second"
    missing = httpx.get(server.url + "/api/runs/nope/feed")
    assert missing.status_code == 404 and "nope" in missing.json()["error"]


def _journal_rows(path: Path, query: str) -> list[Any]:
    with sqlite3.connect(path) as db:
        return db.execute(query).fetchall()


def test_approve_records_the_signal_and_the_action(tmp_path: Path, serve: Any) -> None:
    path = tmp_path / "j.db"
    run_team(path, 1)
    server = serve(journal=path)
    url = server.url + "/api/runs/run-1/tasks/t0/approve"
    response = httpx.post(url, json={"reason": "ship it", "attempt": 1})
    assert response.status_code == 200, response.text
    assert response.json()["recorded"]["kind"] == "approval"
    actions = _journal_rows(path, "SELECT agent, action, task_id, detail FROM actions")
    agent, action, task_id, detail = actions[-1]
    assert (agent, action, task_id) == ("dashboard", "approve", "t0")
    assert json.loads(detail)["reason"] == "ship it"
    kinds = [r[0] for r in _journal_rows(path, "SELECT kind FROM events ORDER BY seq")]
    assert kinds[-1] == "approval"

    def approved() -> bool:
        task = httpx.get(server.url + "/api/runs/run-1/tasks/t0").json()["task"]
        return bool(task["approvals"]) and task["approvals"][0]["verdict"] == "approve"

    wait_for(approved)
    story = httpx.get(server.url + "/api/runs/run-1/tasks/t0").json()["story"]
    assert story[-1]["action"] == "approve"


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"Origin": "http://evil.example", "Content-Type": "application/json"}, b"{}"),
        ({"Content-Type": "text/plain"}, b"{}"),  # a "simple" cross-site form post
        ({"Origin": "null", "Content-Type": "application/json"}, b"{}"),
    ],
)
def test_cross_site_presses_are_refused_and_record_nothing(
    tmp_path: Path, serve: Any, headers: dict[str, str], body: bytes
) -> None:
    path = tmp_path / "j.db"
    run_team(path, 1)
    before = _journal_rows(path, "SELECT count(*) FROM actions")[0][0]
    server = serve(journal=path)
    response = httpx.post(
        server.url + "/api/runs/run-1/tasks/t0/cancel", content=body, headers=headers
    )
    assert response.status_code == 403
    assert _journal_rows(path, "SELECT count(*) FROM actions")[0][0] == before


def test_bad_control_requests_get_a_clear_answer(tmp_path: Path, serve: Any) -> None:
    path = tmp_path / "j.db"
    run_team(path, 1)
    before = _journal_rows(path, "SELECT count(*) FROM actions")[0][0]
    server = serve(journal=path)
    base = server.url + "/api/runs/run-1/tasks"
    assert httpx.post(f"{base}/t0/explode", json={}).status_code == 404
    assert httpx.post(f"{base}/nope/approve", json={}).status_code == 404
    too_long = httpx.post(f"{base}/t0/reject", json={"reason": "x" * 10_000})
    assert too_long.status_code == 400 and "reason" in too_long.json()["error"]
    garbage = httpx.post(
        f"{base}/t0/reject", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert garbage.status_code == 400
    assert _journal_rows(path, "SELECT count(*) FROM actions")[0][0] == before


def test_metrics_are_computed_from_the_feed(tmp_path: Path, serve: Any) -> None:
    path = tmp_path / "j.db"
    run_team(path, 3)
    server = serve(journal=path)
    wait_for(lambda: "smesh_tasks" in httpx.get(server.url + "/metrics").text)
    text = httpx.get(server.url + "/metrics").text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    run = ("run", "run-1")
    assert samples[("smesh_tasks", (run, ("status", "accepted")))] == 3
    assert samples[("smesh_signals_total", (("kind", "task"), ("op", "emit"), run))] == 3
    assert samples[("smesh_signals_live", (("kind", "claim"), run))] == 0
    assert samples[("smesh_decision_latency_seconds_count", (run,))] == 3
    assert samples[("smesh_lease_lapses_total", (run,))] == 0


def test_the_network_of_a_recorded_sim(tmp_path: Path, serve: Any) -> None:
    from smesh.dashboard.simrec import SimRecorder

    path = tmp_path / "j.db"
    config = SimConfig(nodes=30, ticks=12, signals=2, seed=3)
    recorder = SimRecorder(path, config, run_id="sim-1")
    result = run_simulation(config, recorder.on_tick, recorder.on_start)
    recorder.finish(result)
    run_team(path, 1, run_id="agents")
    server = serve(journal=path, run="sim-1")
    body = httpx.get(server.url + "/api/runs/sim-1/network").json()
    assert len(body["network"]["ids"]) == 30 and len(body["network"]["layout"]) == 30
    assert [f["tick"] for f in body["frames"]] == list(range(13))
    # frame 0 holds the emitters only; later frames add nodes hop by hop
    assert all(n[1] == 0 for s in body["frames"][0]["signals"] for n in s["new"])
    reached = {n[0] for f in body["frames"] for s in f["signals"] for n in s["new"]}
    assert len(reached) / 30 >= result.coverage * 0.9
    other = httpx.get(server.url + "/api/runs/agents/network").json()
    assert other["network"] is None and "sim --record" in other["note"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smesh", "dashboard", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_command_serves_until_interrupted(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    run_team(path, 1)
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "smesh", "dashboard", "--journal", str(path), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, timeout=30)
        # a page is following the run when the user presses Ctrl-C
        with httpx.stream("GET", f"http://127.0.0.1:{port}/api/runs/latest/feed", timeout=10):
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in proc.stderr.read()  # type: ignore[union-attr]


def test_the_command_refuses_bad_input_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    run_team(path, 1)
    missing = _cli("--journal", str(tmp_path / "missing.db"))
    assert missing.returncode == 2 and "no journal" in missing.stderr
    unknown = _cli("--journal", str(path), "--run", "nope", "--port", "0")
    assert unknown.returncode == 2 and "no run 'nope'" in unknown.stderr
    junk = tmp_path / "junk.db"
    junk.write_text("hello")
    bad = _cli("--journal", str(junk), "--port", "0")
    assert bad.returncode == 2 and "journal" in bad.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = _cli("--journal", str(path), "--port", str(taken.getsockname()[1]))
    assert busy.returncode == 2 and "cannot listen" in busy.stderr
    for result in (missing, unknown, bad, busy):
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr
    assert os.path.exists(path)
