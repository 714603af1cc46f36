"""Exactly once across SIGKILL for agents: a real process running a Team is killed mid-run,
``--resume``d with the same run id, and the payments its agent's tool really made are
counted in an external SQLite "bank".

The worker (``_acting_worker.py``) journals its run; the agent's side-effecting ``pay``
calls go through the effect ledger that the agent opens in the journal's own file. Each
order is paid exactly once, or, when the process died between a payment and its outcome
record and the tool has no reconcile hook, the call is reported as uncertain (in the
journal, so ``smesh trace`` shows it) and not repeated.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from smesh.agents.journal import Journal

WORKER = Path(__file__).with_name("_acting_worker.py")
ALL_ORDERS = ["o1", "o2", "o2b", "o3", "o4"]
SRC = str(Path(__file__).resolve().parents[2] / "src")
RUN = "run-7"


def _start(tmp: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen(
        [
            sys.executable,
            str(WORKER),
            "--journal",
            str(tmp / "journal.db"),
            "--bank",
            str(tmp / "bank.db"),
            "--run",
            RUN,
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _kill_at_pause(proc: subprocess.Popen[str], timeout: float = 30.0) -> list[str]:
    """Read lines until PAUSE, then SIGKILL the process; returns what it said."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
            if line.startswith("PAUSE"):
                break
        assert lines and lines[-1].startswith("PAUSE"), lines
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    return lines


def _resume(tmp: Path, *extra: str) -> dict[str, Any]:
    proc = _start(tmp, "--resume", *extra)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    final = out.splitlines()[-1]
    assert final.startswith("final "), out
    result: dict[str, Any] = json.loads(final.removeprefix("final "))
    return result


def _paid(tmp: Path) -> dict[str, int]:
    with sqlite3.connect(tmp / "bank.db") as bank:
        rows = bank.execute("SELECT order_id, COUNT(*) FROM payments GROUP BY order_id")
        return dict(rows.fetchall())


def _calls(tmp: Path) -> dict[str, dict[str, Any]]:
    """The latest journaled tool call per order (a resumed run's come after the killed one's)."""
    with Journal(tmp / "journal.db") as journal:
        actions = journal.actions(RUN, "checkout")
    return {a.detail["args"]["order_id"]: a.detail for a in actions if a.action == "tool"}


@pytest.mark.parametrize(
    ("pause", "reconcile"),
    [
        ("before:o2b", True),  # intent recorded, payment not made
        ("after:o2b", True),  # payment made, outcome not recorded
        ("recorded:o3", True),  # outcome recorded, the next step not started
        ("before:o1", False),
        ("recorded:o1", False),
    ],
)
def test_an_agent_killed_and_resumed_pays_each_order_exactly_once(
    tmp_path: Path, pause: str, reconcile: bool
) -> None:
    flags = ["--reconcile"] if reconcile else []
    said = _kill_at_pause(_start(tmp_path, "--pause", pause, *flags))
    where, _, order = pause.partition(":")
    before = _paid(tmp_path)
    assert before.get(order, 0) == (0 if where == "before" else 1), said
    final = _resume(tmp_path, *flags)
    assert final["status"] == "accepted"
    calls = _calls(tmp_path)
    paid = _paid(tmp_path)
    if where == "before" and not reconcile:
        # the intent was journaled: unknown whether it ran, so it is reported, not repeated
        assert calls[order]["status"] == "uncertain" and calls[order]["replayed"]
        assert paid == {o: 1 for o in ALL_ORDERS if o != order}
    else:
        assert paid == dict.fromkeys(ALL_ORDERS, 1)
        assert all(c["status"] == "ok" for c in calls.values())
    for o in (o for o in ALL_ORDERS if before.get(o)):
        assert calls[o]["replayed"], o  # the result came from the ledger, not a payment
    # the model saw every result, the replayed ones too
    answers = json.loads(final["output"])
    assert len(answers) == len(ALL_ORDERS)


def test_killed_between_payment_and_outcome_without_reconcile_is_reported_uncertain(
    tmp_path: Path,
) -> None:
    _kill_at_pause(_start(tmp_path, "--pause", "after:o3"))
    final = _resume(tmp_path)
    assert _paid(tmp_path) == dict.fromkeys(ALL_ORDERS, 1)  # o3 paid once, never twice
    calls = _calls(tmp_path)
    assert calls["o3"]["status"] == "uncertain" and calls["o3"]["ok"] is False
    assert "not repeated" in calls["o3"]["error"]
    assert [calls[o]["replayed"] for o in ("o1", "o2", "o2b")] == [True] * 3
    assert not calls["o4"]["replayed"]
    errors = [is_error for is_error, _ in json.loads(final["output"])]
    assert errors == [False, False, False, True, False]  # the model was told about o3
    trace = subprocess.run(
        [
            sys.executable,
            "-m",
            "smesh",
            "trace",
            RUN,
            "checkout",
            "--json",
            "--journal",
            "journal.db",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": SRC},
        timeout=60,
        check=True,
    )
    statuses = [
        (c["args"]["order_id"], c["status"], c["replayed"])
        for a in json.loads(trace.stdout)["attempts"]
        for c in a["tool_calls"]
    ]
    assert ("o3", "uncertain", True) in statuses


@pytest.mark.parametrize("seed", range(3))
def test_an_agent_killed_at_random_moments_twice(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    for round_ in range(2):  # kill, and kill the resumed run too
        proc = _start(tmp_path, "--reconcile", "--work-s", "0.3", *(["--resume"] * round_))
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "start"
        # four turns of 0.3 s payments (o2 and o2b at once) follow "start": this lands inside
        time.sleep(rng.uniform(0.0, 1.0))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
        if round_ == 0:
            assert proc.returncode == -signal.SIGKILL  # killed mid-run, not after it ended
    assert _resume(tmp_path, "--reconcile", "--work-s", "0.05")["status"] == "accepted"
    assert _paid(tmp_path) == dict.fromkeys(ALL_ORDERS, 1)
    # and a further resume finds the task done and pays nothing
    assert _resume(tmp_path, "--reconcile")["status"] == "accepted"
    assert _paid(tmp_path) == dict.fromkeys(ALL_ORDERS, 1)
