"""The process whose agent spawned subtasks is SIGKILLed mid-way (issue 13 §2): the resumed
run re-takes the parent and the subtasks that were accepted before the kill are not redone.
``smesh cancel`` from another terminal stops such a run (§4). Real processes, a real SQLite
journal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ENV = {**os.environ, "PYTHONHASHSEED": "0", "NO_COLOR": "1"}


def start(tmp: Path, *, resume: bool = False) -> subprocess.Popen[str]:
    command = [sys.executable, str(HERE / "_spawn_run.py"), str(tmp / "j.db"), "fan",
               str(tmp / "counts.txt"), *(["--resume"] if resume else [])]  # fmt: skip
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV
    )


def lines(proc: subprocess.Popen[str], until: str, timeout: float = 60.0) -> list[dict[str, Any]]:
    """The JSON lines ``proc`` prints until one has key ``until`` (bounded)."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        text = proc.stdout.readline()
        if text:
            got.append(json.loads(text))
            if until in got[-1]:
                return got
        elif proc.poll() is not None:
            raise AssertionError(proc.stderr.read() if proc.stderr else "exited")
    raise AssertionError(f"no {until!r} line in time: {got}")


def test_sigkill_of_the_spawner_resumes_without_redoing_accepted_subtasks(
    tmp_path: Path,
) -> None:
    first = start(tmp_path)
    try:
        accepted: set[str] = set()
        deadline = time.monotonic() + 60.0
        while {"job/p0", "job/p1"} - accepted and time.monotonic() < deadline:
            accepted |= {line["accepted"] for line in lines(first, "accepted")}
        assert {"job/p0", "job/p1"} <= accepted
        time.sleep(0.3)  # the acceptances reach the journal at the next tick
        first.send_signal(signal.SIGKILL)  # the planner is mid-way: p2 and p3 still run
        assert first.wait(timeout=10) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(timeout=10)
    before = Counter((tmp_path / "counts.txt").read_text().split())
    assert before == Counter({"job": 1, **{f"job/p{i}": 1 for i in range(4)}})
    resumed = start(tmp_path, resume=True)
    try:
        report = lines(resumed, "report")[-1]["report"]
        assert resumed.wait(timeout=30) == 0
    finally:
        if resumed.poll() is None:
            resumed.kill()
            resumed.wait(timeout=10)
    tasks = {t["id"]: t for t in report["tasks"]}
    assert tasks["job"]["status"] == "accepted"
    assert tasks["job"]["output"] == [0, 10, 20, 30]
    done = Counter((tmp_path / "counts.txt").read_text().split())
    # the planner ran again and spawned the same subtasks: the two accepted before the kill
    # were not done again; the two killed mid-way were
    assert done - before == Counter({"job": 1, "job/p2": 1, "job/p3": 1})


def smesh(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smesh", *args, "--journal", str(tmp / "j.db")],
        capture_output=True, text=True, timeout=60, env=ENV, check=False,
    )  # fmt: skip


def test_smesh_cancel_from_another_process_stops_the_run_and_resume_does_not_restart(
    tmp_path: Path,
) -> None:
    run = start(tmp_path)
    try:
        accepted: set[str] = set()
        deadline = time.monotonic() + 60.0
        while {"job/p0", "job/p1"} - accepted and time.monotonic() < deadline:
            accepted |= {line["accepted"] for line in lines(run, "accepted")}
        time.sleep(0.3)  # the run is in the journal (written at its ticks)
        done = smesh(tmp_path, "cancel", "fan", "--reason", "changed my mind", "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["reason"] == "changed my mind"
        started = time.monotonic()
        report = lines(run, "report", timeout=30)[-1]["report"]
        assert time.monotonic() - started < 10  # p2 and p3 would sleep 30 s
        assert run.wait(timeout=30) == 0
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(timeout=10)
    assert report["stopped_by"] == "cancelled"
    assert report["stop_detail"] == "changed my mind"
    status = {t["id"]: t["status"] for t in report["tasks"]}
    # the finished work is kept; the rest is cancelled
    assert status == {"job": "cancelled", "job/p0": "accepted", "job/p1": "accepted",
                      "job/p2": "cancelled", "job/p3": "cancelled"}  # fmt: skip
    trace = smesh(tmp_path, "trace", "fan", "--json")
    assert trace.returncode == 0, trace.stderr
    assert set(json.loads(trace.stdout)["cancelled"]) >= {"job", "job/p2", "job/p3"}
    before = Counter((tmp_path / "counts.txt").read_text().split())
    resumed = start(tmp_path, resume=True)
    try:
        again = lines(resumed, "report")[-1]["report"]
    finally:
        if resumed.poll() is None:
            resumed.wait(timeout=30)
    assert {t["id"]: t["status"] for t in again["tasks"]} == status
    assert Counter((tmp_path / "counts.txt").read_text().split()) == before  # nothing redone
    # bad input: one line, the documented exit code
    for args, message in ((("cancel", "nope"), "no run 'nope'"),
                          (("cancel", "fan", "zzz"), "has no task 'zzz'")):  # fmt: skip
        bad = smesh(tmp_path, *args)
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr
