"""A custom task kind: tasks carried by your own signal kind instead of ``task``.

Every task travels through the field as a signal. By default its kind is ``task``; give
a :class:`~smesh.agents.TaskSpec` another ``kind`` and tell the team (``task_kinds=``)
that signals of that kind carry tasks. Everything else (bids, leases, verification,
trust) works the same, and anything else watching the field can tell your tasks apart by
kind: here a subscriber logs only the ``translation`` signals.

Run it::

    python examples/custom_task_kind.py
"""

from __future__ import annotations

import asyncio

from smesh.agents import FunctionAgent, TaskSpec, Team, WorkContext
from smesh.field import FieldEvent

GLOSSARY = {"hello": "bonjour", "world": "monde", "signal": "signal", "field": "champ"}


async def translate(ctx: WorkContext) -> str:
    """A word-by-word French 'translator' (a tool agent: no model)."""
    return " ".join(GLOSSARY.get(word, word) for word in ctx.task.input.split())


def show(event: FieldEvent) -> None:
    if event.type == "emit":
        print(f"posted {event.signal.kind} signal: {event.signal.payload['task_id']}")


async def main() -> None:
    team = Team(
        [FunctionAgent("translator", perform=translate, skills={"french": 1.0})],
        task_kinds=["task", "translation"],
    )
    team.field.subscribe(show, kinds=["translation"])
    report = await team.run(
        [
            TaskSpec(task_id="greeting", skill="french", input="hello world", kind="translation"),
            TaskSpec(task_id="physics", skill="french", input="signal field", kind="translation"),
        ]
    )
    for task in report.tasks:
        print(f"{task.id}: {task.status}: {task.output}")
    kinds = sorted({t.spec.kind for t in team.board.tasks.values()})
    print(f"task kinds on the board: {', '.join(kinds)}")


if __name__ == "__main__":
    asyncio.run(main())
