"""How the ``review``, ``swarm`` and ``code`` commands deliver their report: the report
flags (``--format``, ``--out``, ``--json``), writing it, the closing lines on stderr and
the exit code."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
import msgspec
from rich.table import Table

from smesh.agents.preflight import check_output_file
from smesh.apps.common import ScanReport, Summary
from smesh.cli._common import err_console, esc, plain, wrote_json
from smesh.cli._session import exit_code, finish_line, stored_report
from smesh.cli._stop import RunWatch
from smesh.errors import ConfigurationError

__all__ = [
    "ReportFlags",
    "closing",
    "dumps",
    "emit_report",
    "report_options",
    "summary_table",
    "with_run_totals",
]

T = TypeVar("T")
R = TypeVar("R", bound=ScanReport[Any])


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ReportFlags:
    """The report flags of ``review`` and ``swarm``, as one value.

    Attributes:
        format: the report format (``--format``; ``--json`` is ``json``).
        out: the file to write it to (``--out``), or None for stdout.
    """

    format: str
    out: Path | None

    @property
    def quiet(self) -> bool:
        """No live view and no closing lines: a machine reads stdout."""
        return self.format != "text" and self.out is None

    def check(self) -> None:
        """Fail before the run, not after it, if ``--out`` cannot be written."""
        if self.out is not None:
            check_output_file(self.out)

    def deliver(
        self,
        report: R,
        renderers: Mapping[str, Callable[[R], str]],
        *,
        run: Any,
        watch: RunWatch,
    ) -> int:
        """Write ``report`` in the chosen format and, unless quiet, the closing lines;
        return the exit status: 1 when the run ended with failed or unfinished work or an
        analyzer failed (not a complete scan), else 0.

        Args:
            report: the app's report.
            renderers: format -> renderer.
            run: the run's :class:`~smesh.cli._apps.RunFlags`.
            watch: the run's watch (what finished).
        """
        report = with_run_totals(report, run)
        emit_report(renderers[self.format](report), self.out, json=self.format != "text")
        if not self.quiet:
            closing(report.summary, what="findings agreed", journal=run.journal)
        for failure in report.analyzer_failures:
            click.echo(f"smesh: analyzer failed: {failure}", err=True)
        settings = run.options.settings
        line = finish_line(
            watch, report.summary.stopped_by, run.options.budget, settings.idle_timeout_s
        )
        if line is not None:
            click.echo(line, err=True)
        return exit_code(watch, failures=len(report.analyzer_failures))


def with_run_totals(report: T, run: Any) -> T:
    """``report`` with its summary's time, calls and tokens summed over every session of
    a resumed run (as the journal keeps them), so a resumed report never shows only the
    last session's."""
    resume_id = run.resume_id
    summary = getattr(report, "summary", None)
    if resume_id is None or not isinstance(summary, Summary):
        return report
    stored = stored_report(run.journal, resume_id)
    if not stored:
        return report
    totals = {
        key: stored[key]
        for key in ("duration_s", "llm_calls", "tokens")
        if isinstance(stored.get(key), int | float)
    }
    if not totals:
        return report
    return msgspec.structs.replace(  # type: ignore[type-var]
        report, summary=msgspec.structs.replace(summary, **totals)
    )


def report_options(formats: Sequence[str]) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Add ``--format``, ``--out`` and ``--json``; the command receives them as one
    ``output`` argument, a :class:`ReportFlags`."""

    def decorate(func: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(func)
        def command(*args: Any, fmt: str, out: Path | None, as_json: bool, **kwargs: Any) -> T:
            output = ReportFlags(format="json" if as_json else fmt, out=out)
            return func(*args, output=output, **kwargs)

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
        decorated: Callable[..., T] = command
        for option in reversed(options):
            decorated = option(decorated)
        return decorated

    return decorate


def summary_table(summary: Summary, *, what: str) -> Table:
    """The closing numbers as a small table."""
    title = f"Run {esc(summary.run_id)} ({esc(summary.stopped_by)})"
    table = Table(title=title, title_justify="left")
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
        table.add_row(plain(name), plain(value))
    return table


def closing(summary: Summary, *, what: str, journal: Path, notes: Sequence[str] = ()) -> None:
    """The closing lines on stderr: the numbers, ``notes``, and how to resume the run."""
    err_console.print(summary_table(summary, what=what))
    for note in notes:
        err_console.print(plain(note))
    err_console.print(plain(f"journal: {journal} · resume with --resume {summary.run_id}"))


def emit_report(text: str, out: Path | None, *, json: bool = False) -> None:
    """Write the report to ``out``, or print it on stdout (``json``: it is the command's
    one JSON document)."""
    if out is None:
        click.echo(text, nl=not text.endswith("\n"))
        if json:
            wrote_json()
        return
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot write {str(out)!r}: {exc.strerror}") from None


def dumps(data: Any) -> str:
    """Indented JSON."""
    return json.dumps(data, indent=2, ensure_ascii=False)
