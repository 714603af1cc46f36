"""A journaled run whose two tasks wait for a human (``python _approval_run.py JOURNAL RUN
COUNTS [--resume]``); driven by test_workflows_approve.py from another process."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import msgspec

from smesh.agents import FunctionAgent, Settings, TaskSpec, Team, WorkContext
from smesh.agents.board import TaskState
from smesh.agents.journal import Journal
from smesh.agents.protocol import ApprovalSpec


def main(journal_path: str, run_id: str, counts: str, resume: bool) -> None:
    async def work(ctx: WorkContext) -> Any:
        with open(counts, "a", encoding="utf-8") as fh:  # what was really done, across runs
            fh.write(f"{ctx.task.task_id} {ctx.attempt}\n")
        return f"draft {ctx.attempt} of {ctx.task.task_id} {list(ctx.feedback)}"

    def on_change(task: TaskState, what: str) -> None:
        if what == "approval-request":
            line = {"waiting": task.spec.task_id, "attempt": task.attempt}
            print(json.dumps(line), flush=True)

    async def run() -> None:
        with Journal(journal_path) as journal:
            team = Team(
                [FunctionAgent("writer", perform=work, skills={"write": 1.0}, slots=2)],
                journal=journal,
                run_id=run_id,
                resume=resume,
                settings=Settings(inbox_poll_s=0.1, tick_s=0.05, idle_timeout_s=60.0),
            )
            tasks = [
                TaskSpec(task_id=name, skill="write", approval=ApprovalSpec(prompt="ok?"))
                for name in ("a", "b")
            ]
            report = await team.run(tasks, on_change=on_change)
            print(json.dumps({"report": msgspec.to_builtins(report)}), flush=True)

    asyncio.run(run())


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], "--resume" in sys.argv[4:])
