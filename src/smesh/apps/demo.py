"""The agents demo: a mixed team works through seven tasks of different skills.

LLM agents (coder, reviewer, analyst, writer) do and judge the work; two tool agents supply
ground truth: a tester runs submitted code against unit checks in a subprocess, and a checker
validates math and analysis answers. Their verdicts are authoritative checks; tasks without
a tool check (the explanations) are decided by the trust-weighted votes of the LLM
reviewers, whose trust moves with how often they agree with verified outcomes.

One task needs a tool: the analyst answers ``analysis-sales`` by querying the demo's shop
database with the read-only ``sql_query`` tool (``Agent(tools=["sqlite:PATH"])``; the task
grants only that tool), and its calls show in the live view and in ``smesh trace``.

One task depends on another: the writer explains the palindrome function once (and only
once) the tests accepted it, and sees the accepted code as its input.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from smesh.agents import Agent, FunctionAgent, Judgement, TaskSpec, VerifySpec
from smesh.apps.demo_shop import SALES_TASK, check_sales, sales_task, shop_database
from smesh.backends.base import Backend

__all__ = ["ROLES", "demo_agents", "demo_tasks", "run_python_checks"]

ROLES: dict[str, tuple[str, dict[str, float], dict[str, float]]] = {
    # role -> (system prompt, skills, verifies)
    "coder": (
        "You are a careful Python programmer. Reply with code only, no explanation.",
        {"code": 0.9, "analysis": 0.3},
        {"analysis": 0.5},
    ),
    "reviewer": (
        "You are a strict reviewer. You judge whether a result really does what was asked.",
        {"review": 0.9},
        {"code": 0.9, "writing": 0.8, "analysis": 0.6, "math": 0.6, "review": 0.5},
    ),
    "analyst": (
        "You are a precise analyst. Answer exactly what is asked, in the requested format.",
        {"analysis": 0.9, "math": 0.9},
        {"writing": 0.6, "math": 0.7, "review": 0.6},
    ),
    "writer": (
        "You are a clear technical writer. Be concise and accurate.",
        {"writing": 0.9, "review": 0.4},
        {"analysis": 0.5, "math": 0.5, "review": 0.5},
    ),
}

_CODE_CHECKS = {
    # each assertion says what was expected: the message is the feedback for a retry
    "code-palindrome": (
        "def check(s, want):\n"
        "    got = is_palindrome(s)\n"
        "    assert got == want, f'is_palindrome({s!r}) returned {got!r}, expected {want!r}'\n"
        "check('A man, a plan, a canal: Panama', True)\n"
        "check('racecar', True)\n"
        "check('hello', False)\n"
        "check('', True)\n"
    ),
    "code-fizzbuzz": (
        "r = fizzbuzz(15)\n"
        "assert len(r) == 15, f'fizzbuzz(15) returned {len(r)} items, expected 15'\n"
        "for i, want in ((1, '1'), (3, 'Fizz'), (5, 'Buzz'), (15, 'FizzBuzz')):\n"
        "    got = r[i - 1]\n"
        "    assert got == want, f'fizzbuzz(15)[{i - 1}] (for {i}) is {got!r}, expected {want!r}'\n"
    ),
}


def demo_tasks() -> list[TaskSpec]:
    """The original demo's three tasks (a function, an explanation, 2+2), two more, one that
    depends on the function, and the task that needs a tool (the best seller in the shop
    database)."""
    reviewed = VerifySpec(quorum=0.9, margin=0.3, timeout_s=45.0)
    return [
        TaskSpec(
            task_id="code-palindrome",
            skill="code",
            priority=0.9,
            description=(
                "Write a Python function is_palindrome(s: str) -> bool that returns True when "
                "s reads the same forwards and backwards, ignoring case and any character "
                "that is not a letter or digit."
            ),
            verify=reviewed,
            max_attempts=3,
        ),
        TaskSpec(
            task_id="explain-bst",
            skill="writing",
            priority=0.6,
            description="Explain in 2-3 sentences what a binary search tree is.",
            verify=reviewed,
            max_attempts=2,
        ),
        TaskSpec(
            task_id="math-2plus2",
            skill="math",
            priority=0.5,
            description="What is 2+2? Answer as JSON with the integer in the field answer.",
            verify=VerifySpec(
                quorum=0.9,
                margin=0.3,
                timeout_s=45.0,
                schema={
                    "type": "object",
                    "properties": {"answer": {"type": "integer"}},
                    "required": ["answer"],
                },
            ),
            max_attempts=3,
            tools=[],  # answered from knowledge: no tool granted
        ),
        TaskSpec(
            task_id="code-fizzbuzz",
            skill="code",
            priority=0.7,
            description=(
                "Write a Python function fizzbuzz(n: int) -> list[str] returning the strings "
                "for 1..n: 'Fizz' for multiples of 3, 'Buzz' for multiples of 5, 'FizzBuzz' "
                "for multiples of both, otherwise the number itself as a string."
            ),
            verify=reviewed,
            max_attempts=3,
        ),
        TaskSpec(
            task_id="explain-palindrome",
            skill="writing",
            priority=0.5,
            description=(
                "In one or two sentences, explain how the is_palindrome function in the "
                "result below works."
            ),
            depends_on=("code-palindrome",),
            verify=reviewed,
            max_attempts=2,
        ),
        TaskSpec(
            task_id="analysis-primes",
            skill="analysis",
            priority=0.4,
            description=(
                "List three prime numbers greater than 10. Answer as JSON with the three "
                "integers in the array field primes."
            ),
            verify=VerifySpec(
                quorum=0.9,
                margin=0.3,
                timeout_s=45.0,
                schema={
                    "type": "object",
                    "properties": {
                        "primes": {
                            "type": "array",
                            "items": {"type": "integer"},
                            "minItems": 3,
                            "maxItems": 3,
                        }
                    },
                    "required": ["primes"],
                },
            ),
            max_attempts=3,
            tools=[],
        ),
        sales_task(),
    ]


def extract_code(output: Any) -> str:
    """The Python source in an LLM reply (the first fenced block, or the whole text)."""
    text = output if isinstance(output, str) else json.dumps(output)
    fenced = re.search(r"```(?:python|py)?\s*\n(.*?)```", text, re.DOTALL)
    return fenced.group(1) if fenced else text


async def run_python_checks(code: str, checks: str, *, timeout_s: float = 10.0) -> Judgement:
    """Run ``code`` then ``checks`` in a fresh Python subprocess (isolated mode, no site
    packages, a temporary working directory) and judge by its exit status."""
    with tempfile.TemporaryDirectory(prefix="smesh-test-") as workdir:
        path = os.path.join(workdir, "check.py")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(code + "\n\n" + checks)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-S",
            path,
            cwd=workdir,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            _, err = await asyncio.wait_for(proc.communicate(), timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return Judgement("reject", f"the checks did not finish within {timeout_s:g} s")
    if proc.returncode == 0:
        return Judgement("approve", "all checks passed")
    last = err.decode(errors="replace").strip().splitlines()
    return Judgement(
        "reject", f"checks failed: {last[-1] if last else 'exit ' + str(proc.returncode)}"
    )


async def _test_code(task: TaskSpec, output: Any) -> Judgement:
    checks = _CODE_CHECKS.get(task.task_id)
    if checks is None:
        return Judgement("approve", "no checks for this task")
    return await run_python_checks(extract_code(output), checks)


def _is_prime(n: int) -> bool:
    return n > 1 and all(n % d for d in range(2, int(n**0.5) + 1))


async def _check_numbers(task: TaskSpec, output: Any) -> Judgement:
    if not isinstance(output, dict):
        return Judgement("reject", "the answer is not a JSON object")
    if task.task_id == "math-2plus2":
        ok = output.get("answer") == 4
        return Judgement("approve" if ok else "reject", "2+2 is 4" if ok else "2+2 is 4, not that")
    primes = output.get("primes")
    if not isinstance(primes, list) or len(primes) != 3:
        return Judgement("reject", "expected exactly three numbers")
    bad = [p for p in primes if not (isinstance(p, int) and p > 10 and _is_prime(p))]
    if bad or len(set(primes)) != 3:
        return Judgement("reject", f"not three distinct primes above 10: {primes}")
    return Judgement("approve", "three distinct primes above 10")


def demo_agents(
    backend: Backend, count: int = 4, *, data_dir: Path | None = None, prefix: str = ""
) -> list[Agent]:
    """``count`` LLM agents cycling through the four roles, plus the two tool verifiers.

    Analysts get the read-only SQL tool over the shop database, written to ``data_dir``
    (default: a temporary directory removed at exit). ``prefix`` goes before every agent
    id: on a mesh, agents are named under the node that hosts them (``<node id>/coder``);
    in one process, ids stay plain (``coder``).
    """
    database = shop_database(data_dir)
    role_tools = {"analyst": [f"sqlite:{database}"]}

    async def check(task: TaskSpec, output: Any) -> Judgement:
        if task.task_id == SALES_TASK:
            return check_sales(database, output)
        return await _check_numbers(task, output)

    names = list(ROLES)
    agents: list[Agent] = []
    for i in range(count):
        role = names[i % len(names)]
        prompt, skills, verifies = ROLES[role]
        agent_id = role if count <= len(names) else f"{role}-{i // len(names) + 1}"
        agents.append(
            Agent(
                prefix + agent_id,
                backend=backend,
                role=prompt,
                skills=skills,
                verifies=verifies,
                max_tokens=256,
                tools=role_tools.get(role),
            )
        )
    agents.append(
        FunctionAgent(
            prefix + "tester", judge=_test_code, verifies={"code": 1.0}, authoritative=True
        )
    )
    agents.append(
        FunctionAgent(
            prefix + "checker",
            judge=check,
            verifies={"math": 1.0, "analysis": 1.0},
            authoritative=True,
        )
    )
    return agents
