"""The ``faults`` suite: kill 0, 10, 25 and 50 % of the agents at random moments of a
200-task run and see what the team still gets done.

Every agent both works and verifies (a quick tool check), so any survivor can finish the
job. A kill is real: :meth:`~smesh.agents.Team.kill` cancels the agent's asyncio task in
the middle of whatever call it is in, and the agent cleans nothing up — its lease is left
to lapse. Moments are drawn uniformly over the no-fault run's makespan. Everything runs on
virtual time with scripted workers (:mod:`smesh.eval.workload`, no slow or flaky workers
here: the faults are the kills).

With ``mesh``, the same is done to real processes: peers sharing the field over the mesh
are killed with SIGKILL (:mod:`smesh.eval.faults_mesh`).

Reported per kill rate: completion rate (headline), tasks accepted twice (must be 0),
wasted calls (calls that did not produce an accepted result: cut off by a kill, or whose
result was lost with the lease), and makespan relative to the no-fault run.
"""

from __future__ import annotations

import random
from typing import Any

from smesh.agents import Settings
from smesh.agents.virtual_time import run_virtual
from smesh.errors import UsageError
from smesh.eval.fanout import Run, smesh_team
from smesh.eval.result import ConditionResult, EvalResult
from smesh.eval.stats import bootstrap_ci, mean
from smesh.eval.workload import Workers

__all__ = ["RATES", "SETTINGS", "run_faults"]

RATES = (0.0, 0.1, 0.25, 0.5)
#: calls take ~1 s: a lease of 5 s renewed every 5/3 s lapses soon after its holder dies
SETTINGS = Settings(
    lease_s=5.0,
    claim_settle_s=0.0,
    poll_s=2.0,
    work_timeout_s=1e5,
    idle_timeout_s=1e4,
    tick_s=0.5,
)


def _kills(ids: list[str], rate: float, horizon: float, rng: random.Random) -> dict[str, float]:
    victims = rng.sample(ids, round(rate * len(ids)))
    return {v: rng.uniform(0.0, horizon) for v in victims}


def run_faults(
    *,
    n: int = 200,
    seed: int = 0,
    agents: int = 20,
    repeats: int = 5,
    rates: tuple[float, ...] = RATES,
    mesh: bool = False,
) -> EvalResult:
    """Run ``repeats`` draws of each kill rate on ``n`` tasks and ``agents`` agents; with
    ``mesh``, also kill real peer processes of a mesh (:mod:`smesh.eval.faults_mesh`)."""
    if n < 1 or agents < 2 or repeats < 1:
        raise UsageError("--n must be >= 1, agents >= 2 and repeats >= 1")
    if any(not 0.0 <= r < 1.0 for r in rates):
        raise UsageError("kill rates must be in [0, 1)")
    curve: list[dict[str, Any]] = []
    conditions: list[ConditionResult] = []
    populations = [
        Workers(count=agents, sigma=0.5, slow_share=0.0, flaky_share=0.0, seed=seed * 1000 + r)
        for r in range(repeats)
    ]
    bases = [
        run_virtual(smesh_team(p, n, settings=SETTINGS, verify=True, seed=seed))
        for p in populations
    ]
    for rate in rates:
        runs: list[Run] = []
        ratios: list[float] = []
        for r, (population, base) in enumerate(zip(populations, bases, strict=True)):
            rng = random.Random(f"{seed}/{rate}/{r}")
            kills = _kills(population.ids(), rate, base.makespan_s, rng)
            run = (
                base
                if not kills
                else run_virtual(
                    smesh_team(
                        population, n, settings=SETTINGS, kills=kills, verify=True, seed=seed
                    )
                )
            )
            runs.append(run)
            ratios.append(run.makespan_s / base.makespan_s if base.makespan_s else 0.0)
        completion = [r.completed / r.tasks for r in runs]
        low, high = bootstrap_ci(completion, seed=seed)
        name = f"kill {round(rate * 100)}%"
        conditions.append(
            ConditionResult(
                name=name,
                score=round(mean(completion), 4),
                ci_low=round(low, 4),
                ci_high=round(high, 4),
                tokens_per_item=0.0,
                seconds_per_item=round(mean([r.makespan_s for r in runs]) / n, 4),
            )
        )
        wasted = [r.calls - r.completed for r in runs]
        curve.append(
            {
                "rate": rate,
                "killed": round(rate * agents),
                "completion": round(mean(completion), 4),
                "accepted_twice": sum(r.accepted_twice for r in runs),
                "wasted_calls_mean": round(mean([float(w) for w in wasted]), 2),
                "interrupted_calls_mean": round(mean([float(r.interrupted) for r in runs]), 2),
                "makespan_ratio_mean": round(mean(ratios), 4),
                "makespan_ratio_max": round(max(ratios), 4),
                "makespan_s_mean": round(mean([r.makespan_s for r in runs]), 3),
                "stopped_by": sorted({str(r.extra.get("stopped_by")) for r in runs}),
            }
        )
    return EvalResult(
        suite="faults",
        backend="scripted",
        n=n,
        seed=seed,
        conditions=conditions,
        extra={
            "unit": "completion rate; makespan relative to the same draw without kills",
            "agents": agents,
            "repeats": repeats,
            "lease_s": SETTINGS.lease_s,
            "curve": curve,
            "mesh": _mesh(n, seed, agents) if mesh else None,
        },
    )


def _mesh(n: int, seed: int, agents: int) -> dict[str, Any]:
    from smesh.eval.faults_mesh import mesh_curve

    peers = 4
    return {
        "peers": peers,
        "agents_per_peer": max(1, agents // peers),
        "curve": mesh_curve(seed=seed, peers=peers, agents=max(1, agents // peers), tasks=n),
    }
