"""``smesh review``: reviewers with different lenses reach consensus on findings.

Every chunk of every selected file becomes one scan task per lens (security, performance,
style, documentation by default) whose reviewers have affinity for the file's language;
reviewers claim those tasks through the field. Each reported issue is a finding signal.
Every *other* lens judges each finding blind (agree, disagree or unsure, with a reason);
agreements reinforce it. A finding is agreed once the trust-weighted support of its
independent lenses passes the quorum (see :mod:`smesh.apps.findings`); findings that a
lens disagreed with and that were not agreed are listed as disputed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from smesh.agents import Agent, TaskSpec, Team
from smesh.apps.common import AppOptions, ScanReport, summarize
from smesh.apps.files import DEFAULT_MAX_BYTES, chunk_file, select_files
from smesh.apps.findings import ConsensusRule, FindingLedger, FindingState
from smesh.apps.sarif import SarifResult, SarifRule, to_sarif
from smesh.apps.scan import Lens, ScanAgent, Settlement, SourceView, outputs_in_order, scan_spec
from smesh.backends.base import Backend
from smesh.clock import SystemClock
from smesh.errors import UsageError
from smesh.field import Field
from smesh.trust import TrustTable

__all__ = [
    "DEFAULT_REVIEWERS",
    "LENSES",
    "ReviewFinding",
    "ReviewReport",
    "review_sarif",
    "run_review",
]

_CODE = (
    "python",
    "javascript",
    "typescript",
    "go",
    "rust",
    "java",
    "kotlin",
    "c",
    "cpp",
    "csharp",
    "ruby",
    "php",
    "swift",
    "scala",
    "lua",
    "shell",
)


def _code(value: float, **others: float) -> dict[str, float]:
    return {**dict.fromkeys(_CODE, value), **others}


LENSES: dict[str, Lens] = {
    "security": Lens(
        name="security",
        role="You are a security code reviewer. You report only real, exploitable problems.",
        focus=(
            "security problems: injection (SQL, shell, code), unsafe handling of user input, "
            "path traversal, hard-coded secrets or passwords, weak cryptography"
        ),
        affinity=_code(0.9, sql=0.9, html=0.7),
        default_affinity=0.3,
    ),
    "performance": Lens(
        name="performance",
        role="You are a performance engineer reviewing code. You report only real slowness.",
        focus=(
            "performance problems: nested loops that make an algorithm quadratic, repeated "
            "work inside loops, slow lookups in lists where a set or dict would do"
        ),
        affinity=_code(0.9, sql=0.6),
        default_affinity=0.2,
    ),
    "style": Lens(
        name="style",
        role="You are a code reviewer who cares about clarity and maintainability.",
        focus=(
            "style and maintainability problems: bare or over-broad exception handlers that "
            "swallow errors, unclear names, unused variables, duplicated code"
        ),
        affinity=_code(0.8, html=0.5),
        default_affinity=0.3,
    ),
    "documentation": Lens(
        name="documentation",
        role="You are a technical writer reviewing code documentation.",
        focus=(
            "documentation problems: public functions, classes or modules with no docstring "
            "or comment saying what they do, and comments that contradict the code"
        ),
        affinity=_code(0.8),
        default_affinity=0.3,
    ),
}
DEFAULT_REVIEWERS: tuple[str, ...] = tuple(LENSES)
#: a lens reviews a language only when its affinity reaches this
MIN_AFFINITY = 0.5


class ReviewFinding(msgspec.Struct, frozen=True, kw_only=True):
    """One finding in ``smesh review --format json`` (a stable contract)."""

    file: str
    line_start: int
    line_end: int
    category: str
    severity: str
    message: str
    support: list[str]
    disputed: bool
    consensus: bool


class ReviewReport(ScanReport[ReviewFinding], frozen=True, kw_only=True):
    """The findings of a review run and its summary."""


def reviewer_ids(reviewers: Sequence[str]) -> list[tuple[str, Lens]]:
    """Agent ids for the requested lenses (``security,security`` gives two copies).

    Raises:
        UsageError: an unknown lens.
    """
    unknown = [r for r in reviewers if r not in LENSES]
    if unknown or not reviewers:
        raise UsageError(
            f"unknown reviewer {', '.join(unknown) or '(none)'}; choose from {', '.join(LENSES)}"
        )
    counts = {r: reviewers.count(r) for r in reviewers}
    seen: dict[str, int] = {}
    out: list[tuple[str, Lens]] = []
    for r in reviewers:
        seen[r] = seen.get(r, 0) + 1
        out.append((r if counts[r] == 1 else f"{r}-{seen[r]}", LENSES[r]))
    return out


def describe(ledger: FindingLedger, state: FindingState) -> list[str]:
    """Each judge's opinion on a finding, for the human-readable reports."""
    return [
        f"{agent}: {opinion}" + (f" — {reason}" if reason else "")
        for agent, (opinion, reason) in state.judgements.items()
    ]


async def run_review(
    root: str | Path,
    backend: Backend,
    *,
    reviewers: Sequence[str] = DEFAULT_REVIEWERS,
    max_files: int | None = None,
    extensions: Sequence[str] | None = None,
    chunk_bytes: int = DEFAULT_MAX_BYTES,
    rule: ConsensusRule | None = None,
    options: AppOptions | None = None,
) -> ReviewReport:
    """Review the files under ``root`` with a team of lens reviewers.

    Raises:
        UsageError: ``root`` is missing or nothing under it can be reviewed.
    """
    opts = options or AppOptions()
    lenses = reviewer_ids(list(reviewers))
    files = select_files(root, extensions=extensions, max_files=max_files)
    if not files:
        raise UsageError(f"no reviewable source files under {str(root)!r}")
    field = Field(opts.clock or SystemClock())
    trust = TrustTable()
    groups = {agent_id: lens.name for agent_id, lens in lenses}
    ledger = FindingLedger(
        field,
        groups=groups,
        trust=trust,
        rule=rule or ConsensusRule(),
        bucket_size=3,
        join_within=2,
    )
    source = SourceView(root)
    names = list(dict.fromkeys(lens.name for _, lens in lenses))
    languages = sorted({f.language for f in files})

    def judges_for(state: FindingState) -> list[str]:
        return [n for n in names if n != state.key.label]

    agents: list[Agent] = [
        ScanAgent(
            agent_id,
            lens=lens,
            languages=languages,
            source=source,
            ledger=ledger,
            judges_for=judges_for,
            backend=backend,
        )
        for agent_id, lens in lenses
    ]
    tasks: list[TaskSpec] = []
    for f in files:
        for chunk in chunk_file(root, f, chunk_bytes):
            for name in names:
                if LENSES[name].affinity_for(f.language) >= MIN_AFFINITY:
                    tasks.append(scan_spec(chunk, name))
    team = Team(
        agents,
        field=field,
        settings=opts.settings,
        budget=opts.budget,
        journal=opts.journal,
        seed=opts.seed,
        run_id=opts.run_id,
        trust=trust,
        resume=opts.resume,
    )
    if opts.resume:
        ledger.replay(outputs_in_order(team.board))
    settlement = Settlement(team.board, ledger)
    opts.started(team.board)
    report = await team.run(tasks, on_change=opts.on_change)
    now = field.clock.now()
    settlement.finish(now)
    findings: list[ReviewFinding] = []
    notes: list[list[str]] = []
    for state in ledger.ordered():
        verdict = ledger.assess(state, now)
        lead = state.lead
        findings.append(
            ReviewFinding(
                file=state.key.file,
                line_start=lead.line_start,
                line_end=lead.line_end,
                category=state.key.label,
                severity=lead.severity,
                message=lead.message,
                support=verdict.support,
                disputed=verdict.disputed,
                consensus=verdict.consensus,
            )
        )
        notes.append(describe(ledger, state))
    ledger.close()
    summary = summarize(report, consensus=sum(f.consensus for f in findings), total=len(findings))
    return ReviewReport(findings=findings, summary=summary, judgements=notes, root=str(root))


def review_sarif(report: ReviewReport) -> dict[str, Any]:
    """The review as a SARIF 2.1.0 log."""
    rules = [SarifRule(id=name, description=lens.focus) for name, lens in LENSES.items()]
    results = [
        SarifResult(
            rule=f.category,
            file=f.file,
            line_start=f.line_start,
            line_end=f.line_end,
            severity=f.severity,
            message=f.message,
            consensus=f.consensus,
            properties={"support": f.support, "disputed": f.disputed},
        )
        for f in report.findings
    ]
    base = Path(report.root) if report.root else None
    if base is not None and base.is_file():
        base = base.parent
    return to_sarif(
        tool="smesh-review",
        rules=rules,
        results=results,
        root=base,
        properties={"summary": msgspec.to_builtins(report.summary)},
    )
