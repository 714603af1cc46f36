"""The scan pipeline that ``review`` and ``swarm`` share.

Both apps do the same thing with different points of view: select and chunk the files,
post one scan task per chunk and suited lens (and one task per analyzer), let a team of
:class:`~smesh.apps.scan.ScanAgent` and :class:`~smesh.apps.scan.AnalyzerAgent` work
through them while the :class:`~smesh.apps.findings.FindingLedger` follows the findings,
settle each finding once its judges are done, and turn the settled findings into the
app's report. :func:`run_scan` is that pipeline; a :class:`ScanPlan` is everything an app
adds to it: its lenses and analyzers, its consensus rule and finding geometry, who judges
a finding, and how a settled finding reads in its report.

A resumed run rebuilds the ledger from the results in the journal before the team starts
(:func:`outputs_in_order`), so finished scans and judgements are not asked again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

from smesh.agents import Agent, TaskSpec
from smesh.agents.board import TaskBoard, TaskState
from smesh.apps.analyzers import Analyzer
from smesh.apps.common import ScanReport, summarize
from smesh.apps.files import DEFAULT_MAX_BYTES, SourceFile, chunk_file, select_files
from smesh.apps.findings import Assessment, ConsensusRule, FindingLedger, FindingState
from smesh.apps.lens import Lens
from smesh.apps.options import RunOptions
from smesh.apps.scan import (
    AnalyzerAgent,
    JudgesFor,
    ScanAgent,
    SourceView,
    analyzer_spec,
    scan_spec,
)
from smesh.backends.base import Backend
from smesh.errors import UsageError
from smesh.trust import TrustTable

__all__ = [
    "ANALYZER_TRUST",
    "MIN_AFFINITY",
    "JudgesPolicy",
    "ScanPlan",
    "Settlement",
    "outputs_in_order",
    "run_scan",
]

ReportT = TypeVar("ReportT", bound=ScanReport[Any])

#: a lens scans a language only when its affinity reaches this
MIN_AFFINITY = 0.5
#: analyzers start with this trust: deterministic, but not free of false positives
ANALYZER_TRUST = 0.7

#: ``(ledger, lenses in the run by name, finding) -> groups that should judge it``
JudgesPolicy = Callable[[FindingLedger, Mapping[str, Lens], FindingState], Sequence[str]]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ScanPlan(Generic[ReportT]):
    """What one scan app adds to the shared pipeline, and which files it scans.

    Attributes:
        lenses: ``(agent id, lens)`` of every LLM agent (copies of a lens share its group).
        analyzers: non-LLM analyzers, one agent and one independence group each.
        rule: when a finding counts as agreed.
        judges: which groups judge a finding (the pipeline never asks its own reporters).
        finding: a settled finding as the app reports it.
        notes: who said what about a finding, for the human-readable reports.
        report: the app's report type.
        bucket_size: lines per finding bucket (see :class:`FindingLedger`).
        join_within: how close a report must be to join a neighbouring bucket's finding.
        nothing_to_scan: the start of the error when no file under the root qualifies.
        min_affinity: the affinity a lens needs for a language to scan files in it.
        analyzer_trust: the trust an analyzer starts with.
        max_files: scan at most this many files.
        extensions: only files with these extensions (default: every known language).
        chunk_bytes: bytes per scanned chunk.
    """

    lenses: Sequence[tuple[str, Lens]]
    analyzers: Sequence[Analyzer] = ()
    rule: ConsensusRule
    judges: JudgesPolicy
    finding: Callable[[FindingState, Assessment], Any]
    notes: Callable[[FindingState], list[str]]
    report: type[ReportT]
    bucket_size: int = 10
    join_within: int = 3
    nothing_to_scan: str = "no source files"
    min_affinity: float = MIN_AFFINITY
    analyzer_trust: float = ANALYZER_TRUST
    max_files: int | None = None
    extensions: Sequence[str] | None = None
    chunk_bytes: int = DEFAULT_MAX_BYTES

    def groups(self) -> dict[str, str]:
        """Agent id -> independence group, for every agent of the plan."""
        groups = {agent_id: lens.name for agent_id, lens in self.lenses}
        groups.update({tool.name: tool.name for tool in self.analyzers})
        return groups

    def present(self) -> dict[str, Lens]:
        """The lenses in the run by name, in the order first requested."""
        return {lens.name: lens for _, lens in self.lenses}


class Settlement:
    """Settles each finding in the ledger once every judge task on it is final.

    Args:
        board: the run's task board.
        ledger: the finding ledger.
    """

    def __init__(self, board: TaskBoard, ledger: FindingLedger) -> None:
        self.board = board
        self.ledger = ledger
        self._judges: dict[str, list[str]] = {}  # finding -> judge task ids
        for task in board.tasks.values():
            self._index(task)
        board.on_change(self._changed)

    def _index(self, task: TaskState) -> None:
        spec = task.spec
        if spec.skill.startswith("judge:") and isinstance(spec.input, dict):
            tasks = self._judges.setdefault(str(spec.input.get("finding")), [])
            if spec.task_id not in tasks:
                tasks.append(spec.task_id)

    def _changed(self, task: TaskState, what: str) -> None:
        if what == "task":
            self._index(task)
            return
        if not (task.final and task.spec.skill.startswith("judge:")):
            return
        address = str(task.spec.input.get("finding"))
        if all(self.board.tasks[t].final for t in self._judges.get(address, ())):
            self.ledger.settle(address, self.board.field.clock.now())

    def finish(self, now: float) -> None:
        """Settle whatever is left (findings nobody needed to judge)."""
        for address in list(self.ledger.findings):
            self.ledger.settle(address, now)


def outputs_in_order(board: TaskBoard) -> list[tuple[str, Any]]:
    """Every result on the board as ``(agent, output)``, oldest first (for replay)."""
    results = [r for t in board.tasks.values() for r in t.results.values()]
    results.sort(key=lambda s: (s.created_at, s.address))
    return [(r.origin, r.payload.get("output")) for r in results]


def _agents(
    plan: ScanPlan[Any],
    root: str | Path,
    files: Sequence[SourceFile],
    backend: Backend | None,
    ledger: FindingLedger,
    judges_for: JudgesFor,
) -> list[Agent]:
    """One scan agent per lens copy, one analyzer agent per analyzer."""
    agents: list[Agent] = []
    if plan.lenses:
        if backend is None:
            raise UsageError("LLM agents need a backend")
        source = SourceView(root)
        languages = sorted({f.language for f in files})
        agents += [
            ScanAgent(
                agent_id,
                lens=lens,
                languages=languages,
                source=source,
                ledger=ledger,
                judges_for=judges_for,
                backend=backend,
            )
            for agent_id, lens in plan.lenses
        ]
    base = Path(root)
    agents += [
        AnalyzerAgent(
            tool.name,
            analyzer=tool,
            root=base if base.is_dir() else base.parent,
            files=[f.path for f in files],
            ledger=ledger,
            judges_for=judges_for,
        )
        for tool in plan.analyzers
    ]
    return agents


def _tasks(plan: ScanPlan[Any], root: str | Path, files: Sequence[SourceFile]) -> list[TaskSpec]:
    """One task per analyzer, then one per chunk and lens suited to its language."""
    tasks = [analyzer_spec(tool) for tool in plan.analyzers]
    lenses = plan.present()
    for f in files:
        for chunk in chunk_file(root, f, plan.chunk_bytes):
            tasks += [
                scan_spec(chunk, name)
                for name, lens in lenses.items()
                if lens.affinity_for(f.language) >= plan.min_affinity
            ]
    return tasks


async def run_scan(
    root: str | Path,
    backend: Backend | None,
    plan: ScanPlan[ReportT],
    options: RunOptions | None = None,
) -> ReportT:
    """Scan ``root`` as ``plan`` says and report the settled findings.

    Args:
        root: the directory (or file) to scan.
        backend: the model of the LLM agents (None only when the plan has no lenses).
        plan: the app's part and the files to scan.
        options: how to run the team.

    Raises:
        UsageError: nothing under ``root`` to scan, or LLM agents without a backend.
    """
    opts = options or RunOptions()
    if plan.lenses and backend is None:
        raise UsageError("LLM agents need a backend")
    files = select_files(root, extensions=plan.extensions, max_files=plan.max_files)
    if not files:
        raise UsageError(f"{plan.nothing_to_scan} under {str(root)!r}")
    field = opts.field()
    trust = TrustTable()
    ledger = FindingLedger(
        field,
        groups=plan.groups(),
        trust=trust,
        rule=plan.rule,
        bucket_size=plan.bucket_size,
        join_within=plan.join_within,
    )
    present = plan.present()

    def judges_for(state: FindingState) -> Sequence[str]:
        return plan.judges(ledger, present, state)

    agents = _agents(plan, root, files, backend, ledger, judges_for)
    tasks = _tasks(plan, root, files)
    team = opts.team(agents, field=field, trust=trust)
    # analyzers start at analyzer_trust unless the team already knows them (a replay)
    for tool in plan.analyzers:
        if tool.name not in trust:
            trust.set(tool.name, plan.analyzer_trust, field.clock.now())
    if opts.resume:
        ledger.replay(outputs_in_order(team.board))
    settlement = Settlement(team.board, ledger)
    opts.started(team.board)
    report = await team.run(tasks, on_change=opts.on_change)
    failures = analyzer_failures(team.board, plan.analyzers)
    now = field.clock.now()
    settlement.finish(now)
    findings: list[Any] = []
    notes: list[list[str]] = []
    agreed = 0
    for state in ledger.ordered():
        verdict = ledger.assess(state, now)
        agreed += verdict.consensus
        findings.append(plan.finding(state, verdict))
        notes.append(plan.notes(state))
    ledger.close()
    summary = summarize(report, consensus=agreed, total=len(findings))
    return plan.report(
        findings=findings,
        summary=summary,
        judgements=notes,
        root=str(root),
        analyzer_failures=failures,
    )


def analyzer_failures(board: TaskBoard, tools: Sequence[Analyzer]) -> list[str]:
    """One line per analyzer whose task did not end accepted, with the error it raised.

    An analyzer runs inside its one-attempt ``analyze:<name>`` task; an exception there (a
    crash, an error exit, unparsable output, a timeout) is that task's error result.
    """
    failed: list[str] = []
    for tool in tools:
        task = board.tasks.get(f"analyze:{tool.name}")
        if task is not None and task.outcome == "accepted":
            continue
        errors = [] if task is None else [r.payload.get("error") for r in task.results.values()]
        reason = next((str(e) for e in reversed(errors) if e), "it did not finish")
        failed.append(f"{tool.name}: {reason}")
    return failed
