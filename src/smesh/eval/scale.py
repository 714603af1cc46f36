"""The ``scale`` suite: coordination cost as the team and the work grow.

Agents with a zero-latency backend (so all that is measured is coordination: bidding,
leases, results, decisions, the board, the field) work through independent tasks on the
real clock. Two sweeps: 10 → 10,000 agents at a fixed number of tasks, and 100 → 100,000
tasks at 100 agents. Each point runs in a fresh Python process, so its peak memory is its
own. Headline per point: µs of CPU time per task (the process's own time: on a shared
machine, wall time also measures the neighbours); wall time is reported beside it.

Run a point by hand with ``python -m smesh.eval.scale AGENTS TASKS``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from smesh.errors import UsageError
from smesh.eval.result import ConditionResult, EvalResult

__all__ = ["measure_point", "points", "run_scale"]

AGENTS = (10, 100, 1_000, 10_000)
TASKS = (100, 1_000, 10_000, 100_000)
SKILLS = 10
FIXED_AGENTS = 100


def points(n: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The (agents, tasks) points of both sweeps for a largest task count ``n``."""
    tasks_at = min(n, 10_000)
    agent_sweep = [(a, tasks_at) for a in AGENTS if a <= max(AGENTS[0], min(n, AGENTS[-1]))]
    task_sweep = [(FIXED_AGENTS, t) for t in TASKS if t <= n]
    if not task_sweep or task_sweep[-1][1] != n:
        task_sweep.append((FIXED_AGENTS, n))
    return agent_sweep, task_sweep


async def _point(agents: int, tasks: int) -> dict[str, Any]:
    from smesh.agents import Agent, Settings, TaskSpec, Team
    from smesh.backends import FunctionBackend
    from smesh.clock import SystemClock
    from smesh.field import Field

    backend = FunctionBackend(lambda request: "ok", name="zero")
    team_agents = [
        Agent(f"a{i}", backend=backend, skills={f"s{i % SKILLS}": 1.0}) for i in range(agents)
    ]
    # A long lease: crash recovery is not measured here, and on a starved machine a bid can
    # outlive a 30 s lease before its agent resolves it (the runtime then fails the agent
    # with SignalNotFound when it withdraws the expired bid: reported, not worked around
    # anywhere else).
    settings = Settings(lease_s=3600.0, poll_s=30.0, tick_s=0.5, idle_timeout_s=600.0)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    team = Team(team_agents, field=Field(SystemClock()), settings=settings)
    specs = [TaskSpec(task_id=f"t{i}", skill=f"s{i % SKILLS}") for i in range(tasks)]
    started = time.perf_counter()
    cpu_started = time.process_time()
    report = await team.run(specs)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "agents": agents,
        "tasks": tasks,
        "accepted": report.accepted,
        "stopped_by": report.stopped_by,
        "wall_s": round(wall, 4),
        "cpu_s": round(cpu, 4),
        "us_per_task": round(cpu / tasks * 1e6, 2),
        "wall_us_per_task": round(wall / tasks * 1e6, 2),
        "peak_rss_mb": round(rss_after / 1024, 1),
        "rss_growth_mb": round((rss_after - rss_before) / 1024, 1),
    }


def measure_point(agents: int, tasks: int, *, timeout_s: float = 1800.0) -> dict[str, Any]:
    """Measure one point in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-m", "smesh.eval.scale", str(agents), str(tasks)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if out.returncode != 0:
        tail = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no output"]
        raise UsageError(f"scale point {agents}x{tasks} failed: {tail[0]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _slopes(rows: list[dict[str, Any]], x: str) -> list[float]:
    """Local log-log slopes of total CPU time against ``x`` (1.0 = linear)."""
    slopes = []
    for a, b in itertools.pairwise(rows):
        if a["cpu_s"] > 0 and b["cpu_s"] > 0 and a[x] != b[x]:
            slopes.append(round(math.log(b["cpu_s"] / a["cpu_s"]) / math.log(b[x] / a[x]), 3))
    return slopes


def run_scale(
    *, n: int = 100_000, seed: int = 0, progress: Callable[[str, int, int], None] | None = None
) -> EvalResult:
    """Run both sweeps up to ``n`` tasks (the runs are deterministic work on the real clock;
    ``seed`` is recorded but the workload has no randomness beyond task placement)."""
    if n < 1:
        raise UsageError("--n must be at least 1")
    agent_sweep, task_sweep = points(n)
    todo = list(dict.fromkeys([*agent_sweep, *task_sweep]))
    measured: dict[tuple[int, int], dict[str, Any]] = {}
    for i, (a, t) in enumerate(todo):
        measured[(a, t)] = measure_point(a, t)
        if progress is not None:
            progress("scale", i + 1, len(todo))
    by_agents = [measured[p] for p in agent_sweep]
    by_tasks = [measured[p] for p in task_sweep]
    conditions = [
        ConditionResult(
            name=f"{row['agents']} agents x {row['tasks']} tasks",
            score=row["us_per_task"],
            ci_low=row["us_per_task"],
            ci_high=row["us_per_task"],
            tokens_per_item=0.0,
            seconds_per_item=round(row["us_per_task"] / 1e6, 8),
        )
        for row in (measured[p] for p in todo)
    ]
    first, last = by_agents[0], by_agents[-1]
    return EvalResult(
        suite="scale",
        backend="zero-latency",
        n=n,
        seed=seed,
        conditions=conditions,
        extra={
            # CPU time, not wall time: this machine is shared, and wall time there measures
            # the neighbours as much as the code (wall figures are kept in the sweeps)
            "unit": "µs of CPU time per task (coordination only)",
            "agent_sweep": by_agents,
            "task_sweep": by_tasks,
            "per_task_ratio_most_vs_fewest_agents": round(
                last["us_per_task"] / first["us_per_task"], 3
            ),
            "slopes_vs_tasks": _slopes(by_tasks, "tasks"),
            "slopes_vs_agents": _slopes(by_agents, "agents"),
        },
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m smesh.eval.scale AGENTS TASKS``: print one point as JSON."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or not all(a.isdigit() for a in args):
        print("usage: python -m smesh.eval.scale AGENTS TASKS", file=sys.stderr)
        return 2
    print(json.dumps(asyncio.run(_point(int(args[0]), int(args[1])))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
