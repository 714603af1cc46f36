"""``smesh trace RUN [TASK]``: who claimed each task and why, who verified it, how trust moved."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from smesh.agents.journal import Journal, JournalAction
from smesh.agents.records import attempts
from smesh.agents.story import describe, workflow_summary
from smesh.cli._common import console, esc, journal_option, plain, print_json
from smesh.errors import ConfigurationError, UsageError


def damage(journal: Journal) -> ConfigurationError | None:
    """The one-line error for what a read of ``journal`` found damaged (None: intact)."""
    problems = journal.problems
    if not problems:
        return None
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    return ConfigurationError(f"journal {str(journal.path)!r} is damaged: {problems[0]}{more}")


def _story(action: JournalAction) -> str:
    try:
        return describe(action.action, action.detail)
    except Exception:  # a detail of the wrong shape: show it as it is
        return json.dumps(action.detail, default=str)[:200]


@click.command("trace")
@click.argument("run_id", required=False)
@click.argument("task_id", required=False)
@journal_option()
@click.option("--json", "as_json", is_flag=True, help="Print the actions as JSON.")
def command(run_id: str | None, task_id: str | None, journal_path: Path, as_json: bool) -> None:
    """Explain a run from its journal (default: the latest run).

    For every task: who bid and why (the signals, intensities and trust behind the claim),
    the tools its worker called, who verified it and how, what was decided, and how trust
    moved. With --json, "attempts" lists each attempt's tool calls. A damaged journal is
    read as far as it goes: what could be read is shown, then one line says what is
    damaged and the command exits 2. `smesh runs` lists the runs.
    """
    if not journal_path.is_file():
        raise UsageError(f"no journal at {str(journal_path)!r}; run smesh agents first")
    with Journal(journal_path, create=False) as journal:
        runs = journal.runs()
        if not runs:
            raise damage(journal) or UsageError(f"journal {str(journal_path)!r} holds no runs")
        if run_id is None:
            run_id = runs[0]["run_id"]
        elif not journal.has_run(run_id):
            known = ", ".join(r["run_id"] for r in runs[:5])
            raise UsageError(f"no run {run_id!r} in the journal (recent: {known})")
        actions = journal.actions(run_id, task_id)
        events = sum(1 for _ in journal.events(run_id))
        broken = damage(journal)
    if task_id is not None and not actions and broken is None:
        raise UsageError(f"run {run_id} has no actions for task {task_id!r}")
    if as_json:
        doc: dict[str, object] = {
            "run_id": run_id,
            "events": events,
            "actions": actions,
            "attempts": attempts(actions),
            **workflow_summary(actions),
        }
        if broken is not None:
            doc["damaged"] = list(journal.problems)
        print_json(doc)
    else:
        _print(run_id, events, actions)
    if broken is not None:
        raise broken


def _print(run_id: str, events: int, actions: list[JournalAction]) -> None:
    by_task: dict[str, list[JournalAction]] = {}
    for a in actions:
        by_task.setdefault(a.task_id or "(run)", []).append(a)
    start = actions[0].time if actions else 0.0
    console.print(
        f"[bold]run {esc(run_id)}[/bold] · {events} signal events · {len(actions)} actions"
    )
    for tid, rows in by_task.items():
        table = Table(title=f"task {esc(tid)}", title_justify="left", show_lines=False)
        table.add_column("t+s", justify="right", no_wrap=True)
        table.add_column("agent")
        table.add_column("action")
        table.add_column("why / what", overflow="fold")
        for a in rows:
            # plain(): tool arguments and results are a model's text, not rich markup
            table.add_row(
                f"{a.time - start:.2f}", plain(a.agent), plain(a.action), plain(_story(a))
            )
        console.print(table)
