"""``smesh cancel RUN [TASK] [--reason TEXT] [--grace S]``: cancel a running run, or one task
and its subtasks, from another terminal."""

from __future__ import annotations

import getpass
from pathlib import Path

import click

from smesh.agents.journal import Journal
from smesh.agents.teamlog import post_cancel
from smesh.cli._common import console, journal_option, print_json


def _whoami() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (a container): still someone
        return "human"


@click.command("cancel")
@click.argument("run_id")
@click.argument("task_id", required=False)
@click.option("--reason", default="", help="Why; shown in the report and in smesh trace.")
@click.option(
    "--grace",
    "grace_s",
    type=click.FloatRange(min=0.0, max=3600.0),
    default=None,
    help="Seconds the work may take to finish up (default: the run's cancel_grace_s).",
)
@click.option("--by", "by", default=None, help="Who cancels (default: your login name).")
@journal_option("The run's SQLite journal.")
@click.option("--json", "as_json", is_flag=True, help="Print the cancel as JSON.")
def command(
    run_id: str,
    task_id: str | None,
    reason: str,
    grace_s: float | None,
    by: str | None,
    journal_path: Path,
    as_json: bool,
) -> None:
    """Cancel a run (or TASK and its subtasks) from another terminal.

    A durable cancel is written into the run's journal; the running team reads it within a
    second, its workers stop at their next await (cancelled outright after the grace
    period), finished work is kept, and a run resumed with --resume does not restart what
    was cancelled.
    """
    if len(reason) > 2000:
        raise click.UsageError("--reason is longer than 2000 characters")
    who = by or _whoami()
    with Journal(journal_path, create=False) as journal:  # UsageError: no journal there
        post_cancel(journal, run_id, task_id, reason=reason, by=who, grace_s=grace_s)
    if as_json:
        print_json(
            {"run_id": run_id, "task": task_id, "by": who, "reason": reason, "grace_s": grace_s}
        )
        return
    what = f"task {task_id}" if task_id is not None else "the run"
    console.print(f"cancelled {what} of run {run_id} as {who}", markup=False)
