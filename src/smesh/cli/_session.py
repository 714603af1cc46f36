"""One run of a command that runs a team (``agents``, ``review``, ``swarm``, ``code``), from
its preflight to its closing line.

In order: the arguments are checked (a resumed run's against what it was started with,
before anything loads: :func:`resume_notes`), the backend is resolved, probed and started
(:func:`open_backend`), the run is recorded in the journal with its command and arguments
(:func:`session`), the team runs, and the command ends with its exit code
(:func:`exit_code`) and, when the run stopped with work left, the stop line.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import click

from smesh.agents.journal import Journal
from smesh.agents.runs import begin_run, check_resume, end_session
from smesh.backends.accounting import Budget
from smesh.cli._common import EXIT_FAILED, EXIT_OK, err_console, esc
from smesh.cli._stop import RunWatch, guard, trace_stop
from smesh.errors import UsageError

__all__ = [
    "exit_code",
    "finish_line",
    "open_backend",
    "resume_notes",
    "session",
    "stored_report",
]


def resume_notes(journal_path: Path, run_id: str, *, app: str, args: Mapping[str, Any]) -> None:
    """Check, before anything loads or is written, that ``run_id`` can be resumed by this
    command; print what a damaged journal still allows.

    Raises:
        UsageError: no journal, no such run, or the run is another app's or had other
            arguments (see :func:`smesh.agents.runs.check_resume`).
        ConfigurationError: the journal lost what resuming needs.
    """
    if not journal_path.is_file():
        raise UsageError(f"no journal at {str(journal_path)!r}: nothing to resume")
    with Journal(journal_path, create=False) as journal:
        notes = check_resume(journal, run_id, app=app, args=args)
    for note in notes:
        click.echo(f"smesh: note: {note}", err=True)


@contextlib.asynccontextmanager
async def open_backend(
    spec: str | None, *, options: Mapping[str, Any] | None = None, quiet: bool, backend: Any = None
) -> AsyncIterator[Any]:
    """Resolve ``spec`` (or take ``backend``), probe it (a :class:`ConfigurationError`
    before anything loads), start it, and always close it."""
    if spec is None and backend is None:
        yield None
        return
    from smesh.agents.preflight import probe_backend
    from smesh.backends import resolve_backend

    if backend is None:
        assert spec is not None
        backend = resolve_backend(spec, **dict(options or {}))
    try:
        await probe_backend(backend)
        start = getattr(backend, "start", None)
        if start is not None:
            if not quiet:
                err_console.print(f"[dim]backend {esc(backend.name)}: loading…[/dim]")
            await start()
        yield backend
    finally:
        trace_stop("closing the backend")
        await _close(backend)
        trace_stop("backend closed")


#: how long closing a backend may hold up the end of a command (its generations are
#: already stopped; what is left is letting go of threads and memory), and after Ctrl-C
CLOSE_WAIT_S = 0.5
CLOSE_WAIT_INTERRUPTED_S = 0.2


async def _close(backend: Any) -> None:
    """Close ``backend``, waiting for it a bounded time: the rest of the close goes on in
    the background and the process's exit does not wait for it (see ``smesh.cli.main``).

    In the ``smesh`` process itself nothing is closed: the process ends right after (its
    generations are already stopped), and destroying the embedded model's server holds
    the interpreter lock for seconds, which would hold up that end."""
    from smesh.backends.base import aclose_backend

    if guard.program:
        return
    wait = CLOSE_WAIT_INTERRUPTED_S if guard.count else CLOSE_WAIT_S
    closing = asyncio.ensure_future(aclose_backend(backend))
    done, _ = await asyncio.wait([closing], timeout=wait)
    if done:
        closing.result()


def _usage(budget: Budget) -> dict[str, Any]:
    used = budget.usage()
    return {
        "llm_calls": used["calls"],
        "tokens": used["tokens"],
        "cost": used["cost"],
        "duration_s": used["wall_s"],
    }


@contextlib.asynccontextmanager
async def session(
    journal_path: Path,
    *,
    app: str,
    args: Mapping[str, Any],
    resume_id: str | None,
    watch: RunWatch,
    budget: Budget,
    journal_type: Callable[[Path], Journal] = Journal,
) -> AsyncIterator[tuple[Journal, str]]:
    """Open the journal and record the run (new, or another session of ``resume_id``);
    yield the journal and the run id.

    When the run is interrupted (cancelled), the journal is flushed and the session is
    recorded as interrupted before anything else closes; a new run refused by the team's
    preflight is removed again. The journal is closed on the way out, before the backend.
    ``journal_type`` builds the journal (a subclass that also feeds a live view).
    """
    journal = journal_type(journal_path)
    run_id = resume_id or uuid.uuid4().hex[:12]
    watch.run_id = run_id
    try:
        begin_run(journal, run_id, app=app, args=args, argv=watch.argv, resume=bool(resume_id))
        yield journal, run_id
    except asyncio.CancelledError:
        trace_stop("run cancelled")
        with contextlib.suppress(Exception):  # the stop must not fail on the journal
            journal.flush()
            end_session(
                journal,
                run_id,
                status="interrupted",
                counts=watch.counts(),
                usage=_usage(budget),
            )
        raise
    except UsageError:
        if resume_id is None:
            with contextlib.suppress(Exception):
                journal.discard_run(run_id)
        raise
    finally:
        journal.close()
        trace_stop("journal closed")


def stored_report(journal_path: Path, run_id: str) -> dict[str, Any] | None:
    """The run's report as the journal keeps it (summed over its sessions)."""
    try:
        with Journal(journal_path, create=False) as journal:
            return journal.report(run_id)
    except UsageError:
        return None


def exit_code(watch: RunWatch, *, failures: int = 0) -> int:
    """0 when every task on the board was accepted and nothing else failed, else 1."""
    counts = watch.counts()
    return EXIT_FAILED if failures or counts["failed"] or counts["unfinished"] else EXIT_OK


def finish_line(watch: RunWatch, stopped_by: str, budget: Budget, idle_s: float) -> str | None:
    """The stop line of a run that ended with work left (None: nothing to say)."""
    counts = watch.counts()
    if stopped_by == "budget":
        return watch.line(f"stopped by its budget ({budget.exceeded or 'spent'})")
    if stopped_by == "idle":
        return watch.line(f"stopped: nothing happened for {idle_s:g} s")
    if counts["failed"] or counts["unfinished"]:
        return watch.line(f"run ended with {counts['failed']} failed task(s)", resumable=False)
    return None
