"""Shared pieces of the ``code`` suite: prompts, the public checks and scoring.

A coder is asked for the complete function; its reply's code block is completed with the
prompt's imports and helpers (:func:`smesh.eval.humaneval.program`). Public checks (the
docstring examples) and hidden checks (HumanEval's tests) both run in the sandbox.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import Sequence

from smesh.backends import Backend, Request, Response
from smesh.eval.execute import Outcome, run_candidate
from smesh.eval.humaneval import Problem, extract_code, hidden_tests, program, public_tests

__all__ = [
    "CODER_SYSTEM",
    "PublicChecks",
    "ask_code",
    "coder_prompt",
    "hidden_score",
    "select_candidate",
]

CODER_SYSTEM = (
    "You are an expert Python programmer. Complete the Python function the user gives you. "
    "Reply with one ```python code block holding the complete function, with the imports it "
    "needs, and nothing else. Do not repeat the docstring."
)
MAX_TOKENS = 384

_LOADS = "from candidate import *\n\n\ndef test_loads():\n    assert callable({name})\n"


def coder_prompt(
    problem: Problem, previous: str | None = None, feedback: Sequence[str] = ()
) -> str:
    """The coder's prompt; a retry shows the previous code and why it was rejected."""
    prompt = f"Complete this function:\n```python\n{problem.prompt}\n```"
    if previous:
        prompt += f"\n\nA previous attempt was:\n```python\n{previous}\n```"
    if feedback:
        prompt += "\nIt was rejected:\n" + "\n".join(f"- {line[:300]}" for line in feedback)
        prompt += "\nWrite a corrected version of the complete function."
    return prompt


async def ask_code(
    backend: Backend,
    problem: Problem,
    *,
    temperature: float,
    agent: str,
    previous: str | None = None,
    feedback: Sequence[str] = (),
) -> tuple[str, Response]:
    """One call to a coder model; returns the extracted code and the response."""
    request = Request.of(
        coder_prompt(problem, previous, feedback),
        system=CODER_SYSTEM,
        temperature=temperature,
        max_tokens=MAX_TOKENS,
        agent=agent,
        allow_truncated=True,
    )
    response = await backend.complete(request)
    return extract_code(response.text, problem.entry_point), response


class PublicChecks:
    """Runs a candidate against its problem's docstring examples, once per distinct code.

    Every party that needs the verdict on the same code (the tester, the reviewer, the
    final selection) gets the same memoized run. Problems without examples are checked
    only for loading and defining the function.
    """

    def __init__(self, *, timeout_s: float = 10.0) -> None:
        self.timeout_s = timeout_s
        self._runs: dict[str, asyncio.Future[Outcome]] = {}
        self.runs = 0  # sandbox runs really made

    @staticmethod
    def key(problem: Problem, code: str) -> str:
        return hashlib.blake2b(f"{problem.task_id}\0{code}".encode(), digest_size=16).hexdigest()

    async def run(self, problem: Problem, code: str) -> Outcome:
        """The public-check outcome of ``code`` (run in the sandbox the first time)."""
        key = self.key(problem, code)
        future = self._runs.get(key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._runs[key] = future
            try:
                tests = (
                    public_tests(problem)
                    if problem.examples
                    else _LOADS.format(name=problem.entry_point)
                )
                self.runs += 1
                outcome = await run_candidate(
                    program(problem, code), tests, timeout_s=self.timeout_s
                )
            except BaseException as exc:
                del self._runs[key]
                future.set_exception(exc)
                future.exception()  # retrieved: only the waiting callers see it
                raise
            future.set_result(outcome)
        return await asyncio.shield(future)

    def known(self, problem: Problem, code: str) -> Outcome | None:
        """The outcome if it has already been computed."""
        future = self._runs.get(self.key(problem, code))
        if future is None or not future.done() or future.exception() is not None:
            return None
        return future.result()


async def hidden_score(problem: Problem, code: str | None, *, timeout_s: float = 10.0) -> float:
    """1.0 when ``code`` passes HumanEval's hidden tests in the sandbox, else 0.0."""
    if not code:
        return 0.0
    outcome = await run_candidate(
        program(problem, code), hidden_tests(problem), timeout_s=timeout_s
    )
    return 1.0 if outcome.passed else 0.0


def normalize(code: str) -> str:
    """Code with blank lines and trailing spaces dropped (for counting equal answers)."""
    return "\n".join(line.rstrip() for line in code.splitlines() if line.strip())


async def select_candidate(
    problem: Problem, candidates: Sequence[str], checks: PublicChecks
) -> tuple[str | None, str]:
    """Best-of-N's rule: most docstring examples passed; ties go to the answer given most
    often (normalized code); then to the earliest. Returns the pick and why."""
    if not candidates:
        return None, "no candidate"
    outcomes = [await checks.run(problem, code) for code in candidates]
    best = max(o.tests_passed for o in outcomes)
    tied = [i for i, o in enumerate(outcomes) if o.tests_passed == best]
    counts = Counter(normalize(candidates[i]) for i in tied)
    top = max(counts.values())
    pick = next(i for i in tied if counts[normalize(candidates[i])] == top)
    total = outcomes[pick].tests_total
    return candidates[
        pick
    ], f"{len(candidates)} candidates, pick #{pick + 1} ({best}/{total} public)"
