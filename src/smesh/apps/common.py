"""What the apps report: the closing summary of a run (``review``, ``swarm``, ``code``) and
the findings report of a scan (``review``, ``swarm``).

How a run is run is :class:`smesh.apps.options.RunOptions`.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import msgspec

from smesh.agents import RunReport

__all__ = ["ScanReport", "Summary", "summarize"]

FindingT = TypeVar("FindingT")


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
        analyzer_failures: one line per analyzer that did not work (error, unparsable
            output, timeout, never ran); the command then exits 1.
        plan: what the scan planned before it started (checks, calls, seconds), as
            :meth:`smesh.apps.plan.Estimate` has it.
        unfinished: scan and judge tasks that did not finish (the budget ran out).
    """

    findings: list[FindingT]
    summary: Summary
    judgements: list[list[str]] = []
    root: str = ""
    analyzer_failures: list[str] = []
    plan: Any = None
    unfinished: list[str] = []

    def contract(self) -> dict[str, Any]:
        """The ``--format json`` document: ``{"findings": [...], "summary": {...}}``, plus
        ``"plan"`` (what was planned), ``"unfinished"`` when tasks did not finish and
        ``"analyzer_failures"`` when an analyzer failed."""
        doc: dict[str, Any] = {
            "findings": msgspec.to_builtins(self.findings),
            "summary": msgspec.to_builtins(self.summary),
        }
        if self.plan is not None:
            doc["plan"] = msgspec.to_builtins(self.plan)
        if self.unfinished:
            doc["unfinished"] = list(self.unfinished)
        if self.analyzer_failures:
            doc["analyzer_failures"] = list(self.analyzer_failures)
        return doc
