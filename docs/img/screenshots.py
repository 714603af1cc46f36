"""Make the dashboard screenshots in docs/img/ (a real run, a recorded sim, real Chromium).

Usage: ``python docs/img/screenshots.py`` (needs ``smesh[ui]``, playwright and Debian's
chromium). Writes dashboard-{field,network,tasks,trust,trace,cost}.png beside this file.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from smesh.agents import Agent, FunctionAgent, Judgement, Settings, TaskSpec, Team, VerifySpec
from smesh.clock import SystemClock
from smesh.dashboard.app import Dashboard
from smesh.dashboard.server import DashboardServer
from smesh.dashboard.simrec import SimRecorder
from smesh.decay import Exponential
from smesh.errors import RateLimited
from smesh.field import Field
from smesh.agents.journal import Journal
from smesh.sim import SimConfig, run_simulation
from smesh.testing import FunctionBackend

OUT = Path(__file__).parent
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
ARGS += ["--disable-background-networking", "--disable-component-update", "--disable-sync"]


def run(path: Path) -> None:
    """Twelve tasks, six coders (one backend rate-limits once), three reviewers (one picky),
    and scouts emitting decaying ``insight`` signals that others reinforce."""
    calls = {"n": 0}

    def reply(request: Any) -> str:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RateLimited("slow down", retry_after=0.5)
        return "def solve(x):\n    return x * 2"

    backend = FunctionBackend(reply, name="local", latency=0.4)
    rng = random.Random(4)

    async def judge(task: Any, output: Any) -> Judgement:
        return Judgement("approve" if rng.random() < 0.8 else "reject", "reviewed")

    async def main() -> None:
        agents: list[Agent] = [
            Agent(f"coder-{i}", backend=backend, skills={"code": 0.6 + 0.05 * i}) for i in range(6)
        ]
        agents += [FunctionAgent(f"rev-{i}", judge=judge, verifies={"code": 1.0}) for i in range(3)]
        field = Field(SystemClock())
        settings = Settings(poll_s=0.1, tick_s=0.1, idle_timeout_s=30, pressure_hold_s=0.5)
        verify = VerifySpec(quorum=1.2, margin=0.3)
        specs = [
            TaskSpec(
                task_id=f"task-{i}",
                skill="code",
                description=f"implement step {i}",
                verify=verify,
                input={"depends_on": [f"task-{i - 1}"]} if i else None,
            )
            for i in range(12)
        ]
        with Journal(path) as journal:
            team = Team(agents, field=field, settings=settings, journal=journal, run_id="demo")

            async def scouts() -> None:
                for k in range(40):
                    s = field.emit(
                        "insight",
                        {"topic": f"hotspot {k % 5}"},
                        origin=f"scout-{k % 3}",
                        decay=Exponential(rate=0.4),
                        ttl=20.0,
                        intensity=0.9,
                    )
                    if k % 2:
                        field.reinforce(s.address, by=f"coder-{k % 6}")
                    await asyncio.sleep(0.15)

            scout = asyncio.ensure_future(scouts())
            await team.run(specs)
            scout.cancel()

    asyncio.run(main())


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "journal.db"
        config = SimConfig(nodes=120, ticks=40, signals=4, seed=7)
        rec = SimRecorder(path, config, run_id="sim-small-world")
        rec.finish(run_simulation(config, rec.on_tick, rec.on_start))
        worker = threading.Thread(target=run, args=(path,))
        worker.start()
        time.sleep(1.0)
        with (
            DashboardServer(Dashboard(journal=path, run="demo")) as server,
            sync_playwright() as pw,
        ):
            browser = pw.chromium.launch_persistent_context(
                str(Path(tmp) / "profile"),
                executable_path="/usr/bin/chromium",
                headless=True,
                args=ARGS,
                viewport={"width": 1280, "height": 800},
            )
            page = browser.new_page()
            page.goto(server.url + "/#tasks")
            time.sleep(2.5)
            page.screenshot(path=OUT / "dashboard-tasks.png")
            page.goto(server.url + "/#field")
            time.sleep(2.5)
            page.screenshot(path=OUT / "dashboard-field.png")
            worker.join()
            for view in ("trust", "trace/task-3", "cost"):
                page.goto(server.url + "/#" + view)
                time.sleep(1.5)
                page.screenshot(path=OUT / f"dashboard-{view.split('/')[0]}.png")
            page.goto(server.url + "/#network")
            page.select_option("#run", "sim-small-world")
            time.sleep(2.0)
            page.locator("#view-network input[type=range]").fill("6")
            time.sleep(0.5)
            page.screenshot(path=OUT / "dashboard-network.png")
            browser.close()


if __name__ == "__main__":
    main()
