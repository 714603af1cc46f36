"""One task as the dashboard shows it, rebuilt from the coordination signals.

This mirrors what :class:`smesh.agents.board.TaskBoard` knows (claims, results, votes,
checks, decisions, offers) but reads payloads defensively: the journal may come from
another version, and a task kind or payload field the dashboard does not know is kept and
shown, not dropped. Any other signal kind whose payload names a ``task_id`` (approvals,
cancellations, tool calls, dependencies as the workflows and tools issues add them) is
filed under the task by kind.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from smesh.dashboard.events import preview
from smesh.signal import Signal

__all__ = ["PROTOCOL_KINDS", "TaskView"]

PROTOCOL_KINDS = frozenset({"claim", "result", "vote", "check", "feedback", "decision"})
FINAL = frozenset({"accepted", "failed", "cancelled"})
_EXTRA_PER_KIND = 12
_DEPENDENCY_KEYS = ("depends_on", "dependencies", "after", "deps")


def _attempt(payload: dict[str, Any]) -> int:
    attempt = payload.get("attempt", 1)
    if type(attempt) is int:  # the usual case, without a conversion
        return attempt
    try:
        return int(attempt)
    except (TypeError, ValueError):
        return 1


class TaskView:
    """Everything the signals say about one task, plus what the dashboard derived."""

    __slots__ = (
        "approvals",
        "attempt",
        "checks",
        "claims",
        "counted",
        "created",
        "decided_at",
        "decisions",
        "extra",
        "feedback",
        "holder",
        "kind",
        "lapses",
        "offers",
        "outcome",
        "results",
        "spec",
        "task_id",
        "updated",
        "votes",
    )

    def __init__(self, task_id: str, t: float) -> None:
        self.task_id = task_id
        self.kind = "task"
        self.spec: dict[str, Any] = {}
        self.created = t
        self.updated = t
        self.attempt = 1
        self.offers = 0
        self.lapses = 0
        self.outcome: str | None = None
        self.counted: str | None = None  # the status the model last counted it under
        self.decided_at: float | None = None
        self.claims: dict[str, dict[str, Any]] = {}
        #: the agent holding the lease on the current attempt, if any (kept as claims
        #: change: the status of every task is read on every signal about it)
        self.holder: str | None = None
        self.results: dict[int, dict[str, Any]] = {}
        self.votes: dict[int, dict[str, list[str]]] = {}
        self.checks: dict[int, dict[str, str]] = {}
        self.feedback: dict[int, dict[str, str]] = {}
        self.decisions: dict[int, dict[str, Any]] = {}
        self.approvals: list[dict[str, Any]] = []
        self.extra: dict[str, list[dict[str, Any]]] = {}

    # -- state -----------------------------------------------------------------------------

    def _find_holder(self) -> None:
        self.holder = next((a for a, c in self.claims.items() if c.get("state") == "held"), None)

    @property
    def status(self) -> str:
        """open, bidding, working, verifying, accepted, failed or cancelled."""
        if self.outcome is not None:
            return self.outcome
        if self.holder is not None:
            return "working"
        if self.attempt in self.results:
            return "verifying"
        if self.claims:
            return "bidding"
        return "open"

    # -- applying signals ------------------------------------------------------------------

    def on_task(self, op: str, signal: Signal, t: float) -> None:
        """The task signal itself was emitted, reinforced, renewed, withdrawn or expired."""
        if op == "emit" and not self.spec:
            payload = signal.payload if isinstance(signal.payload, dict) else {}
            self.kind = signal.kind
            self.spec = {k: preview(v) for k, v in payload.items() if k != "task_id"}
            self.created = t
        elif op in ("expire", "withdraw") and self.outcome is None:
            self.outcome = "failed"  # faded or withdrawn before it was done (as the board)
            self.decided_at = t

    def on_signal(self, op: str, signal: Signal, by: str | None, t: float) -> str | None:
        """Apply a signal about this task; returns ``lapse`` or ``reoffer`` when the task
        went back on offer (for the metrics), else None."""
        self.updated = t
        kind = signal.kind
        payload: dict[str, Any] = signal.payload
        attempt = _attempt(payload)
        if kind == "claim":
            return self._on_claim(op, signal, attempt, t)
        if op not in ("emit", "reinforce"):
            if kind not in PROTOCOL_KINDS:
                self._extra(op, signal, by, t)
            return None
        if kind == "result" and op == "emit":
            self.results.setdefault(
                attempt,
                {
                    "agent": signal.origin,
                    "error": preview(payload.get("error")),
                    "output": preview(payload.get("output")),
                    "t": t,
                },
            )
        elif kind == "vote":
            voter = signal.origin if op == "emit" else by
            verdict = str(payload.get("verdict"))
            voters = self.votes.setdefault(attempt, {}).setdefault(verdict, [])
            if voter is not None and voter not in voters:
                voters.append(voter)
        elif kind == "check" and op == "emit":
            self.checks.setdefault(attempt, {})[signal.origin] = str(payload.get("verdict"))
        elif kind == "feedback" and op == "emit":
            reason = preview(str(payload.get("reason", "")))
            self.feedback.setdefault(attempt, {})[signal.origin] = reason
        elif kind == "decision" and op == "emit":
            return self._on_decision(signal, payload, attempt, t)
        elif kind not in PROTOCOL_KINDS:
            self._extra(op, signal, by, t)
        return None

    def _on_claim(self, op: str, claim: Signal, attempt: int, t: float) -> str | None:
        if attempt != self.attempt:
            return None
        agent = claim.origin
        payload: dict[str, Any] = claim.payload
        if op in ("emit", "renew", "reinforce"):
            state = payload.get("state")
            self.claims[agent] = {
                "bid": payload.get("bid"),
                "state": state,
                "expires_at": claim.expires_at(),
            }
            if state == "held" or agent == self.holder:
                self._find_holder()  # (a bid, most claims, cannot change the holder)
            return None
        held = self.claims.pop(agent, None)
        if agent == self.holder:
            self._find_holder()
        if held is not None and held.get("state") == "held" and attempt not in self.results:
            self.offers += 1  # the holder is gone without a result: offered again
            if op == "expire":
                self.lapses += 1
                return "lapse"
            return "reoffer"
        return None

    def _on_decision(
        self, signal: Signal, payload: dict[str, Any], attempt: int, t: float
    ) -> str | None:
        if attempt in self.decisions:
            return None
        verdict = str(payload.get("verdict"))
        self.decisions[attempt] = {
            "verdict": verdict,
            "basis": payload.get("basis"),
            "by": signal.origin,
            "t": t,
        }
        if verdict in ("accepted", "failed"):
            self.outcome = verdict
            self.decided_at = t
        elif attempt == self.attempt:
            self.attempt = attempt + 1
            self.claims.clear()
            self.holder = None
            self.offers += 1
            return "reoffer"
        return None

    def _extra(self, op: str, signal: Signal, by: str | None, t: float) -> None:
        payload = signal.payload
        entry = {"op": op, "origin": signal.origin, "by": by, "t": t, "payload": preview(payload)}
        if signal.kind in ("approval", "approve") and op == "emit":
            self.approvals.append(
                {
                    "verdict": payload.get("verdict", "approve"),
                    "by": payload.get("by", signal.origin),
                    "reason": preview(payload.get("reason")),
                    "t": t,
                }
            )
        elif signal.kind == "cancel" and op == "emit" and self.outcome is None:
            self.outcome = "cancelled"
            self.decided_at = t
        rows = self.extra.setdefault(signal.kind, [])
        rows.append(entry)
        if len(rows) > _EXTRA_PER_KIND:
            del rows[0]

    # -- output ----------------------------------------------------------------------------

    def to_json(self, trust: Callable[[str], float]) -> dict[str, Any]:
        """The task as the page renders it; vote weights are the voters' trust now."""
        deps: Any = None
        for key in _DEPENDENCY_KEYS:
            if self.spec.get(key):
                deps = self.spec[key]
                break
        return {
            "id": self.task_id,
            "kind": self.kind,
            "status": self.status,
            "skill": self.spec.get("skill"),
            "description": self.spec.get("description"),
            "spec": self.spec,
            "attempt": self.attempt,
            "max_attempts": self.spec.get("max_attempts"),
            "offers": self.offers,
            "lapses": self.lapses,
            "created": self.created,
            "updated": self.updated,
            "decided_at": self.decided_at,
            "holder": self.holder,
            "claims": [{"agent": a, **c} for a, c in self.claims.items()],
            "results": [{"attempt": k, **v} for k, v in sorted(self.results.items())],
            "votes": [
                {
                    "attempt": attempt,
                    "verdict": verdict,
                    "voters": [{"agent": v, "weight": round(trust(v), 4)} for v in voters],
                }
                for attempt, ballots in sorted(self.votes.items())
                for verdict, voters in ballots.items()
            ],
            "checks": [
                {"attempt": k, "agent": a, "verdict": v}
                for k, by in sorted(self.checks.items())
                for a, v in by.items()
            ],
            "feedback": [
                {"attempt": k, "agent": a, "reason": r}
                for k, by in sorted(self.feedback.items())
                for a, r in by.items()
            ],
            "decisions": [{"attempt": k, **v} for k, v in sorted(self.decisions.items())],
            "depends_on": deps,
            "approvals": self.approvals,
            "signals": self.extra,
        }
