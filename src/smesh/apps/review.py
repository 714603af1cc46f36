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

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from smesh.apps.common import ScanReport
from smesh.apps.files import DEFAULT_MAX_BYTES
from smesh.apps.findings import Assessment, ConsensusRule, FindingLedger, FindingState
from smesh.apps.lens import Lens, lens_agents
from smesh.apps.options import RunOptions
from smesh.apps.pipeline import ScanPlan, run_scan
from smesh.apps.sarif import SarifResult, SarifRule, sarif_log
from smesh.backends.base import Backend

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
    def settled(cls, state: FindingState, verdict: Assessment) -> ReviewFinding:
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


def other_lenses(
    ledger: FindingLedger, present: Mapping[str, Lens], state: FindingState
) -> list[str]:
    """Every lens in the run but the finding's own judges it."""
    return [name for name in present if name != state.key.label]


async def run_review(
    root: str | Path,
    backend: Backend,
    *,
    reviewers: Sequence[str] = DEFAULT_REVIEWERS,
    max_files: int | None = None,
    extensions: Sequence[str] | None = None,
    chunk_bytes: int = DEFAULT_MAX_BYTES,
    rule: ConsensusRule | None = None,
    options: RunOptions | None = None,
) -> ReviewReport:
    """Review the files under ``root`` with a team of lens reviewers.

    Raises:
        UsageError: ``root`` is missing or nothing under it can be reviewed.
    """
    plan = ScanPlan(
        lenses=reviewer_ids(list(reviewers)),
        rule=rule or ConsensusRule(),
        judges=other_lenses,
        finding=ReviewFinding.settled,
        notes=describe,
        report=ReviewReport,
        bucket_size=3,
        join_within=2,
        nothing_to_scan="no reviewable source files",
        max_files=max_files,
        extensions=extensions,
        chunk_bytes=chunk_bytes,
    )
    return await run_scan(root, backend, plan, options)


def review_sarif(report: ReviewReport) -> dict[str, Any]:
    """The review as a SARIF 2.1.0 log."""
    rules = [SarifRule(id=name, description=lens.focus) for name, lens in LENSES.items()]
    return sarif_log(report, tool="smesh-review", rules=rules)
