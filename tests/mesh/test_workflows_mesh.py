"""Workflows across processes on the mesh (issue 13): a dependency whose input is done in
another process, a cancel that crosses processes down to the backend calls and to subtasks
in a third one, and the spawner killed with SIGKILL while its subtasks run elsewhere.

Real processes (``_wfpeer.py``: a long-lived team on a :class:`~smesh.mesh.MeshField`),
real zenoh on 127.0.0.1; what the agents did is read from a log file every process appends
to.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _meshkit import Peer, eventually, free_port

Spawn = Callable[..., Peer]
WFPEER = Path(__file__).with_name("_wfpeer.py")
pytestmark = pytest.mark.slow


class Mesh:
    """Team processes on one mesh: the first listens, the others connect to it."""

    def __init__(self, spawn: Spawn, name: str, log: Path) -> None:
        self.spawn, self.name, self.log = spawn, name, log
        self.port = free_port()
        self.peers: list[Peer] = []

    def start(self, *agents: dict[str, Any], grace: float = 1.0, lease: float = 30.0) -> Peer:
        where = ["--listen", f"tcp/127.0.0.1:{self.port}"]
        if self.peers:
            where = ["--connect", f"tcp/127.0.0.1:{self.port}", "--listen", "tcp/127.0.0.1:0"]
        args = ["--mesh", self.name, *where, "--log", str(self.log), "--agents",
                json.dumps(list(agents)), "--grace", str(grace), "--lease", str(lease)]  # fmt: skip
        peer = self.spawn(*args, script=WFPEER)
        self.peers.append(peer)
        return peer

    def joined(self) -> None:
        """Wait until every process sees every other one (and their boards listen)."""
        n = len(self.peers)
        for peer in self.peers:
            sees = lambda p=peer: len(p.call("peers")["peers"]) == n - 1  # noqa: E731
            assert eventually(sees), peer.stderr()
        time.sleep(0.3)

    def events(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


def wait(peer: Peer, task: str, within: float = 20.0) -> dict[str, Any]:
    answer = peer.call("wait", task=task, within=within, timeout=within + 5)
    assert "report" in answer, answer
    report: dict[str, Any] = answer["report"]
    return report


@pytest.fixture
def mesh(spawn: Spawn, mesh_name: str, tmp_path: Path) -> Mesh:
    return Mesh(spawn, mesh_name, tmp_path / "events.jsonl")


def test_a_dependency_done_in_one_process_feeds_its_dependent_in_another(mesh: Mesh) -> None:
    researcher = {"id": "researcher", "skill": "research", "kind": "echo", "delay": 1.5}
    flaky = {"id": "flaky", "skill": "fetch", "kind": "fail", "delay": 0.2}
    writer = {"id": "writer", "skill": "write", "kind": "echo"}
    one = mesh.start(researcher, flaky)
    two = mesh.start(writer)
    poster = mesh.start()  # posts the graph; does no work
    mesh.joined()
    specs = [
        {"task_id": "draft", "skill": "write", "input": "essay", "depends_on": ["facts"]},
        {"task_id": "facts", "skill": "research", "input": "sources"},
        {"task_id": "fetch", "skill": "fetch", "max_attempts": 1},
        {"task_id": "summary", "skill": "write", "depends_on": ["fetch"]},
        {"task_id": "anyway", "skill": "write", "depends_on": ["fetch", "facts"],
         "on_failed_dependency": "run"},
    ]  # fmt: skip
    assert poster.call("submit", specs=specs)["posted"]
    draft = wait(two, "draft")
    facts = wait(one, "facts")
    # the dependent was done in the writer's process, with the input done in the other one
    assert draft["status"] == "accepted", draft
    assert draft["claimed_by"] == f"{two.node_id}/writer"
    assert facts["claimed_by"] == f"{one.node_id}/researcher"
    assert draft["output"]["inputs"] == {"facts": facts["output"]}
    assert draft["output"]["inputs"]["facts"]["input"] == "sources"
    assert wait(poster, "draft")["output"] == draft["output"]  # every replica agrees
    events = mesh.events()
    done = {e["task"]: e["t"] for e in events if e["event"] == "done"}
    started = [e for e in events if e["event"] == "perform" and e["task"] == "draft"]
    # dormant until its input was accepted: the writer started it once, after facts ended
    assert len(started) == 1 and started[0]["t"] > done["facts"]
    # a failed input fails its dependent in the other process, with the cause, and the
    # dependent is never worked on
    summary = wait(two, "summary")
    assert summary["status"] == "failed"
    assert summary["reason"].startswith("dependency fetch failed"), summary
    assert "the source is gone" in summary["reason"]
    assert wait(one, "summary")["reason"] == summary["reason"]
    assert not [e for e in mesh.events() if e.get("task") == "summary"]
    # ...or, if the dependent says so, lets it run there with what succeeded
    anyway = wait(two, "anyway")
    assert anyway["status"] == "accepted", anyway
    assert anyway["output"]["inputs"] == {"facts": facts["output"]}
    assert anyway["output"]["failed_inputs"] == {"fetch": summary["reason"]}


def test_a_process_that_joins_after_the_input_was_accepted_still_wakes_the_dependent(
    mesh: Mesh,
) -> None:
    """The late joiner learns the graph from the replicas' sync, in no particular order."""
    one = mesh.start({"id": "researcher", "skill": "research", "kind": "echo"})
    poster = mesh.start()
    mesh.joined()
    specs = [
        {"task_id": f"draft{i}", "skill": "write", "depends_on": [f"facts{i}"]} for i in range(3)
    ] + [{"task_id": f"facts{i}", "skill": "research", "input": i} for i in range(3)]
    poster.call("submit", specs=specs)
    facts = [wait(one, f"facts{i}") for i in range(3)]
    assert {f["status"] for f in facts} == {"accepted"}
    late = mesh.start({"id": "writer", "skill": "write", "kind": "echo"})  # the only writer
    for i in range(3):
        draft = wait(late, f"draft{i}")
        assert draft["status"] == "accepted", draft
        assert draft["claimed_by"] == f"{late.node_id}/writer"
        assert draft["output"]["inputs"] == {f"facts{i}": facts[i]["output"]}


def test_a_cancel_from_one_process_stops_the_parent_and_its_subtasks_in_two_others(
    mesh: Mesh,
) -> None:
    grace = 1.0
    planner = mesh.start({"id": "boss", "skill": "plan", "kind": "planner"}, grace=grace)
    workers = mesh.start(
        *({"id": f"w{i}", "skill": "part", "kind": "caller", "delay": 0.2} for i in range(3)),
        grace=grace,
    )
    poster = mesh.start(grace=grace)
    mesh.joined()
    poster.call("submit", specs=[{"task_id": "job", "skill": "plan", "input": 3}])
    # every subtask is mid-way through its LLM calls in the workers' process
    assert eventually(
        lambda: (
            {e.get("agent") for e in mesh.events() if e["event"] == "call"}
            == {f"{workers.node_id}/w{i}" for i in range(3)}
        ),
        timeout=15,
    ), mesh.events()
    cancelled_at = poster.call("cancel", task="job", reason="the user changed their mind")["t"]
    parts = [f"job/p{i}" for i in range(3)]
    for peer in (poster, planner, workers):
        job = wait(peer, "job")
        assert job["status"] == "cancelled" and job["reason"] == "the user changed their mind"
        for part in parts:
            report = wait(peer, part)
            assert report["status"] == "cancelled", report
            assert report["reason"] == "parent job was cancelled"

    # the workers ignore ctx.cancelled: the grace period ran out, then their backend calls
    # were cancelled in flight, and no LLM call started after that
    def stopped() -> list[dict[str, Any]]:
        return [e for e in mesh.events() if e["event"] == "backend-cancelled"]

    assert eventually(lambda: len(stopped()) == 3, timeout=grace + 5), mesh.events()
    assert all(cancelled_at + grace <= e["t"] < cancelled_at + grace + 1.5 for e in stopped())
    time.sleep(1.0)  # five more call latencies: any call still looping would show up
    calls = [e for e in mesh.events() if e["event"] == "call"]
    assert max(e["t"] for e in calls) <= max(e["t"] for e in stopped())
    # the planner in its own process was told too: its subtasks' handles ended cancelled,
    # and what it made of them within the grace is kept as the job's partial result
    merged = [e for e in mesh.events() if e["event"] == "done" and e["task"] == "job"]
    assert len(merged) == 1 and cancelled_at < merged[0]["t"] < cancelled_at + grace
    assert wait(poster, "job")["output"] == [None, None, None]


def test_the_spawner_killed_mid_way_is_replaced_by_another_process_without_redoing_parts(
    mesh: Mesh,
) -> None:
    """Issue 13 §2 across processes: the parent's new holder adopts the subtasks already on
    the board (accepted or still running elsewhere) instead of posting them again."""
    first = mesh.start({"id": "boss", "skill": "plan", "kind": "planner", "affinity": 0.9})
    second = mesh.start({"id": "boss", "skill": "plan", "kind": "planner", "affinity": 0.3})
    part = {"skill": "part", "kind": "echo", "delay": 0.1, "slow_from": 2, "slow": 3.0}
    workers = mesh.start(*({"id": f"w{i}", **part} for i in range(4)))
    mesh.joined()
    workers.call("submit", specs=[{"task_id": "job", "skill": "plan", "input": 4}])
    for quick in ("job/p0", "job/p1"):
        assert wait(workers, quick)["status"] == "accepted"
    bosses = [e for e in mesh.events() if e["event"] == "perform" and e["task"] == "job"]
    assert [e["agent"] for e in bosses] == [f"{first.node_id}/boss"]
    first.kill()  # SIGKILL: mid-way, p2 and p3 still running in the workers' process
    killed_at = time.time()
    job = wait(workers, "job", within=25)
    assert job["status"] == "accepted", job
    assert job["claimed_by"] == f"{second.node_id}/boss"
    assert [out["input"] for out in job["output"]] == [0, 1, 2, 3]
    assert wait(second, "job")["output"] == job["output"]
    events = mesh.events()
    performed = Counter(e["task"] for e in events if e["event"] == "perform")
    # the parent ran twice (once per holder); every subtask once: none was redone
    assert performed == Counter({"job": 2, **{f"job/p{i}": 1 for i in range(4)}})
    retaken = [e for e in events if e["event"] == "perform" and e["node"] == second.node_id]
    # re-taken when the dead process left the mesh, long before its 30 s lease would lapse
    assert retaken and 0 < retaken[0]["t"] - killed_at < 10


def test_subtasks_in_flight_in_the_killed_process_are_redone_elsewhere_finished_ones_not(
    mesh: Mesh,
) -> None:
    fast = {"skill": "part", "kind": "echo", "delay": 0.1}
    stuck = {**fast, "affinity": 0.9, "slow_from": 2, "slow": 60.0}  # p2, p3 hang there
    victim = mesh.start(
        {"id": "boss", "skill": "plan", "kind": "planner", "affinity": 0.9},
        *({"id": f"w{i}", **stuck} for i in range(4)),
    )
    survivor = mesh.start(
        {"id": "boss", "skill": "plan", "kind": "planner", "affinity": 0.3},
        *({"id": f"w{i}", **fast, "affinity": 0.3} for i in range(4)),
    )
    mesh.joined()
    survivor.call("submit", specs=[{"task_id": "job", "skill": "plan", "input": 4}])
    assert wait(survivor, "job/p0")["status"] == "accepted"
    assert wait(survivor, "job/p1")["status"] == "accepted"
    time.sleep(0.3)
    before = mesh.events()
    finished = {e["task"] for e in before if e["event"] == "done"}
    in_flight = {e["task"] for e in before if e["event"] == "perform"} - finished
    assert "job" in in_flight and {"job/p2", "job/p3"} <= in_flight | finished
    victim.kill()
    killed_at = time.time()
    job = wait(survivor, "job", within=25)
    assert job["status"] == "accepted", job
    assert job["claimed_by"] == f"{survivor.node_id}/boss"
    assert [out["input"] for out in job["output"]] == [0, 1, 2, 3]
    after = [e for e in mesh.events() if e["event"] == "perform" and e["t"] > killed_at]
    assert all(e["node"] == survivor.node_id for e in after)
    # what was finished before the kill is not done again; what the kill interrupted is
    redone = Counter(e["task"] for e in after)
    assert redone == Counter(sorted(in_flight)), (redone, in_flight)
    assert not set(redone) & finished
    by = {out["input"]: out["by"].split("/")[0] for out in job["output"]}
    for i in range(4):
        assert by[i] == (survivor.node_id if f"job/p{i}" in in_flight else victim.node_id)


def test_a_run_wide_cancel_reaches_other_processes_and_a_late_joiner(mesh: Mesh) -> None:
    caller = {"skill": "part", "kind": "caller", "delay": 0.2}
    workers = mesh.start(*({"id": f"w{i}", **caller} for i in range(2)), grace=0.5)
    poster = mesh.start(grace=0.5)
    mesh.joined()
    poster.call("submit", specs=[{"task_id": f"t{i}", "skill": "part"} for i in range(2)])
    assert eventually(lambda: len({e["agent"] for e in mesh.events()}) == 2), mesh.events()
    cancelled_at = poster.call("cancel", reason="shutting down")["t"]
    for i in range(2):
        report = wait(workers, f"t{i}")
        assert report["status"] == "cancelled" and report["reason"] == "shutting down"
    assert eventually(
        lambda: sum(e["event"] == "backend-cancelled" for e in mesh.events()) == 2, timeout=5
    )
    # a process that joins later, with idle workers of the same skill, learns of the cancel
    # from the replicas: it reports the tasks cancelled and starts none of them
    scribe = {"id": "scribe", "skill": "note", "kind": "echo"}
    late = mesh.start(*({"id": f"x{i}", **caller} for i in range(2)), scribe)
    for i in range(2):
        assert wait(late, f"t{i}")["reason"] == "shutting down"
    time.sleep(1.0)
    assert not [e for e in mesh.events() if e["node"] == late.node_id]
    last_call = max(e["t"] for e in mesh.events() if e["event"] == "call")
    assert last_call < cancelled_at + 0.5 + 1.0
    # the cancel covers what was posted before it: the mesh takes new work afterwards
    workers.call("submit", specs=[{"task_id": "after", "skill": "note"}])
    assert wait(late, "after")["status"] == "accepted"


def test_a_parents_call_budget_bounds_its_subtasks_in_another_process(mesh: Mesh) -> None:
    """The children run where the parent's budget is not: each carries a cap, and the caps
    together stay within what the parent had left."""
    mesh.start({"id": "boss", "skill": "plan", "kind": "planner"})
    caller = {"skill": "part", "kind": "caller", "delay": 0.01}
    workers = mesh.start(*({"id": f"w{i}", **caller} for i in range(3)))
    mesh.joined()
    spec = {"task_id": "job", "skill": "plan", "input": 3, "max_calls": 6}
    workers.call("submit", specs=[spec])
    job = wait(workers, "job")
    parts = [wait(workers, f"job/p{i}") for i in range(3)]
    # each child carried a third of the parent's six calls (it used to carry all six, and
    # three children in a process without the parent's budget made eighteen calls)
    for part in parts:
        assert part["status"] == "failed"
        assert part["reason"] == f"task {part['id']}: its budget of 2 calls ran out", part
    assert job["status"] == "accepted"
    time.sleep(0.5)
    calls = Counter(e["agent"] for e in mesh.events() if e["event"] == "call")
    assert calls == {f"{workers.node_id}/w{i}": 2 for i in range(3)}
