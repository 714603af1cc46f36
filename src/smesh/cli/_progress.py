"""Progress of a long command on stderr, also when stdout carries ``--json``.

:class:`Meter` is the one progress display of every command that can run for more than a
few seconds (``agents``, ``review``, ``swarm``, ``code``, ``eval``, ``compare``, ``bench``,
``sim``). On a terminal it is a rich progress bar (what, done/total, elapsed, ETA); on
anything else (a pipe, a log file, CI) it is one plain line once the command has run for
a couple of seconds (a quick one says nothing), then at most one every
``SMESH_PROGRESS_S`` seconds (default 10) while something moves, and the last state at the
end, so a run writing its JSON report to stdout is never silent for half an hour and a log
is not flooded. Nothing of it ever goes to stdout.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from smesh.cli._common import err_console, esc

__all__ = ["Meter", "clock_text"]


def _every_s() -> float:
    try:
        return max(0.0, float(os.environ.get("SMESH_PROGRESS_S", "10")))
    except ValueError:
        return 10.0


_GRACE_S = 2.0  # a command quicker than this prints no progress lines


def clock_text(seconds: float) -> str:
    """``75`` → ``1:15``; ``3725`` → ``1:02:05``."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


class Meter:
    """Progress of one thing (``what``): ``done`` of ``total`` ``unit`` (total None:
    not known, only what is happening and for how long).

    Args:
        what: what is being done, e.g. ``review``.
        total: how many units, if known (may grow later: :meth:`update`).
        unit: what is counted, e.g. ``tasks``.
        heartbeat: refresh every second even when nothing is reported (a step with no
            progress hook of its own still shows that it is alive).
        console: where a terminal's bar goes (stderr).
    """

    def __init__(
        self,
        what: str,
        *,
        total: int | None = None,
        unit: str = "",
        heartbeat: bool = False,
        console: Console = err_console,
    ) -> None:
        self.what = what
        self.total = total
        self.unit = unit
        self.done = 0
        self.note = ""
        self.console = console
        self.started = time.monotonic()
        self._every = _every_s()
        self._grace = min(_GRACE_S, self._every)
        self._last_line = -1.0
        self._last_text = ""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._heartbeat = heartbeat
        self._bar: Progress | None = None
        self._task: Any = None

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> Meter:
        self.started = time.monotonic()
        if self.console.is_terminal:
            self._bar = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(esc(self.unit)),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(esc(self.what), total=self.total)
        else:
            self._line(force=True)
            if not self._heartbeat and self._grace > 0:
                # the first line once the grace is over, even if nothing moves by then (a
                # first task that takes minutes must not leave the log silent meanwhile)
                threading.Thread(target=self._first, name="smesh-progress", daemon=True).start()
        if self._heartbeat:
            threading.Thread(target=self._beat, name="smesh-progress", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        else:
            self._line(final=True)

    def _first(self) -> None:
        if not self._stop.wait(self._grace):
            self._line()

    def _beat(self) -> None:
        while not self._stop.wait(1.0):
            self.update()

    # -- reporting -------------------------------------------------------------------------

    def update(
        self, done: int | None = None, *, total: int | None = None, note: str | None = None
    ) -> None:
        """Set what is done (and the total, and a note on what is happening now)."""
        with self._lock:
            if done is not None:
                self.done = done
            if total is not None:
                self.total = total
            if note is not None:
                self.note = note
        bar = self._bar
        if bar is not None:
            description = esc(self.what + (f": {self.note}" if self.note else ""))
            bar.update(self._task, completed=self.done, total=self.total, description=description)
        else:
            self._line()

    def advance(self, n: int = 1, *, note: str | None = None) -> None:
        """``n`` more units done."""
        self.update(self.done + n, note=note)

    def text(self) -> str:
        """The plain progress line (without its time)."""
        parts = [f"smesh: {self.what}"]
        if self.total:
            share = f" ({self.done / self.total:.0%})"
            parts.append(f": {self.done}/{self.total} {self.unit}".rstrip() + share)
        elif self.done:
            parts.append(f": {self.done} {self.unit}".rstrip())
        if self.note:
            parts.append(f" · {self.note}")
        return "".join(parts)

    def _line(self, *, force: bool = False, final: bool = False) -> None:
        if not (self.total or self._heartbeat):
            return  # nothing to count yet (e.g. still checking what to run): say nothing
        now = time.monotonic()
        with self._lock:
            text = self.text()
            if self._last_line < 0:
                if now - self.started < self._grace:
                    return  # quick so far: nothing to say yet
                force = True  # the first line as soon as there is something to say
            moved = text != self._last_text or self._heartbeat  # a heartbeat says it lives
            due = now - self._last_line >= self._every and moved
            if not (force or due or (final and text != self._last_text)):
                return
            self._last_line, self._last_text = now, text
        elapsed = now - self.started
        line = f"{text} · {clock_text(elapsed)}"
        if self.total and 0 < self.done < self.total and not final:
            eta = elapsed / self.done * (self.total - self.done)
            line += f" · ETA {clock_text(eta)}"
        click.echo(line, err=True)
