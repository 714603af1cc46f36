"""Custom verifiers: a unit-test run and a JSON-schema check, each a plain function.

A verifier is any agent that judges results. With :class:`~smesh.agents.FunctionAgent`
it is one async function ``(task, output) -> Judgement``; it sees the task and the output
only (verification is blind), and its vote counts in proportion to the trust it has
earned. Deterministic tools deserve trust from the start, so we seed theirs at 0.95.

What happens below:

* ``coder`` (a stand-in LLM) first writes a buggy ``is_even``; the ``unit-tests`` verifier
  runs the tests in a fresh Python process and rejects it. The rejection reason goes back
  to the coder as feedback, and its second attempt passes.
* ``profiler`` (a tool) first returns ``born`` as a string; the ``schema`` verifier rejects
  it, the second attempt returns an integer and is accepted.

Run it::

    python examples/custom_verifier.py
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from smesh.agents import Agent, FunctionAgent, Judgement, TaskSpec, Team, VerifySpec, WorkContext
from smesh.backends.base import Request, check_schema
from smesh.clock import SystemClock
from smesh.testing import FunctionBackend
from smesh.trust import TrustTable

TESTS = "assert is_even(2) and is_even(0)\nassert not is_even(7)\n"
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "born": {"type": "integer"}},
    "required": ["name", "born"],
}


async def unit_tests(task: TaskSpec, output: Any) -> Judgement:
    """Run the submitted code and the task's tests in an isolated Python process."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-I",
        "-c",
        f"{output}\n\n{task.input['tests']}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), timeout=10)
    if proc.returncode == 0:
        return Judgement("approve", "all tests pass")
    last = err.decode().strip().splitlines()[-1]
    return Judgement("reject", f"tests failed: {last}")


async def schema(task: TaskSpec, output: Any) -> Judgement:
    """Check the output against the JSON schema the task carries."""
    assert task.verify is not None and task.verify.schema is not None
    problem = check_schema(output, task.verify.schema)
    if problem is None:
        return Judgement("approve", "matches the schema")
    return Judgement("reject", problem)


def fake_llm(request: Request) -> str:
    """Stands in for a model: buggy code at first, fixed once told why it was rejected."""
    if "rejected" in request.messages[-1].content:
        return "def is_even(n):\n    return n % 2 == 0\n"
    return "def is_even(n):\n    return n % 2 == 1\n"


async def profile(ctx: WorkContext) -> dict[str, Any]:
    """A tool with a bug in its first try."""
    return {"name": "Ada Lovelace", "born": 1815 if ctx.feedback else "1815"}


async def main() -> None:
    trust = TrustTable()
    for tool in ("unit-tests", "schema"):
        trust.set(tool, 0.95, SystemClock().now())
    team = Team(
        [
            Agent("coder", backend=FunctionBackend(fake_llm), skills={"code": 0.9}),
            FunctionAgent("profiler", perform=profile, skills={"data": 1.0}),
            FunctionAgent("unit-tests", judge=unit_tests, verifies={"code": 1.0}),
            FunctionAgent("schema", judge=schema, verifies={"data": 1.0}),
        ],
        trust=trust,
    )
    report = await team.run(
        [
            TaskSpec(
                task_id="is-even",
                skill="code",
                description="Write is_even(n) -> bool. Reply with code only.",
                input={"tests": TESTS},
                verify=VerifySpec(),
            ),
            TaskSpec(task_id="ada", skill="data", verify=VerifySpec(schema=PERSON)),
        ]
    )
    for task in report.tasks:
        rejected = team.board.tasks[task.id].feedback
        for attempt, reasons in sorted(rejected.items()):
            for verifier, reason in sorted(reasons.items()):
                print(f"{task.id}: attempt {attempt} rejected by {verifier}: {reason}")
        print(f"{task.id}: {task.status} after {task.attempts} attempt(s)")


if __name__ == "__main__":
    asyncio.run(main())
