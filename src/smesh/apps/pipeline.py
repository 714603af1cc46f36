"""The scan pipeline that ``review`` and ``swarm`` share.

Both apps do the same thing with different points of view:

1. select the files and gather the cheap evidence about each (:mod:`smesh.apps.evidence`:
   its sinks and what reaches them, its review cues), and run the analyzers (bandit, the
   flow analysis): seconds, no model;
2. plan the LLM work from that evidence (:mod:`smesh.apps.plan`): which lens answers
   which checks in which region; a file with nothing to ask about costs nothing; estimate
   what the plan costs and fit (or check) the budget before anything is asked;
3. let a team of :class:`~smesh.apps.scan.ScanAgent` and
   :class:`~smesh.apps.scan.AnalyzerAgent` work through the tasks while the
   :class:`~smesh.apps.findings.FindingLedger` follows the findings, settle each finding
   once its judges are done, and turn the settled findings into the app's report.

:func:`run_scan` is that pipeline; a :class:`ScanPlan` is everything an app adds to it:
its lenses and analyzers, its consensus rule and finding geometry, who judges a finding,
and how a settled finding reads in its report.

A resumed run plans the same tasks from the same evidence and rebuilds the ledger from
the results in the journal before the team starts (:func:`outputs_in_order`), so finished
checks and judgements are not asked again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

from smesh.agents import Agent, TaskSpec
from smesh.agents.board import TaskBoard, TaskState
from smesh.apps.analyzers import Analyzer, RawFinding
from smesh.apps.common import ScanReport, Summary, summarize
from smesh.apps.evidence import FileEvidence, gather
from smesh.apps.files import SourceFile, select_files
from smesh.apps.findings import Assessment, ConsensusRule, FindingLedger, FindingState
from smesh.apps.lens import Lens, cwe_label
from smesh.apps.options import RunOptions
from smesh.apps.plan import CostModel, Estimate, PlanIndex, estimate, plan_work
from smesh.apps.scan import (
    AnalyzerAgent,
    RegionTurns,
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
    "MAX_AUTO_SECONDS",
    "MIN_AFFINITY",
    "JudgesPolicy",
    "Judging",
    "ScanPlan",
    "Settlement",
    "fit_budget",
    "outputs_in_order",
    "run_scan",
]

ReportT = TypeVar("ReportT", bound=ScanReport[Any])

#: a lens scans a language only when its affinity reaches this
MIN_AFFINITY = 0.5
#: analyzers start with this trust: deterministic, but not free of false positives
ANALYZER_TRUST = 0.7
#: the longest wall-time budget fitted to a plan when none is given
MAX_AUTO_SECONDS = 3600.0


@dataclasses.dataclass(frozen=True, slots=True)
class Judging:
    """What a judges policy may look at: the ledger, the lenses in the run, the plan."""

    ledger: FindingLedger
    present: Mapping[str, Lens]
    index: PlanIndex


#: ``(judging, finding) -> groups that should judge it``
JudgesPolicy = Callable[[Judging, FindingState], Sequence[str]]


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
        role: the system prompt of every LLM agent (one per app: the shared prefix).
        review: plan as ``review`` does (a security lens and cue lenses).
        label_for: the finding label of an analyzer's CWE.
        bucket_size: lines per finding bucket (see :class:`FindingLedger`).
        join_within: how close a report must be to join a neighbouring bucket's finding.
        nothing_to_scan: the start of the error when no file under the root qualifies.
        min_affinity: the affinity a lens needs for a language to look at files in it.
        analyzer_trust: the trust an analyzer starts with.
        max_files: scan at most this many files.
        extensions: only files with these extensions (default: every known language).
        only: only these files (relative paths), e.g. the ones changed since a commit.
        ask_settled: also ask about sinks whose input the flow analysis found safe.
    """

    lenses: Sequence[tuple[str, Lens]]
    analyzers: Sequence[Analyzer] = ()
    rule: ConsensusRule
    judges: JudgesPolicy
    finding: Callable[[FindingState, Assessment, PlanIndex], Any]
    notes: Callable[[FindingState], list[str]]
    report: type[ReportT]
    role: str = ""
    review: bool = False
    label_for: Callable[[int], str] = cwe_label
    bucket_size: int = 10
    join_within: int = 3
    nothing_to_scan: str = "no source files"
    min_affinity: float = MIN_AFFINITY
    analyzer_trust: float = ANALYZER_TRUST
    max_files: int | None = None
    extensions: Sequence[str] | None = None
    only: Sequence[str] | None = None
    ask_settled: bool = False

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


def fit_budget(options: RunOptions, plan: Estimate) -> tuple[RunOptions, str | None]:
    """The options with the limits nobody gave fitted to ``plan`` (when asked to fit
    them), and a warning when the budget cannot hold the planned work."""
    budget = options.budget
    if options.fit_budget:
        # fitted in place: the run's session and stop watch hold this very budget
        budget.fill(
            calls=max(40, 2 * plan.calls + 20),
            wall_s=min(MAX_AUTO_SECONDS, max(120.0, 2.0 * plan.seconds + 60.0)),
        )
    limit_s = budget.limits.get("wall_s")
    limit_calls = budget.limits.get("calls")
    short: list[str] = []
    if limit_s is not None and plan.seconds > limit_s:
        short.append(f"~{plan.seconds:.0f} s of LLM work against a budget of {limit_s:g} s")
    if limit_calls is not None and plan.calls > limit_calls:
        short.append(f"~{plan.calls} LLM calls against a budget of {limit_calls:g}")
    if not short:
        return options, None
    return options, (
        "this scan will not finish within its budget: "
        + "; ".join(short)
        + " (raise --max-seconds/--max-calls, or narrow it with --max-files, --ext or --changed)"
    )


async def _run_analyzers(
    tools: Sequence[Analyzer], root: Path, files: Sequence[SourceFile], evidence: list[FileEvidence]
) -> dict[str, list[RawFinding] | BaseException]:
    """Every analyzer's findings (or the exception it raised), before anything is planned."""
    out: dict[str, list[RawFinding] | BaseException] = {}
    for tool in tools:
        use = getattr(tool, "use", None)
        if callable(use):
            use(evidence)  # the flow analysis takes the evidence instead of gathering it again
        try:
            out[tool.name] = await tool.run(root, [f.path for f in files])
        except Exception as exc:  # reported as that analyzer's failure, in its task
            out[tool.name] = exc
    return out


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
    files = select_files(root, extensions=plan.extensions)
    if plan.only is not None:
        wanted = set(plan.only)
        files = [f for f in files if f.path in wanted]
    files = files[: plan.max_files] if plan.max_files is not None else files
    if not files and plan.only is not None:
        return _nothing_changed(plan, root, opts)  # a clean diff: an empty report, exit 0
    if not files:
        raise UsageError(f"{plan.nothing_to_scan} under {str(root)!r}")
    base = Path(root) if Path(root).is_dir() else Path(root).parent
    evidence = [gather(root, f) for f in files]
    results = await _run_analyzers(plan.analyzers, base, files, evidence)
    reported: dict[str, list[RawFinding]] = {}
    for tool in plan.analyzers:
        found = results.get(tool.name)
        if isinstance(found, list) and not getattr(tool, "evidence_based", False):
            for f in found:
                reported.setdefault(f.file, []).append(f)
    present = plan.present()
    works = plan_work(
        evidence,
        present,
        reported=reported,
        review=plan.review,
        min_affinity=plan.min_affinity,
        ask_settled=plan.ask_settled,
    )
    index = PlanIndex(
        works,
        evidence,
        {name: found for name, found in results.items() if isinstance(found, list)},
    )
    cost = CostModel.for_backend(getattr(backend, "name", "") if backend is not None else "")
    planned = estimate(works, evidence, cost)
    opts, warning = fit_budget(opts, planned)
    opts.planned(planned, warning)

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
    judging = Judging(ledger, present, index)

    def judges_for(state: FindingState) -> Sequence[str]:
        return plan.judges(judging, state)

    agents = _agents(plan, root, files, evidence, backend, ledger, judges_for, index, results)
    tasks: list[TaskSpec] = [analyzer_spec(tool) for tool in plan.analyzers]
    tasks += [scan_spec(work) for work in works]
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
        findings.append(plan.finding(state, verdict, index))
        notes.append(plan.notes(state))
    ledger.close()
    summary = summarize(report, consensus=agreed, total=len(findings))
    unfinished = [
        t.spec.task_id
        for t in team.board.tasks.values()
        if t.outcome != "accepted" and not t.spec.skill.startswith("analyze:")
    ]
    return plan.report(
        findings=findings,
        summary=summary,
        judgements=notes,
        root=str(root),
        analyzer_failures=failures,
        plan=planned,
        unfinished=unfinished,
    )


def _nothing_changed(plan: ScanPlan[ReportT], root: str | Path, opts: RunOptions) -> ReportT:
    """The report of a scan limited to files none of which qualifies: nothing to do."""
    summary = Summary(
        run_id=opts.run_id or "",
        duration_s=0.0,
        llm_calls=0,
        tokens=0,
        signals=0,
        reinforcements=0,
        consensus=0,
        total=0,
        stopped_by="quiescent",
        tasks=0,
        trust={},
    )
    planned = estimate([], [], CostModel())
    opts.planned(planned, None)
    return plan.report(findings=[], summary=summary, root=str(root), plan=planned)


def _agents(
    plan: ScanPlan[Any],
    root: str | Path,
    files: Sequence[SourceFile],
    evidence: Sequence[FileEvidence],
    backend: Backend | None,
    ledger: FindingLedger,
    judges_for: Callable[[FindingState], Sequence[str]],
    index: PlanIndex,
    results: Mapping[str, list[RawFinding] | BaseException],
) -> list[Agent]:
    """One scan agent per lens copy, one analyzer agent per analyzer."""
    agents: list[Agent] = []
    if plan.lenses:
        if backend is None:
            raise UsageError("LLM agents need a backend")
        source = SourceView(root)
        turns = RegionTurns()
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
                index=index,
                role=plan.role,
                turns=turns,
            )
            for agent_id, lens in plan.lenses
        ]
    base = Path(root)
    counts = {ev.path: len(ev.lines) for ev in evidence}
    agents += [
        AnalyzerAgent(
            tool.name,
            analyzer=tool,
            root=base if base.is_dir() else base.parent,
            files=[f.path for f in files],
            ledger=ledger,
            judges_for=judges_for,
            label_for=plan.label_for,
            result=results.get(tool.name),
            line_counts=counts,
            anchor=index.anchor,
        )
        for tool in plan.analyzers
    ]
    return agents


def analyzer_failures(board: TaskBoard, tools: Sequence[Analyzer]) -> list[str]:
    """One line per analyzer whose task did not end accepted, with the error it raised.

    An analyzer's result is reported inside its one-attempt ``analyze:<name>`` task; an
    exception (a crash, an error exit, unparsable output, a timeout) is that task's error
    result.
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
