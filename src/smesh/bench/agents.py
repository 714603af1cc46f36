"""The agents benchmark suite: the workloads used to compare agent frameworks.

Every workload runs the real runtime (field, board, agents, team) with a fake LLM, so what
is measured is coordination overhead. Targets are set against the best figure measured for
established Python frameworks on the same workload and machine (see benchmarks/RESULTS.md).
"""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from smesh.agents import Agent, FunctionAgent, Judgement, Settings, TaskSpec, Team, VerifySpec
from smesh.agents.agent import WorkContext
from smesh.backends import FunctionBackend
from smesh.backends.base import Request
from smesh.backends.toolcalls import AssistantTurn, ToolCall, ToolResult
from smesh.bench import BenchResult
from smesh.bench.tools import measure, noop
from smesh.clock import SystemClock
from smesh.field import Field

__all__ = ["run"]

Progress = Callable[[str], None] | None
_FAST = Settings(poll_s=30.0, tick_s=0.5, idle_timeout_s=60.0)


def _echo(request: Any) -> str:
    return "ok"


def _echo_or_call(request: Request) -> Any:
    """Calls the tool once when one is offered, then answers."""
    if request.tools and not isinstance(request.messages[-1], ToolResult):
        return AssistantTurn(tool_calls=(ToolCall(id="", name="noop", arguments={"n": 1}),))
    return "ok"


async def w1_handoff(jobs: int, *, worker_tool: bool = False) -> list[float]:
    """planner → worker → reviewer, one LLM call each, each output the next one's input;
    ``jobs`` chains in sequence. Returns seconds per chain.

    With ``worker_tool`` the worker has a no-op tool and calls it once (two LLM calls:
    the call, then the answer), through the agent's tool loop.
    """
    backend = FunctionBackend(_echo_or_call if worker_tool else _echo, name="zero")
    starts: dict[int, float] = {}
    spans: list[float] = []
    team: Team

    class Stage(Agent):
        def __init__(self, id: str, skill: str, nxt: str | None) -> None:
            tools = [noop] if worker_tool and skill == "work" else None
            super().__init__(id, backend=backend, skills={skill: 1.0}, tools=tools)
            self.nxt = nxt

        async def perform(self, ctx: WorkContext) -> Any:
            output = await super().perform(ctx)
            job = int(ctx.task.task_id.split("-")[1])
            if self.nxt is not None:
                team.submit(TaskSpec(task_id=f"{self.nxt}-{job}", skill=self.nxt, input=output))
            else:
                spans.append(time.perf_counter() - starts[job])
                if job + 1 < jobs:
                    starts[job + 1] = time.perf_counter()
                    team.submit(TaskSpec(task_id=f"plan-{job + 1}", skill="plan"))
            return output

    agents = [
        Stage("planner", "plan", "work"),
        Stage("worker", "work", "review"),
        Stage("reviewer", "review", None),
    ]
    team = Team(agents, field=Field(SystemClock()), settings=_FAST)
    starts[0] = time.perf_counter()
    report = await team.run([TaskSpec(task_id="plan-0", skill="plan")])
    assert report.accepted == 3 * jobs, report.stopped_by
    return spans


async def w2_fanout(tasks: int, workers: int, slots: int, latency: float) -> float:
    """``tasks`` independent tasks, ``latency`` seconds per LLM call; returns the makespan."""
    backend = FunctionBackend(_echo, name="slow", latency=latency)
    agents = [
        Agent(f"w{i}", backend=backend, skills={"work": 1.0}, slots=slots) for i in range(workers)
    ]
    team = Team(agents, field=Field(SystemClock()), settings=_FAST)
    specs = [TaskSpec(task_id=f"t{i}", skill="work") for i in range(tasks)]
    start = time.perf_counter()
    report = await team.run(specs)
    elapsed = time.perf_counter() - start
    assert report.accepted == tasks
    return elapsed


def _scale_agents(n: int, skills: int) -> list[Agent]:
    backend = FunctionBackend(_echo, name="zero")
    return [Agent(f"a{i}", backend=backend, skills={f"s{i % skills}": 1.0}) for i in range(n)]


async def w3_tasks(n: int, skills: int = 10) -> float:
    """``n`` agents work through ``n`` tasks end to end; returns seconds."""
    agents = _scale_agents(n, skills)
    team = Team(agents, field=Field(SystemClock()), settings=_FAST)
    specs = [TaskSpec(task_id=f"t{i}", skill=f"s{i % skills}") for i in range(n)]
    start = time.perf_counter()
    report = await team.run(specs)
    elapsed = time.perf_counter() - start
    assert report.accepted == n, (report.accepted, report.stopped_by)
    return elapsed


_W3_MEMORY = """
import asyncio, gc, json, resource, time
from smesh.bench.agents import _scale_agents
from smesh.agents import Team, Settings
from smesh.field import Field

def rss_kb():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0

N = {n}
async def main():
    gc.collect()
    before = rss_kb()
    t = time.perf_counter()
    agents = _scale_agents(N, 10)
    team = Team(agents, field=Field(), settings=Settings(poll_s=3600.0))
    build = time.perf_counter() - t
    runs = [asyncio.ensure_future(a.run(team.runtime)) for a in agents]
    await asyncio.sleep(0.5)  # every loop started and idle
    gc.collect()
    after = rss_kb()
    team.runtime.stop()
    await asyncio.gather(*runs)
    print(json.dumps({{"build_s": build, "kb_per_agent": (after - before) / N}}))
asyncio.run(main())
"""


def w3_memory(n: int) -> dict[str, float]:
    """Build ``n`` agents in a fresh process, start their loops; time and RSS per agent."""
    out = subprocess.run(
        [sys.executable, "-c", _W3_MEMORY.format(n=n)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


async def w4_consensus(decisions: int) -> list[float]:
    """5 verifiers (4 approve, 1 reject) vote concurrently on each result; ``decisions``
    tasks in sequence. Returns seconds per task, from posting to decision."""
    spans: list[float] = []
    starts: dict[int, float] = {}
    team: Team

    async def work(ctx: WorkContext) -> str:
        return "result"

    def voter(verdict: str) -> Callable[[TaskSpec, Any], Any]:
        async def judge(task: TaskSpec, output: Any) -> Judgement:
            return Judgement(verdict, "scripted")  # type: ignore[arg-type]

        return judge

    verify = VerifySpec(quorum=2.0, margin=1.4)  # needs all four approvals (2.0 vs 0.5)

    def on_change(task: Any, what: str) -> None:
        if what == "decision" and task.outcome == "accepted":
            job = int(task.spec.task_id[1:])
            spans.append(time.perf_counter() - starts[job])
            if job + 1 < decisions:
                starts[job + 1] = time.perf_counter()
                team.submit(TaskSpec(task_id=f"d{job + 1}", skill="work", verify=verify))

    agents: list[Agent] = [FunctionAgent("worker", perform=work, skills={"work": 1.0})]
    for i in range(5):
        verdict = "reject" if i == 4 else "approve"
        agents.append(FunctionAgent(f"v{i}", judge=voter(verdict), verifies={"work": 1.0}))
    team = Team(agents, field=Field(SystemClock()), settings=_FAST)
    starts[0] = time.perf_counter()
    report = await team.run(
        [TaskSpec(task_id="d0", skill="work", verify=verify)], on_change=on_change
    )
    assert report.accepted == decisions
    return spans


def _dag(levels: tuple[int, ...] = (4, 12, 24)) -> list[TaskSpec]:
    """A layered DAG (4 → 12 → 24 = 40 tasks): each task of a level depends on one or two
    tasks of the level above, spread evenly."""
    specs: list[TaskSpec] = []
    above: list[str] = []
    for depth, width in enumerate(levels):
        row = []
        for i in range(width):
            deps: tuple[str, ...] = ()
            if above:
                first = above[i % len(above)]
                second = above[(i * 7 + 1) % len(above)]
                deps = tuple(dict.fromkeys((first, second)))
            task_id = f"L{depth}-{i}"
            specs.append(TaskSpec(task_id=task_id, skill="s", depends_on=deps))
            row.append(task_id)
        above = row
    return specs


async def w5_dag(runs: int) -> tuple[list[float], list[float]]:
    """A 3-level, 40-task DAG on a zero-latency backend, ``runs`` times. Returns the wall
    time per task of each run, and every dependent's delay from its last input's acceptance
    to the first claim on it (a worker's bid: the dependent woke and was taken up)."""
    backend = FunctionBackend(_echo, name="zero")
    per_task: list[float] = []
    wakes: list[float] = []
    accepted: dict[str, float] = {}
    claimed: dict[str, float] = {}

    def on_change(task: Any, what: str) -> None:
        task_id = task.spec.task_id
        if what == "decision" and task.outcome == "accepted":
            accepted[task_id] = time.perf_counter()
        elif what == "claim-emit" and task_id not in claimed:
            claimed[task_id] = time.perf_counter()  # its first claim: a bid on it

    specs = _dag()
    for _ in range(runs):
        # as many workers as the widest level: a dependent never waits for free hands, so
        # the wake figure is the protocol's own delay
        agents = [Agent(f"w{i}", backend=backend, skills={"s": 1.0}) for i in range(24)]
        team = Team(agents, field=Field(SystemClock()), settings=_FAST)
        accepted.clear()
        claimed.clear()
        start = time.perf_counter()
        report = await team.run(specs, on_change=on_change)
        elapsed = time.perf_counter() - start
        assert report.accepted == len(specs), report.stopped_by
        per_task.append(elapsed / len(specs))
        for spec in specs:
            if spec.depends_on:
                wakes.append(claimed[spec.task_id] - max(accepted[d] for d in spec.depends_on))
    return per_task, wakes


_IMPORT = "import time; t = time.perf_counter(); import smesh; print(time.perf_counter() - t)"


def import_time(repeats: int) -> float:
    """Median seconds of ``import smesh`` in a fresh interpreter."""
    samples = []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", _IMPORT], capture_output=True, text=True, check=True, timeout=60
        )
        samples.append(float(out.stdout.strip()))
    return statistics.median(samples)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(*, quick: bool = False, progress: Progress = None) -> list[BenchResult]:
    """Run W1–W5, the tool-loop figures and the import benchmark."""

    def say(name: str) -> None:
        if progress is not None:
            progress(name)

    results: list[BenchResult] = []

    def add(name: str, value: float, unit: str, target: float | None, detail: str) -> None:
        results.append(
            BenchResult(name=name, value=round(value, 4), unit=unit, target=target, detail=detail)
        )

    gc.collect()
    say("w1_handoff")
    spans = asyncio.run(w1_handoff(60 if quick else 200))
    spans = spans[5:] or spans  # the first chains pay for warm-up
    add(
        "w1_handoff_median_ms",
        statistics.median(spans) * 1e3,
        "ms",
        0.2,
        "planner→worker→reviewer chain, zero-latency LLM",
    )
    add("w1_handoff_p99_ms", _pct(spans, 0.99) * 1e3, "ms", None, "p99 of the same")
    say("tools")
    spans = asyncio.run(w1_handoff(60 if quick else 200, worker_tool=True))
    spans = spans[5:] or spans
    add(
        "tool_loop_w1_ms",
        statistics.median(spans) * 1e3,
        "ms",
        None,
        "the same chain, the worker calling a no-op tool once (4 LLM calls)",
    )
    add(
        "tool_call_overhead_us",
        asyncio.run(measure("noop", 1, 100 if quick else 1000)),
        "µs",
        50.0,
        "tool loop around a no-op tool, per call (scripted model)",
    )
    say("w2_fanout")
    add(
        "w2_fanout_makespan_s",
        asyncio.run(w2_fanout(64, 8, 1, 0.05)),
        "s",
        0.42,
        "64 tasks, 50 ms calls, 8 single-slot workers (ideal 0.40)",
    )
    add(
        "w2_fanout_unbounded_s",
        asyncio.run(w2_fanout(64, 8, 64, 0.05)),
        "s",
        0.065,
        "64 tasks, 50 ms calls, agents with many slots (ideal 0.05)",
    )
    say("w3_scale")
    memory = w3_memory(10_000)
    add("w3_build_10k_s", memory["build_s"], "s", 0.3, "build 10,000 agents (10 skills) + team")
    add(
        "w3_rss_per_agent_kb",
        memory["kb_per_agent"],
        "KB",
        3.0,
        "RSS per idle agent with its loop running",
    )
    n = 2_000 if quick else 10_000
    add(
        "w3_10k_tasks_s",
        asyncio.run(w3_tasks(n)) * (10_000 / n),
        "s",
        20.0,
        f"{n:,} agents through {n:,} tasks" + (" (scaled ×5 from quick run)" if quick else ""),
    )
    say("w4_consensus")
    spans = asyncio.run(w4_consensus(30 if quick else 100))
    add(
        "w4_consensus_ms",
        statistics.median(spans[3:] or spans) * 1e3,
        "ms",
        0.3,
        "5 concurrent verifiers (4 approve, 1 reject), per decision",
    )
    say("w5_dag")
    gc.collect()  # the garbage of W3's 10,000 agents is not W5's cost
    per_task, wakes = asyncio.run(w5_dag(10 if quick else 40))
    add(
        "w5_dag_overhead_ms",
        statistics.median(per_task[2:] or per_task) * 1e3,
        "ms",
        0.3,
        "3-level 40-task DAG, zero-latency LLM, coordination time per task",
    )
    add(
        "w5_dependent_wake_ms",
        statistics.median(wakes) * 1e3,
        "ms",
        1.0,
        "a dependency's acceptance to the first claim (bid) on its dependent, median",
    )
    say("import")
    add("import_s", import_time(3 if quick else 7), "s", 0.2, "python -c 'import smesh'")
    return results
