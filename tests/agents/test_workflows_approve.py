"""``smesh approve`` from another terminal reaches a running team; a pending approval
survives a SIGKILL and ``--resume``. Real processes, a real SQLite journal."""

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

import pytest

HERE = Path(__file__).resolve().parent
ENV = {**os.environ, "PYTHONHASHSEED": "0", "NO_COLOR": "1", "COLUMNS": "200"}


def smesh(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "smesh", *args],
        capture_output=True, text=True, timeout=60, env=ENV, cwd=cwd, check=False,
    )  # fmt: skip


class Run:
    """The helper run in its own process, read line by line."""

    def __init__(self, tmp: Path, run_id: str, *, resume: bool = False) -> None:
        command = [sys.executable, str(HERE / "_approval_run.py"), str(tmp / "j.db"), run_id,
                   str(tmp / "counts.txt"), *(["--resume"] if resume else [])]  # fmt: skip
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV
        )

    def line(self, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            text = self.proc.stdout.readline()
            if text:
                data: dict[str, Any] = json.loads(text)
                return data
            if self.proc.poll() is not None:
                raise AssertionError(self.proc.stderr.read() if self.proc.stderr else "exited")
        raise AssertionError("no line in time")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def approve(tmp: Path, run_id: str, task: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """``smesh approve``; retried while the request has not reached the journal yet (the run
    flushes it at its next tick)."""
    for _ in range(50):
        done = smesh("approve", run_id, task, "--journal", "j.db", "--by", "ann", "--json",
                     *extra, cwd=tmp)  # fmt: skip
        if "not waiting" not in done.stderr:
            return done
        time.sleep(0.1)
    return done


def counts(tmp: Path) -> Counter[str]:
    return Counter(line.split()[0] for line in (tmp / "counts.txt").read_text().splitlines())


def test_smesh_approve_from_another_process_reaches_the_running_team(tmp_path: Path) -> None:
    run = Run(tmp_path, "live")
    try:
        waiting = {run.line()["waiting"], run.line()["waiting"]}
        assert waiting == {"a", "b"}
        # in reverse order, and one rejected with a comment
        done = approve(tmp_path, "live", "b")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {
            "run_id": "live", "task": "b", "attempt": 1, "verdict": "approve", "by": "ann",
            "comment": "",
        }  # fmt: skip
        done = approve(tmp_path, "live", "a", "--reject", "--comment", "make it shorter")
        assert done.returncode == 0, done.stderr
        assert run.line() == {"waiting": "a", "attempt": 2}  # the team saw the rejection
        assert approve(tmp_path, "live", "a").returncode == 0
        report = run.line()["report"]
    finally:
        run.stop()
    assert report["stopped_by"] == "quiescent"
    got = {t["id"]: t for t in report["tasks"]}
    assert (got["a"]["status"], got["a"]["attempts"]) == ("accepted", 2)
    assert got["a"]["output"] == "draft 2 of a ['make it shorter']"
    assert (got["b"]["status"], got["b"]["output"]) == ("accepted", "draft 1 of b []")

    trace = smesh("trace", "live", "--json", "--journal", "j.db", cwd=tmp_path)
    assert trace.returncode == 0, trace.stderr
    approvals = json.loads(trace.stdout)["approvals"]
    assert approvals == [
        {"task": "b", "by": "ann", "verdict": "approve", "comment": ""},
        {"task": "a", "by": "ann", "verdict": "reject", "comment": "make it shorter"},
        {"task": "a", "by": "ann", "verdict": "approve", "comment": ""},
    ]


def test_a_pending_approval_survives_sigkill_and_resume(tmp_path: Path) -> None:
    run = Run(tmp_path, "crashy")
    try:
        assert {run.line()["waiting"], run.line()["waiting"]} == {"a", "b"}
        time.sleep(0.3)  # the requests reach the journal at the next tick
        run.proc.send_signal(signal.SIGKILL)
        run.proc.wait(timeout=10)
    finally:
        run.stop()
    # nobody runs the team now: the answer waits in the journal
    done = approve(tmp_path, "crashy", "a")
    assert done.returncode == 0, done.stderr
    again = approve(tmp_path, "crashy", "a")
    assert again.returncode == 1 and "already answered" in again.stderr
    resumed = Run(tmp_path, "crashy", resume=True)
    try:
        assert approve(tmp_path, "crashy", "b", "--by", "ann").returncode == 0
        report = resumed.line()["report"]
    finally:
        resumed.stop()
    assert [(t["id"], t["status"]) for t in report["tasks"]] == [
        ("a", "accepted"), ("b", "accepted"),
    ]  # fmt: skip
    assert counts(tmp_path) == Counter({"a": 1, "b": 1})  # the work was not redone


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("nope", "a"), 2, "no run 'nope'"),
        (("bad", "zzz"), 2, "has no task 'zzz'"),
        (("bad", "a", "--by", "eve", "--reject"), 1, "attempt 1 of 'a' is already answered"),
    ],
)
def test_approve_refuses_bad_input_with_one_line(
    tmp_path: Path, args: tuple[str, ...], code: int, message: str
) -> None:
    run = Run(tmp_path, "bad")
    try:
        run.line()
        run.line()
        time.sleep(0.3)  # journaled at the next tick
        run.proc.send_signal(signal.SIGKILL)
    finally:
        run.stop()
    # make "a" answered, so that it is no longer waiting
    if args[-1] == "--reject":
        assert approve(tmp_path, "bad", "a").returncode == 0
        resumed = Run(tmp_path, "bad", resume=True)
        try:
            assert approve(tmp_path, "bad", "b").returncode == 0
            resumed.line()
        finally:
            resumed.stop()
    done = smesh("approve", *args, "--journal", "j.db", cwd=tmp_path)
    assert done.returncode == code, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in done.stderr
