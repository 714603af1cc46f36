"""What the ``review``, ``swarm`` and ``code`` commands share: options, the backend's
life cycle, the live progress view and writing the report."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.live import Live
from rich.table import Table

from smesh.agents.board import TaskBoard, TaskState
from smesh.agents.journal import DEFAULT_JOURNAL, Journal
from smesh.agents.runtime import Budget
from smesh.apps.common import AppOptions, Summary
from smesh.cli._common import err_console

__all__ = [
    "ProgressView",
    "app_backend",
    "dumps",
    "emit_report",
    "make_options",
    "report_options",
    "run_app",
    "run_options",
    "summary_table",
]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def run_options(func: F) -> F:
    """The options every app command takes: backend, budgets, seed, journal, resume."""
    options = [
        click.option(
            "--backend",
            default="local",
            show_default=True,
            help="LLM backend: local, local:1.5b, ollama:MODEL, openai:MODEL, ...",
        ),
        click.option(
            "--max-calls",
            type=click.IntRange(min=1),
            default=400,
            show_default=True,
            help="Hard budget on LLM calls.",
        ),
        click.option(
            "--max-seconds",
            type=click.FloatRange(min=1),
            default=1800.0,
            show_default=True,
            help="Hard budget on wall time.",
        ),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed of the RNGs."),
        click.option(
            "--journal",
            "journal_path",
            type=click.Path(dir_okay=False, path_type=Path),
            default=DEFAULT_JOURNAL,
            show_default=True,
            help="SQLite journal of the run.",
        ),
        click.option(
            "--resume",
            "resume_id",
            metavar="RUN_ID",
            help="Continue an interrupted run from the journal without redoing finished work.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@contextlib.asynccontextmanager
async def app_backend(spec: str | None, *, quiet: bool) -> AsyncIterator[Any]:
    """Resolve, start and (always) close the backend named ``spec`` (None: no backend)."""
    if spec is None:
        yield None
        return
    from smesh.backends import resolve_backend
    from smesh.backends.base import aclose_backend

    backend = resolve_backend(spec)
    try:
        start = getattr(backend, "start", None)
        if start is not None:
            if not quiet:
                err_console.print(f"[dim]backend {backend.name}: loading…[/dim]")
            await start()
        yield backend
    finally:
        await aclose_backend(backend)


class ProgressView:
    """A live table of the board's tasks by kind and state, on stderr."""

    def __init__(self, title: str, extra: Callable[[], str] | None = None) -> None:
        self.title = title
        self.extra = extra
        self.board: TaskBoard | None = None
        self._live: Live | None = None

    def _render(self) -> Table:
        table = Table(title=self.title, title_justify="left")
        for col in ("work", "open", "working", "verifying", "done", "failed"):
            table.add_column(col, justify="right" if col != "work" else "left")
        rows: dict[str, list[int]] = {}
        for task in self.board.tasks.values() if self.board is not None else ():
            kind = task.spec.skill.split(":", 1)[0]
            row = rows.setdefault(kind, [0, 0, 0, 0, 0])
            if task.outcome == "accepted":
                row[3] += 1
            elif task.outcome is not None:
                row[4] += 1
            elif task.attempt in task.results:
                row[2] += 1
            elif task.holder is not None:
                row[1] += 1
            else:
                row[0] += 1
        for kind, row in rows.items():
            table.add_row(kind, *map(str, row))
        if self.extra is not None:
            table.caption = self.extra()
        return table

    def on_start(self, board: TaskBoard) -> None:
        """Follow ``board`` (called when the app's team is ready)."""
        self.board = board

    def on_change(self, task: TaskState, what: str) -> None:
        """Board callback: refresh the view."""
        if self._live is not None:
            self._live.update(self._render())

    @contextlib.contextmanager
    def shown(self, enabled: bool) -> Iterator[None]:
        """Show the view while the block runs (nothing when not ``enabled``)."""
        if not enabled:
            yield
            return
        with Live(self._render(), console=err_console, refresh_per_second=4) as live:
            self._live = live
            try:
                yield
            finally:
                live.update(self._render())
                self._live = None


def report_options(formats: Sequence[str]) -> Callable[[F], F]:
    """The report options of ``review`` and ``swarm``: --format, --out and --json."""

    def decorate(func: F) -> F:
        options = [
            click.option(
                "--format",
                "fmt",
                type=click.Choice(list(formats)),
                default="text",
                show_default=True,
                help="Report format.",
            ),
            click.option(
                "--out",
                type=click.Path(dir_okay=False, path_type=Path),
                help="Write the report to this file instead of stdout.",
            ),
            click.option("--json", "as_json", is_flag=True, help="Same as --format json."),
        ]
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def run_app(
    body: Callable[[Any, AppOptions], Awaitable[T]],
    *,
    backend: str | None,
    quiet: bool,
    view: ProgressView,
    journal_path: Path,
    max_calls: int,
    max_seconds: float,
    seed: int,
    resume_id: str | None,
) -> T:
    """Run an app: open the journal and the backend, build its options from the common
    command-line options, show the live view unless ``quiet``, and close everything."""

    async def run() -> T:
        journal = Journal(journal_path)
        try:
            async with app_backend(backend, quiet=quiet) as model:
                options = make_options(
                    max_calls=max_calls,
                    max_seconds=max_seconds,
                    seed=seed,
                    journal=journal,
                    resume_id=resume_id,
                    view=view,
                )
                with view.shown(not quiet):
                    return await body(model, options)
        finally:
            journal.close()

    return asyncio.run(run())


def make_options(
    *,
    max_calls: int,
    max_seconds: float,
    seed: int,
    journal: Journal,
    resume_id: str | None,
    view: ProgressView,
) -> AppOptions:
    """Run options for an app from the common command-line options."""

    return AppOptions(
        budget=Budget(calls=max_calls, wall_s=max_seconds),
        journal=journal,
        run_id=resume_id,
        resume=resume_id is not None,
        seed=seed,
        on_change=view.on_change,
        on_start=view.on_start,
    )


def summary_table(summary: Summary, *, what: str) -> Table:
    """The closing numbers as a small table."""
    table = Table(title=f"Run {summary.run_id} ({summary.stopped_by})", title_justify="left")
    table.add_column("")
    table.add_column("", justify="right")
    rows = [
        ("duration", f"{summary.duration_s:.1f} s"),
        ("LLM calls", str(summary.llm_calls)),
        ("tokens", str(summary.tokens)),
        ("signals", f"{summary.signals} ({summary.reinforcements} reinforcements)"),
        (what, f"{summary.consensus} of {summary.total}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def emit_report(text: str, out: Path | None) -> None:
    """Write the report to ``out``, or print it on stdout."""
    if out is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    except OSError as exc:
        raise click.UsageError(f"cannot write {str(out)!r}: {exc.strerror}") from None


def dumps(data: Any) -> str:
    """Indented JSON."""
    return json.dumps(data, indent=2, ensure_ascii=False)
