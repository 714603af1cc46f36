"""What a task is: :class:`TaskSpec`, the payload of a ``task`` signal, with how its results
are verified (:class:`VerifySpec`) and approved (:class:`ApprovalSpec`).

Re-exported by :mod:`smesh.agents.protocol` with the other payloads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from smesh.errors import InvalidSignal

__all__ = ["KIND_TASK", "ApprovalSpec", "TaskSpec", "VerifySpec", "task_intensity"]

KIND_TASK = "task"


class VerifySpec(msgspec.Struct, frozen=True, kw_only=True):
    """How a task's results are verified.

    Attributes:
        quorum: trust-weighted mass one verdict needs.
        margin: lead that verdict needs over the other (δ).
        schema: a JSON schema the output must satisfy (checked by schema verifiers).
        timeout_s: how long the worker waits for a decision before treating the attempt as
            rejected for lack of consensus.
    """

    quorum: float = 0.9
    margin: float = 0.3
    schema: dict[str, Any] | None = None
    timeout_s: float = 120.0


class ApprovalSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A human must approve a task's result before it is accepted.

    Attributes:
        by: the approver's node id (None: any human approver, or ``smesh approve``).
        prompt: what to ask (default: the task's description).
    """

    by: str | None = None
    prompt: str = ""


#: the workflow fields of a task and their defaults: left out of the task's payload when at
#: their default, so a plain task's signal (and address) is what it was before workflows
_WORKFLOW_DEFAULTS: dict[str, Any] = {
    "depends_on": (),
    "on_failed_dependency": "fail",
    "parent": None,
    "to": None,
    "fallback_s": None,
    "approval": None,
    "max_restarts": 2,
    "restart_cooldown_s": 0.0,
    "max_calls": None,
}


class TaskSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A unit of work, as posted in a ``task`` signal.

    Attributes:
        task_id: unique id; also the idempotency key of every side effect.
        skill: the skill it needs (agents claim by affinity for it).
        description: what to do.
        priority: in [0, 1]; sets the signal's intensity ``0.5 + 0.5·priority``.
        verify: how results are checked; None accepts the first result.
        max_attempts: attempts before the task fails for good.
        input: extra JSON input for the worker.
        kind: the signal kind that carries it (``task`` or your own task kind).
        depends_on: ids of tasks whose acceptance it waits for; their outputs reach the
            worker as ``WorkContext.inputs``.
        on_failed_dependency: ``fail`` (a failed or cancelled dependency fails this task,
            with the cause) or ``run`` (run with the inputs that succeeded).
        parent: the task that spawned it (set by ``ctx.spawn``); cancelling the parent
            cancels it.
        to: the only agent that may claim it (a handoff or a direct message); it opens to
            everyone with the skill when that agent is gone.
        fallback_s: how long an addressed task waits for its addressee (None: the run's
            ``address_fallback_s``).
        approval: a human must approve the result before it is accepted.
        max_restarts: how often new context may re-open it.
        restart_cooldown_s: least time between two restarts.
        max_calls: most backend calls for it, its subtasks' included (None: no cap beyond
            the run's budget).
        tools: names of the tools a worker may use for it (None: no limit from the task;
            ``[]``: none). A worker uses the intersection with its own tools.
    """

    task_id: str
    skill: str
    description: str = ""
    priority: float = 0.5
    verify: VerifySpec | None = None
    max_attempts: int = 3
    input: Any = None
    kind: str = KIND_TASK
    depends_on: tuple[str, ...] = ()
    on_failed_dependency: Literal["fail", "run"] = "fail"
    parent: str | None = None
    to: str | None = None
    fallback_s: float | None = None
    approval: ApprovalSpec | None = None
    max_restarts: int = 2
    restart_cooldown_s: float = 0.0
    max_calls: int | None = None
    tools: list[str] | None = None

    def __post_init__(self) -> None:
        if not self.task_id or not self.skill:
            raise InvalidSignal("a task needs a task_id and a skill")
        if not 0.0 <= self.priority <= 1.0:
            raise InvalidSignal(f"priority must be in [0, 1], got {self.priority}")
        if self.max_attempts < 1:
            raise InvalidSignal(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.depends_on:
            if self.task_id in self.depends_on:
                raise InvalidSignal(f"task {self.task_id!r} depends on itself")
            if len(set(self.depends_on)) != len(self.depends_on):
                raise InvalidSignal(f"task {self.task_id!r} lists a dependency twice")
        if self.max_restarts < 0 or self.restart_cooldown_s < 0:
            raise InvalidSignal("max_restarts and restart_cooldown_s must be >= 0")
        if self.fallback_s is not None and self.fallback_s < 0:
            raise InvalidSignal(f"fallback_s must be >= 0, got {self.fallback_s}")
        if self.max_calls is not None and self.max_calls < 1:
            raise InvalidSignal(f"max_calls must be >= 1, got {self.max_calls}")

    def payload(self) -> dict[str, Any]:
        """The JSON payload of the task signal."""
        if not (
            self.depends_on
            or self.parent is not None
            or self.to is not None
            or self.approval is not None
            or self.max_calls is not None
            or self.fallback_s is not None
            or self.on_failed_dependency != "fail"
            or self.max_restarts != 2
            or self.restart_cooldown_s
            or self.tools is not None
        ):  # a plain task (most are): its payload is what it was before workflows
            return {
                "task_id": self.task_id,
                "skill": self.skill,
                "description": self.description,
                "priority": self.priority,
                "verify": None if self.verify is None else msgspec.to_builtins(self.verify),
                "max_attempts": self.max_attempts,
                "input": msgspec.to_builtins(self.input),
            }
        data: dict[str, Any] = msgspec.to_builtins(self)
        del data["kind"]
        for name, default in _WORKFLOW_DEFAULTS.items():
            if data[name] == default:
                del data[name]
        if "depends_on" in data:
            data["depends_on"] = list(data["depends_on"])  # JSON has lists, not tuples
        if data.get("tools") is None:  # unset: a task's address stays what it was
            data.pop("tools", None)
        return data

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any], kind: str = KIND_TASK) -> TaskSpec:
        """Rebuild a spec from a task signal's payload (raises on a malformed one)."""
        return msgspec.convert({**payload, "kind": kind}, cls)


def task_intensity(priority: float) -> float:
    """Intensity of a task signal: ``0.5 + 0.5·priority``."""
    return 0.5 + 0.5 * priority
