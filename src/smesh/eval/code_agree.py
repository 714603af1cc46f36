"""A protocol variant for the ``code`` suite: independent candidates, agreement on
generated edge cases, trust-weighted selection (condition ``team-agree``).

The plain team stops at the first attempt that passes the docstring examples and the
review. With a small model, code that passes two or three examples is still often wrong,
and one reviewer of the same size rarely notices. This variant spends the budget on
*independent* candidates instead:

1. One task per coder for the same problem: the coders work in parallel, blind to each
   other; each attempt is checked by the tester on the docstring examples and retried
   with the failure as feedback, as in the plain team.
2. A tester generates edge cases mechanically, by mutating the examples' arguments
   (numbers ±1 and 0, strings reversed and emptied, lists reversed, shortened, emptied),
   and runs every candidate that passed the examples on them, in the sandbox.
3. Each candidate's behaviour on those inputs is a content-scoped signal: candidates that
   behave identically land on one signal as its origin and reinforcers. The behaviour
   with the most trust behind it (each coder weighted by the reputation it earned from
   ground truth on earlier problems) wins — agreement through reinforcement, not a vote.
"""

from __future__ import annotations

import ast
import asyncio
import hashlib
from typing import Any

from smesh.agents import (
    Agent,
    Budget,
    FunctionAgent,
    Ruling,
    TaskSpec,
    TaskState,
    Team,
    VerifySpec,
)
from smesh.backends import Backend
from smesh.clock import VirtualClock
from smesh.eval.budget import Metered, TokenMeter
from smesh.eval.code_team import CODERS, TEAM_SETTINGS, Coder, make_tester
from smesh.eval.coding import PublicChecks
from smesh.eval.execute import run_candidate
from smesh.eval.humaneval import Problem, program
from smesh.eval.runner import Attempt
from smesh.field import Field
from smesh.trust import TrustTable

__all__ = ["edge_cases", "team_agree_solve"]

MAX_PROBES = 12


class _ChecksDecide:
    """The default rule: the docstring examples decide (there is no reviewer here)."""

    def settle(self, task: TaskState, attempt: int) -> Ruling | None:
        return Agent.settle(self, task, attempt)  # type: ignore[arg-type]


class AgreeCoder(_ChecksDecide, Coder):
    """A coder of the variant (same prompts and retries as the team's)."""


class AgreeTester(_ChecksDecide, FunctionAgent):
    """The tester of the variant."""


def _mutations(node: ast.expr) -> list[ast.expr]:
    """Variants of one literal argument."""
    try:
        value = ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return []
    out: list[Any] = []
    if isinstance(value, bool):
        out = [not value]
    elif isinstance(value, int):
        out = [value + 1, value - 1, 0]
    elif isinstance(value, float):
        out = [value + 1.0, -value, 0.0]
    elif isinstance(value, str):
        out = [value[::-1], "", value + value[:1]]
    elif isinstance(value, list):
        out = [value[::-1], value[:-1], []]
    elif isinstance(value, tuple):
        out = [value[::-1]]
    return [ast.parse(repr(v), mode="eval").body for v in out if v != value]


def edge_cases(problem: Problem) -> list[str]:
    """Calls of the function on mutated example arguments (no expected values)."""
    calls: list[str] = []
    seen = {ex.call for ex in problem.examples}
    for ex in problem.examples:
        tree = ast.parse(ex.call, mode="eval").body
        if not isinstance(tree, ast.Call):
            continue
        for i, arg in enumerate(tree.args):
            for variant in _mutations(arg):
                args = list(tree.args)
                args[i] = variant
                call = ast.unparse(ast.Call(func=tree.func, args=args, keywords=tree.keywords))
                if call not in seen:
                    seen.add(call)
                    calls.append(call)
    return calls[:MAX_PROBES]


def _probe_module(calls: list[str]) -> str:
    # each probe reports its result through the runner's failure message
    parts = ["from candidate import *\n"]
    for i, call in enumerate(calls):
        parts.append(
            f"\n\ndef test_probe_{i:02d}():\n"
            f"    try:\n        got = repr({call})[:200]\n"
            f"    except Exception as exc:\n        got = 'raises ' + type(exc).__name__\n"
            f"    raise AssertionError('=' + got)\n"
        )
    return "".join(parts)


async def behaviour(problem: Problem, code: str, calls: list[str]) -> str:
    """A digest of what ``code`` returns on ``calls`` (run in the sandbox)."""
    if not calls:
        return ""
    outcome = await run_candidate(program(problem, code), _probe_module(calls), timeout_s=10.0)
    seen = [c.error.partition("=")[2] if c.error else "?" for c in outcome.cases]
    seen += ["timeout"] * (len(calls) - len(seen))
    return hashlib.blake2b("\x00".join(seen).encode(), digest_size=8).hexdigest()


async def team_agree_solve(
    problem: Problem,
    backend: Backend,
    meter: TokenMeter,
    *,
    checks: PublicChecks,
    trust: TrustTable,
    seed: int,
) -> Attempt:
    """Run the variant on one problem within ``meter``'s budget; return its answer."""
    budget = Budget()

    def exhausted() -> None:
        budget.exceeded = f"token budget of {meter.limit} per item reached"

    model = Metered(backend, meter, on_refused=exhausted)
    agents: list[Agent] = [
        AgreeCoder(cid, problem, backend=model, skills={"code": aff}, temperature=temp)
        for cid, aff, temp in CODERS
    ]
    agents.append(make_tester(problem, checks, AgreeTester))
    team = Team(
        agents, settings=TEAM_SETTINGS, budget=budget, trust=trust, seed=seed, poster="poster"
    )
    verify = VerifySpec(quorum=0.5, margin=0.0, timeout_s=900.0)
    specs = [
        TaskSpec(
            task_id=f"{problem.task_id}#{k}",
            skill="code",
            description=problem.prompt,
            verify=verify,
            max_attempts=4,
        )
        for k in range(len(CODERS))
    ]
    await team.run(specs)
    # every result, with its author and how it did on the docstring examples
    candidates: list[tuple[str, str, int]] = []
    for state in team.board.tasks.values():
        for sig in state.results.values():
            output = sig.payload.get("output")
            if isinstance(output, str) and output:
                outcome = checks.known(problem, output) or await checks.run(problem, output)
                candidates.append((sig.origin, output, outcome.tests_passed))
    if not candidates:
        return Attempt(answer=None, detail="no code")
    best_public = max(c[2] for c in candidates)
    pool = [c for c in candidates if c[2] == best_public]
    calls = edge_cases(problem)
    digests = await asyncio.gather(*(behaviour(problem, code, calls) for _, code, _ in pool))
    field = Field(VirtualClock())
    first: dict[str, int] = {}
    for index, ((author, _, _), digest) in enumerate(zip(pool, digests, strict=True)):
        signal = field.emit("behaviour", {"digest": digest}, origin=author, ttl=3600.0)
        first.setdefault(signal.address, index)
    now = 0.0
    best: tuple[float, int] | None = None
    for address, index in first.items():
        live = field.get(address)
        if live is None:
            continue
        mass = sum(trust.get(v, now) for v in (live.origin, *live.reinforcers))
        if best is None or (mass, -index) > (best[0], -best[1]):
            best = (mass, index)
    assert best is not None
    return Attempt(
        answer=pool[best[1]][1],
        detail=(
            f"{len(candidates)} candidates, {len(pool)} best on examples, "
            f"{len(first)} behaviours on {len(calls)} edge cases"
        ),
    )
