"""``smesh trace RUN [TASK]``: who claimed each task and why, who verified it, how trust moved."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from smesh.agents.journal import DEFAULT_JOURNAL, Journal, JournalAction
from smesh.agents.story import describe, workflow_summary
from smesh.cli._common import console, print_json


@click.command("trace")
@click.argument("run_id", required=False)
@click.argument("task_id", required=False)
@click.option(
    "--journal",
    "journal_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_JOURNAL,
    show_default=True,
    help="The SQLite journal.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the actions as JSON.")
def command(run_id: str | None, task_id: str | None, journal_path: Path, as_json: bool) -> None:
    """Explain a run from its journal (default: the latest run).

    For every task: who bid and why (the signals, intensities and trust behind the claim),
    who verified it and how, what was decided, and how trust moved.
    """
    if not journal_path.exists():
        raise click.UsageError(f"no journal at {str(journal_path)!r}; run smesh agents first")
    with Journal(journal_path) as journal:
        runs = journal.runs()
        if not runs:
            raise click.UsageError(f"journal {str(journal_path)!r} holds no runs")
        if run_id is None:
            run_id = runs[0]["run_id"]
        elif not journal.has_run(run_id):
            known = ", ".join(r["run_id"] for r in runs[:5])
            raise click.UsageError(f"no run {run_id!r} in the journal (recent: {known})")
        actions = journal.actions(run_id, task_id)
        events = sum(1 for _ in journal.events(run_id))
    if task_id is not None and not actions:
        raise click.UsageError(f"run {run_id} has no actions for task {task_id!r}")
    if as_json:
        print_json(
            {"run_id": run_id, "events": events, "actions": actions, **workflow_summary(actions)}
        )
        return
    by_task: dict[str, list[JournalAction]] = {}
    for a in actions:
        by_task.setdefault(a.task_id or "(run)", []).append(a)
    start = actions[0].time if actions else 0.0
    console.print(f"[bold]run {run_id}[/bold] · {events} signal events · {len(actions)} actions")
    for tid, rows in by_task.items():
        table = Table(title=f"task {tid}", title_justify="left", show_lines=False)
        table.add_column("t+s", justify="right")
        table.add_column("agent")
        table.add_column("action")
        table.add_column("why / what", overflow="fold")
        for a in rows:
            table.add_row(f"{a.time - start:.2f}", a.agent, a.action, describe(a.action, a.detail))
        console.print(table)
