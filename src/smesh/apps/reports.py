"""Human-readable reports (plain text and Markdown) for ``review`` and ``swarm``.

Agreed findings come first, then disputed ones (a reviewer disagreed and no consensus was
reached), then the unconfirmed rest; each with who supported it and what the judges said.
"""

from __future__ import annotations

from collections.abc import Sequence

from smesh.apps.common import Summary
from smesh.apps.review import ReviewFinding, ReviewReport
from smesh.apps.swarm import SwarmFinding, SwarmReport

__all__ = ["review_markdown", "review_text", "swarm_text"]


def _summary_lines(summary: Summary, what: str) -> list[str]:
    return [
        f"run {summary.run_id} ({summary.stopped_by}): {summary.duration_s:.1f} s, "
        f"{summary.llm_calls} LLM calls, {summary.tokens} tokens, {summary.signals} signals "
        f"({summary.reinforcements} reinforcements), {what}: {summary.consensus} of "
        f"{summary.total}"
    ]


def _review_sections(
    report: ReviewReport,
) -> list[tuple[str, list[tuple[ReviewFinding, list[str]]]]]:
    pairs = list(
        zip(report.findings, report.judgements or [[]] * len(report.findings), strict=False)
    )
    return [
        ("Consensus", [p for p in pairs if p[0].consensus]),
        ("Disputed", [p for p in pairs if p[0].disputed]),
        ("Unconfirmed", [p for p in pairs if not p[0].consensus and not p[0].disputed]),
    ]


def _lines(f: ReviewFinding) -> str:
    return f"{f.line_start}" if f.line_start == f.line_end else f"{f.line_start}-{f.line_end}"


def review_text(report: ReviewReport) -> str:
    """The review as plain text."""
    out: list[str] = []
    for title, items in _review_sections(report):
        out.append(f"{title} ({len(items)})")
        for f, notes in items:
            out.append(
                f"  {f.file}:{_lines(f)} [{f.category}/{f.severity}] {f.message}"
                f"  (support: {', '.join(f.support)})"
            )
            out.extend(f"      {note}" for note in notes)
        out.append("")
    out.extend(_summary_lines(report.summary, "findings agreed"))
    return "\n".join(out) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def review_markdown(report: ReviewReport) -> str:
    """The review as Markdown: one table per section."""
    out = ["# Code review", ""]
    for title, items in _review_sections(report):
        out += [f"## {title} ({len(items)})", ""]
        if not items:
            out += ["None.", ""]
            continue
        out += [
            "| file | lines | category | severity | finding | support | judges |",
            "|---|---|---|---|---|---|---|",
        ]
        for f, notes in items:
            out.append(
                f"| `{f.file}` | {_lines(f)} | {f.category} | {f.severity} | {_md(f.message)} "
                f"| {', '.join(f.support)} | {_md('; '.join(notes))} |"
            )
        out.append("")
    out += ["## Summary", "", *_summary_lines(report.summary, "findings agreed"), ""]
    return "\n".join(out)


def _swarm_row(f: SwarmFinding, notes: Sequence[str]) -> list[str]:
    head = f"  {f.file}:{f.line} {f.cwe} [{f.severity}] {f.message}  (support: "
    return [head + f"{', '.join(f.support)})", *(f"      {n}" for n in notes)]


def swarm_text(report: SwarmReport) -> str:
    """The swarm's findings as plain text."""
    pairs = list(
        zip(report.findings, report.judgements or [[]] * len(report.findings), strict=False)
    )
    agreed = [p for p in pairs if p[0].consensus]
    rest = [p for p in pairs if not p[0].consensus]
    out = [f"Consensus ({len(agreed)})"]
    for f, notes in agreed:
        out += _swarm_row(f, notes)
    out += ["", f"Not corroborated ({len(rest)})"]
    for f, notes in rest:
        out += _swarm_row(f, notes)
    out += ["", *_summary_lines(report.summary, "findings agreed")]
    return "\n".join(out) + "\n"
