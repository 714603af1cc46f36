"""``smesh runs``: the runs in a journal, newest first."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click
from rich.table import Table

from smesh.agents.journal import Journal
from smesh.agents.runs import list_runs
from smesh.cli._common import console, esc, journal_option, plain, print_json
from smesh.cli.trace import damage


def _when(started: float | None) -> str:
    if started is None:
        return "-"
    return dt.datetime.fromtimestamp(started).strftime("%m-%d %H:%M")


@click.command("runs")
@journal_option()
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help='Print {"journal", "runs": [...]} as JSON.')
def command(journal_path: Path, limit: int, as_json: bool) -> None:
    """List the runs in the journal: id, app, start, status, accepted / failed tasks.

    Status: running, complete (every task accepted), failed (it ended with failed tasks),
    stopped (a budget or idleness stopped it with work left), interrupted (Ctrl-C), crashed
    (its process is gone). `smesh trace RUN` explains one; `--resume RUN` on the command
    that started it continues it.
    """
    runs = []
    broken = None
    if journal_path.is_file():
        with Journal(journal_path, create=False) as journal:
            runs = list_runs(journal)[:limit]
            broken = damage(journal)
    if as_json:
        doc: dict[str, object] = {"journal": str(journal_path), "runs": runs}
        if broken is not None:
            doc["damaged"] = str(broken)
        print_json(doc)
    elif not runs:
        console.print(f"no runs in {esc(journal_path)}")
    else:
        console.print(plain(f"Runs in {journal_path}"))
        table = Table()
        table.add_column("run", no_wrap=True, min_width=12)
        table.add_column("app", no_wrap=True)
        table.add_column("started", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("ok/failed/left", justify="right", no_wrap=True)
        table.add_column("calls", justify="right", no_wrap=True)
        for r in runs:
            table.add_row(
                plain(r.run_id),
                plain(r.app),
                _when(r.started),
                plain(r.status),
                f"{r.accepted}/{r.failed}/{r.unfinished}",
                str(r.llm_calls),
            )
        console.print(table)
    if broken is not None:
        raise broken
