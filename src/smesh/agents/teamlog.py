"""What a journaled team adds to its run: workflow changes in the journal, and the inbox.

- :class:`ChangeLog` records the changes the board derives from workflow signals (a task
  cancelled, blocked by a failed dependency, answered by a human, restarted) as actions, so
  ``smesh trace`` can tell them.
- :func:`pump_inbox` brings signals posted to the run from outside it into its field.
  ``smesh approve RUN TASK`` (another terminal, another process) cannot reach a running
  team's memory; it writes the approval into the run's journal (the ``inbox`` table of the
  same SQLite file, WAL mode), and the team reads the rows past the last one it saw every
  ``Settings.inbox_poll_s`` (one indexed query). A resumed run reads its whole inbox again;
  an answer already applied lands on the same signal, so nothing happens twice. A peer on a
  mesh needs no inbox: whatever it emits reaches every field.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import TYPE_CHECKING

from smesh.agents.protocol import Approval, decode
from smesh.agents.records import Detail
from smesh.agents.runtime import Runtime
from smesh.agents.tasks import TaskState
from smesh.field import Field

if TYPE_CHECKING:
    from smesh.agents.journal import Journal

__all__ = ["ChangeLog", "pump_inbox"]


class ChangeLog:
    """Journals the workflow changes of a run's board.

    Args:
        runtime: the run (its ``record`` writes the journal).
        recorder: who records changes nobody in particular made (the team's poster).
    """

    def __init__(self, runtime: Runtime, recorder: str = "team") -> None:
        self.runtime = runtime
        self.recorder = recorder

    def note(self, task: TaskState, what: str) -> None:
        """Record ``what`` happened to ``task`` if it is a workflow change."""
        rt = self.runtime
        task_id = task.spec.task_id
        if what == "cancelled":
            rt.record(self.recorder, "cancelled", task_id, Detail(reason=task.cause or ""))
        elif what == "blocked":
            rt.record(self.recorder, "blocked", task_id, Detail(reason=task.cause or ""))
        elif what == "approval" and task.approvals:
            attempt = max(task.approvals)
            signal = task.approvals[attempt]
            answer = decode(Approval, signal.payload)
            if answer is not None:
                detail = Detail(attempt=attempt, reason=answer.reason, by=signal.origin)
                if answer.verdict == "approve":
                    rt.record(signal.origin, "approve", task_id, detail)
                else:
                    rt.record(signal.origin, "reject", task_id, detail)
        elif what == "reopen" and task.restart is not None:
            detail = Detail(attempt=task.attempt, reason=task.restart.reason, by=task.restart.by)
            rt.record(self.recorder, "reopen", task_id, detail)
        elif what == "reopen-refused":
            spec = task.spec
            why = f"{task.restarts} of {spec.max_restarts} restarts used, or within "
            why += f"{spec.restart_cooldown_s:g} s of the last"
            rt.record(self.recorder, "reopen-refused", task_id, Detail(reason=why))


async def pump_inbox(journal: Journal, run_id: str, field: Field, runtime: Runtime) -> None:
    """Emit the signals posted to ``run_id``'s inbox into ``field`` until the run stops."""
    after = 0
    while not runtime.stopping:
        try:
            rows = journal.inbox(run_id, after)
        except sqlite3.Error:
            rows = []  # busy or locked for a moment: the next look gets them
        for seq, signal in rows:
            after = seq
            if signal.address in field:
                continue
            # stamped with this run's clock: it arrives now (the address is the same)
            field.emit(
                signal.kind,
                signal.payload,
                origin=signal.origin,
                intensity=signal.intensity,
                ttl=signal.ttl,
                decay=signal.decay,
                scope=signal.scope,
            )
        await asyncio.sleep(runtime.settings.inbox_poll_s)
