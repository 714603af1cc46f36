"""``smesh agents --demo``: a team of agents coordinating through the field alone."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Group
from rich.live import Live
from rich.table import Table

from smesh.agents import RunReport, Settings, Team
from smesh.agents.board import TaskBoard, TaskState
from smesh.agents.journal import DEFAULT_JOURNAL, Journal
from smesh.agents.runtime import Budget
from smesh.cli._common import console, err_console, print_json

if TYPE_CHECKING:
    from smesh.backends.base import Backend


def _status(task: TaskState) -> str:
    if task.outcome == "accepted":
        return "[green]accepted[/green]"
    if task.outcome == "failed":
        return "[red]failed[/red]"
    if task.outcome == "cancelled":
        return "[red]cancelled[/red]"
    if task.waiting:
        return "[dim]waiting for inputs[/dim]"
    if task.attempt in task.results:
        return "[yellow]verifying[/yellow]"
    holder = task.holder
    if holder is not None:
        return f"[cyan]working ({holder})[/cyan]"
    if task.claims:
        return "bidding"
    return "open"


def _view(board: TaskBoard, now: float) -> Group:
    tasks = Table(title="Tasks", title_justify="left")
    for col in ("task", "skill", "status", "attempt", "claims / lease", "votes ✓/✗", "check"):
        tasks.add_column(col)
    for task in board.tasks.values():
        ballots = task.ballots(task.attempt)
        claims = ", ".join(
            f"{c.agent}{'*' if c.held else ''}:{c.bid:.2f}" for c in task.claim_views()
        )
        checks = task.checks.get(task.attempt, {})
        check = "-" if not checks else ("✗" if "reject" in checks.values() else "✓")
        tasks.add_row(
            task.spec.task_id,
            task.spec.skill,
            _status(task),
            f"{task.attempt}/{task.spec.max_attempts}",
            claims or "-",
            f"{len(ballots.get('approve', []))}/{len(ballots.get('reject', []))}",
            check,
        )
    trust = Table(title="Trust (learned from outcomes)", title_justify="left")
    trust.add_column("agent")
    trust.add_column("trust", justify="right")
    for peer, value in sorted(board.trust.snapshot(now).items()):
        bar = "█" * round(value * 10)
        trust.add_row(peer, f"{bar:<10} {value:.2f}")
    return Group(tasks, trust)


def _summary(report: RunReport) -> Table:
    table = Table(title=f"Run {report.run_id} ({report.stopped_by})", title_justify="left")
    for col in ("task", "skill", "status", "by", "attempts", "output / reason"):
        table.add_column(col, overflow="fold")
    for t in report.tasks:
        detail = t.reason if t.status != "accepted" else t.output
        text = detail if isinstance(detail, str) else str(detail)
        text = " ".join(text.split())
        table.add_row(
            t.id,
            t.skill,
            "[green]accepted[/green]" if t.status == "accepted" else "[red]failed[/red]",
            t.claimed_by or "-",
            str(t.attempts),
            text[:90],
        )
    table.caption = (
        f"{report.accepted}/{len(report.tasks)} accepted · {report.duration_s:.1f} s · "
        f"{report.llm_calls} LLM calls · {report.tokens} tokens"
    )
    return table


@click.command("agents")
@click.option("--demo", is_flag=True, help="Run the built-in demo team and tasks.")
@click.option(
    "--agents",
    "count",
    type=click.IntRange(min=1, max=64),
    default=4,
    show_default=True,
    help="LLM agents (roles cycle coder, reviewer, analyst, writer).",
)
@click.option(
    "--backend",
    default="local",
    show_default=True,
    help="Backend for the LLM agents, e.g. local, ollama:qwen2.5-coder, scripted.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the agents' RNGs.")
@click.option(
    "--max-calls",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    help="Hard budget on LLM calls.",
)
@click.option(
    "--max-seconds",
    type=click.FloatRange(min=1),
    default=170.0,
    show_default=True,
    help="Hard budget on wall time.",
)
@click.option(
    "--journal",
    "journal_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_JOURNAL,
    show_default=True,
    help="SQLite journal of the run.",
)
@click.option(
    "--resume",
    "resume_id",
    metavar="RUN_ID",
    help="Continue a crashed run from the journal without redoing accepted work.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the run report as JSON.")
def command(
    demo: bool,
    count: int,
    backend: str,
    seed: int,
    max_calls: int,
    max_seconds: float,
    journal_path: Path,
    resume_id: str | None,
    as_json: bool,
) -> None:
    """Run a team of agents that coordinate through the signal field alone.

    Agents sense tasks by skill affinity, bid and hold leases, post results, judge each
    other's results blind and vote; trust moves with verified outcomes. No coordinator.
    """
    if not demo:
        raise click.UsageError("nothing to run: pass --demo (custom teams: see examples/)")
    report = asyncio.run(
        _run_demo(count, backend, seed, max_calls, max_seconds, journal_path, resume_id, as_json)
    )
    if as_json:
        print_json(
            {
                "run_id": report.run_id,
                "duration_s": report.duration_s,
                "llm_calls": report.llm_calls,
                "tokens": report.tokens,
                "stopped_by": report.stopped_by,
                "tasks": [
                    {
                        "id": t.id,
                        "skill": t.skill,
                        "status": t.status,
                        "claimed_by": t.claimed_by,
                        "attempts": t.attempts,
                        "depends_on": t.depends_on,
                        "parent": t.parent,
                    }
                    for t in report.tasks
                ],
            }
        )
    else:
        console.print()
        console.print(_summary(report))
        console.print(f"journal: {journal_path} · trace it with: smesh trace {report.run_id}")


async def _run_demo(
    count: int,
    backend_spec: str,
    seed: int,
    max_calls: int,
    max_seconds: float,
    journal_path: Path,
    resume_id: str | None,
    as_json: bool,
) -> RunReport:
    from smesh.apps.demo import demo_agents, demo_tasks
    from smesh.backends import resolve_backend
    from smesh.backends.base import aclose_backend
    from smesh.clock import SystemClock
    from smesh.field import Field

    backend: Backend
    if backend_spec == "scripted":
        # the scripted backend knows the demo's right answers: no model needed
        from smesh.apps.demo_script import demo_script_backend

        backend = demo_script_backend()
    else:
        backend = resolve_backend(backend_spec)
    clock = SystemClock()
    journal = Journal(journal_path)
    try:
        if not as_json:
            err_console.print(f"[dim]backend {backend.name}: loading…[/dim]")
        start = getattr(backend, "start", None)
        if start is not None:
            await start()
        team = Team(
            demo_agents(backend, count),
            field=Field(clock),
            settings=Settings(lease_s=30.0, work_timeout_s=120.0, idle_timeout_s=120.0),
            budget=Budget(calls=max_calls, wall_s=max_seconds),
            journal=journal,
            seed=seed,
            run_id=resume_id,
            resume=resume_id is not None,
        )
        if as_json:
            return await team.run(demo_tasks())
        with Live(_view(team.board, clock.now()), console=console, refresh_per_second=4) as live:

            def refresh(task: TaskState, what: str) -> None:
                live.update(_view(team.board, clock.now()))

            return await team.run(demo_tasks(), on_change=refresh)
    finally:
        await aclose_backend(backend)
        journal.close()
