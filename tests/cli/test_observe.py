"""``--dashboard`` and ``--metrics-port`` on a real run (a real process, real HTTP on
127.0.0.1): the feed shows the run while it runs, the metrics are scraped during it, both
stop with the run (Ctrl-C included), and bad uses are one line and exit 2."""

from __future__ import annotations

import json
import queue
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from _clikit import closed_port, popen, smesh

pytest.importorskip("starlette")
pytest.importorskip("prometheus_client")

from prometheus_client.parser import text_string_to_metric_families

from smesh.apps.demo import demo_tasks


def _lines(stream: Any) -> queue.Queue[str]:
    """Every line ``stream`` gives, as it comes (read on a thread)."""
    out: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            out.put(line)
        out.put("")

    threading.Thread(target=pump, daemon=True).start()
    return out


def _wait_line(lines: queue.Queue[str], pattern: str, seen: list[str], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            return match.group(1)
        if line == "":
            break
    raise AssertionError(f"no line matching {pattern!r} in {''.join(seen)!r}")


def _feed(url: str) -> dict[str, Any]:
    """The feed's first frame (the snapshot) of the run the dashboard opened on."""
    with httpx.stream("GET", url + "/api/runs/latest/feed", timeout=10) as response:
        assert response.status_code == 200
        event = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "snapshot":
                data: dict[str, Any] = json.loads(line[6:])
                return data
    raise AssertionError("no snapshot")


def _metrics(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(url, timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _refused(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return True
    return False


def test_a_run_with_a_dashboard_and_metrics_shows_itself_while_it_runs(tmp_path: Path) -> None:
    journal = tmp_path / "j.db"
    port = closed_port()
    proc = popen(
        "agents", "--demo", "--backend", "slowdemo:0.4", "--json", "--journal", str(journal),
        "--dashboard", "--metrics-port", str(port),
    )  # fmt: skip
    seen: list[str] = []
    try:
        lines = _lines(proc.stderr)
        metrics_url = _wait_line(lines, r"metrics at (\S+)", seen)
        url = _wait_line(lines, r"dashboard at (\S+)/ ", seen)
        assert url.startswith("http://127.0.0.1:") and metrics_url.startswith("http://127.0.0.1:")
        snapshot = _feed(url)
        run_id = snapshot["run_id"]
        assert snapshot["finished"] is None  # followed live, not replayed
        # the run's tasks reach the feed and the metrics while it runs
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            samples = _metrics(metrics_url)
            calls = sum(v for (n, _), v in samples.items() if n == "smesh_llm_calls_total")
            tasks = sum(v for (n, _), v in samples.items() if n == "smesh_tasks")
            if calls and tasks == len(demo_tasks()):
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"metrics never showed the run: {samples}")
        assert proc.poll() is None, "the run ended before the metrics were scraped"
        assert samples[("smesh_signals_total", (("kind", "task"), ("op", "emit"), ("run", run_id)))]
        assert len(_feed(url)["tasks"]) == len(demo_tasks())
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, "".join(seen)
    assert json.loads(out)["run_id"] == run_id  # stdout: exactly the one JSON document
    assert _refused(url + "/healthz") and _refused(metrics_url)  # stopped with the run


def test_ctrl_c_stops_the_run_and_its_dashboard(tmp_path: Path) -> None:
    proc = popen(
        "agents", "--demo", "--backend", "slowdemo:30", "--journal", str(tmp_path / "j.db"),
        "--dashboard",
    )  # fmt: skip
    seen: list[str] = []
    try:
        url = _wait_line(_lines(proc.stderr), r"dashboard at (\S+)/ ", seen)
        assert httpx.get(url + "/healthz", timeout=5).status_code == 200
        stopped = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(20)
        took = time.monotonic() - stopped
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 130
    assert took < 6.0
    assert _refused(url + "/healthz")
    assert "Traceback" not in "".join(seen)


def test_bad_uses_are_one_line_and_exit_2(tmp_path: Path) -> None:
    with __import__("socket").socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        run = smesh(
            "agents", "--demo", "--backend", "scripted", "--journal", str(tmp_path / "j.db"),
            "--metrics-port", str(port),
        )  # fmt: skip
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        f"smesh: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
    split = smesh("node", "--split", "2", "--dashboard")
    assert split.returncode == 2 and "without --split" in split.stderr
    assert "Traceback" not in split.stderr
