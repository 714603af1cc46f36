"""How the ``review``, ``swarm`` and ``code`` commands deliver their report: the report
flags (``--format``, ``--out``, ``--json``), writing it, and the closing lines on stderr."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.table import Table

from smesh.apps.common import ScanReport, Summary
from smesh.cli._common import err_console

__all__ = [
    "ReportFlags",
    "closing",
    "dumps",
    "emit_report",
    "report_options",
    "summary_table",
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

    def deliver(
        self, report: R, renderers: Mapping[str, Callable[[R], str]], *, journal: Path
    ) -> int:
        """Write ``report`` in the chosen format and, unless quiet, the closing lines;
        return the exit status (1 when an analyzer failed: not a clean scan)."""
        emit_report(renderers[self.format](report), self.out)
        if not self.quiet:
            closing(report.summary, what="findings agreed", journal=journal)
        for failure in report.analyzer_failures:
            click.echo(f"smesh: analyzer failed: {failure}", err=True)
        return 1 if report.analyzer_failures else 0


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


def closing(summary: Summary, *, what: str, journal: Path, notes: Sequence[str] = ()) -> None:
    """The closing lines on stderr: the numbers, ``notes``, and how to resume the run."""
    err_console.print(summary_table(summary, what=what))
    for note in notes:
        err_console.print(note)
    err_console.print(f"journal: {journal} · resume with --resume {summary.run_id}")


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
