"""How the ``review``, ``swarm`` and ``code`` commands run their app: the run flags they
share (parsed once into a :class:`RunFlags`), the backend's life cycle, the journal and
the live progress view."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from smesh.agents.board import TaskBoard, TaskState
from smesh.agents.runtime import Budget
from smesh.apps.options import RunOptions
from smesh.cli._common import err_console
from smesh.journal import DEFAULT_JOURNAL, Journal

__all__ = ["ProgressView", "RunFlags", "app_backend", "run_app", "run_options"]

T = TypeVar("T")


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RunFlags:
    """The run flags every app command takes, as one value.

    Attributes:
        backend: the model to ask (``--backend``), resolved when the run starts.
        journal: where the run's journal lives (``--journal``), opened when it starts.
        options: the app's run options from the other flags: the budget (``--max-calls``,
            ``--max-seconds``), ``--seed`` and the run to continue (``--resume``).
    """

    backend: str
    journal: Path
    options: RunOptions

    @classmethod
    def parse(
        cls,
        *,
        backend: str,
        max_calls: int | None,
        max_seconds: float | None,
        seed: int,
        journal_path: Path,
        resume_id: str | None,
    ) -> RunFlags:
        """The value of the parsed command-line flags. A budget not given is fitted to
        the app's planned work (``fit_budget``): the scans estimate theirs, ``code``
        takes :data:`smesh.apps.code.DEFAULT_CALLS` and ``DEFAULT_SECONDS``."""
        options = RunOptions(
            budget=Budget(calls=max_calls, wall_s=max_seconds),
            seed=seed,
            run_id=resume_id,
            resume=resume_id is not None,
            fit_budget=max_calls is None or max_seconds is None,
        )
        return cls(backend=backend, journal=journal_path, options=options)


_RUN_FLAGS = (
    click.option(
        "--backend",
        default="local",
        show_default=True,
        help="LLM backend: local, local:1.5b, ollama:MODEL, openai:MODEL, ...",
    ),
    click.option(
        "--max-calls",
        type=click.IntRange(min=1),
        default=None,
        help="Hard budget on LLM calls (default: fitted to the planned work; 400 for code).",
    ),
    click.option(
        "--max-seconds",
        type=click.FloatRange(min=1),
        default=None,
        help="Hard budget on wall time (default: fitted to the planned work; 1800 for code).",
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
)


def run_options(func: Callable[..., T]) -> Callable[..., T]:
    """Add the run flags of every app command (backend, budgets, seed, journal, resume);
    the command receives them as one ``run`` argument, a :class:`RunFlags`."""

    @functools.wraps(func)
    def command(
        *args: Any,
        backend: str,
        max_calls: int | None,
        max_seconds: float | None,
        seed: int,
        journal_path: Path,
        resume_id: str | None,
        **kwargs: Any,
    ) -> T:
        run = RunFlags.parse(
            backend=backend,
            max_calls=max_calls,
            max_seconds=max_seconds,
            seed=seed,
            journal_path=journal_path,
            resume_id=resume_id,
        )
        return func(*args, run=run, **kwargs)

    decorated: Callable[..., T] = command
    for option in reversed(_RUN_FLAGS):
        decorated = option(decorated)
    return decorated


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
    """A live table of the board's tasks by kind and state, on stderr, with what the run
    planned (a scan's estimate) under it."""

    def __init__(self, title: str, extra: Callable[[], str] | None = None) -> None:
        self.title = title
        self.extra = extra
        self.board: TaskBoard | None = None
        self.plan = ""
        self._live: Live | None = None
        self.quiet = False

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
        captions = [c for c in (self.plan, self.extra() if self.extra else "") if c]
        if captions:
            table.caption = escape(" · ".join(captions))
        return table

    def on_plan(self, estimate: Any, warning: str | None) -> None:
        """A scan's plan: shown under the table; a budget it will not fit in, on stderr
        at once (also with ``--json``: stdout stays the one JSON document)."""
        self.plan = estimate.line() if hasattr(estimate, "line") else str(estimate)
        if warning:
            click.echo(f"smesh: {warning}", err=True)  # one line, never wrapped
        elif not self.quiet:
            err_console.print(f"[dim]{escape(self.plan)}[/dim]", soft_wrap=True)

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


def run_app(
    body: Callable[[Any, RunOptions], Awaitable[T]],
    run: RunFlags,
    *,
    view: ProgressView,
    quiet: bool,
    model: bool = True,
) -> T:
    """Run an app: open the journal and (when ``model``) the backend, hand ``body`` the
    backend and the run's options bound to the journal and the view, show the view
    unless ``quiet``, and close everything."""

    async def go() -> T:
        journal = Journal(run.journal)
        try:
            async with app_backend(run.backend if model else None, quiet=quiet) as backend:
                view.quiet = quiet
                options = run.options.replace(
                    journal=journal,
                    on_change=view.on_change,
                    on_start=view.on_start,
                    on_plan=view.on_plan,
                )
                with view.shown(not quiet):
                    return await body(backend, options)
        finally:
            journal.close()

    return asyncio.run(go())
