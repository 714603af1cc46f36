"""``smesh agents --demo``: a team of agents coordinating through the field alone."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Group
from rich.table import Table
from rich.text import Text

from smesh.agents import RunReport, Settings, Team
from smesh.agents.board import TaskBoard, TaskState
from smesh.agents.journal import Journal
from smesh.agents.records import tool_calls
from smesh.agents.runtime import Budget
from smesh.cli._common import (
    backend_options,
    console,
    embedded_options,
    esc,
    exit_code_help,
    journal_option,
    live_view,
    plain,
    print_json,
)
from smesh.cli._observe import ObserveFlags, observe_options, observing
from smesh.cli._progress import Meter
from smesh.cli._session import exit_code, finish_line, open_backend, resume_notes, session
from smesh.cli._stop import RunWatch, run_async

if TYPE_CHECKING:
    from smesh.backends.base import Backend

#: protocol timing of the demo (an idle run ends after IDLE_S)
IDLE_S = 120.0


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
        return f"[cyan]working ({esc(holder)})[/cyan]"
    if task.claims:
        return "bidding"
    return "open"


class _ToolWatch(Journal):
    """The run's journal, also counting each task's tool calls for the live view."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.calls: dict[str, list[str]] = {}  # task -> "tool ✓" per call
        self.on_call: Callable[[], None] | None = None

    def action(
        self, now: float, agent: str, action: str, task_id: str | None, detail: dict[str, Any]
    ) -> None:
        super().action(now, agent, action, task_id, detail)
        if action == "tool" and task_id is not None:
            mark = "✓" if detail.get("ok") else "✗"
            self.calls.setdefault(task_id, []).append(f"{detail.get('tool')} {mark}")
            if self.on_call is not None:
                self.on_call()


def _tools_cell(calls: list[str]) -> Text:
    return plain("-" if not calls else f"{len(calls)} ({calls[-1]})")


def _view(board: TaskBoard, now: float, tools: dict[str, list[str]] | None = None) -> Group:
    tools = tools or {}
    tasks = Table(title="Tasks", title_justify="left")
    columns = ("task", "skill", "status", "attempt", "claims / lease", "tools", "votes ✓/✗")
    for col in (*columns, "check"):
        tasks.add_column(col)
    for task in board.tasks.values():
        ballots = task.ballots(task.attempt)
        claims = ", ".join(
            f"{c.agent}{'*' if c.held else ''}:{c.bid:.2f}" for c in task.claim_views()
        )
        checks = task.checks.get(task.attempt, {})
        check = "-" if not checks else ("✗" if "reject" in checks.values() else "✓")
        tasks.add_row(
            plain(task.spec.task_id),
            plain(task.spec.skill),
            _status(task),
            f"{task.attempt}/{task.spec.max_attempts}",
            plain(claims or "-"),
            _tools_cell(tools.get(task.spec.task_id, [])),
            f"{len(ballots.get('approve', []))}/{len(ballots.get('reject', []))}",
            check,
        )
    trust = Table(title="Trust (learned from outcomes)", title_justify="left")
    trust.add_column("agent")
    trust.add_column("trust", justify="right")
    for peer, value in sorted(board.trust.snapshot(now).items()):
        bar = "█" * round(value * 10)
        trust.add_row(plain(peer), f"{bar:<10} {value:.2f}")
    return Group(tasks, trust)


def _summary(report: RunReport) -> Table:
    table = Table(
        title=f"Run {esc(report.run_id)} ({esc(report.stopped_by)})", title_justify="left"
    )
    for col in ("task", "skill", "status", "by", "attempts"):
        table.add_column(col, no_wrap=True)
    # reasons wrap at word boundaries (never mid-word) in what the terminal leaves
    table.add_column("output / reason", ratio=1)
    for t in report.tasks:
        detail = t.reason if t.status != "accepted" else t.output
        text = detail if isinstance(detail, str) else str(detail)
        text = " ".join(text.split())
        table.add_row(
            plain(t.id),
            plain(t.skill),
            _STATUS.get(t.status, "[red]failed[/red]"),
            plain(t.claimed_by or "-"),
            str(t.attempts),
            Text(text[:160]),
        )
    table.caption = (
        f"{report.accepted}/{len(report.tasks)} accepted · {report.duration_s:.1f} s · "
        f"{report.llm_calls} LLM calls · {report.tokens} tokens"
    )
    return table


_STATUS = {"accepted": "[green]accepted[/green]", "cancelled": "[yellow]cancelled[/yellow]"}


def _contract(report: RunReport, per_task: Counter[str]) -> dict[str, Any]:
    return {
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
                "tool_calls": per_task[t.id],
                "depends_on": t.depends_on,
                "parent": t.parent,
            }
            for t in report.tasks
        ],
        # decisions acted on, held for their evidence and refused (``dropped_<reason>``)
        "decisions": report.decisions,
    }


@click.command("agents", epilog=exit_code_help)
@click.option("--demo", is_flag=True, help="Run the built-in demo team and tasks.")
@click.option(
    "--agents",
    "count",
    type=click.IntRange(min=1, max=64),
    default=4,
    show_default=True,
    help="LLM agents (roles cycle coder, reviewer, analyst, writer; the demo's tasks need "
    "at least 3).",
)
@click.option(
    "--backend",
    default="local",
    show_default=True,
    help="Backend for the LLM agents, e.g. local, ollama:qwen2.5-coder, scripted.",
)
@embedded_options
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
    help="Hard budget on wall time; in-flight generations are stopped when it runs out.",
)
@journal_option("SQLite journal of the run.")
@click.option(
    "--resume",
    "resume_id",
    metavar="RUN_ID",
    help="Continue a stopped, interrupted or crashed run without redoing accepted work "
    "(same --agents and --backend; `smesh runs` lists runs).",
)
@observe_options
@click.option("--json", "as_json", is_flag=True, help="Print the run report as JSON.")
def command(
    demo: bool,
    count: int,
    backend: str,
    threads: int | None,
    slots: int | None,
    seed: int,
    max_calls: int,
    max_seconds: float,
    journal_path: Path,
    resume_id: str | None,
    observe: ObserveFlags,
    as_json: bool,
) -> int:
    """Run a team of agents that coordinate through the signal field alone.

    Agents sense tasks by skill affinity, bid and hold leases, post results, judge each
    other's results blind and vote; trust moves with verified outcomes. No coordinator.
    Ctrl-C stops the run (a second Ctrl-C at once) and prints how to resume it.
    """
    from smesh.agents.preflight import check_tasks
    from smesh.apps.demo import demo_agents, demo_tasks

    if not demo:
        raise click.UsageError("nothing to run: pass --demo (custom teams: see examples/)")
    options = backend_options(backend, threads, slots)
    args = {"demo": True, "agents": count, "backend": backend}
    # a team that cannot do the demo's tasks is refused before anything loads
    check_tasks(demo_agents(_no_backend(), count), demo_tasks())
    if resume_id is not None:
        resume_notes(journal_path, resume_id, app="agents", args=args)
    watch = RunWatch()
    watch.run_id = resume_id
    budget = Budget(calls=max_calls, wall_s=max_seconds)

    async def run() -> RunReport:
        from smesh.clock import SystemClock
        from smesh.field import Field

        chosen = None
        if backend == "scripted":
            # the scripted backend knows the demo's right answers: no model needed
            from smesh.apps.demo_script import demo_script_backend

            chosen = demo_script_backend()
        async with (
            open_backend(backend, options=options, quiet=as_json, backend=chosen) as model,
            session(
                journal_path,
                app="agents",
                args=args,
                resume_id=resume_id,
                watch=watch,
                budget=budget,
                journal_type=_ToolWatch,
            ) as (journal, run_id),
            _observed(observe, journal_path, run_id),
        ):
            clock = SystemClock()
            team = Team(
                demo_agents(model, count),
                field=Field(clock),
                settings=Settings(lease_s=30.0, work_timeout_s=120.0, idle_timeout_s=IDLE_S),
                budget=budget,
                journal=journal,
                seed=seed,
                run_id=run_id,
                resume=resume_id is not None,
            )
            watch.on_start(team.board)
            if as_json:  # the report goes to stdout: progress on stderr
                with Meter("agents", unit="tasks") as meter:
                    board = team.board

                    def tick(task: TaskState, what: str) -> None:
                        done = sum(t.outcome is not None for t in board.tasks.values())
                        meter.update(done, total=len(board.tasks))

                    return await team.run(demo_tasks(), on_change=tick)
            assert isinstance(journal, _ToolWatch)
            calls = journal.calls
            with live_view(_view(team.board, clock.now(), calls)) as live:

                def redraw() -> None:
                    live.update(_view(team.board, clock.now(), calls))

                def refresh(task: TaskState, what: str) -> None:
                    redraw()

                journal.on_call = redraw
                return await team.run(demo_tasks(), on_change=refresh)

    report = run_async(run(), describe=watch.interrupted)
    with Journal(journal_path) as journal:  # the whole run's calls, a resumed part included
        calls = tool_calls(journal.actions(report.run_id))
    per_task = Counter({task: len(c) for (task, _), c in calls.items()})
    if as_json:
        print_json(_contract(report, per_task))
    else:
        console.print(_summary(report))
        console.print(
            f"journal: {esc(journal_path)} · trace it with: smesh trace {esc(report.run_id)}"
        )
    line = finish_line(watch, report.stopped_by, budget, IDLE_S)
    if line is not None:
        click.echo(line, err=True)
    return exit_code(watch)


@contextlib.asynccontextmanager
async def _observed(observe: ObserveFlags, journal: Path, run_id: str) -> AsyncIterator[None]:
    with observing(observe, journal=journal, run_id=run_id):
        yield


def _no_backend() -> Backend:
    """A placeholder for checking the demo team's shape before the real backend exists."""
    from smesh.backends.doubles import FunctionBackend

    return FunctionBackend(lambda request: "", name="preflight")
