"""What the review, swarm and code apps share: run options and the closing summary."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import msgspec

from smesh.agents import RunReport, Settings
from smesh.agents.board import TaskBoard, TaskState
from smesh.agents.runtime import Budget
from smesh.clock import Clock

__all__ = ["APP_SETTINGS", "AppOptions", "ScanReport", "Summary", "summarize"]

FindingT = TypeVar("FindingT")

#: protocol timing for the apps: LLM calls on a small CPU model take seconds, not minutes
APP_SETTINGS = Settings(lease_s=30.0, poll_s=2.0, work_timeout_s=240.0, idle_timeout_s=180.0)


class AppOptions:
    """How to run an app's team: everything but the agents and the tasks.

    Args:
        settings: protocol timing.
        budget: hard limits (calls, tokens, wall time).
        journal: an open journal, or None.
        run_id: the run's id (the one to continue when ``resume``).
        resume: continue ``run_id`` from the journal.
        clock: the field's clock (default: the system clock).
        seed: base seed of the agents' RNGs.
        on_change: called after every change on the task board (progress views).
        on_start: called with the task board once the team is ready.
    """

    def __init__(
        self,
        *,
        settings: Settings | None = None,
        budget: Budget | None = None,
        journal: Any = None,
        run_id: str | None = None,
        resume: bool = False,
        clock: Clock | None = None,
        seed: int = 0,
        on_change: Callable[[TaskState, str], None] | None = None,
        on_start: Callable[[TaskBoard], None] | None = None,
    ) -> None:
        self.settings = settings or APP_SETTINGS
        self.budget = budget or Budget()
        self.journal = journal
        self.run_id = run_id
        self.resume = resume
        self.clock = clock
        self.seed = seed
        self.on_change = on_change
        self.on_start = on_start

    def started(self, board: TaskBoard) -> None:
        """Tell the ``on_start`` hook that the team is ready."""
        if self.on_start is not None:
            self.on_start(board)


class Summary(msgspec.Struct, frozen=True, kw_only=True):
    """The closing numbers of an app run (the ``summary`` object of ``--json``).

    Attributes:
        run_id: journal id of the run (``--resume`` takes it).
        duration_s: wall time of the run.
        llm_calls: backend calls made.
        tokens: input + output tokens.
        signals: signals emitted into the field.
        reinforcements: times an agent corroborated a live signal.
        consensus: findings agreed (review, swarm) or modules accepted (code).
        total: findings reported (review, swarm) or modules planned (code).
        stopped_by: ``quiescent``, ``budget`` or ``idle``.
        tasks: tasks on the board.
        trust: learned trust per agent at the end.
    """

    run_id: str
    duration_s: float
    llm_calls: int
    tokens: int
    signals: int
    reinforcements: int
    consensus: int
    total: int
    stopped_by: str
    tasks: int
    trust: dict[str, float]


def summarize(report: RunReport, *, consensus: int, total: int) -> Summary:
    """Build the summary of a finished team run."""
    stats = report.signals
    return Summary(
        run_id=report.run_id,
        duration_s=report.duration_s,
        llm_calls=report.llm_calls,
        tokens=report.tokens,
        signals=stats.emitted if stats is not None else 0,
        reinforcements=stats.reinforcements if stats is not None else 0,
        consensus=consensus,
        total=total,
        stopped_by=report.stopped_by,
        tasks=len(report.tasks),
        trust=dict(report.trust),
    )


class ScanReport(msgspec.Struct, Generic[FindingT], frozen=True, kw_only=True):
    """The findings of a review or swarm run and its summary.

    Attributes:
        findings: every finding, in file and line order.
        summary: the run's closing numbers.
        judgements: per finding (same order), who said what, for human-readable reports.
        root: the scanned path.
    """

    findings: list[FindingT]
    summary: Summary
    judgements: list[list[str]] = []
    root: str = ""

    def contract(self) -> dict[str, Any]:
        """The ``--format json`` document: ``{"findings": [...], "summary": {...}}``."""
        return {
            "findings": msgspec.to_builtins(self.findings),
            "summary": msgspec.to_builtins(self.summary),
        }
