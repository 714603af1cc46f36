"""A planner that fans out N subtasks and merges them: the hierarchical pattern, no manager.

The "manager" is just an agent whose work is to split and merge. Inside ``perform`` it
posts subtasks with ``ctx.spawn(...)`` and awaits their reports while its own lease stays
alive; the merge is one more subtask that ``depends_on`` the parts, so it wakes the moment
the last part is accepted. Subtasks are tasks like any other: any worker with the skill
claims them, and a slow part holds back nothing but the merge. Cancelling the planner's
task would cancel every part with it.

Run it::

    python examples/planner_fanout.py
"""

from __future__ import annotations

import asyncio
from typing import Any

from smesh.agents import FunctionAgent, TaskSpec, Team, WorkContext

CHAPTERS = ["intro", "method", "results", "discussion"]


async def plan(ctx: WorkContext) -> Any:
    """Split the book into chapters, one subtask each, and merge them."""
    parts = ctx.spawn([TaskSpec(task_id=name, skill="write", input=name) for name in CHAPTERS])
    merge = ctx.spawn(TaskSpec(task_id="merge", skill="edit", depends_on=tuple(CHAPTERS)))
    for report in await asyncio.gather(*parts):
        print(f"  part {report.id} by {report.claimed_by}: {report.output}")
    return (await merge).output


async def write(ctx: WorkContext) -> str:
    await asyncio.sleep(0.01 * len(ctx.task.input))  # longer chapters take longer
    return f"{ctx.task.input.capitalize()} chapter."


async def edit(ctx: WorkContext) -> str:
    # the merge sees every part's accepted output, keyed by the part's task id
    return " ".join(ctx.inputs[f"book/{name}"] for name in CHAPTERS)


async def main() -> None:
    agents = [FunctionAgent("planner", perform=plan, skills={"plan": 1.0})]
    agents += [FunctionAgent(f"writer{i}", perform=write, skills={"write": 1.0}) for i in range(4)]
    agents.append(FunctionAgent("editor", perform=edit, skills={"edit": 1.0}))
    async with Team(agents) as team:
        report = await team.run_task(TaskSpec(task_id="book", skill="plan"))
    print(f"book: {report.status}: {report.output}")
    print(f"subtasks: {sorted(t for t in team.board.tasks if t.startswith('book/'))}")


if __name__ == "__main__":
    asyncio.run(main())
