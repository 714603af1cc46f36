"""``smesh review``: reviewers with different lenses reach consensus on findings.

The review plans its LLM work from cheap evidence, as the swarm does (see
:mod:`smesh.apps.plan`): the ``security`` lens answers questions about the sinks whose
input is not known to be safe, ``performance`` about loops inside loops and sequence scans
in loops, ``style`` about error handlers that swallow everything, ``documentation`` about
public functions without a docstring. A file with nothing of the sort costs no call. The
flow analysis takes part as a voice of its own: it reports a request's input reaching a
sink unsanitized, and disputes security findings where the input is a constant or
sanitized.

Each reported issue is a finding signal. A finding that lacks support after the planned
questions is judged blind by one other lens (agree, disagree or unsure, with a reason);
agreements reinforce it. A finding is agreed once the trust-weighted support of its
independent voices passes the quorum (see :mod:`smesh.apps.findings`); findings a voice
disagreed with and that were not agreed are listed as disputed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from smesh.apps.analyzers import Analyzer, make_analyzer
from smesh.apps.common import ScanReport
from smesh.apps.findings import Assessment, ConsensusRule, FindingState
from smesh.apps.lens import Lens, lens_agents
from smesh.apps.options import RunOptions
from smesh.apps.pipeline import Judging, ScanPlan, run_scan
from smesh.apps.plan import PlanIndex
from smesh.apps.questions import REVIEW_ROLE
from smesh.apps.sarif import SarifResult, SarifRule, sarif_log
from smesh.backends.base import Backend

__all__ = [
    "DEFAULT_ANALYZERS",
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
DEFAULT_ANALYZERS: tuple[str, ...] = ("flow",)


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

    @classmethod
    def settled(cls, state: FindingState, verdict: Assessment, index: PlanIndex) -> ReviewFinding:
        """A settled finding of the ledger as the review reports it."""
        lead = state.lead
        return cls(
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

    def sarif(self) -> SarifResult:
        """This finding as a SARIF result."""
        lines = (self.line_start, self.line_end)
        return SarifResult.of(self, rule=self.category, lines=lines, disputed=self.disputed)


class ReviewReport(ScanReport[ReviewFinding], frozen=True, kw_only=True):
    """The findings of a review run and its summary."""


def reviewer_ids(reviewers: Sequence[str]) -> list[tuple[str, Lens]]:
    """Agent ids for the requested lenses (``security,security`` gives two copies).

    Raises:
        UsageError: an unknown lens, or none.
    """
    return lens_agents(reviewers, LENSES, what="reviewer", allow_none=False)


def describe(state: FindingState) -> list[str]:
    """Each judge's opinion on a finding, for the human-readable reports."""
    return [
        f"{agent}: {opinion}" + (f" — {reason}" if reason else "")
        for agent, (opinion, reason) in state.judgements.items()
    ]


def one_other_lens(judging: Judging, state: FindingState) -> list[str]:
    """One lens other than the finding's own judges it, when it still needs a voice: not
    when two voices support it already (or are planned to speak about that line), nor
    where the flow analysis found the input safe (a security finding there is disputed
    by the evidence itself)."""
    supporting = set(judging.ledger.supporting_groups(state))
    line = state.lead.line_start if state.notes else state.key.bucket
    planned = judging.index.planned(state.key.file, line, state.key.label)
    if len(supporting | planned) >= 2:
        return []  # two voices already, or about to speak: no judge needed
    if state.key.label == "security" and judging.index.settled(state.key.file, line, None):
        return []
    for name in judging.present:
        if name != state.key.label and name not in supporting:
            return [name]
    return []


async def run_review(
    root: str | Path,
    backend: Backend,
    *,
    reviewers: Sequence[str] = DEFAULT_REVIEWERS,
    analyzers: Sequence[str | Analyzer] = DEFAULT_ANALYZERS,
    max_files: int | None = None,
    extensions: Sequence[str] | None = None,
    only: Sequence[str] | None = None,
    rule: ConsensusRule | None = None,
    options: RunOptions | None = None,
) -> ReviewReport:
    """Review the files under ``root`` with a team of lens reviewers.

    Args:
        root: the directory (or file) to review.
        backend: the reviewers' model.
        reviewers: lens names (a name twice runs two copies).
        analyzers: non-LLM voices (the flow analysis by default); their findings are
            filed under ``security``.
        max_files: review at most this many files.
        extensions: only files with these extensions.
        only: only these files (relative to ``root``), e.g. the ones changed since a commit.
        rule: when a finding counts as agreed.
        options: how to run the team.

    Raises:
        UsageError: ``root`` is missing or nothing under it can be reviewed.
    """
    plan = ScanPlan(
        lenses=reviewer_ids(list(reviewers)),
        analyzers=[make_analyzer(a) if isinstance(a, str) else a for a in analyzers],
        rule=rule or ConsensusRule(),
        judges=one_other_lens,
        finding=ReviewFinding.settled,
        notes=describe,
        report=ReviewReport,
        role=REVIEW_ROLE,
        review=True,
        label_for=lambda _cwe: "security",
        bucket_size=3,
        join_within=2,
        nothing_to_scan="no reviewable source files",
        max_files=max_files,
        extensions=extensions,
        only=only,
    )
    return await run_scan(root, backend, plan, options)


def review_sarif(report: ReviewReport) -> dict[str, Any]:
    """The review as a SARIF 2.1.0 log."""
    rules = [SarifRule(id=name, description=lens.focus) for name, lens in LENSES.items()]
    return sarif_log(report, tool="smesh-review", rules=rules)
