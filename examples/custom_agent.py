"""Custom agents, two ways: subclass :class:`~smesh.agents.Agent`, or pass a function.

* ``Summarizer`` subclasses ``Agent`` and overrides ``perform``: it builds its own prompt,
  asks its backend with ``self.ask`` (which honours budgets, rate-limit pressure and
  retries) and post-processes the reply.
* ``counter`` is a :class:`~smesh.agents.FunctionAgent`: a plain async function does the
  work, no model at all (a tool, a script, a human prompt ...).
* ``checker`` is also a FunctionAgent, one that verifies instead of working.

Nobody assigns the tasks: each agent sees the open tasks of its skills, bids, and the
protocol settles who works on what. The "LLM" here is a stand-in (``FunctionBackend``) so
the example runs offline in well under a second; swap in a real backend with e.g.
``smesh.backends.resolve_backend("ollama:qwen2.5-coder")``.

Run it::

    python examples/custom_agent.py
"""

from __future__ import annotations

import asyncio
from typing import Any

from smesh.agents import Agent, FunctionAgent, Judgement, TaskSpec, Team, VerifySpec, WorkContext
from smesh.backends.base import Request
from smesh.testing import FunctionBackend

TEXT = (
    "In smesh, agents coordinate through signals in a shared field: tasks, claims, results "
    "and votes. There is no orchestrator; decisions come from trust-weighted votes."
)


class Summarizer(Agent):
    """An LLM agent with its own prompt and post-processing."""

    async def perform(self, ctx: WorkContext) -> str:
        reply = await self.ask(f"Summarize in one short sentence:\n\n{ctx.task.input['text']}")
        return reply.text.strip().rstrip(".") + "."


async def count_words(ctx: WorkContext) -> dict[str, int]:
    """A tool agent's work: plain Python."""
    return {"words": len(ctx.task.input["text"].split())}


async def non_empty(task: TaskSpec, output: Any) -> Judgement:
    """A verifier by function: judges one result, blind to anyone else's vote."""
    if output:
        return Judgement("approve", "a non-empty answer")
    return Judgement("reject", "the answer is empty")


def fake_llm(request: Request) -> str:
    """Stands in for a model: a canned summary."""
    return "Agents coordinate through a shared signal field, with no orchestrator"


async def main() -> None:
    backend = FunctionBackend(fake_llm, name="fake-llm")
    team = Team(
        [
            Summarizer(
                "summarizer", backend=backend, role="You are concise.", skills={"summary": 0.9}
            ),
            FunctionAgent("counter", perform=count_words, skills={"count": 1.0}),
            FunctionAgent("checker", judge=non_empty, verifies={"summary": 1.0, "count": 1.0}),
        ]
    )
    # one verifier at the default trust of 0.5 is enough for these tasks
    checked = VerifySpec(quorum=0.5, margin=0.3)
    report = await team.run(
        [
            TaskSpec(task_id="summary", skill="summary", input={"text": TEXT}, verify=checked),
            TaskSpec(task_id="count", skill="count", input={"text": TEXT}, verify=checked),
        ]
    )
    for task in report.tasks:
        print(f"{task.id}: {task.status} by {task.claimed_by}: {task.output}")
    print(f"run ended: {report.stopped_by}, {report.llm_calls} LLM call(s)")


if __name__ == "__main__":
    asyncio.run(main())
