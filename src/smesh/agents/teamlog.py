"""What a journaled team adds to its run: workflow changes in the journal, and the inbox.

- :class:`ChangeLog` records the changes the board derives from workflow signals (a task
  cancelled, blocked by a failed dependency, answered by a human, restarted) as actions, so
  ``smesh trace`` can tell them.
- :func:`pump_inbox` brings signals posted to the run from outside it into its field.
  ``smesh approve RUN TASK`` and ``smesh cancel RUN [TASK]`` (another terminal, another
  process: :func:`post_cancel`) cannot reach a running
  team's memory; it writes the approval into the run's journal (the ``inbox`` table of the
  same SQLite file, WAL mode), and the team reads the rows past the last one it saw every
  ``Settings.inbox_poll_s`` (one indexed query). A resumed run reads its whole inbox again;
  an answer already applied lands on the same signal, so nothing happens twice. A peer on a
  mesh needs no inbox: whatever it emits reaches every field.
- :func:`learned_trust` gives a resumed run the trust its journal recorded, so its board
  re-derives the replayed decisions (:mod:`smesh.agents.justify`) as they were weighed.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import TYPE_CHECKING

from smesh.agents.protocol import KIND_CANCEL, Approval, Cancel, decode, encode
from smesh.agents.records import Detail
from smesh.agents.runtime import Runtime
from smesh.agents.tasks import TaskState
from smesh.clock import SystemClock
from smesh.decay import Step
from smesh.errors import UsageError
from smesh.field import Field
from smesh.signal import Signal
from smesh.trust import TrustTable

if TYPE_CHECKING:
    from smesh.agents.journal import Journal

__all__ = ["ChangeLog", "learned_trust", "post_cancel", "pump_inbox"]

_DURABLE_S = 10 * 365 * 24 * 3600.0  # a cancel outlives any run


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


def learned_trust(journal: Journal, run_id: str, trust: TrustTable | None) -> TrustTable:
    """``trust`` (or a fresh table) with the trust values ``run_id`` recorded, as of then."""
    trust = trust if trust is not None else TrustTable()
    for action in journal.actions(run_id):
        value = action.detail.get("value") if action.action == "trust" else None
        if isinstance(value, int | float) and 0.0 <= value <= 1.0:
            trust.set(action.agent, float(value), action.time)
    return trust


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


def post_cancel(
    journal: Journal,
    run_id: str,
    task_id: str | None = None,
    *,
    reason: str = "",
    by: str,
    grace_s: float | None = None,
) -> Cancel:
    """Cancel ``task_id`` (and its subtasks; None: the whole run) of ``run_id`` from outside
    the run: a durable ``cancel`` goes into the run's journal inbox, which the running team
    reads within ``inbox_poll_s`` (a resumed run applies it, so it does not restart the work).

    Raises:
        UsageError: no such run, or no such task in it.
    """
    if not journal.has_run(run_id):
        raise UsageError(f"no run {run_id!r} in journal {str(journal.path)!r}")
    if task_id is not None:
        posted = any(
            isinstance(s.payload, dict) and s.payload.get("task_id") == task_id
            for s in journal.signals(run_id, ("task",))
        )
        if not posted and not journal.actions(run_id, task_id):
            raise UsageError(f"run {run_id} has no task {task_id!r}")
    cancel = Cancel(task_id, reason, by, grace_s)
    signal = Signal.create(
        KIND_CANCEL,
        encode(cancel),
        origin=by,
        created_at=SystemClock().now(),
        decay=Step(),
        ttl=_DURABLE_S,
        scope="origin",
    )
    journal.post(run_id, signal)
    return cancel
