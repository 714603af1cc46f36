"""Benchmark suites behind ``smesh bench``.

A suite is a module with ``run(quick: bool) -> list[BenchResult]``. Suites are looked up by
name in :data:`SUITES` and imported only when asked for, so heavy optional dependencies
(the embedded model, zenoh) load only for the suite that needs them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence

import msgspec

from smesh.errors import UnknownName

__all__ = ["SUITES", "BenchResult", "run_suite"]

#: suite name -> module that implements it
SUITES: dict[str, str] = {
    "core": "smesh.bench.core",
    "backends": "smesh.bench.backends",
    "agents": "smesh.bench.agents",
    "mesh": "smesh.bench.mesh",
    "apps": "smesh.bench.apps",
}


class BenchResult(msgspec.Struct, frozen=True, kw_only=True):
    """One benchmark figure, in the stable ``smesh bench --json`` shape.

    Attributes:
        name: stable identifier, e.g. ``field_tick_10000``.
        value: our median, in ``unit``.
        unit: ``ns``, ``µs``, ``ms``, ``s``, ``MB``, ``KB``, ``x``, ``%`` or ``tok/s``.
        reference: SMESH-Rust's published figure in the same unit, if there is one.
        target: the figure we promise, in the same unit, if there is one.
        higher_is_better: whether a bigger value is better (speedups, throughput).
        detail: a short note on what was measured.
    """

    name: str
    value: float
    unit: str
    reference: float | None = None
    target: float | None = None
    higher_is_better: bool = False
    detail: str = ""

    @property
    def meets_target(self) -> bool | None:
        """Whether the value meets the target, or None when there is no target."""
        if self.target is None:
            return None
        return self.value >= self.target if self.higher_is_better else self.value <= self.target


def run_suite(
    name: str, *, quick: bool = False, progress: Callable[[str], None] | None = None
) -> Sequence[BenchResult]:
    """Run the suite called ``name`` and return its results."""
    try:
        module_name = SUITES[name]
    except KeyError:
        known = ", ".join(sorted(SUITES))
        raise UnknownName(f"unknown benchmark suite {name!r} (known: {known})") from None
    module = importlib.import_module(module_name)
    results: Sequence[BenchResult] = module.run(quick=quick, progress=progress)
    return results
