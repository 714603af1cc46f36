"""Side effects exactly once across SIGKILL: a real process is killed mid-run and resumed.

The worker (``_effect_worker.py``) pays five orders through a side-effecting tool that
appends a row to an external SQLite "bank" for every payment it really makes. The test
kills it with SIGKILL at a chosen point (or after a random delay), reruns it with the same
run id, and counts the bank's rows: every order is paid exactly once, or, when the
process died between the payment and the outcome record and the tool has no reconcile
hook, the call is reported as uncertain and not repeated.
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

WORKER = Path(__file__).with_name("_effect_worker.py")
ALL_ORDERS = ["o1", "o2", "o2b", "o3", "o4"]
SRC = str(Path(__file__).resolve().parents[2] / "src")


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
            "run-42",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _kill_at_pause(proc: subprocess.Popen[str], timeout: float = 20.0) -> list[str]:
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
        proc.wait(10)
        proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    return lines


def _finish(tmp: Path, *extra: str) -> list[dict[str, Any]]:
    proc = _start(tmp, *extra)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert lines[-1] == "final done", out
    return [json.loads(x.removeprefix("record ")) for x in lines if x.startswith("record ")]


def _paid(tmp: Path) -> dict[str, int]:
    with sqlite3.connect(tmp / "bank.db") as bank:
        rows = bank.execute("SELECT order_id, COUNT(*) FROM payments GROUP BY order_id")
        return dict(rows.fetchall())


def _by_order(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["args"]["order_id"]: r for r in records}


@pytest.mark.parametrize(
    ("pause", "reconcile"),
    [
        ("before:o2b", True),  # intent recorded, payment not made
        ("after:o2b", True),  # payment made, outcome not recorded
        ("recorded:o3", True),  # outcome recorded, next step not started
        ("before:o1", False),
        ("recorded:o1", False),
    ],
)
def test_killed_and_resumed_each_payment_happens_exactly_once(
    tmp_path: Path, pause: str, reconcile: bool
) -> None:
    flags = ["--reconcile"] if reconcile else []
    said = _kill_at_pause(_start(tmp_path, "--pause", pause, *flags))
    where, _, order = pause.partition(":")
    before = _paid(tmp_path)
    assert before.get(order, 0) == (0 if where == "before" else 1), said
    records = _by_order(_finish(tmp_path, *flags))
    paid = _paid(tmp_path)
    done_before = {o for o in ALL_ORDERS if before.get(o)}
    if where == "before" and not reconcile:
        # the intent was journaled: unknown whether it ran, so it is reported, not repeated
        assert records[order]["status"] == "uncertain" and records[order]["replayed"]
        assert paid == {o: 1 for o in ALL_ORDERS if o != order}
    else:
        assert paid == dict.fromkeys(ALL_ORDERS, 1)
        assert all(r["status"] == "ok" for r in records.values())
    for o in done_before:
        assert records[o]["replayed"], o  # results from the journal, not a second payment


def test_killed_between_payment_and_outcome_without_reconcile_is_reported_uncertain(
    tmp_path: Path,
) -> None:
    _kill_at_pause(_start(tmp_path, "--pause", "after:o3"))
    records = _by_order(_finish(tmp_path))
    assert _paid(tmp_path) == dict.fromkeys(ALL_ORDERS, 1)  # o3 paid once, never twice
    assert records["o3"]["status"] == "uncertain"
    assert "not repeated" in records["o3"]["result"]
    assert [records[o]["replayed"] for o in ("o1", "o2", "o2b")] == [True] * 3
    assert not records["o4"]["replayed"]


@pytest.mark.parametrize("seed", range(4))
def test_killed_at_a_random_moment_and_resumed_twice(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    for round_ in range(2):  # kill, and kill the resumed run too
        proc = _start(tmp_path, "--reconcile", "--work-s", "0.15")
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "start"
        # the work takes at least 5 orders x 2 x 0.15 s after "start": this lands inside it
        time.sleep(rng.uniform(0.0, 1.2))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
        if round_ == 0:
            assert proc.returncode == -signal.SIGKILL  # killed mid-run, not after it ended
    _finish(tmp_path, "--reconcile", "--work-s", "0.05")
    assert _paid(tmp_path) == dict.fromkeys(ALL_ORDERS, 1)
    # and a further rerun performs nothing at all
    records = _finish(tmp_path, "--reconcile")
    assert all(r["replayed"] for r in records)
    assert _paid(tmp_path) == dict.fromkeys(ALL_ORDERS, 1)
