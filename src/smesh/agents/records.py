"""The journal record of an agent action: one typed detail, built in one place.

Every action an agent (or its team) takes is journaled through :meth:`Runtime.record
<smesh.agents.runtime.Runtime.record>` with a :class:`Detail`: the fields that matter for that
action and the signals that triggered it (:class:`Trigger`). Unset fields are left out of the
stored JSON, so each action's record holds exactly the keys ``smesh trace`` reads:

========================  =============================================================
action                    detail
========================  =============================================================
``claim``                 attempt, bid, score, triggers (the task: intensity, trust_origin)
``concede``               attempt, bid, rivals (the live claims it lost to)
``result``                attempt, error, output (a preview), triggers (the lease)
``vote`` / ``check``      attempt, verdict, reason, trust_self, triggers (result, own vote)
``abstain``               attempt, reason
``decide``                attempt, verdict, basis, approve / reject (trust masses)
``no-consensus``          attempt, ballots
``lost-lease``            attempt
``budget``                reason
``pressure``              backend, hold_s
``trust``                 cause, value
``give-up``               reason
``stop``                  attempt, reason, grace_s (work told to stop: cancel, restart)
``partial``               attempt, error, output (what cancelled work finished with)
``handoff``               attempt, reason (the note), to, skill
``cancelled``             reason (the task, cancelled)
``blocked``               reason (the task failed because a dependency did)
``approval-request``      attempt, by (who must answer)
``approve`` / ``reject``  attempt, reason, by (a human's answer)
``reopen``                attempt, reason, by (the task runs again)
``reopen-refused``        reason (over its restart limit, or within its cooldown)
``tool``                  attempt, step, call_id, tool, args, ok, status, output (a
                          preview of the result) or error, duration_ms, effect_id,
                          replayed, triggers (the task and the lease)
========================  =============================================================
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from smesh.agents.protocol import ClaimView, Verdict

__all__ = [
    "TOOL_CALL_KEYS",
    "Action",
    "Detail",
    "Trigger",
    "attempts",
    "preview",
    "tool_calls",
]

Action = Literal[
    "abstain",
    "approval-request",
    "approve",
    "blocked",
    "budget",
    "cancelled",
    "check",
    "claim",
    "concede",
    "decide",
    "give-up",
    "handoff",
    "lost-lease",
    "no-consensus",
    "partial",
    "pressure",
    "reject",
    "reopen",
    "reopen-refused",
    "result",
    "stop",
    "tool",
    "trust",
    "vote",
]


class Trigger(msgspec.Struct, frozen=True, kw_only=True):
    """A signal that triggered an action, with what the agent saw of it.

    Attributes:
        address: the signal's address.
        kind: its kind.
        intensity: its effective intensity then (a task that was claimed).
        trust_origin: the actor's trust in its origin then.
        worker: the origin of a judged result.
        trust_worker: the actor's trust in that worker then.
    """

    address: str
    kind: str
    intensity: float | UnsetType = UNSET
    trust_origin: float | UnsetType = UNSET
    worker: str | UnsetType = UNSET
    trust_worker: float | UnsetType = UNSET


class Detail(msgspec.Struct, frozen=True, kw_only=True):
    """The detail of one journaled action; see the module's table for which fields each
    action sets. ``extra`` holds numbers a custom settle rule attaches to its rulings; they
    are stored beside the other fields."""

    attempt: int | UnsetType = UNSET
    bid: float | UnsetType = UNSET
    score: float | UnsetType = UNSET
    rivals: list[ClaimView] | UnsetType = UNSET
    verdict: str | UnsetType = UNSET
    basis: str | UnsetType = UNSET
    reason: str | UnsetType = UNSET
    error: str | UnsetType | None = UNSET
    output: str | UnsetType = UNSET
    trust_self: float | UnsetType = UNSET
    ballots: dict[Verdict, list[str]] | UnsetType = UNSET
    backend: str | UnsetType = UNSET
    hold_s: float | UnsetType = UNSET
    cause: str | UnsetType = UNSET
    value: float | UnsetType = UNSET
    triggers: list[Trigger] | UnsetType = UNSET
    grace_s: float | UnsetType = UNSET
    to: str | UnsetType | None = UNSET
    skill: str | UnsetType | None = UNSET
    by: str | UnsetType | None = UNSET
    step: int | UnsetType = UNSET
    call_id: str | UnsetType = UNSET
    tool: str | UnsetType = UNSET
    args: dict[str, Any] | str | UnsetType = UNSET
    ok: bool | UnsetType = UNSET
    status: str | UnsetType = UNSET
    duration_ms: float | UnsetType = UNSET
    effect_id: str | UnsetType | None = UNSET
    replayed: bool | UnsetType = UNSET
    extra: dict[str, float] | UnsetType = UNSET

    def to_dict(self) -> dict[str, Any]:
        """The JSON object the journal stores."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        extra = data.pop("extra", None)
        if extra:
            data.update(extra)
        return data


def preview(output: Any, limit: int = 200) -> str:
    """A short text of a worker's output, for the journal."""
    text = (
        output if isinstance(output, str) else json.dumps(output, ensure_ascii=False, default=repr)
    )
    return text if len(text) <= limit else text[: limit - 1] + "…"


#: the keys of one tool call in ``smesh trace --json``
TOOL_CALL_KEYS = (
    "step",
    "tool",
    "args",
    "ok",
    "status",
    "duration_ms",
    "effect_id",
    "replayed",
    "result",
)


def tool_calls(actions: Iterable[Any]) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """The journaled tool calls of some actions, by (task, attempt), in call order.

    ``actions`` are journal rows with ``action``, ``task_id`` and ``detail``; each call is
    a dict of :data:`TOOL_CALL_KEYS` (``result`` is the preview, or the error).
    """
    out: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for a in actions:
        if a.action != "tool" or a.task_id is None:
            continue
        d = a.detail
        call = {k: d.get(k) for k in TOOL_CALL_KEYS}
        call["result"] = d.get("output") if d.get("ok") else d.get("error")
        call["replayed"] = bool(d.get("replayed", False))
        out.setdefault((a.task_id, int(d.get("attempt", 1))), []).append(call)
    return out


def attempts(actions: Iterable[Any]) -> list[dict[str, Any]]:
    """Every attempt the actions mention (claimed, worked on, or posted), in order, each
    ``{task_id, attempt, agent, tool_calls}``: ``agent`` is who worked on it, ``tool_calls``
    its calls (see :func:`tool_calls`)."""
    rows = list(actions)
    calls = tool_calls(rows)
    seen: dict[tuple[str, int], dict[str, Any]] = {}
    for a in rows:
        if a.task_id is None or a.action not in ("claim", "tool", "result"):
            continue
        key = (a.task_id, int(a.detail.get("attempt", 1)))
        entry = seen.setdefault(
            key, {"task_id": key[0], "attempt": key[1], "agent": a.agent, "tool_calls": []}
        )
        entry["agent"] = a.agent  # the last to act on it: the one that posted
    for key, entry in seen.items():
        entry["tool_calls"] = calls.get(key, [])
    return list(seen.values())
