"""The smesh team of the ``code`` suite, built on the public agents API.

Three coders with different sampling temperatures bid for the item's task (their bid is
their affinity scaled by the reputation they earned on earlier items); the winner writes
the function. A *tester* (a tool, authoritative) runs the prompt's docstring examples in
the sandbox; a *reviewer* (the same model, asked for a verdict) reads only code that
passes them. An attempt is accepted when the tests pass and the reviewer approves;
otherwise the task goes back to the coders with the failure as feedback, until it is
accepted or the item's token budget is spent. Trust is learned from those ground-truth
decisions and shared across items, so the coder that keeps passing wins the next claims.

If the budget ends the run before an acceptance, the team answers with the attempt that
passed the most docstring examples (the earliest among equals).
"""

from __future__ import annotations

from typing import Any

from smesh.agents import (
    Agent,
    Budget,
    FunctionAgent,
    Judgement,
    Ruling,
    Settings,
    TaskSpec,
    TaskState,
    Team,
    VerifySpec,
    WorkContext,
)
from smesh.backends import Backend
from smesh.eval.budget import Metered, TokenMeter
from smesh.eval.coding import CODER_SYSTEM, MAX_TOKENS, PublicChecks, coder_prompt
from smesh.eval.humaneval import Problem, extract_code
from smesh.eval.runner import Attempt
from smesh.trust import TrustTable

__all__ = ["CODERS", "TEAM_SETTINGS", "Coder", "make_tester", "team_solve"]

#: (id, affinity, temperature): the cool coder bids highest until trust says otherwise
CODERS = (("coder-a", 0.9, 0.2), ("coder-b", 0.85, 0.6), ("coder-c", 0.8, 1.0))
REVIEWER = "reviewer"
TESTER = "tester"

TEAM_SETTINGS = Settings(
    lease_s=600.0, poll_s=2.0, work_timeout_s=900.0, idle_timeout_s=900.0, tick_s=1.0
)
_VERIFY = VerifySpec(quorum=0.5, margin=0.0, timeout_s=900.0)


class _TestsAndReview:
    """The acceptance rule every team member applies: failing docstring examples reject;
    passing ones need the reviewer's verdict (accept or reject). Resting on a test run,
    these decisions teach trust to workers and voters alike."""

    def settle(self, task: TaskState, attempt: int) -> Ruling | None:
        checks = task.checks.get(attempt)
        if not checks:
            return None
        if "reject" in checks.values():
            return Ruling("rejected", "checks")
        ballots = task.ballots(attempt)
        if REVIEWER in ballots.get("approve", ()):
            return Ruling("accepted", "checks")
        if REVIEWER in ballots.get("reject", ()):
            return Ruling("rejected", "checks")
        return None


class Coder(_TestsAndReview, Agent):
    """Writes the function; a retry sees the previous attempt and the feedback."""

    def __init__(self, id: str, problem: Problem, **options: Any) -> None:
        super().__init__(id, role=CODER_SYSTEM, max_tokens=MAX_TOKENS, **options)
        self.problem = problem

    async def perform(self, ctx: WorkContext) -> Any:
        previous = ctx.previous if isinstance(ctx.previous, str) else None
        temperature = min(1.0, self.temperature + 0.2 * (ctx.attempt - 1))
        prompt = coder_prompt(self.problem, previous, ctx.feedback)
        response = await self.ask(prompt, temperature=temperature)
        return extract_code(response.text, self.problem.entry_point)


class Reviewer(_TestsAndReview, Agent):
    """Reviews code that passes the docstring examples (it waits for that test run, which
    is ground truth, not another voter's opinion); code that fails them it rejects with the
    failure, at no cost."""

    def __init__(self, problem: Problem, checks: PublicChecks, **options: Any) -> None:
        super().__init__(REVIEWER, **options)
        self.problem = problem
        self.checks = checks

    async def judge(self, task: TaskSpec, output: Any) -> Judgement:
        if not isinstance(output, str) or not output.strip():
            return Judgement("reject", "no code")
        outcome = await self.checks.run(self.problem, output)
        if not outcome.passed:
            return Judgement("reject", outcome.first_failure())
        return await super().judge(task, output)


class Tester(_TestsAndReview, FunctionAgent):
    """Runs the docstring examples in the sandbox: an authoritative check."""


def make_tester(
    problem: Problem, checks: PublicChecks, cls: type[FunctionAgent] = Tester
) -> FunctionAgent:
    """The tester: runs the docstring examples on each result, as an authoritative check."""

    async def judge(task: TaskSpec, output: Any) -> Judgement:
        if not isinstance(output, str) or not output.strip():
            return Judgement("reject", "the reply held no code")
        outcome = await checks.run(problem, output)
        if outcome.passed:
            return Judgement("approve", f"{outcome.tests_passed}/{outcome.tests_total} examples")
        return Judgement("reject", outcome.first_failure())

    return cls(TESTER, judge=judge, verifies={"code": 1.0}, authoritative=True, verify_slots=4)


async def team_solve(
    problem: Problem,
    backend: Backend,
    meter: TokenMeter,
    *,
    checks: PublicChecks,
    trust: TrustTable,
    seed: int,
    max_attempts: int = 12,
) -> Attempt:
    """Run the team on one problem within ``meter``'s budget; return its answer."""
    budget = Budget()

    def exhausted() -> None:
        # the next call would not fit: end the run now rather than at the idle timeout
        budget.exceeded = f"token budget of {meter.limit} per item reached"

    model = Metered(backend, meter, on_refused=exhausted)
    agents: list[Agent] = [
        Coder(cid, problem, backend=model, skills={"code": aff}, temperature=temp)
        for cid, aff, temp in CODERS
    ]
    agents.append(Reviewer(problem, checks, backend=model, verifies={"code": 0.8}))
    agents.append(make_tester(problem, checks))
    team = Team(
        agents, settings=TEAM_SETTINGS, budget=budget, trust=trust, seed=seed, poster="poster"
    )
    spec = TaskSpec(
        task_id=problem.task_id,
        skill="code",
        description=problem.prompt,
        verify=_VERIFY,
        max_attempts=max_attempts,
    )
    report = await team.run([spec])
    state = team.board.tasks[problem.task_id]
    outputs = [
        (attempt, str(sig.payload.get("output")))
        for attempt, sig in sorted(state.results.items())
        if isinstance(sig.payload.get("output"), str) and sig.payload.get("output")
    ]
    task = report.tasks[0]
    if task.status == "accepted" and isinstance(task.output, str):
        return Attempt(
            answer=task.output,
            detail=f"accepted on attempt {task.attempts} by {task.claimed_by}",
        )
    best: tuple[int, int, str] | None = None
    for attempt, code in outputs:
        outcome = checks.known(problem, code) or await checks.run(problem, code)
        key = (outcome.tests_passed, -attempt)
        if best is None or key > best[:2]:
            best = (key[0], key[1], code)
    if best is None:
        return Attempt(answer=None, detail=f"no code ({report.stopped_by})")
    return Attempt(
        answer=best[2],
        detail=f"not accepted ({report.stopped_by}); best of {len(outputs)} attempts",
    )
