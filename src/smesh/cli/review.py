"""``smesh review``: reviewers with different lenses agree on findings through the field."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from smesh.apps.options import RunOptions
from smesh.cli._apps import ProgressView, RunFlags, run_app, run_options
from smesh.cli._common import exit_code_help
from smesh.cli._report import ReportFlags, dumps, report_options

FORMATS = ("text", "json", "markdown", "sarif")


@click.command("review", epilog=exit_code_help)
@click.option(
    "--path",
    "root",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The repository (a directory) to review.",
)
@click.option(
    "--reviewers",
    default="security,performance,style,documentation",
    show_default=True,
    help="Comma-separated lenses; a lens named twice runs two copies.",
)
@click.option("--max-files", type=click.IntRange(min=1), help="Review at most this many files.")
@click.option(
    "--changed",
    "changed",
    metavar="REF",
    help="Only the files changed since this git ref (a branch, tag or commit): for CI.",
)
@click.option(
    "--ext",
    "extensions",
    multiple=True,
    help="Only files with this extension (repeatable); default: every known language.",
)
@click.option(
    "--quorum",
    type=click.FloatRange(min=0),
    default=0.9,
    show_default=True,
    help="Trust-weighted support a finding needs.",
)
@click.option(
    "--margin",
    type=click.FloatRange(min=0),
    default=0.3,
    show_default=True,
    help="Lead that support needs over the dissent.",
)
@report_options(FORMATS)
@run_options
def command(
    root: Path,
    reviewers: str,
    max_files: int | None,
    extensions: tuple[str, ...],
    changed: str | None,
    quorum: float,
    margin: float,
    output: ReportFlags,
    run: RunFlags,
) -> int:
    """Review a repository with security, performance, style and documentation reviewers.

    Cheap evidence plans the work: each lens is asked only about the lines that concern
    it (sinks for security, loops in loops for performance, swallowed errors for style,
    undocumented public functions for documentation), so a file with none costs no call.
    A finding that lacks a second voice is judged blind by one other reviewer. Findings
    whose trust-weighted support passes the quorum are reported as consensus, the ones a
    reviewer disputed are listed apart. --changed REF reviews only what changed since a
    git ref (with --format sarif, for code-scanning upload in CI). Ctrl-C or a spent
    budget stops the run and prints how to resume it; `--resume RUN --out FILE` writes a
    finished run's report again without asking the model.
    """
    from smesh.apps.findings import ConsensusRule
    from smesh.apps.reports import review_markdown, review_text
    from smesh.apps.review import ReviewReport, review_sarif, reviewer_ids, run_review

    names = [r.strip() for r in reviewers.split(",") if r.strip()]
    reviewer_ids(names)  # unknown lenses are a usage error, before anything loads
    rule = ConsensusRule(quorum=quorum, margin=margin)
    output.check()
    args = {
        "path": str(root.resolve()),
        "reviewers": names,
        "ext": sorted(extensions),
        "max_files": max_files,
        "changed": changed,
        "backend": run.backend,
    }

    only = None
    if changed is not None:
        from smesh.apps.changes import changed_files

        only = changed_files(root, changed)  # usage errors before anything loads

    async def body(model: Any, options: RunOptions) -> ReviewReport:
        return await run_review(
            root,
            model,
            reviewers=names,
            max_files=max_files,
            extensions=list(extensions) or None,
            only=only,
            rule=rule,
            options=options,
        )

    report, watch = run_app(
        body, run, view=ProgressView("review"), quiet=output.quiet, app="review", args=args
    )
    renderers: dict[str, Callable[[ReviewReport], str]] = {
        "text": review_text,
        "json": lambda r: dumps(r.contract()),
        "markdown": review_markdown,
        "sarif": lambda r: dumps(review_sarif(r)),
    }
    return output.deliver(report, renderers, run=run, watch=watch)
