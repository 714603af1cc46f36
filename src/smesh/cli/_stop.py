"""How a command stops: Ctrl-C, budgets, and the one line that says how a run ended.

The first Ctrl-C (or SIGTERM) cancels the command's main task: the agents' tasks are
cancelled with it, and so are their backend calls (the embedded model drops the
generation, HTTP requests are closed). The run's journal is flushed and the session is
recorded as interrupted, then the command prints one line: why it stopped, what finished,
the run id and the exact ``--resume`` command, and exits 130. Should closing down take
longer than :data:`HARD_STOP_S` (a model that will not let go, a thread that will not
join), a watchdog prints the line and ends the process at once; a second Ctrl-C does the
same without waiting.

:class:`RunWatch` follows one run (its id, its task board) so that the line can be written
at any moment, from the signal handler or the watchdog too.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import os
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Coroutine, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from smesh.agents.board import TaskBoard

__all__ = ["HARD_STOP_S", "Interrupted", "RunWatch", "guard", "run_async", "trace_stop"]

T = TypeVar("T")

#: seconds from the first Ctrl-C to a forced exit (the target is 5 s, on a loaded machine)
HARD_STOP_S = float(os.environ.get("SMESH_HARD_STOP_S", "4.0"))
_EXIT_INTERRUPTED = 130


class Interrupted(Exception):
    """The command was interrupted by Ctrl-C; its stop line is already printed."""


class RunWatch:
    """Follows one run for its stop line.

    Args:
        argv: the command's arguments as typed (after ``smesh``), for the resume command;
            default: the running command's.
    """

    def __init__(self, argv: Sequence[str] | None = None) -> None:
        self.argv = list(guard.argv if argv is None else argv)
        self.run_id: str | None = None
        self.board: TaskBoard | None = None

    def on_start(self, board: TaskBoard) -> None:
        """Follow ``board`` (the team is ready)."""
        self.board = board

    def counts(self) -> dict[str, int]:
        """Accepted, failed and unfinished tasks on the board now."""
        counts = {"accepted": 0, "failed": 0, "unfinished": 0}
        board = self.board
        if board is None:
            return counts
        for _ in range(3):  # the handler may run while the board is being changed
            try:
                tasks = list(board.tasks.values())
                break
            except RuntimeError:
                continue
        else:
            return counts
        for task in tasks:
            counts[_state(task)] += 1
        return counts

    def progress(self) -> str:
        """What finished, in a few words."""
        c = self.counts()
        total = sum(c.values())
        if not total:
            return "no task finished"
        parts = [f"{c['accepted']} of {total} tasks accepted"]
        if c["failed"]:
            parts.append(f"{c['failed']} failed")
        if c["unfinished"]:
            parts.append(f"{c['unfinished']} unfinished")
        return ", ".join(parts)

    def resume_command(self) -> str:
        """The exact command that continues this run."""
        args: list[str] = []
        skip = False
        for arg in self.argv:
            if skip:
                skip = False
                continue
            if arg == "--resume":
                skip = True
                continue
            if arg.startswith("--resume="):
                continue
            args.append(arg)
        return shlex.join(["smesh", *args, "--resume", self.run_id or "RUN"])

    def interrupted(self) -> str:
        """The stop line of an interrupted run (Ctrl-C, or SIGTERM)."""
        return self.line(f"interrupted ({guard.cause})")

    def line(self, why: str, *, resumable: bool = True) -> str:
        """The stop line: why, what finished, the run id and how to resume it."""
        if self.run_id is None:
            return f"smesh: {why} before the run started; nothing to resume"
        line = f"smesh: {why} · {self.progress()} · run {self.run_id}"
        if resumable:
            line += f" · resume: {self.resume_command()}"
        return line


def _state(task: Any) -> str:
    """``accepted``, ``failed``, or ``unfinished`` (open, or given up when the run stopped)."""
    if task.outcome == "accepted":
        return "accepted"
    if task.outcome is None:
        return "unfinished"
    decisions = task.decisions
    last = decisions.get(max(decisions)) if decisions else None
    payload = last.payload if last is not None else None
    basis = payload.get("basis") if isinstance(payload, dict) else None
    return "unfinished" if basis == "give-up" else "failed"


class _Guard:
    """The process's Ctrl-C handling (one per process; see the module docstring)."""

    def __init__(self) -> None:
        self.count = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.task: asyncio.Task[Any] | None = None
        self.describe: Callable[[], str] | None = None
        self._said = False
        self._lock = threading.Lock()
        self._previous: dict[int, Any] = {}
        self.argv: list[str] = []
        self.cause = "Ctrl-C"  # what stopped the command: "Ctrl-C" or "SIGTERM"
        #: the process is ``smesh`` itself (not ``main()`` called in-process): it ends
        #: when the command does, so nothing needs closing down politely
        self.program = False

    def install(self, argv: Sequence[str]) -> Callable[[], None]:
        """Take over SIGINT and SIGTERM (main thread only) for a command run with ``argv``
        (the arguments after ``smesh``); returns the undo."""
        self.count = 0
        self.cause = "Ctrl-C"
        self._said = False
        self.argv = list(argv)
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._on_signal)

        def restore() -> None:
            for signum, handler in self._previous.items():
                signal.signal(signum, handler)
            self._previous.clear()

        return restore

    def say(self, line: str | None = None) -> None:
        """Print the stop line once, straight to fd 2 (safe in a handler or a thread)."""
        with self._lock:
            if self._said:
                return
            self._said = True
        if line is None:
            try:
                line = self.describe() if self.describe is not None else "smesh: interrupted"
            except Exception:  # the run is half torn down: say what we can
                line = "smesh: interrupted"
        with contextlib.suppress(OSError):
            os.write(2, ("\n" + line + "\n").encode("utf-8", "replace"))

    def _exit_now(self) -> None:
        trace_stop("exit-now")
        self.say()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(_EXIT_INTERRUPTED)

    def _watchdog(self) -> None:
        timer = threading.Timer(HARD_STOP_S, self._exit_now)
        timer.daemon = True
        timer.start()
        if self.program:
            # The timer is a Python thread: native code that holds the interpreter lock
            # for seconds (a llama.cpp server being destroyed) would hold it up. This
            # backstop is a C thread; it ends the process (status 1) if even that failed.
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                devnull = open(os.devnull, "w")  # noqa: SIM115 - lives until the exit
                faulthandler.dump_traceback_later(HARD_STOP_S + 0.8, exit=True, file=devnull)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        trace_stop("signal")
        self.count += 1
        if signum == signal.SIGTERM:
            self.cause = "SIGTERM"
        if self.count > 1:
            self._exit_now()
        self._watchdog()
        task, loop = self.task, self.loop
        if task is not None and loop is not None and not task.done():
            loop.call_soon_threadsafe(task.cancel)
            return
        raise KeyboardInterrupt

    def exit_later(self, code: int, after_s: float = 1.0) -> None:
        """End the process with ``code`` if shutting down (joining threads a library
        left behind) takes longer than ``after_s`` (0: now)."""

        def force() -> None:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(OSError, ValueError):
                    stream.flush()
            os._exit(code)

        if after_s <= 0:
            force()
        timer = threading.Timer(after_s, force)
        timer.daemon = True
        timer.start()


guard = _Guard()
_T0 = [0.0]


def trace_stop(what: str) -> None:
    """With ``SMESH_STOP_TRACE=1``, write when each step of a stop happened to stderr
    (seconds since the first step): how the stop times in the report were taken apart."""
    if os.environ.get("SMESH_STOP_TRACE"):
        import time

        now = time.monotonic()
        if not _T0[0]:
            _T0[0] = now
        os.write(2, f"[stop {now - _T0[0]:.2f}] {what}\n".encode())


def run_async(main: Coroutine[Any, Any, T], *, describe: Callable[[], str] | None = None) -> T:
    """Run ``main`` on a fresh event loop; the first Ctrl-C cancels it.

    Unlike :func:`asyncio.run`, closing the loop waits a bounded time for what is left
    (tasks, async generators) and never for the threads of the default executor: a
    library still letting go of a model in a thread must not hold up the end of the
    command (``smesh.cli.main`` does not wait for those threads either).

    Args:
        main: the command's coroutine.
        describe: the stop line to print when interrupted (default: "interrupted").

    Raises:
        Interrupted: Ctrl-C stopped it (the stop line is printed).
    """

    async def wrapped() -> T:
        guard.loop = asyncio.get_running_loop()
        guard.task = asyncio.current_task()
        try:
            return await main
        finally:
            guard.loop = guard.task = None

    guard.describe = describe
    loop = asyncio.new_event_loop()
    try:
        result = loop.run_until_complete(wrapped())
    except (asyncio.CancelledError, KeyboardInterrupt):
        trace_stop("the run ended")
        if guard.count:
            guard.say()
            raise Interrupted from None
        raise
    finally:
        guard.describe = None
        _close_loop(loop)
    if guard.count:  # the work swallowed the cancellation: still an interrupted run
        guard.say(describe() if describe is not None else None)
        raise Interrupted
    return result


def _close_loop(loop: asyncio.AbstractEventLoop, wait_s: float = 1.0) -> None:
    try:
        left = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in left:
            task.cancel()
        if left:
            loop.run_until_complete(asyncio.wait(left, timeout=wait_s))
        loop.run_until_complete(loop.shutdown_asyncgens())
    except (RuntimeError, KeyboardInterrupt):
        pass
    finally:
        loop.close()  # the default executor is shut down without waiting for its threads
