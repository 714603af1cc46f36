"""``smesh bench``: our figures beside SMESH-Rust's."""

from __future__ import annotations

import click
from rich.table import Table

from smesh.bench import SUITES, BenchResult, run_suite
from smesh.cli._common import console, print_json
from smesh.cli._progress import Meter


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _table(suite: str, results: list[BenchResult]) -> Table:
    table = Table(title=f"smesh bench --suite {suite}", title_justify="left")
    table.add_column("benchmark")
    table.add_column("smesh", justify="right")
    table.add_column("unit")
    table.add_column("SMESH-Rust", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("target", justify="right")
    table.add_column("met", justify="center")
    for r in results:
        ratio = f"{r.value / r.reference:.2f}×" if r.reference else "-"
        met = r.meets_target
        mark = "-" if met is None else ("[green]yes[/green]" if met else "[red]no[/red]")
        target = _fmt(r.target)
        if r.target is not None:
            target = ("≥ " if r.higher_is_better else "≤ ") + target
        table.add_row(r.name, _fmt(r.value), r.unit, _fmt(r.reference), ratio, target, mark)
    return table


@click.command("bench")
@click.option("--quick", is_flag=True, help="Fewer repeats: a faster, noisier run.")
@click.option(
    "--suite",
    "suites",
    type=click.Choice(sorted(SUITES)),
    multiple=True,
    help="Suite to run (repeatable). Default: core.",
)
@click.option("--json", "as_json", is_flag=True, help='Print {"results": [...]} as JSON.')
def command(quick: bool, suites: tuple[str, ...], as_json: bool) -> None:
    """Run the benchmarks and print our medians beside SMESH-Rust's published figures.

    Ratios are ours over theirs (below 1 means faster). Figures depend on the machine.
    """
    results: dict[str, list[BenchResult]] = {}
    # progress on stderr, --json or not: the suites take minutes
    with Meter("bench", heartbeat=True) as meter:
        for suite in suites or ("core",):

            def report(name: str, suite: str = suite) -> None:
                meter.advance(note=f"{suite}: {name}")

            results[suite] = list(run_suite(suite, quick=quick, progress=report))
    if as_json:
        flat = [
            {
                "name": r.name,
                "value": r.value,
                "unit": r.unit,
                "reference": r.reference,
                "target": r.target,
            }
            for rs in results.values()
            for r in rs
        ]
        print_json({"results": flat})
        return
    for suite, rs in results.items():
        console.print(_table(suite, rs))
