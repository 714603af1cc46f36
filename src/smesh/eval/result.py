"""What an eval suite reports: the ``smesh eval --json`` contract.

``{"suite", "backend", "n", "seed", "conditions": [{"name", "score", "ci_low", "ci_high",
"tokens_per_item", "seconds_per_item"}], "extra": {...}}``. For ``code`` and ``reason`` the
score is a rate (pass@1, accuracy) with a 95 % bootstrap interval; for ``fanout``,
``faults`` and ``scale`` it is the suite's headline figure (makespan in seconds, completion
rate, µs per task) and ``extra`` holds the rest.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["ConditionResult", "EvalResult", "ItemRecord"]


class ConditionResult(msgspec.Struct, frozen=True, kw_only=True):
    """One condition's headline figures."""

    name: str
    score: float
    ci_low: float
    ci_high: float
    tokens_per_item: float
    seconds_per_item: float


class EvalResult(msgspec.Struct, frozen=True, kw_only=True):
    """One suite run."""

    suite: str
    backend: str
    n: int
    seed: int
    conditions: list[ConditionResult]
    extra: dict[str, Any] = {}

    def condition(self, name: str) -> ConditionResult:
        """The condition called ``name``."""
        for cond in self.conditions:
            if cond.name == name:
                return cond
        raise KeyError(name)


class ItemRecord(msgspec.Struct, frozen=True, kw_only=True):
    """How one condition did on one item (kept in ``extra`` for audits).

    Attributes:
        item: the item's id.
        score: 1.0 right, 0.0 wrong (or a partial score).
        tokens: input + output tokens the condition spent on the item.
        calls: backend calls it made.
        seconds: wall time of the item.
        detail: what the condition chose and why (short).
    """

    item: str
    score: float
    tokens: int
    calls: int
    seconds: float
    detail: str = ""
