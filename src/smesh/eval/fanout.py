"""The ``fanout`` suite: 200 independent tasks over heterogeneous, flaky workers.

Three ways of getting the same scripted workers (:mod:`smesh.eval.workload`) through the
same tasks, on virtual time:

- *smesh*: a :class:`~smesh.agents.Team`; each worker is an agent that bids for open tasks
  when it is free; a failed call posts an error result, the attempt is rejected and the
  task is offered again (to whoever is free — usually someone else).
- *round-robin*: a central dispatcher deals task i to worker i mod W up front (each worker
  works through its own queue in order); a failed task is dealt again to the next worker
  in the rotation. What a load balancer without feedback does.
- *work-queue*: one central queue; every worker pulls the next task as soon as it is free,
  and a failed task goes back on the queue. Greedy list scheduling, the practical ideal
  for independent tasks when durations are unknown.

Headline: makespan (virtual seconds). Also duplicate executions (tasks executed
successfully more than once) and idle worker-seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import msgspec

from smesh.agents import FunctionAgent, Settings, TaskSpec, Team, WorkContext
from smesh.agents.virtual_time import LoopClock, run_virtual
from smesh.errors import UsageError
from smesh.eval.result import ConditionResult, EvalResult
from smesh.eval.stats import bootstrap_ci, mean
from smesh.eval.workload import CallFailed, Ledger, Workers

__all__ = ["CONDITIONS", "Run", "round_robin", "run_fanout", "smesh_team", "work_queue"]

CONDITIONS = ("smesh", "round-robin", "work-queue")
#: protocol timing for scripted workers whose calls take ~1-100 virtual seconds
SETTINGS = Settings(
    lease_s=60.0,
    claim_settle_s=0.0,
    poll_s=5.0,
    work_timeout_s=1e6,
    idle_timeout_s=1e5,
    tick_s=1.0,
)


class Run(msgspec.Struct, frozen=True, kw_only=True):
    """One condition's run."""

    name: str
    makespan_s: float
    completed: int
    tasks: int
    duplicates: int
    idle_s: float
    failures: int
    calls: int
    accepted_twice: int = 0
    interrupted: int = 0
    extra: dict[str, Any] = {}


def _task_ids(n: int) -> list[str]:
    width = len(str(max(0, n - 1)))
    return [f"t{i:0{width}d}" for i in range(n)]


async def smesh_team(
    workers: Workers,
    tasks: int,
    *,
    settings: Settings = SETTINGS,
    kills: dict[str, float] | None = None,
    verify: bool = False,
    seed: int = 0,
) -> Run:
    """The team; ``kills`` maps worker -> virtual time at which it is killed (faults)."""
    ledger = Ledger(workers)
    ids = workers.ids()

    def performer(worker: str) -> Callable[[WorkContext], Awaitable[Any]]:
        async def perform(ctx: WorkContext) -> Any:
            return await ledger.call(worker, ctx.task.task_id)

        return perform

    judge = None
    if verify:
        from smesh.agents import Judgement

        async def approve(task: TaskSpec, output: Any) -> Judgement:
            await asyncio.sleep(0.1 * workers.base_s)  # a quick check
            ok = isinstance(output, str) and output.startswith(task.task_id)
            return Judgement("approve" if ok else "reject", "checked")

        judge = approve
    agents = [
        FunctionAgent(
            w,
            perform=performer(w),
            judge=judge,
            skills={"work": 1.0},
            verifies={"work": 1.0} if verify else None,
        )
        for w in ids
    ]
    team = Team(agents, clock=LoopClock(), settings=settings, seed=seed)
    accepted: dict[str, int] = {}

    def count(event: Any) -> None:
        if event.type == "emit" and event.signal.payload.get("verdict") == "accepted":
            task_id = str(event.signal.payload["task_id"])
            accepted[task_id] = accepted.get(task_id, 0) + 1

    team.field.subscribe(count, kinds=["decision"])
    from smesh.agents import VerifySpec

    spec_verify = VerifySpec(quorum=0.5, margin=0.3, timeout_s=600.0) if verify else None
    specs = [
        TaskSpec(task_id=t, skill="work", verify=spec_verify, max_attempts=50)
        for t in _task_ids(tasks)
    ]
    loop = asyncio.get_running_loop()
    started = loop.time()
    killers = [
        loop.call_at(started + when, team.kill, worker) for worker, when in (kills or {}).items()
    ]
    report = await team.run(specs)
    for handle in killers:
        handle.cancel()
    makespan = (
        max((d.created_at for d in team.field.signals("decision")), default=started) - started
    )
    completed = sum(1 for t in report.tasks if t.status == "accepted")
    return Run(
        name="smesh",
        makespan_s=round(makespan, 4),
        completed=completed,
        tasks=tasks,
        duplicates=ledger.duplicates(),
        idle_s=round(ledger.idle_s(makespan, kills), 3),
        failures=ledger.failures,
        calls=sum(ledger.started.values()),
        accepted_twice=sum(1 for n in accepted.values() if n > 1),
        interrupted=ledger.interrupted,
        extra={"stopped_by": report.stopped_by},
    )


async def round_robin(workers: Workers, tasks: int) -> Run:
    """The central round-robin dispatcher (failed tasks dealt to the next worker)."""
    ledger = Ledger(workers)
    ids = workers.ids()
    queues: dict[str, asyncio.Queue[str | None]] = {w: asyncio.Queue() for w in ids}
    remaining = tasks
    finished = asyncio.Event()
    turn = 0

    def deal(task: str) -> None:
        nonlocal turn
        queues[ids[turn % len(ids)]].put_nowait(task)
        turn += 1

    async def worker(w: str) -> None:
        nonlocal remaining
        while True:
            task = await queues[w].get()
            if task is None:
                return
            try:
                await ledger.call(w, task)
            except CallFailed:
                deal(task)
                continue
            remaining -= 1
            if remaining == 0:
                finished.set()

    loop = asyncio.get_running_loop()
    started = loop.time()
    for t in _task_ids(tasks):
        deal(t)
    async with asyncio.TaskGroup() as group:
        for w in ids:
            group.create_task(worker(w))
        await finished.wait()
        makespan = loop.time() - started
        for w in ids:
            queues[w].put_nowait(None)
    return _central("round-robin", ledger, tasks, makespan)


async def work_queue(workers: Workers, tasks: int) -> Run:
    """The central shared work queue (greedy: the next free worker takes the next task)."""
    ledger = Ledger(workers)
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    remaining = tasks
    finished = asyncio.Event()

    async def worker(w: str) -> None:
        nonlocal remaining
        while True:
            task = await queue.get()
            if task is None:
                return
            try:
                await ledger.call(w, task)
            except CallFailed:
                queue.put_nowait(task)
                continue
            remaining -= 1
            if remaining == 0:
                finished.set()

    loop = asyncio.get_running_loop()
    started = loop.time()
    for t in _task_ids(tasks):
        queue.put_nowait(t)
    async with asyncio.TaskGroup() as group:
        for w in workers.ids():
            group.create_task(worker(w))
        await finished.wait()
        makespan = loop.time() - started
        for _ in workers.ids():
            queue.put_nowait(None)
    return _central("work-queue", ledger, tasks, makespan)


def _central(name: str, ledger: Ledger, tasks: int, makespan: float) -> Run:
    return Run(
        name=name,
        makespan_s=round(makespan, 4),
        completed=tasks,
        tasks=tasks,
        duplicates=ledger.duplicates(),
        idle_s=round(ledger.idle_s(makespan), 3),
        failures=ledger.failures,
        calls=sum(ledger.started.values()),
    )


def run_fanout(*, n: int = 200, seed: int = 0, workers: int = 20, repeats: int = 30) -> EvalResult:
    """Run the three conditions on ``n`` tasks and ``workers`` scripted workers, ``repeats``
    times with different draws (one heavy-tailed call can decide a makespan, so a single
    draw says little); scores are mean makespans with bootstrap intervals over the draws."""
    if n < 1 or workers < 1 or repeats < 1:
        raise UsageError("--n, the number of workers and repeats must be at least 1")
    runs: dict[str, list[Run]] = {name: [] for name in CONDITIONS}
    for r in range(repeats):
        population = Workers(count=workers, seed=seed * 1000 + r)
        runners: dict[str, Callable[[], Coroutine[Any, Any, Run]]] = {
            "smesh": lambda p=population: smesh_team(p, n, seed=seed),  # type: ignore[misc]
            "round-robin": lambda p=population: round_robin(p, n),  # type: ignore[misc]
            "work-queue": lambda p=population: work_queue(p, n),  # type: ignore[misc]
        }
        for name in CONDITIONS:
            runs[name].append(run_virtual(runners[name]()))
    conditions = []
    for name in CONDITIONS:
        spans = [r.makespan_s for r in runs[name]]
        low, high = bootstrap_ci(spans, seed=seed)
        conditions.append(
            ConditionResult(
                name=name,
                score=round(mean(spans), 3),
                ci_low=round(low, 3),
                ci_high=round(high, 3),
                tokens_per_item=0.0,
                seconds_per_item=round(mean(spans) / n, 4),
            )
        )
    ratio = {
        other: [
            a.makespan_s / b.makespan_s for a, b in zip(runs["smesh"], runs[other], strict=True)
        ]
        for other in ("work-queue", "round-robin")
    }
    return EvalResult(
        suite="fanout",
        backend="scripted",
        n=n,
        seed=seed,
        conditions=conditions,
        extra={
            "unit": "makespan_s (virtual seconds), mean over repeats",
            "repeats": repeats,
            "workers": msgspec.to_builtins(Workers(count=workers, seed=seed * 1000)),
            # ratio of the mean makespans (the targets), and the median per-draw ratio
            "smesh_vs_work_queue": round(conditions[0].score / conditions[2].score, 4),
            "smesh_vs_round_robin": round(conditions[0].score / conditions[1].score, 4),
            "median_ratio_per_draw": {
                other: round(float(sorted(values)[len(values) // 2]), 4)
                for other, values in ratio.items()
            },
            "per_condition": {
                name: {
                    "duplicates": sum(r.duplicates for r in rs),
                    "accepted_twice": sum(r.accepted_twice for r in rs),
                    "completed": sum(r.completed for r in rs),
                    "idle_s_mean": round(mean([r.idle_s for r in rs]), 2),
                    "calls_mean": round(mean([float(r.calls) for r in rs]), 2),
                    "failures_mean": round(mean([float(r.failures) for r in rs]), 2),
                    "makespans": [r.makespan_s for r in rs],
                }
                for name, rs in runs.items()
            },
        },
    )
