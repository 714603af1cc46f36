"""What the ``smesh code`` sandbox costs per test run.

Usage: python benchmarks/sandbox_overhead.py [RUNS]

Runs a trivial passing pytest file RUNS times (default 9) through ``run_pytest`` inside
the bubblewrap sandbox and through the unsandboxed path (``unsafe_local_exec``: a plain
subprocess with the same limits and bounded pipes, i.e. what ``run_pytest`` was before the
sandbox), and prints the medians; then the same for ``/bin/true`` (the bare cost of the
isolation: bwrap, the supervisor, copy-in and copy-back) and the one-off probe.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from smesh.sandbox import Sandbox, isolation, run_pytest

TEST = "def test_trivial():\n    assert 1 + 1 == 2\n"


def median_s(fn: Callable[[], object], runs: int) -> tuple[float, list[float]]:
    times: list[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 9
    start = time.perf_counter()
    iso = isolation()
    probe_s = time.perf_counter() - start
    if not iso.available:
        sys.exit(f"no sandbox here: {iso.reason}")
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / "tests").mkdir()
        (project / "tests" / "test_x.py").write_text(TEST)
        boxed = Sandbox()
        os.environ["SMESH_BWRAP"] = "/nonexistent"  # the unsandboxed path, explicitly
        local = Sandbox(unsafe_local_exec=True)
        assert not local.isolated
        del os.environ["SMESH_BWRAP"]

        def pytest_in(box: Sandbox, env: dict[str, str] | None = None) -> Callable[[], object]:
            def go() -> None:
                if box is local:
                    os.environ["SMESH_BWRAP"] = "/nonexistent"
                try:
                    result = asyncio.run(
                        run_pytest(project, ["tests/test_x.py"], sandbox=box, env=env)
                    )
                finally:
                    os.environ.pop("SMESH_BWRAP", None)
                assert result.passed, result.output

            return go

        def true_in(box: Sandbox) -> Callable[[], object]:
            def go() -> None:
                if box is local:
                    os.environ["SMESH_BWRAP"] = "/nonexistent"
                try:
                    assert asyncio.run(box.run(["/bin/true"], cwd=project)).ok
                finally:
                    os.environ.pop("SMESH_BWRAP", None)

            return go

        autoload = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": ""}
        rows = [
            ("run_pytest, sandboxed (bwrap)", pytest_in(boxed)),
            ("run_pytest, unsandboxed", pytest_in(local)),
            ("run_pytest, sandboxed, plugins autoloaded", pytest_in(boxed, autoload)),
            ("run_pytest, unsandboxed, plugins autoloaded (as before)", pytest_in(local, autoload)),
            ("/bin/true, sandboxed", true_in(boxed)),
            ("/bin/true, unsandboxed", true_in(local)),
        ]
        print(f"isolation: {iso.mode} mode, probe (once per process) {probe_s:.3f} s")
        for name, fn in rows:
            med, times = median_s(fn, runs)
            print(f"{name:58} median {med:.3f} s  [{min(times):.3f} .. {max(times):.3f}]")


if __name__ == "__main__":
    main()
