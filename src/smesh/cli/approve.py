"""``smesh approve RUN TASK [--reject] [--comment TEXT]``: answer a pending approval from
another terminal."""

from __future__ import annotations

import getpass
from pathlib import Path

import click

from smesh.agents.human import post_approval
from smesh.agents.journal import Journal
from smesh.cli._common import console, journal_option, print_json


def _whoami() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (a container): still someone
        return "human"


@click.command("approve")
@click.argument("run_id")
@click.argument("task_id")
@click.option("--reject", is_flag=True, help="Reject the result instead of approving it.")
@click.option(
    "--comment", default="", help="Why; a rejection's comment is the next attempt's feedback."
)
@click.option("--by", "by", default=None, help="Who answers (default: your login name).")
@journal_option("The run's SQLite journal.")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
def command(
    run_id: str,
    task_id: str,
    reject: bool,
    comment: str,
    by: str | None,
    journal_path: Path,
    as_json: bool,
) -> None:
    """Approve (or reject) a task result that waits for a human.

    The answer is written into the run's journal; the running team reads it within a
    second, and a run resumed with --resume applies it if
    the run had stopped. It answers the attempt waiting now, so a later attempt is never
    approved by mistake.
    """
    if len(comment) > 2000:
        raise click.UsageError("--comment is longer than 2000 characters")
    who = by or _whoami()
    with Journal(journal_path, create=False) as journal:  # UsageError: no journal there
        answer = post_approval(
            journal,
            run_id,
            task_id,
            verdict="reject" if reject else "approve",
            reason=comment,
            by=who,
        )
    if as_json:
        print_json(
            {
                "run_id": run_id,
                "task": answer.task_id,
                "attempt": answer.attempt,
                "verdict": answer.verdict,
                "by": answer.by,
                "comment": answer.reason,
            }
        )
        return
    verb = "rejected" if reject else "approved"
    console.print(
        f"{verb} attempt {answer.attempt} of {task_id} in run {run_id} as {who}", markup=False
    )
