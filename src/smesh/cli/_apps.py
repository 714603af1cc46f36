"""How the ``review``, ``swarm`` and ``code`` commands run their app: the run flags they
share (parsed once into a :class:`RunFlags`), the run's session (preflight, backend,
journal, Ctrl-C; see :mod:`smesh.cli._session`) and the live progress view."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from smesh.agents.board import TaskBoard, TaskState
from smesh.agents.preflight import check_output_file
from smesh.agents.runtime import Budget
from smesh.apps.options import RunOptions
from smesh.cli._common import (
    backend_options,
    embedded_options,
    err_console,
    journal_option,
    live_view,
    plain,
)
from smesh.cli._observe import ObserveFlags, observe_options, observing
from smesh.cli._progress import Meter, clock_text
from smesh.cli._session import open_backend, resume_notes, session
from smesh.cli._stop import RunWatch, run_async

__all__ = ["ProgressView", "RunFlags", "run_app", "run_options"]

T = TypeVar("T")


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RunFlags:
    """The run flags every app command takes, as one value.

    Attributes:
        backend: the model to ask (``--backend``), resolved when the run starts.
        journal: where the run's journal lives (``--journal``), opened when it starts.
        options: the app's run options from the other flags: the budget (``--max-calls``,
            ``--max-seconds``), ``--seed`` and the run to continue (``--resume``).
        threads: ``--threads`` of the embedded model (None: the default).
        slots: ``--slots`` of the embedded model (None: the default).
        observe: ``--dashboard``, ``--metrics-port`` and ``--otel``.
    """

    backend: str
    journal: Path
    options: RunOptions
    threads: int | None = None
    slots: int | None = None
    observe: ObserveFlags = dataclasses.field(default_factory=ObserveFlags)

    @property
    def resume_id(self) -> str | None:
        """The run to continue (``--resume``), None for a new run."""
        return self.options.run_id if self.options.resume else None

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
        threads: int | None = None,
        slots: int | None = None,
        observe: ObserveFlags | None = None,
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
        return cls(
            backend=backend,
            journal=journal_path,
            options=options,
            threads=threads,
            slots=slots,
            observe=observe or ObserveFlags(),
        )


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
        help="Hard budget on wall time (default: fitted to the planned work; 1800 for code); "
        "in-flight generations are stopped when it runs out.",
    ),
    click.option("--seed", type=int, default=0, show_default=True, help="Seed of the RNGs."),
    journal_option("SQLite journal of the run."),
    click.option(
        "--resume",
        "resume_id",
        metavar="RUN_ID",
        help="Continue a stopped, interrupted or crashed run without redoing finished work "
        "(same path and agents; `smesh runs` lists runs). On a finished run, with --out: "
        "write its report again without asking the model.",
    ),
)


def run_options(func: Callable[..., T]) -> Callable[..., T]:
    """Add the run flags of every app command (backend, threads, slots, budgets, seed,
    journal, resume, and the observers: dashboard, metrics port, OpenTelemetry); the
    command receives them as one ``run`` argument, a :class:`RunFlags`."""

    @functools.wraps(func)
    def command(
        *args: Any,
        backend: str,
        threads: int | None,
        slots: int | None,
        max_calls: int | None,
        max_seconds: float | None,
        seed: int,
        journal_path: Path,
        resume_id: str | None,
        observe: ObserveFlags,
        **kwargs: Any,
    ) -> T:
        run = RunFlags.parse(
            backend=backend,
            max_calls=max_calls,
            max_seconds=max_seconds,
            seed=seed,
            journal_path=journal_path,
            resume_id=resume_id,
            threads=threads,
            slots=slots,
            observe=observe,
        )
        return func(*args, run=run, **kwargs)

    decorated: Callable[..., T] = observe_options(embedded_options(command))
    for option in reversed(_RUN_FLAGS):
        decorated = option(decorated)
    return decorated


class ProgressView:
    """The board's tasks on stderr while a run runs: a live table by kind and state with
    done/total, an ETA and what the run planned (a scan's estimate) under it, or, when
    stdout carries the report (``--json``), a progress :class:`~smesh.cli._progress.Meter`
    (a bar on a terminal, a line now and then elsewhere)."""

    def __init__(self, title: str, extra: Callable[[], str] | None = None) -> None:
        self.title = title
        self.extra = extra
        self.board: TaskBoard | None = None
        self.plan = ""
        self._live: Live | None = None
        self._meter: Meter | None = None
        self._started = time.monotonic()
        self.quiet = False

    def _counts(self) -> dict[str, list[int]]:
        rows: dict[str, list[int]] = {}
        for task in list(self.board.tasks.values()) if self.board is not None else ():
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
        return rows

    def _progress(self, rows: dict[str, list[int]]) -> tuple[int, int, str]:
        """(done, total, "done/total · elapsed · ETA")."""
        done = sum(r[3] + r[4] for r in rows.values())
        total = sum(sum(r) for r in rows.values())
        elapsed = time.monotonic() - self._started
        text = f"{done}/{total} tasks done · {clock_text(elapsed)}"
        if 0 < done < total:
            text += f" · ETA {clock_text(elapsed / done * (total - done))}"
        return done, total, text

    def _render(self) -> Table:
        table = Table(title=self.title, title_justify="left")
        for col in ("work", "open", "working", "verifying", "done", "failed"):
            table.add_column(col, justify="right" if col != "work" else "left")
        rows = self._counts()
        for kind, row in rows.items():
            table.add_row(plain(kind), *map(str, row))
        captions = [self._progress(rows)[2], self.plan, self.extra() if self.extra else ""]
        table.caption = escape(" · ".join(c for c in captions if c))
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
        self._started = time.monotonic()
        self.on_change(None, "start")

    def on_change(self, task: TaskState | None, what: str) -> None:
        """Board callback: refresh the view."""
        if self._live is not None:
            self._live.update(self._render())
        elif self._meter is not None:
            done, total, _ = self._progress(self._counts())
            self._meter.update(done, total=total)

    @contextlib.contextmanager
    def shown(self, quiet: bool = False) -> Iterator[None]:
        """Show the view while the block runs: the table, or with ``quiet`` (stdout is the
        report) the progress meter."""
        if quiet:
            with Meter(self.title, unit="tasks") as meter:
                self._meter = meter
                try:
                    yield
                finally:
                    self.on_change(None, "end")
                    self._meter = None
            return
        with live_view(self._render()) as live:
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
    app: str,
    args: Mapping[str, Any],
    model: bool = True,
) -> tuple[T, RunWatch]:
    """Run an app: check what can be checked before anything loads (the journal path, a
    resumed run's arguments, the backend's probe), start the backend (when ``model``),
    record the run in the journal, hand ``body`` the backend and the run's options bound
    to the journal and the view, show the view unless ``quiet``, and close everything.

    Returns:
        what ``body`` returned, and the run's watch (its board: what finished).

    Raises:
        Interrupted: Ctrl-C stopped the run (its stop line is printed).
    """
    check_output_file(run.journal, "--journal")
    resume_id = run.resume_id
    if resume_id is not None:
        resume_notes(run.journal, resume_id, app=app, args=args)
    options = backend_options(run.backend, run.threads, run.slots) if model else {}
    watch = RunWatch()
    watch.run_id = resume_id
    budget = run.options.budget

    def started(board: TaskBoard) -> None:
        view.on_start(board)
        watch.on_start(board)

    async def go() -> T:
        view.quiet = quiet
        async with (
            open_backend(run.backend if model else None, options=options, quiet=quiet) as backend,
            session(
                run.journal, app=app, args=args, resume_id=resume_id, watch=watch, budget=budget
            ) as (journal, run_id),
        ):
            bound = run.options.replace(
                journal=journal,
                run_id=run_id,
                on_change=view.on_change,
                on_start=started,
                on_plan=view.on_plan,
            )
            with observing(run.observe, journal=run.journal, run_id=run_id), view.shown(quiet):
                return await body(backend, bound)

    result = run_async(go(), describe=watch.interrupted)
    return result, watch
