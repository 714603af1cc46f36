"""Benchmark: the dashboard following a 10,000-agent run (scripted backend).

Three processes, as a user would have them: the run (10,000 agents through 10,000 tasks,
journaled), ``smesh dashboard`` on the journal, and Debian's Chromium showing the page.

Measures:

* the dashboard's CPU time while it follows the whole run (reading the journal, the run
  model, batching, serving one page), as a share of the run's own CPU time (target ≤ 10 %);
* how long after opening the page, mid-run, its first event is on screen (target ≤ 1 s);
* the latency from a journal commit to the page: a marker task is committed to the run's
  journal from outside every second and the page is watched until it holds it (target
  ≤ 250 ms).

Usage: ``python benchmarks/dashboard_feed.py [--agents 10000] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

_RUN = """
import asyncio, json, resource, sys, time
from smesh.agents import Team, Settings, TaskSpec
from smesh.bench.agents import _scale_agents
from smesh.clock import SystemClock
from smesh.field import Field
from smesh.agents.journal import Journal

N = int(sys.argv[1])
async def main():
    with Journal(sys.argv[2]) as journal:
        team = Team(_scale_agents(N, 10), field=Field(SystemClock()), journal=journal,
                    run_id="bench", settings=Settings(poll_s=30.0, tick_s=0.25, idle_timeout_s=120))
        specs = [TaskSpec(task_id=f"t{i}", skill=f"s{i % 10}") for i in range(N)]
        t = time.perf_counter()
        report = await team.run(specs)
        return report.accepted, time.perf_counter() - t
accepted, wall = asyncio.run(main())
u = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"accepted": accepted, "wall_s": wall, "cpu_s": u.ru_utime + u.ru_stime}))
"""

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(predicate: Any, timeout: float, step: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise TimeoutError(str(predicate))


def marker(journal_path: Path, i: int) -> float:
    """Commit a marker task to the run from outside; return the wall time of the commit."""
    from smesh.agents.journal import Journal
    from smesh.clock import SystemClock
    from smesh.field import Field

    with Journal(journal_path) as journal:
        field = Field(SystemClock())
        journal.attach(field, "bench")
        field.emit("task", {"task_id": f"marker-{i}", "skill": "marker"}, origin="bench")
        journal.flush()
        return time.time()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from smesh.agents.journal import Journal
    from smesh.clock import SystemClock
    from smesh.field import Field

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "journal.db"
        with Journal(path) as journal:  # the run exists before the dashboard starts
            journal.attach(Field(SystemClock()), "bench")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        dash = subprocess.Popen(
            [sys.executable, "-m", "smesh", "dashboard", "--journal", str(path), *_opts(port)],
            env=env,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait(lambda: _ok(url + "/healthz"), 60)
            time.sleep(0.5)
            dash_cpu0 = cpu_seconds(dash.pid)
            run = subprocess.Popen(
                [sys.executable, "-c", _RUN, str(args.agents), str(path)],
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
            with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
                browser = pw.chromium.launch_persistent_context(
                    profile,
                    executable_path="/usr/bin/chromium",
                    headless=True,
                    args=CHROMIUM_ARGS,
                )
                page = browser.new_page()
                time.sleep(3.0)  # open the page mid-run
                page.goto(url + "/#tasks")
                page.wait_for_selector("body[data-first-event]", timeout=30_000)
                first_ms = page.evaluate("window.smeshStats.firstEventAt")
                latencies = []
                i = 0
                while run.poll() is None and i < 30:
                    committed = marker(path, i)
                    page.wait_for_function(
                        "id => SM.state && SM.state.tasks.has(id)",
                        arg=f"marker-{i}",
                        polling="raf",
                        timeout=30_000,
                    )
                    latencies.append(time.time() - committed)
                    i += 1
                    time.sleep(1.0)
                out, _ = run.communicate(timeout=600)
                result = json.loads(out.strip().splitlines()[-1])
                # the feed has caught up when every task of the run is on the page's counts
                wait(
                    lambda: (
                        page.evaluate("SM.state && (SM.state.stats.tasks.accepted || 0)")
                        >= args.agents
                    ),
                    120,
                )
                dash_cpu = cpu_seconds(dash.pid) - dash_cpu0
                batches = page.evaluate("window.smeshStats.batches")
                browser.close()
        finally:
            dash.terminate()
            dash.wait(30)
    figures = {
        "agents": args.agents,
        "accepted": result["accepted"],
        "run_wall_s": round(result["wall_s"], 2),
        "run_cpu_s": round(result["cpu_s"], 2),
        "dashboard_cpu_s": round(dash_cpu, 2),
        "dashboard_cpu_share": round(dash_cpu / result["cpu_s"], 4),
        "first_event_ms": round(first_ms, 1),
        "latency_ms_median": round(statistics.median(latencies) * 1e3, 1) if latencies else None,
        "latency_ms_max": round(max(latencies) * 1e3, 1) if latencies else None,
        "latency_samples": len(latencies),
        "page_batches": batches,
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:22} {value}")


def _opts(port: int) -> list[str]:
    return ["--port", str(port), "--run", "bench"]


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    main()
