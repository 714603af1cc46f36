"""``smesh swarm``: vulnerability specialists and static analyzers corroborate findings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from smesh.apps.options import RunOptions
from smesh.cli._apps import ProgressView, RunFlags, run_app, run_options
from smesh.cli._common import exit_code_help
from smesh.cli._report import ReportFlags, dumps, report_options

FORMATS = ("text", "json", "sarif")


@click.command("swarm", epilog=exit_code_help)
@click.option(
    "--path",
    "root",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The repository (a directory) to scan.",
)
@click.option(
    "--specialists",
    default="injection,xss,auth,crypto,deserialization,path-traversal,ssrf",
    show_default=True,
    help="Comma-separated LLM specialists ('none' for analyzers only).",
)
@click.option(
    "--analyzers",
    default="bandit,flow",
    show_default=True,
    help="Comma-separated non-LLM analyzers ('none' for LLM specialists only).",
)
@click.option(
    "--consensus",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Independent agents (distinct specialties or analyzers) a finding needs.",
)
@click.option("--max-files", type=click.IntRange(min=1), help="Scan at most this many files.")
@click.option(
    "--changed",
    "changed",
    metavar="REF",
    help="Only the files changed since this git ref (a branch, tag or commit): for CI.",
)
@click.option("--ext", "extensions", multiple=True, help="Only this extension (repeatable).")
@report_options(FORMATS)
@run_options
def command(
    root: Path,
    specialists: str,
    analyzers: str,
    consensus: int,
    max_files: int | None,
    extensions: tuple[str, ...],
    changed: str | None,
    output: ReportFlags,
    run: RunFlags,
) -> int:
    """Scan a repository for vulnerabilities with a swarm of specialists and analyzers.

    The analyzers (bandit, and the flow analysis: which input reaches which sink) run
    first; their evidence plans the LLM work, so a file without a relevant sink costs no
    call, and the plan's estimate is shown (with a warning when it will not fit the
    budget) before anything is asked. Findings are keyed by (file, CWE, line), so agents
    that see the same weakness corroborate one finding; only distinct specialties or
    analyzers count as independent, and a flow the analysis proves constant or sanitized
    is never consensus.
    An analyzer that fails (error exit, unreadable output, timeout) is reported on stderr
    and in the JSON report (analyzer_failures), and the command exits 1. Ctrl-C or a
    spent budget stops the run and prints how to resume it.
    """
    from smesh.apps.analyzers import make_analyzer
    from smesh.apps.reports import swarm_text
    from smesh.apps.swarm import SwarmReport, run_swarm, specialist_ids, swarm_sarif

    names = [s.strip() for s in specialists.split(",") if s.strip() and s.strip() != "none"]
    tools = [a.strip() for a in analyzers.split(",") if a.strip() and a.strip() != "none"]
    specialist_ids(names)  # usage errors before anything loads
    for tool in tools:
        make_analyzer(tool)
    if not names and not tools:
        raise click.UsageError("nothing to run: no specialists and no analyzers")
    output.check()
    args = {
        "path": str(root.resolve()),
        "specialists": names,
        "analyzers": tools,
        "consensus": consensus,
        "ext": sorted(extensions),
        "max_files": max_files,
        "changed": changed,
        "backend": run.backend if names else None,
    }

    only = None
    if changed is not None:
        from smesh.apps.changes import changed_files

        only = changed_files(root, changed)  # usage errors before anything loads

    async def body(model: Any, options: RunOptions) -> SwarmReport:
        return await run_swarm(
            root,
            model,
            specialists=names,
            analyzers=tools,
            consensus=consensus,
            max_files=max_files,
            extensions=list(extensions) or None,
            only=only,
            options=options,
        )

    # analyzers alone need no model: the backend is not even loaded
    report, watch = run_app(
        body,
        run,
        view=ProgressView("swarm"),
        quiet=output.quiet,
        model=bool(names),
        app="swarm",
        args=args,
    )
    renderers: dict[str, Callable[[SwarmReport], str]] = {
        "text": swarm_text,
        "json": lambda r: dumps(r.contract()),
        "sarif": lambda r: dumps(swarm_sarif(r)),
    }
    return output.deliver(report, renderers, run=run, watch=watch)
