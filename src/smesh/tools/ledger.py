"""Side effects exactly once: effect ids and the ledger that records intent and outcome.

Every call of a ``side_effect=True`` tool has an *effect id*, a hash of (run, task,
attempt, step, tool, canonical arguments), so the same call in a resumed run has the same
id. Before the call the ledger records the *intent*; after it, the *outcome*. A resumed
run that reaches the same call again finds:

* an outcome: the recorded result is returned and the tool is not run (``replayed``);
* an intent without an outcome (the process died during the call): the effect may or
  may not have happened. It is never silently repeated: the tool's ``reconcile`` hook may
  settle it, otherwise the call is reported to the model as uncertain.

:class:`MemoryEffectLedger` keeps records in memory (one process, tests);
:class:`~smesh.tools.sqlite_ledger.SQLiteEffectLedger` makes them durable.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from typing import Any, Literal

import msgspec

__all__ = [
    "EffectLedger",
    "EffectRecord",
    "EffectScope",
    "EffectStatus",
    "MemoryEffectLedger",
    "effect_id",
]

#: ``pending``: intent recorded, no outcome; ``done``: it ran and returned ``result``;
#: ``failed``: it ran and raised ``error`` (replayed as the same error).
EffectStatus = Literal["pending", "done", "failed"]

_canonical = msgspec.msgpack.Encoder(order="sorted").encode


class EffectScope(msgspec.Struct, frozen=True, kw_only=True):
    """Where a tool loop runs, the part of an effect id that the loop does not know.

    Attributes:
        run_id: the run (the same on ``--resume``).
        task_id: the task being worked on.
        attempt: the attempt at that task, from 1.
    """

    run_id: str
    task_id: str
    attempt: int = 1


def effect_id(scope: EffectScope, step: int, tool: str, args: object, occurrence: int = 0) -> str:
    """The id of one side effect: blake2b-128 over the canonical msgpack of its coordinates.

    ``occurrence`` tells apart identical calls (same tool, same arguments) in one step;
    it is 0 for the first, so reordering distinct calls does not change their ids.
    """
    key = (scope.run_id, scope.task_id, scope.attempt, step, tool, args, occurrence)
    return hashlib.blake2b(_canonical(key), digest_size=16).hexdigest()


class EffectRecord(msgspec.Struct, frozen=True, kw_only=True):
    """What the ledger knows about one effect.

    Attributes:
        effect_id: its id.
        tool: the tool's name.
        status: :data:`EffectStatus`.
        result: the JSON result when ``done``.
        error: the error message when ``failed``.
        run_id: the run it belongs to.
        task_id: the task it belongs to.
        attempt: the attempt it belongs to.
        step: the model turn that asked for it.
        args: the call's arguments.
    """

    effect_id: str
    tool: str
    status: EffectStatus
    result: Any = None
    error: str | None = None
    run_id: str = ""
    task_id: str = ""
    attempt: int = 0
    step: int = 0
    args: Any = None


class EffectLedger(ABC):
    """Where intents and outcomes of side effects are recorded, durably and atomically.

    Implementations must make :meth:`begin` atomic (two callers racing on one id: exactly
    one gets None) and durable before it returns, since the tool runs right after.
    """

    @abstractmethod
    async def begin(
        self, effect_id: str, *, scope: EffectScope, step: int, tool: str, args: Any
    ) -> EffectRecord | None:
        """Record the intent to run an effect, unless the ledger already has it.

        Returns:
            None when the intent was recorded now (the caller runs the tool), else the
            existing record (the caller must not run it again).
        """

    @abstractmethod
    async def finish(
        self, effect_id: str, *, ok: bool, result: Any = None, error: str | None = None
    ) -> None:
        """Record the outcome of an effect whose intent was recorded."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, not abstract
        """Release resources. Safe to call twice."""

    async def __aenter__(self) -> EffectLedger:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class MemoryEffectLedger(EffectLedger):
    """A ledger in memory: exactly once within one process (tests, ephemeral runs)."""

    def __init__(self) -> None:
        self.records: dict[str, EffectRecord] = {}

    async def begin(
        self, effect_id: str, *, scope: EffectScope, step: int, tool: str, args: Any
    ) -> EffectRecord | None:
        """Record the intent unless known; return the known record."""
        known = self.records.get(effect_id)
        if known is not None:
            return known
        self.records[effect_id] = EffectRecord(
            effect_id=effect_id,
            tool=tool,
            status="pending",
            run_id=scope.run_id,
            task_id=scope.task_id,
            attempt=scope.attempt,
            step=step,
            args=args,
        )
        return None

    async def finish(
        self, effect_id: str, *, ok: bool, result: Any = None, error: str | None = None
    ) -> None:
        """Record the outcome."""
        known = self.records[effect_id]
        # round-trip through JSON so a replay sees exactly what a durable ledger returns
        stored = msgspec.json.decode(msgspec.json.encode(result)) if ok else None
        self.records[effect_id] = msgspec.structs.replace(
            known, status="done" if ok else "failed", result=stored, error=error
        )
