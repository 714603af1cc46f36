"""``smesh code``: a team of agents writes, tests and reviews a small project."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from smesh.agents.preflight import check_output_dir
from smesh.apps.options import RunOptions
from smesh.cli._apps import ProgressView, RunFlags, run_app, run_options
from smesh.cli._common import console, err_console, esc, exit_code_help, plain
from smesh.cli._report import closing, dumps, emit_report, with_run_totals
from smesh.cli._session import exit_code, finish_line

if TYPE_CHECKING:
    from smesh.apps.code import CodeReport


@click.command("code", epilog=exit_code_help)
@click.argument("brief")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=Path),
    help="Directory the project is written to (created if missing).",
)
@click.option(
    "--coders",
    type=click.IntRange(min=1, max=16),
    default=2,
    show_default=True,
    help="Coder agents competing for modules.",
)
@click.option(
    "--rounds",
    type=click.IntRange(min=1, max=10),
    default=3,
    show_default=True,
    help="Attempts per module before it fails.",
)
@click.option(
    "--test-timeout",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    help="Wall-clock limit of one test run, in seconds.",
)
@click.option(
    "--unsafe-local-exec",
    is_flag=True,
    help="Where no sandbox can be built (bubblewrap missing, user namespaces disabled), run "
    "the generated tests as plain subprocesses anyway. They can then reach the network, "
    "your files and your environment.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@run_options
def command(
    brief: str,
    out: Path,
    coders: int,
    rounds: int,
    test_timeout: float,
    unsafe_local_exec: bool,
    as_json: bool,
    run: RunFlags,
) -> int:
    """Build a small Python project from BRIEF with an architect, coders, a tester and a
    reviewer.

    The tester's pytest tests really run, in a bubblewrap sandbox (no network, a private
    copy of DIR, nothing else of this machine visible); a module is accepted when they
    pass and the reviewer approves, and goes back with feedback otherwise. The tester is
    tested too: tests are checked for their imports before they run, a test that breaks
    before reaching the code (NameError, ImportError, syntax error) is the tester's
    failure, and an assertion two coders fail alike goes to an arbiter; the coder is not
    blamed for either. "All modules accepted" means the project's own pytest passes.
    Without a working sandbox the command refuses to run (exit 2) unless
    --unsafe-local-exec.
    """
    from smesh.apps.code import run_code
    from smesh.sandbox import Limits, Sandbox

    if not brief.strip():
        raise click.UsageError("the brief is empty")
    check_output_dir(out)  # exit 2 before any model loads: a file, /proc/x, /etc/passwd/sub
    Sandbox(unsafe_local_exec=unsafe_local_exec).check()
    if unsafe_local_exec and not Sandbox().isolated:
        err_console.print("warning: no sandbox here; generated tests run unsandboxed")
    args = {
        "brief": brief,
        "out": str(out.resolve()),
        "coders": coders,
        "rounds": rounds,
        "backend": run.backend,
    }

    async def body(model: Any, options: RunOptions) -> CodeReport:
        return await run_code(
            brief,
            out,
            model,
            coders=coders,
            rounds=rounds,
            limits=Limits(timeout_s=test_timeout, cpu_s=int(test_timeout) + 5),
            options=options,
            unsafe_local_exec=unsafe_local_exec,
        )

    report, watch = run_app(
        body, run, view=ProgressView("code"), quiet=as_json, app="code", args=args
    )
    report = with_run_totals(report, run)
    settings = run.options.settings
    line = finish_line(
        watch, report.summary.stopped_by, run.options.budget, settings.idle_timeout_s
    )
    if as_json:
        emit_report(dumps(report.contract()), None, json=True)
    else:
        _print(report, run)
    if line is not None:
        click.echo(line, err=True)
    return exit_code(watch)


def _print(report: CodeReport, run: RunFlags) -> None:
    table = Table(title=f"Project in {esc(report.out)}", title_justify="left")
    for col in ("module", "status", "tests", "review", "attempts", "coder"):
        table.add_column(col)
    for m in report.modules:
        status = "[green]accepted[/green]" if m.status == "accepted" else "[red]failed[/red]"
        table.add_row(
            plain(m.name),
            status,
            f"{m.tests_passed}/{m.tests_run}",
            plain(m.review),
            str(m.attempts),
            plain(m.coder or "-"),
        )
    console.print(table)
    trust = ", ".join(f"{k} {v:.2f}" for k, v in report.summary.trust.items()) or "-"
    closing(report.summary, what="modules accepted", journal=run.journal, notes=[f"trust: {trust}"])
