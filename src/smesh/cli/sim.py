"""``smesh sim``: watch signals diffuse over a network."""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from smesh.cli._common import console, plain, print_json
from smesh.errors import InvalidValue
from smesh.sim import SimConfig, SimResult, SimTick, run_simulation
from smesh.topology import TOPOLOGIES

_PLOT_FORMATS = (".png", ".svg")


def _check_plot_path(path: Path) -> None:
    """Fail before the run, not after it, if the plot cannot be written."""
    if path.suffix.lower() not in _PLOT_FORMATS:
        raise click.BadParameter(
            f"plot file must end in .png or .svg, got {path.name!r}", param_hint="'--plot'"
        )
    parent = path.parent if str(path.parent) else Path()
    if not parent.is_dir():
        raise click.BadParameter(f"directory {str(parent)!r} does not exist", param_hint="'--plot'")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise click.BadParameter(f"cannot write {str(path)!r}", param_hint="'--plot'")
    if importlib.util.find_spec("matplotlib") is None:
        raise click.UsageError("--plot needs matplotlib: pip install 'smesh[plot]'")


def _stats_table(step: SimTick | None, totals: dict[str, int]) -> Table:
    """The live line: coverage and live signals now; reinforcements, expiries and relays
    counted since the start (a tick's own are mostly 0), as the summary counts them."""
    table = Table(show_header=True, header_style="bold", box=None)
    for name in ("coverage", "active", "reinforcements", "expired", "relays", "max hops"):
        table.add_column(name, justify="right")
    if step is not None:
        table.add_row(
            f"{step.coverage:.1%}",
            str(step.active_signals),
            str(totals["reinforcements"]),
            str(totals["expired"]),
            str(totals["relays"]),
            str(step.max_hops),
        )
    return table


def _summary(result: SimResult) -> Table:
    table = Table(title="Simulation summary", title_justify="left", show_header=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("topology", f"{result.topology} ({result.nodes} nodes, {result.edges} edges)"),
        ("ticks", str(result.ticks)),
        ("coverage", f"{result.coverage:.1%}"),
        ("max hops", str(result.max_hops)),
        ("ticks to 50 %", "never" if result.ticks_to_50 is None else str(result.ticks_to_50)),
        ("ticks to 90 %", "never" if result.ticks_to_90 is None else str(result.ticks_to_90)),
        ("active signals at end", str(result.active_signals)),
        ("reinforcements", str(result.reinforcements)),
        ("expired", str(result.expired)),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def write_plot(result: SimResult, path: Path) -> None:
    """Plot coverage and mean intensity per tick to a PNG or SVG file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ticks = [s.tick for s in result.trace]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    top.plot(ticks, [s.coverage * 100 for s in result.trace], color="tab:green")
    top.set_ylabel("coverage (%)")
    top.set_ylim(0, 100)
    top.axhline(50, color="grey", lw=0.5, ls="--")
    top.axhline(90, color="grey", lw=0.5, ls="--")
    top.set_title(f"smesh sim: {result.topology}, {result.nodes} nodes, seed {result.seed}")
    bottom.plot(ticks, [s.mean_intensity for s in result.trace], color="tab:orange")
    bottom.set_ylabel("mean effective intensity")
    bottom.set_xlabel("tick")
    bottom.set_ylim(0, 1.05)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _recording(recorder: Any, on_tick: Callable[[SimTick], None] | None) -> tuple[Any, Any]:
    """The (on_tick, on_start) hooks of ``run_simulation``, with a recorder's added."""
    if recorder is None:
        return on_tick, None

    def both(step: SimTick) -> None:
        recorder.on_tick(step)
        if on_tick is not None:
            on_tick(step)

    return both, recorder.on_start


@click.command("sim")
@click.option(
    "--nodes", type=click.IntRange(min=1), default=50, show_default=True, help="Number of nodes."
)
@click.option(
    "--topology",
    type=click.Choice(list(TOPOLOGIES)),
    default="small_world",
    show_default=True,
    help="Network topology.",
)
@click.option(
    "--ticks", type=click.IntRange(min=0), default=100, show_default=True, help="Ticks to run."
)
@click.option(
    "--signals",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Signals emitted at tick 0 from distinct random nodes.",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the one RNG.")
@click.option(
    "--dt",
    type=click.FloatRange(min=0, min_open=True),
    default=0.1,
    show_default=True,
    help="Virtual seconds per tick.",
)
@click.option(
    "--ttl",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="Signal ttl in seconds.",
)
@click.option(
    "--radius",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Maximum hops per signal.",
)
@click.option(
    "--delay",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Real seconds to pause per tick, to watch the live view.",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a PNG or SVG plot of coverage and mean intensity per tick.",
)
@click.option(
    "--record",
    "record_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Record the run (signals and one frame per tick) in this journal, for smesh dashboard.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def command(
    nodes: int,
    topology: str,
    ticks: int,
    signals: int,
    seed: int,
    dt: float,
    ttl: float,
    radius: int,
    delay: float,
    plot_path: Path | None,
    record_path: Path | None,
    as_json: bool,
) -> None:
    """Simulate signals diffusing, decaying and being reinforced over a network."""
    if plot_path is not None:
        _check_plot_path(plot_path)
    config = SimConfig(
        nodes=nodes,
        topology=topology,
        ticks=ticks,
        signals=signals,
        seed=seed,
        dt=dt,
        ttl=ttl,
        radius=radius,
    )
    try:
        config = config.validated()
    except InvalidValue as exc:
        raise click.UsageError(str(exc)) from None
    recorder = None
    if record_path is not None:
        from smesh.agents.preflight import check_output_file

        check_output_file(record_path, "--record")
        from smesh.dashboard.simrec import SimRecorder

        recorder = SimRecorder(record_path, config)
    if as_json:
        result = run_simulation(config, *_recording(recorder, None))
        payload = {
            k: getattr(result, k)
            for k in (
                "nodes",
                "edges",
                "topology",
                "ticks",
                "coverage",
                "max_hops",
                "ticks_to_50",
                "ticks_to_90",
                "active_signals",
                "reinforcements",
                "expired",
            )
        }
        if plot_path is not None:
            write_plot(result, plot_path)
            payload["plot"] = str(plot_path)
        if recorder is not None:
            recorder.finish(result)
            payload["run_id"] = recorder.run_id
        print_json(payload)
        return

    progress = Progress(
        TextColumn("[bold]tick"), BarColumn(), MofNCompleteColumn(), console=console
    )
    task = progress.add_task("sim", total=ticks)
    totals = {"reinforcements": 0, "expired": 0, "relays": 0}
    with Live(
        Group(progress, _stats_table(None, totals)),
        console=console,
        transient=False,
        refresh_per_second=12,
    ) as live:

        def on_tick(step: SimTick) -> None:
            for key in totals:
                totals[key] += getattr(step, key)
            progress.update(task, completed=step.tick)
            live.update(Group(progress, _stats_table(step, totals)))
            if delay:
                time.sleep(delay)

        result = run_simulation(config, *_recording(recorder, on_tick))
    console.print()
    console.print(_summary(result))
    if recorder is not None:
        recorder.finish(result)
        console.print(plain(f"recorded as run {recorder.run_id} in {record_path}"))
    if plot_path is not None:
        write_plot(result, plot_path)
        console.print(plain(f"plot written to {plot_path}"))
