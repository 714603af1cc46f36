"""The apps benchmark suite: ``smesh swarm`` with the embedded model, timed.

- ``swarm_seconds_per_file``: the planted samples (``samples/``, five files, ten
  vulnerabilities), wall time of the whole run divided by the files; target 6 s.
- ``swarm_web50_seconds``: a synthetic fifty-file Flask project
  (:mod:`smesh.bench.webproject`) with the default specialists and analyzers; target
  300 s, every planned check done (none left unfinished by the budget).

Both load the embedded model once; the machine's load average is part of the detail,
since two shared cores make wall times move. ``--quick`` runs the samples only. The
quality of the findings is measured elsewhere, on a labelled corpus
(``python -m smesh.eval.vulns``).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from smesh.bench import BenchResult

__all__ = ["run"]

SAMPLES = Path(__file__).resolve().parents[3] / "samples"


async def _timed(root: Path, backend: object) -> tuple[float, int, int, int, str]:
    """Seconds, files, LLM calls, unfinished tasks and how the run stopped."""
    from smesh.apps.files import select_files
    from smesh.apps.options import RunOptions
    from smesh.apps.swarm import run_swarm

    files = len(select_files(root))
    started = time.perf_counter()
    report = await run_swarm(root, backend, options=RunOptions(fit_budget=True))  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    return (
        seconds,
        files,
        report.summary.llm_calls,
        len(report.unfinished),
        report.summary.stopped_by,
    )


async def _measure(quick: bool, progress: Callable[[str], None]) -> list[BenchResult]:
    from smesh.backends.local import LocalBackend
    from smesh.backends.model import model_status
    from smesh.bench.webproject import write_project

    if not model_status("0.5b").available or not SAMPLES.is_dir():
        return []
    backend = LocalBackend()
    results: list[BenchResult] = []
    try:
        progress("loading the embedded model")
        await backend.start()
        progress("swarm on samples/")
        seconds, files, calls, unfinished, stopped = await _timed(SAMPLES, backend)
        load = os.getloadavg()[0]
        results.append(
            BenchResult(
                name="swarm_seconds_per_file",
                value=seconds / files,
                unit="s",
                target=6.0,
                detail=f"samples/: {files} files, {calls} LLM calls, {seconds:.0f} s, "
                f"{unfinished} unfinished ({stopped}), load {load:.1f}",
            )
        )
        if not quick:
            progress("swarm on a 50-file Flask project")
            with tempfile.TemporaryDirectory(prefix="smesh-web50-") as tmp:
                write_project(Path(tmp), files=50)
                seconds, files, calls, unfinished, stopped = await _timed(Path(tmp), backend)
            load = os.getloadavg()[0]
            results.append(
                BenchResult(
                    name="swarm_web50_seconds",
                    value=seconds,
                    unit="s",
                    target=300.0,
                    detail=f"{files} files, {calls} LLM calls, {unfinished} unfinished "
                    f"({stopped}), load {load:.1f}",
                )
            )
    finally:
        await backend.aclose()
    return results


def run(*, quick: bool = False, progress: Callable[[str], None] | None = None) -> list[BenchResult]:
    """Run the apps suite (loads the embedded model; minutes on two cores)."""
    return asyncio.run(_measure(quick, progress or (lambda _: None)))
