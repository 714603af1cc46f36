"""Overhead of the tool-calling loop around a no-op tool (scripted model, no LLM), in every
variant: one call a turn (``tool_call_overhead_us``, also in ``smesh bench --suite
agents``), 8 calls in one turn, a sync tool, a side effect with each effect ledger.

Usage: python benchmarks/tool_loop.py [--quick]

The measurement lives in :mod:`smesh.bench.tools`.
"""

from __future__ import annotations

import asyncio
import sys

from smesh.bench.tools import variants

if __name__ == "__main__":
    figures = asyncio.run(variants("--quick" in sys.argv))
    for label, value in figures.items():
        print(f"{label:<52} {value:8.1f} µs")
