"""Running one condition over the items of a suite, with a fresh token meter per item.

Items run a few at a time (the embedded model decodes several sequences in one batch);
each gets its own :class:`~smesh.eval.budget.TokenMeter`, so every condition is held to
the same budget per item. The wall time reported per item is the condition's wall time
divided by the items, which is what a user waits for on average at that concurrency.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import msgspec

from smesh.backends import Backend
from smesh.errors import BackendError
from smesh.eval.budget import TokenMeter
from smesh.eval.result import ConditionResult, EvalResult, ItemRecord
from smesh.eval.stats import bootstrap_ci, mean, paired_difference

__all__ = [
    "Attempt",
    "ConditionRun",
    "Progress",
    "build_result",
    "run_condition",
    "summarize",
]

T = TypeVar("T")

#: ``progress(condition, done, total)``
Progress = Callable[[str, int, int], None]


class Attempt(msgspec.Struct, frozen=True, kw_only=True):
    """What a condition produced on one item, before scoring."""

    answer: str | None
    detail: str = ""


class ConditionRun(msgspec.Struct, frozen=True, kw_only=True):
    """A condition's records and wall time."""

    name: str
    records: list[ItemRecord]
    wall_s: float

    def result(self, seed: int) -> ConditionResult:
        """Headline figures with a seeded bootstrap interval."""
        return summarize(self.name, self.records, self.wall_s, seed)


def summarize(
    name: str, records: Sequence[ItemRecord], wall_s: float, seed: int
) -> ConditionResult:
    """Mean score with its 95 % bootstrap interval, mean tokens, wall seconds per item."""
    scores = [r.score for r in records]
    low, high = bootstrap_ci(scores, seed=seed)
    n = max(1, len(records))
    return ConditionResult(
        name=name,
        score=round(mean(scores), 4),
        ci_low=round(low, 4),
        ci_high=round(high, 4),
        tokens_per_item=round(mean([float(r.tokens) for r in records]), 1),
        seconds_per_item=round(wall_s / n, 3),
    )


async def run_condition(
    name: str,
    items: Sequence[tuple[str, T]],
    solve: Callable[[T, Backend, TokenMeter], Awaitable[Attempt]],
    score: Callable[[T, Attempt], Awaitable[float]],
    *,
    backend: Backend,
    budget: int | None,
    concurrency: int = 4,
    progress: Progress | None = None,
) -> ConditionRun:
    """Run ``solve`` on every item with its own meter, then ``score`` what it produced.

    Args:
        name: the condition's name.
        items: ``(item id, item)`` pairs, in order.
        solve: ``solve(item, backend, meter)``; it wraps ``backend`` in a
            :class:`~smesh.eval.budget.Metered` on ``meter``.
        score: ``score(item, attempt)`` in [0, 1].
        backend: the shared backend.
        budget: tokens per item (None: unlimited).
        concurrency: items in flight at once.
        progress: called after each item.
    """
    gate = asyncio.Semaphore(max(1, concurrency))
    failures: list[str] = []
    records: dict[int, ItemRecord] = {}
    done = 0

    async def one(index: int, item_id: str, item: T) -> None:
        nonlocal done
        async with gate:
            meter = TokenMeter(budget)
            started = time.perf_counter()
            try:
                attempt = await solve(item, backend, meter)
            except BackendError as exc:  # one bad item must not sink a long run
                failures.append(f"{item_id}: {exc}")
                attempt = Attempt(answer=None, detail=f"backend error: {exc}"[:200])
            seconds = time.perf_counter() - started
            value = await score(item, attempt)
        records[index] = ItemRecord(
            item=item_id,
            score=value,
            tokens=meter.used,
            calls=meter.calls,
            seconds=round(seconds, 3),
            detail=attempt.detail,
        )
        done += 1
        if progress is not None:
            progress(name, done, len(items))

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for index, (item_id, item) in enumerate(items):
            group.create_task(one(index, item_id, item))
    wall = time.perf_counter() - started
    if items and len(failures) == len(items):
        raise BackendError(f"{name}: the backend failed on every item ({failures[0]})")
    return ConditionRun(name=name, records=[records[i] for i in range(len(items))], wall_s=wall)


def build_result(
    suite: str,
    backend: Backend,
    items: Sequence[Any],
    seed: int,
    budget: int | None,
    runs: Sequence[ConditionRun],
    *,
    extra: dict[str, Any],
) -> EvalResult:
    """The suite's result: headline figures per condition, paired differences between
    conditions (same items), and every item's record in ``extra["details"]``."""
    conditions = [run.result(seed) for run in runs]
    details: dict[str, Any] = {}
    for run in runs:
        details[run.name] = {
            "tokens_max": max((r.tokens for r in run.records), default=0),
            "calls_per_item": round(
                sum(r.calls for r in run.records) / max(1, len(run.records)), 2
            ),
            "items": [
                {"item": r.item, "score": r.score, "tokens": r.tokens, "detail": r.detail}
                for r in run.records
            ],
        }
    paired: dict[str, Any] = {}
    by_name = {run.name: [r.score for r in run.records] for run in runs}
    for a, scores_a in by_name.items():
        for b, scores_b in by_name.items():
            if a < b:
                diff, low, high = paired_difference(scores_a, scores_b, seed=seed)
                paired[f"{a} - {b}"] = [round(diff, 4), round(low, 4), round(high, 4)]
    return EvalResult(
        suite=suite,
        backend=str(getattr(backend, "name", "backend")),
        n=len(items),
        seed=seed,
        conditions=conditions,
        extra={"budget_tokens_per_item": budget, **extra, "paired": paired, "details": details},
    )
