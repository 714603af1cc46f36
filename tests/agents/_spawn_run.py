"""A journaled run whose planner fans a job out into subtasks (``python _spawn_run.py
JOURNAL RUN COUNTS [--resume]``); driven by test_workflows_kill.py, which SIGKILLs it
mid-way and resumes it, or cancels it with ``smesh cancel`` from another process."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import msgspec

from smesh.agents import FunctionAgent, Settings, TaskSpec, Team, WorkContext
from smesh.agents.board import TaskState
from smesh.agents.journal import Journal


def main(journal_path: str, run_id: str, counts: str, resume: bool) -> None:
    def note(task_id: str) -> None:
        with open(counts, "a", encoding="utf-8") as fh:  # what was really done, across runs
            fh.write(f"{task_id}\n")

    async def part(ctx: WorkContext) -> Any:
        note(ctx.task.task_id)
        # parts 0 and 1 are quick; 2 and 3 are still running when the test kills the run
        # (in the resumed run every part is quick: the test does not wait for them there)
        slow = ctx.task.input >= 2 and not resume
        await asyncio.sleep(30.0 if slow else 0.05)
        return ctx.task.input * 10

    async def plan(ctx: WorkContext) -> Any:
        note(ctx.task.task_id)
        parts = ctx.spawn([TaskSpec(task_id=f"p{i}", skill="part", input=i) for i in range(4)])
        return [r.output for r in await asyncio.gather(*parts)]

    def on_change(task: TaskState, what: str) -> None:
        if task.outcome == "accepted":
            print(json.dumps({"accepted": task.spec.task_id}), flush=True)

    async def run() -> None:
        with Journal(journal_path) as journal:
            agents = [
                FunctionAgent("boss", perform=plan, skills={"plan": 1.0}),
                *(FunctionAgent(f"w{i}", perform=part, skills={"part": 1.0}) for i in range(4)),
            ]
            team = Team(
                agents,
                journal=journal,
                run_id=run_id,
                resume=resume,
                settings=Settings(
                    tick_s=0.05,
                    lease_s=2.0,
                    idle_timeout_s=60.0,
                    inbox_poll_s=0.1,
                    cancel_grace_s=0.5,
                ),
            )
            report = await team.run([TaskSpec(task_id="job", skill="plan")], on_change=on_change)
            print(json.dumps({"report": msgspec.to_builtins(report)}), flush=True)

    asyncio.run(run())


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], "--resume" in sys.argv[4:])
