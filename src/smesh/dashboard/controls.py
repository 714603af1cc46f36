"""Approve, reject and cancel from the page: what a button press becomes.

A press is a :class:`Control`. :func:`control_signal` turns it into the signal that says
it — ``approval`` (``{task_id, attempt, verdict, reason, by}``) for approve and reject,
``cancel`` (``{task_id, attempt, reason, by}``) for cancel, durable (step decay, ten-year
ttl) and origin-scoped to the person who pressed. That function is the one place to change
when the workflows issue fixes the kinds and payloads the runtime acts on; the endpoint and
the sinks below stay as they are.

Sinks deliver it:

* :class:`JournalControls` (``smesh dashboard --journal``, another process runs the team):
  appends the signal as a field event *and* an action (``approve``/``reject``/``cancel``,
  agent = ``by``, detail ``{attempt, reason, signal, via: "dashboard"}``) to the run in the
  journal. The running team does not read its journal, so today this records the decision
  for the trace and the page; a mesh-connected dashboard will emit into the field instead.
* :class:`FieldControls` (``--dashboard`` on a run, in process): emits the signal into the
  live field, where the runtime (and its journal) sees it like any other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Protocol

import msgspec

from smesh.clock import Clock, SystemClock
from smesh.decay import Step
from smesh.errors import UsageError
from smesh.field import Field
from smesh.signal import Signal

__all__ = ["VERBS", "Control", "ControlSink", "FieldControls", "JournalControls", "control_signal"]

Verb = Literal["approve", "reject", "cancel"]
VERBS: tuple[str, ...] = ("approve", "reject", "cancel")
_DURABLE_S = 10 * 365 * 24 * 3600.0
_MAX_REASON = 500


class Control(msgspec.Struct, frozen=True, kw_only=True):
    """One press of a button on a task."""

    verb: Verb
    run_id: str
    task_id: str
    attempt: int | None = None
    reason: str = ""
    by: str = "dashboard"

    def __post_init__(self) -> None:
        if len(self.reason) > _MAX_REASON:
            raise UsageError(f"reason is longer than {_MAX_REASON} characters")
        if not self.task_id or not self.by:
            raise UsageError("a control needs a task_id and who sent it")


def control_signal(control: Control, created_at: float) -> Signal:
    """The signal a control emits (see the module docstring for kinds and payloads)."""
    payload: dict[str, Any] = {
        "task_id": control.task_id,
        "attempt": control.attempt,
        "reason": control.reason,
        "by": control.by,
    }
    kind = "cancel"
    if control.verb != "cancel":
        kind = "approval"
        payload["verdict"] = control.verb
    return Signal.create(
        kind,
        payload,
        origin=control.by,
        created_at=created_at,
        decay=Step(),
        ttl=_DURABLE_S,
        scope="origin",
    )


class _Fixed:
    """A clock stopped at the run time the control is recorded at."""

    def __init__(self, when: float) -> None:
        self.when = when

    def now(self) -> float:
        return self.when


class ControlSink(Protocol):
    """Where a control goes; returns what was recorded (JSON-ready)."""

    def submit(self, control: Control, now: float | None = None) -> dict[str, Any]:
        """Deliver ``control`` at run-clock time ``now`` (default: the sink's clock)."""
        ...


class JournalControls:
    """Records controls in the journal that the run writes (see the module docstring)."""

    def __init__(self, path: str | Path, clock: Clock | None = None) -> None:
        self.path = Path(path)
        self.clock = clock or SystemClock()

    def submit(self, control: Control, now: float | None = None) -> dict[str, Any]:
        from smesh.agents.journal import Journal

        when = self.clock.now() if now is None else now
        with Journal(self.path) as journal:
            if not journal.has_run(control.run_id):
                raise UsageError(f"no run {control.run_id!r} in the journal")
            field = Field(_Fixed(when))
            journal.attach(field, control.run_id)  # the run exists: records events only
            signal = field.emit(control_signal(control, when))
            journal.action(
                when,
                control.by,
                control.verb,
                control.task_id,
                {
                    "attempt": control.attempt,
                    "reason": control.reason,
                    "signal": signal.address,
                    "via": "dashboard",
                },
            )
        return {"verb": control.verb, "kind": signal.kind, "address": signal.address}


class FieldControls:
    """Emits controls into a live field (the in-process dashboard of a run)."""

    def __init__(self, field: Field) -> None:
        self.field = field

    def submit(self, control: Control, now: float | None = None) -> dict[str, Any]:
        signal = self.field.emit(control_signal(control, self.field.clock.now()))
        return {"verb": control.verb, "kind": signal.kind, "address": signal.address}
