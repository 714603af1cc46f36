"""``smesh eval SUITE``: measure whether coordination through the field helps."""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from smesh.cli._common import EXIT_OK, console, err_console, esc, exit_code_help, print_json
from smesh.cli._progress import Meter
from smesh.cli._stop import run_async
from smesh.eval import DEFAULT_N, SUITES, EvalResult

_RATE_SUITES = ("code", "reason")
_UNITS = {"code": "items", "reason": "items", "scale": "runs"}

Progress = Callable[[str, int, int], None]


@contextlib.contextmanager
def _progress(suite: str) -> Iterator[Progress]:
    """A progress meter on stderr (whatever --json says: stdout is the document) and the
    ``progress(name, done, total)`` hook the suites that have one call; the others show
    that they run and for how long."""
    with Meter(f"eval {suite}", unit=_UNITS.get(suite, ""), heartbeat=True) as meter:

        def show(name: str, done: int, total: int) -> None:
            meter.update(done, total=total, note=name)

        yield show


async def _with_backend(spec: str, threads: int | None, body: Any, quiet: bool) -> EvalResult:
    from smesh.backends import aclose_backend, parse_backend, resolve_backend

    kind, _ = parse_backend(spec)
    options: dict[str, Any] = {}
    if threads is not None:
        if kind != "local":
            raise click.UsageError("--threads applies to the embedded model (--backend local)")
        options["n_threads"] = threads
    backend = resolve_backend(spec, **options)
    try:
        start = getattr(backend, "start", None)
        if start is not None:
            if not quiet:
                err_console.print(f"[dim]backend {esc(backend.name)}: loading…[/dim]")
            await start()
        result: EvalResult = await body(backend)
        return result
    finally:
        await aclose_backend(backend)


def run_suite(
    suite: str,
    *,
    backend: str,
    n: int,
    seed: int,
    budget: int | None,
    conditions: tuple[str, ...] | None,
    concurrency: int,
    threads: int | None,
    quiet: bool,
    mesh: bool = False,
) -> EvalResult:
    """Run one suite (the command's engine, also handy from Python)."""
    with _progress(suite) as progress:
        return _run_suite(
            suite,
            backend=backend,
            n=n,
            seed=seed,
            budget=budget,
            conditions=conditions,
            concurrency=concurrency,
            threads=threads,
            quiet=quiet,
            mesh=mesh,
            progress=progress,
        )


def _run_suite(
    suite: str,
    *,
    backend: str,
    n: int,
    seed: int,
    budget: int | None,
    conditions: tuple[str, ...] | None,
    concurrency: int,
    threads: int | None,
    quiet: bool,
    mesh: bool,
    progress: Progress,
) -> EvalResult:
    if suite == "fanout":
        from smesh.eval.fanout import run_fanout

        return run_fanout(n=n, seed=seed)
    if suite == "faults":
        from smesh.eval.faults import run_faults

        return run_faults(n=n, seed=seed, mesh=mesh)
    if suite == "scale":
        from smesh.eval.scale import run_scale

        return run_scale(n=n, seed=seed, progress=progress)
    if suite == "vulns":
        from smesh.eval.vulns_suite import evaluate

        return evaluate(
            backend=backend,
            n=n,
            seed=seed,
            threads=threads,
            progress=None if quiet else (lambda line: err_console.print(f"[dim]{esc(line)}[/dim]")),
        )
    if suite == "code":
        from smesh.eval import code

        async def body(model: Any) -> EvalResult:
            return await code.run_code(
                model,
                n=n,
                seed=seed,
                budget=budget if budget is not None else code.DEFAULT_BUDGET,
                conditions=conditions or code.CONDITIONS,
                concurrency=concurrency,
                progress=progress,
            )

    else:
        from smesh.eval import reason

        async def body(model: Any) -> EvalResult:
            return await reason.run_reason(
                model,
                n=n,
                seed=seed,
                budget=budget if budget is not None else reason.DEFAULT_BUDGET,
                conditions=conditions or reason.CONDITIONS,
                concurrency=concurrency,
                progress=progress,
            )

    return run_async(_with_backend(backend, threads, body, quiet))


def _table(result: EvalResult) -> Table:
    rate = result.suite in _RATE_SUITES
    units = {
        "fanout": "makespan s",
        "faults": "completion",
        "scale": "CPU µs/task",
        "vulns": "TPR − FPR",
    }
    table = Table(
        title=f"smesh eval {result.suite} · {esc(result.backend)} · n={result.n} · "
        f"seed {result.seed}",
        title_justify="left",
    )
    table.add_column("condition")
    table.add_column("accuracy" if rate else units[result.suite], justify="right")
    table.add_column("95% CI", justify="right")
    if rate:
        table.add_column("tokens/item", justify="right")
    table.add_column("s/item", justify="right")
    for c in result.conditions:
        shown = f"{c.score:.1%}" if rate or result.suite == "faults" else f"{c.score:,.2f}"
        ci = (
            f"{c.ci_low:.1%} – {c.ci_high:.1%}"
            if rate or result.suite == "faults"
            else f"{c.ci_low:,.2f} – {c.ci_high:,.2f}"
        )
        if result.suite == "vulns":
            shown, ci = f"{c.score:+.2f}", f"{c.ci_low:+.2f} – {c.ci_high:+.2f}"
        row = [esc(c.name), shown, ci]
        if rate:
            row.append(f"{c.tokens_per_item:,.0f}")
        row.append(f"{c.seconds_per_item:.3g}")
        table.add_row(*row)
    return table


def _notes(result: EvalResult) -> list[str]:
    extra = result.extra
    if result.suite in _RATE_SUITES:
        lines = [f"budget: {extra.get('budget_tokens_per_item')} tokens per item"]
        for pair, (diff, low, high) in extra.get("paired", {}).items():
            lines.append(f"paired {pair}: {diff:+.1%} (95% CI {low:+.1%} – {high:+.1%})")
        return lines
    if result.suite == "vulns":
        items = extra["items"]
        lines = [
            f"{items['positives']} positives, {items['decoys']} decoys; "
            f"{extra['llm_calls']} LLM calls, swarm {extra['swarm_seconds']} s "
            f"({extra['stopped_by']}, {extra['unfinished']} unfinished), "
            f"load {extra['load_average']}",
            "precision: "
            + ", ".join(
                f"{k} {'–' if v is None else format(v, '.2f')}"
                for k, v in extra["precision"].items()
            ),
        ]
        for cat, row in extra["categories"].items():
            lines.append(
                f"{cat} ({row['positives']}+{row['decoys']}): "
                + ", ".join(
                    f"{s} {'–' if row[s]['score'] is None else format(row[s]['score'], '+.2f')}"
                    for s in ("bandit", "flow", "llm", "consensus")
                )
            )
        return lines
    if result.suite == "fanout":
        per = extra["per_condition"]
        return [
            f"smesh / work-queue makespan: {extra['smesh_vs_work_queue']:.2f} · "
            f"smesh / round-robin: {extra['smesh_vs_round_robin']:.2f}",
            "duplicate executions: " + ", ".join(f"{k} {v['duplicates']}" for k, v in per.items()),
        ]
    if result.suite == "faults":
        lines = [
            f"kill {p['rate']:.0%}: accepted twice {p['accepted_twice']}, wasted calls "
            f"{p['wasted_calls_mean']:.1f}, makespan x{p['makespan_ratio_mean']:.2f}"
            for p in extra["curve"]
        ]
        mesh = extra.get("mesh") or {}
        lines += [
            f"mesh, {p['killed_peers']} of {mesh['peers']} peers killed (SIGKILL): completion "
            f"{p['completion']:.0%}, accepted twice {p['accepted_twice']}, "
            f"duration x{p['duration_ratio']:.2f}"
            for p in mesh.get("curve", [])
        ]
        return lines
    return [
        f"per-task cost, most vs fewest agents: x{extra['per_task_ratio_most_vs_fewest_agents']}",
        f"log-log slopes of total time vs tasks: {extra['slopes_vs_tasks']}",
    ]


@click.command("eval", epilog=exit_code_help)
@click.argument("suite", type=click.Choice(SUITES))
@click.option(
    "--backend",
    default="local",
    show_default=True,
    help="Backend for code, reason and vulns (ignored by the scripted suites).",
)
@click.option(
    "--n",
    "n",
    type=click.IntRange(min=1),
    default=None,
    help="Items: problems (code, reason), tasks (fanout, faults), largest task count (scale), "
    "positives per weakness (vulns). "
    "Defaults: " + ", ".join(f"{k} {v:,}" for k, v in DEFAULT_N.items()) + ".",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every draw.")
@click.option(
    "--budget-tokens",
    "budget",
    type=click.IntRange(min=1),
    default=None,
    help="Tokens (input + output) per item, the same for every condition "
    "(default: code 1600, reason 600).",
)
@click.option(
    "--conditions",
    default=None,
    help="Comma-separated subset of the conditions to run (code and reason).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1, max=64),
    default=4,
    show_default=True,
    help="Items in flight at once (code and reason).",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="CPU threads of the embedded model (1 is much faster on a busy machine).",
)
@click.option(
    "--mesh/--no-mesh",
    default=None,
    help="faults: also kill real mesh peer processes (default: when the mesh extra is installed).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON document.")
@click.option(
    "--plot",
    "plot_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write eval-SUITE.png into this directory.",
)
def command(
    suite: str,
    backend: str,
    n: int | None,
    seed: int,
    budget: int | None,
    conditions: str | None,
    concurrency: int,
    threads: int | None,
    mesh: bool | None,
    as_json: bool,
    plot_dir: Path | None,
) -> int:
    """Measure whether coordination through the field beats a single agent, best-of-N and
    central dispatch, at equal token budgets.

    SUITE is code (HumanEval), reason (reasoning-gym), fanout, faults, scale or vulns.
    code and reason need `pip install 'smesh[eval]'` and a backend (the embedded model by
    default); vulns scores `smesh swarm` (bandit, the flow analysis, the LLM specialists
    and their consensus, TPR - FPR per weakness) on CyberSecEval's labelled Python
    snippets and their decoys (--n positives per weakness; --backend scripted confirms
    everything, no model); the others use scripted workers. Scores come with 95%
    bootstrap intervals.
    """
    if plot_dir is not None and importlib.util.find_spec("matplotlib") is None:
        raise click.UsageError("--plot needs matplotlib: pip install 'smesh[plot]'")
    if plot_dir is not None and plot_dir.exists() and not plot_dir.is_dir():
        raise click.UsageError(f"--plot {str(plot_dir)!r} is not a directory")
    chosen = tuple(c.strip() for c in conditions.split(",") if c.strip()) if conditions else None
    if chosen is not None and suite not in _RATE_SUITES:
        raise click.UsageError("--conditions applies to the code and reason suites")
    if chosen is not None and not chosen:
        raise click.UsageError("--conditions is empty")
    has_zenoh = importlib.util.find_spec("zenoh") is not None
    if mesh and not has_zenoh:
        raise click.UsageError("--mesh needs the mesh extra: pip install 'smesh[mesh]'")
    result = run_suite(
        suite,
        backend=backend,
        n=n if n is not None else DEFAULT_N[suite],
        seed=seed,
        budget=budget,
        conditions=chosen,
        concurrency=concurrency,
        threads=threads,
        quiet=as_json,
        mesh=has_zenoh if mesh is None else mesh,
    )
    if plot_dir is not None:
        from smesh.eval.plot import plot_result

        written = plot_result(result, plot_dir)
        err_console.print(f"plot: {esc(str(written))}")
    if as_json:
        print_json(result)
        return EXIT_OK
    console.print(_table(result))
    for line in _notes(result):
        console.print(esc(line))
    return EXIT_OK
