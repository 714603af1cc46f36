"""Ctrl-C and SIGKILL on real ``smesh`` processes (issue 11): the first Ctrl-C stops the run
within seconds and prints one line (why, what finished, the run id, the exact ``--resume``
command), exits 130 and leaves a run that resumes; a run that cannot be cancelled is still
ended by a watchdog, and a second Ctrl-C ends it at once; a run killed with SIGKILL
resumes without redoing accepted work. Scripted backends; the same with the embedded
model mid-generation is in test_stop_llm.py."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _clikit import PRELUDE, popen, smesh, wait_for_action

STOP_TARGET_S = 5.0
Procs = Callable[[subprocess.Popen[str]], subprocess.Popen[str]]


@pytest.fixture
def procs() -> Iterator[Procs]:
    """Track started processes; kill what a failing test left running."""
    started: list[subprocess.Popen[str]] = []

    def track(proc: subprocess.Popen[str]) -> subprocess.Popen[str]:
        started.append(proc)
        return proc

    yield track
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)


def _runs(journal: Path) -> list[dict[str, object]]:
    listed = smesh("runs", "--journal", str(journal), "--json")
    assert listed.returncode == 0, listed.stderr
    runs: list[dict[str, object]] = json.loads(listed.stdout)["runs"]
    return runs


def test_ctrl_c_stops_a_run_says_how_to_resume_it_and_the_resume_finishes(
    tmp_path: Path, procs: Procs
) -> None:
    journal = tmp_path / "j.db"
    proc = procs(
        popen("agents", "--demo", "--backend", "slowdemo:2", "--json", "--journal", str(journal))
    )
    wait_for_action(journal, "claim")
    time.sleep(0.5)  # the agents are in their calls
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    took = time.monotonic() - sent
    assert proc.returncode == 130, err
    assert took < STOP_TARGET_S, took
    assert json.loads(out) == {"error": "interrupted", "exit_code": 130}  # still one document
    (line,) = [x for x in err.splitlines() if x.strip()]
    assert re.match(r"smesh: interrupted \(Ctrl-C\) · 0 of \d+ tasks accepted", line), line
    (run,) = _runs(journal)
    assert run["status"] == "interrupted" and run["run_id"] in line
    first_calls = run["llm_calls"]
    assert isinstance(first_calls, int) and first_calls > 0

    # the printed command, as printed, continues the run to the end
    command = line.split(" · resume: ", 1)[1]
    args = shlex.split(command)
    assert args[:3] == ["smesh", "agents", "--demo"] and args[-2:] == ["--resume", run["run_id"]]
    resumed = smesh(*args[1:], prelude=PRELUDE, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["run_id"] == run["run_id"]
    assert {t["status"] for t in report["tasks"]} == {"accepted"}
    (after,) = _runs(journal)
    assert after["status"] == "complete"
    assert isinstance(after["llm_calls"], int) and after["llm_calls"] > first_calls  # summed


def test_a_run_that_ignores_cancellation_is_ended_by_the_watchdog(
    tmp_path: Path, procs: Procs
) -> None:
    journal = tmp_path / "j.db"
    proc = procs(popen("agents", "--demo", "--backend", "stuck:60", "--journal", str(journal)))
    wait_for_action(journal, "run")
    time.sleep(1.0)  # the first call has blocked the event loop
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    took = time.monotonic() - sent
    assert proc.returncode == 130
    assert took < STOP_TARGET_S, took
    assert "smesh: interrupted (Ctrl-C)" in err and "--resume" in err


def test_a_second_ctrl_c_exits_at_once(tmp_path: Path, procs: Procs) -> None:
    journal = tmp_path / "j.db"
    proc = procs(popen("agents", "--demo", "--backend", "stuck:60", "--journal", str(journal)))
    wait_for_action(journal, "run")
    time.sleep(1.0)  # the first call has blocked the event loop
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    took = time.monotonic() - sent
    assert proc.returncode == 130
    assert took < 1.0, took
    assert err.count("smesh: interrupted") == 1  # one stop line, not two


def test_a_run_killed_with_sigkill_resumes_without_redoing_accepted_work(
    tmp_path: Path, procs: Procs
) -> None:
    journal = tmp_path / "j.db"
    proc = procs(
        popen("agents", "--demo", "--backend", "slowdemo:0.5", "--json", "--journal", str(journal))
    )
    wait_for_action(journal, "decide")  # something was accepted
    time.sleep(0.3)  # a tick commits the journal
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    (run,) = _runs(journal)
    assert run["status"] == "crashed"  # its process is gone, it never ended
    run_id = str(run["run_id"])
    accepted_before = _accepted(journal, run_id)
    assert accepted_before

    resumed = smesh(
        "agents", "--demo", "--backend", "slowdemo:0.5", "--json", "--journal", str(journal),
        "--resume", run_id, prelude=PRELUDE, timeout=120,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert {t["status"] for t in report["tasks"]} == {"accepted"}
    trace = json.loads(smesh("trace", run_id, "--journal", str(journal), "--json").stdout)
    claims: dict[str, int] = {}
    for action in trace["actions"]:
        if action["action"] == "claim":
            claims[action["task_id"]] = claims.get(action["task_id"], 0) + 1
    for task in accepted_before:  # accepted before the kill: never claimed again
        assert claims[task] == 1, (task, claims)


def _accepted(journal: Path, run_id: str) -> set[str]:
    trace = json.loads(smesh("trace", run_id, "--journal", str(journal), "--json").stdout)
    return {
        a["task_id"]
        for a in trace["actions"]
        if a["action"] == "decide" and a["detail"].get("verdict") == "accepted"
    }
