"""A research → analysis → writing pipeline with a human approval at the end.

Each stage is a task that ``depends_on`` the one before: it stays dormant until its input
is accepted, then wakes at once and sees the accepted output in ``ctx.inputs`` (no
orchestrator: the acceptance signal itself wakes it). The final draft needs an editor's
approval (``approval=ApprovalSpec(by="editor")``): after the draft passes, a request waits
for the editor, a :class:`~smesh.agents.HumanAgent`. Here the editor's "desk" is a
:class:`~smesh.agents.QueueChannel` answered by a small script (it rejects the first draft
with a comment, which the writer gets as feedback, and approves the second); pass
``--ask`` to be the editor yourself at the terminal. From another terminal, a journaled
run is answered with ``smesh approve RUN TASK [--reject --comment ...]``.

The "LLM" is a stand-in (``FunctionBackend``) so the example runs offline in well under a
second.

Run it::

    python examples/pipeline_approval.py
"""

from __future__ import annotations

import asyncio
import sys

from smesh.agents import (
    Agent,
    ApprovalSpec,
    HumanAgent,
    HumanChannel,
    QueueChannel,
    TaskSpec,
    Team,
    TerminalChannel,
)
from smesh.backends.base import Request
from smesh.testing import FunctionBackend


def fake_llm(request: Request) -> str:
    """Stands in for a model: each stage answers from its prompt."""
    prompt = request.messages[-1].content
    if prompt.startswith("Find"):
        return "3 studies: swarms beat single agents on 2 of 3 benchmarks"
    if prompt.startswith("Analyse"):
        return "mixed evidence, leaning positive (2 of 3)"
    if "shorter" in prompt:  # the editor's comment reached the writer as feedback
        return "Swarms usually help: 2 of 3 studies."
    return "After reviewing three recent studies in considerable depth, we find that swarms..."


async def editor_script(desk: QueueChannel) -> None:
    """What a person at the desk would do: reject the first draft, approve the next."""
    first = await desk.next(timeout=10.0)
    print(f"editor sees {first.id}: {first.output!r}")
    desk.reject(first.id, "shorter, please")
    second = await desk.next(timeout=10.0)
    print(f"editor sees {second.id}: {second.output!r}")
    desk.approve(second.id, "good")


async def main() -> None:
    llm = FunctionBackend(fake_llm)
    desk = QueueChannel()
    channel: HumanChannel = TerminalChannel() if "--ask" in sys.argv else desk
    team = Team(
        [
            Agent("researcher", backend=llm, skills={"research": 1.0}),
            Agent("analyst", backend=llm, skills={"analysis": 1.0}),
            Agent("writer", backend=llm, skills={"writing": 1.0}),
            HumanAgent("editor", channel),
        ]
    )
    async with team:
        editor = asyncio.ensure_future(editor_script(desk) if channel is desk else asyncio.sleep(0))
        research, analysis, article = team.submit_all(
            [
                TaskSpec(task_id="research", skill="research", description="Find studies."),
                TaskSpec(
                    task_id="analysis",
                    skill="analysis",
                    description="Analyse the findings.",
                    depends_on=("research",),
                ),
                TaskSpec(
                    task_id="article",
                    skill="writing",
                    description="Write a one-line summary for the newsletter.",
                    depends_on=("analysis",),
                    approval=ApprovalSpec(by="editor"),
                ),
            ]
        )
        for handle in (research, analysis):
            report = await handle
            print(f"{report.id}: {report.status} by {report.claimed_by}: {report.output}")
        report = await article
        await editor
        print(f"{report.id}: {report.status} after {report.attempts} drafts: {report.output}")


if __name__ == "__main__":
    asyncio.run(main())
