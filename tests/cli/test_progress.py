"""Progress on stderr for every long command, also when stdout is the ``--json`` document
(real processes; stderr is a pipe, so the progress comes as plain lines)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _clikit import PRELUDE, SAMPLES, closed_port, smesh

from smesh.apps.demo import demo_tasks
from smesh.cli import _progress as progress
from smesh.cli._progress import Meter, clock_text

QUICK = {"SMESH_PROGRESS_S": "0"}  # every change is a line (default: one every 10 s)


def _one_document(stdout: str) -> object:
    return json.loads(stdout)  # json.loads refuses anything around the one document


def _progress(stderr: str, what: str) -> list[tuple[int, int]]:
    """(done, total) of every progress line of ``what`` on stderr."""
    found = re.findall(rf"^smesh: {re.escape(what)}: (\d+)/(\d+) ", stderr, re.MULTILINE)
    return [(int(done), int(total)) for done, total in found]


def test_agents_json_shows_tasks_done_on_stderr(tmp_path: Path) -> None:
    run = smesh(
        "agents", "--demo", "--backend", "slowdemo:0.05", "--json",
        "--journal", str(tmp_path / "j.db"), prelude=PRELUDE, env=QUICK,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    report = _one_document(run.stdout)
    assert isinstance(report, dict) and len(report["tasks"]) == len(demo_tasks())
    counts = _progress(run.stderr, "agents")
    assert counts and counts[-1] == (len(demo_tasks()),) * 2
    assert [d for d, _ in counts] == sorted(d for d, _ in counts)  # it only moves forward
    assert "Traceback" not in run.stderr


def test_review_format_json_is_not_silent(tmp_path: Path) -> None:
    run = smesh(
        "review", "--path", str(SAMPLES / "vulnerable_py"), "--backend", "oracle",
        "--format", "json", "--journal", str(tmp_path / "j.db"), prelude=PRELUDE, env=QUICK,
    )  # fmt: skip
    assert run.returncode in (0, 1), run.stderr
    assert "findings" in _one_document(run.stdout)  # type: ignore[operator]
    counts = _progress(run.stderr, "review")
    assert counts, run.stderr
    done, total = counts[-1]
    assert done == total > 0


def test_sim_json_counts_ticks_on_stderr() -> None:
    run = smesh("sim", "--json", "--nodes", "20", "--ticks", "8", env=QUICK)
    assert run.returncode == 0
    assert _one_document(run.stdout)["ticks"] == 8  # type: ignore[index]
    assert _progress(run.stderr, "sim")[-1] == (8, 8)


def test_eval_without_a_progress_hook_still_says_it_runs() -> None:
    run = smesh("eval", "fanout", "--n", "20", "--json", env=QUICK, timeout=300)
    assert run.returncode == 0, run.stderr
    assert _one_document(run.stdout)["suite"] == "fanout"  # type: ignore[index]
    assert re.search(r"^smesh: eval fanout · \d+:\d\d", run.stderr, re.MULTILINE), run.stderr


def test_compare_json_shows_which_backend_runs() -> None:
    run = smesh(
        "compare", "--backends", "slow:0.05", "--prompt", "hi", "--json",
        prelude=PRELUDE, env=QUICK,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert _one_document(run.stdout)["results"][0]["ok"]  # type: ignore[index]
    assert "smesh: compare" in run.stderr and "running slow:0.05" in run.stderr


def test_the_meter_is_quiet_until_there_is_something_to_count(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMESH_PROGRESS_S", "3600")
    monkeypatch.setattr(progress, "_GRACE_S", 0.0)  # (a quick command prints nothing)
    with Meter("work", unit="files") as meter:
        meter.update(0)  # nothing known yet (a preflight may still fail): no line
        assert capsys.readouterr().err == ""
        meter.update(1, total=4)
        meter.update(2)  # within the interval: no new line
        meter.update(3)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("smesh: work: 1/4 files (25%) · 0:00 · ETA")
    assert lines[-1].startswith("smesh: work: 3/4 files (75%)") and len(lines) == 2
    assert clock_text(75) == "1:15" and clock_text(3725) == "1:02:05"


def test_a_quick_command_prints_no_progress(capsys: pytest.CaptureFixture[str]) -> None:
    with Meter("quick", total=3, unit="files") as meter:
        for i in range(3):
            meter.update(i + 1)
    assert capsys.readouterr().err == ""


def test_a_slow_first_step_still_gets_its_line_after_the_grace(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress, "_GRACE_S", 0.2)
    with Meter("slow", total=5, unit="tasks"):
        deadline = time.monotonic() + 5
        while "smesh: slow: 0/5 tasks" not in (err := capsys.readouterr().err):
            assert time.monotonic() < deadline, "no line after the grace"
            time.sleep(0.05)
    assert "Traceback" not in err


def test_the_dashboard_command_exits_130_on_ctrl_c(tmp_path: Path) -> None:
    from smesh.agents.journal import Journal

    with Journal(tmp_path / "j.db"):
        pass
    port = closed_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "smesh", "dashboard", "--journal", str(tmp_path / "j.db"),
         "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        import httpx

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        proc.wait(15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
