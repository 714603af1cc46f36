"""A run's story in words: journaled agent actions described for people.

Shared by ``smesh trace`` and the dashboard's Trace view, so both tell the same story.
Actions this module does not know are shown as their details, ``key=value``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

__all__ = ["describe", "workflow_summary"]


class _Action(Protocol):
    @property
    def action(self) -> str: ...
    @property
    def agent(self) -> str: ...
    @property
    def task_id(self) -> str | None: ...
    @property
    def detail(self) -> dict[str, Any]: ...


def workflow_summary(actions: Sequence[_Action]) -> dict[str, Any]:
    """What ``smesh trace --json`` adds about workflows, from a run's journaled actions:
    ``cancelled`` (task ids, in order) and ``approvals`` (each answer that decided an
    attempt: ``{"task", "by", "verdict", "comment"}``)."""
    cancelled: dict[str, None] = {}
    approvals: list[dict[str, Any]] = []
    for a in actions:
        if a.action == "cancelled" and a.task_id is not None:
            cancelled[a.task_id] = None
        elif a.action in ("approve", "reject"):
            approvals.append(
                {
                    "task": a.task_id,
                    "by": a.detail.get("by", a.agent),
                    "verdict": a.action,
                    "comment": a.detail.get("reason", ""),
                }
            )
    return {"cancelled": list(cancelled), "approvals": approvals}


def _rival(claim: Any) -> str:
    # a rival claim is journaled as {"agent", "bid", "held"}
    if not isinstance(claim, dict):
        return str(claim)
    return f"{claim.get('agent')}:{claim.get('bid')}{'*' if claim.get('held') else ''}"


def describe(action: str, detail: dict[str, Any]) -> str:
    """One line saying what an agent did and why (from a journaled action's details)."""
    d = detail
    if action == "claim":
        trig = (d.get("triggers") or [{}])[0]
        return (
            f"won the lease on attempt {d.get('attempt')} with bid {d.get('bid')} "
            f"(score {d.get('score')} = affinity × task intensity {trig.get('intensity')} × "
            f"trust in poster {trig.get('trust_origin')}; task signal "
            f"{str(trig.get('address', ''))[:10]}…)"
        )
    if action == "concede":
        rivals = ", ".join(_rival(r) for r in d.get("rivals", []))
        return f"conceded attempt {d.get('attempt')} (bid {d.get('bid')}; rivals {rivals})"
    if action == "result":
        if d.get("error"):
            return f"attempt {d.get('attempt')} failed: {d['error']}"
        return f"posted attempt {d.get('attempt')}: {d.get('output', '')!s:.80}"
    if action == "vote":
        trig = (d.get("triggers") or [{}])[0]
        return (
            f"judged attempt {d.get('attempt')} blind: {d.get('verdict')} "
            f"({d.get('reason', '')!s:.60}); own trust {d.get('trust_self')}, "
            f"worker {trig.get('worker')} at {trig.get('trust_worker')}"
        )
    if action == "decide":
        masses = ""
        if "approve" in d:
            masses = f" (trust mass approve {d['approve']} / reject {d['reject']})"
        return f"decided attempt {d.get('attempt')}: {d.get('verdict')}{masses}"
    if action == "tool":
        args = d.get("args")
        shown = (
            args
            if isinstance(args, str)
            else ", ".join(f"{k}={v!r}" for k, v in (args or {}).items())
        )
        how = "ok" if d.get("ok") else d.get("status", "failed")
        what = d.get("output") if d.get("ok") else d.get("error")
        again = ", replayed from the effect ledger" if d.get("replayed") else ""
        return (
            f"step {d.get('step')}: called {d.get('tool')}({shown:.80}) → {how} in "
            f"{d.get('duration_ms')} ms{again}: {what!s:.80}"
        )
    if action == "trust":
        return f"trust → {d.get('value')} ({d.get('cause')})"
    if action in ("approve", "reject"):
        comment = f": {d['reason']}" if d.get("reason") else ""
        return f"{action}d attempt {d.get('attempt')} as a human{comment}"
    if action == "handoff":
        to = d.get("to") or f"skill {d.get('skill')}"
        return f"handed attempt {d.get('attempt')} to {to} ({d.get('reason', '')})"
    if action in ("cancelled", "blocked"):
        return f"{action}: {d.get('reason', '')}"
    if action == "stop":
        return f"told to stop ({d.get('reason')}); grace {d.get('grace_s')} s"
    return ", ".join(f"{k}={v}" for k, v in d.items())
