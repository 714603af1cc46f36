"""The tool-calling loop's own cost, for ``smesh bench --suite agents``.

``tool_call_overhead_us`` is the median, over batches, of the wall time of a loop run in
which a scripted model asks for one no-op call per turn for 8 turns and then answers,
divided by the 8 calls: it covers the model-function round trip, argument validation, the
timeout, rendering the result, the record and the callback. :func:`variants` adds 8 calls
in one turn (concurrent), a sync tool (a worker-thread hop per call), and a side-effecting
tool with the in-memory and the SQLite effect ledger (``benchmarks/tool_loop.py`` prints
them).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from smesh.tools import (
    AssistantTurn,
    EffectLedger,
    EffectScope,
    MemoryEffectLedger,
    SQLiteEffectLedger,
    ToolCall,
    ToolCallRecord,
    ToolLoop,
    ToolSpec,
    Turn,
    tool,
)

__all__ = ["CALLS", "measure", "noop", "variants"]

CALLS = 8


@tool
async def noop(n: int) -> int:
    """Do nothing."""
    return n


@tool
def noop_sync(n: int) -> int:
    """Do nothing, synchronously."""
    return n


@tool(side_effect=True)
async def noop_effect(n: int) -> int:
    """Do nothing, with a declared side effect."""
    return n


def _script(name: str, per_turn: int) -> list[AssistantTurn]:
    turns = [
        AssistantTurn(
            tool_calls=tuple(
                ToolCall(id=f"c{t}_{i}", name=name, arguments={"n": i}) for i in range(per_turn)
            )
        )
        for t in range(CALLS // per_turn)
    ]
    return [*turns, AssistantTurn(text="done")]


async def measure(
    name: str = "noop", per_turn: int = 1, runs: int = 1000, ledger: EffectLedger | None = None
) -> float:
    """Median microseconds per call over 7 batches of ``runs`` loop runs."""
    loop = ToolLoop([noop, noop_sync, noop_effect], max_steps=CALLS, ledger=ledger)
    script = _script(name, per_turn)
    records: list[ToolCallRecord] = []

    async def run_once(index: int) -> None:
        position = 0

        async def model(turns: Sequence[Turn], specs: Sequence[ToolSpec]) -> AssistantTurn:
            nonlocal position
            position += 1
            return script[position - 1]

        # a fresh scope per run, so side effects are new (not replayed) every time
        scope = EffectScope(run_id=f"bench-{index}", task_id="t") if ledger else None
        await loop.run(model, "go", scope=scope, on_record=records.append)
        records.clear()

    for i in range(max(1, runs // 10)):  # warm up
        await run_once(-i - 1)
    batches: list[float] = []
    counter = 0
    for _ in range(7):
        started = time.perf_counter()
        for _ in range(runs):
            counter += 1
            await run_once(counter)
        batches.append((time.perf_counter() - started) / (runs * CALLS) * 1e6)
    return statistics.median(batches)


async def variants(quick: bool = False) -> dict[str, float]:
    """Microseconds per call of the loop around a no-op tool, in each variant."""
    runs = 100 if quick else 1000
    results = {
        "tool_call_overhead_us (async no-op, 1 call/turn)": await measure("noop", 1, runs),
        "8 calls in one turn, per call": await measure("noop", 8, runs),
        "sync no-op (worker thread), per call": await measure("noop_sync", 1, runs // 4),
        "side effect, memory ledger, per call": await measure(
            "noop_effect", 1, runs, MemoryEffectLedger()
        ),
    }
    with tempfile.TemporaryDirectory() as tmp:
        async with SQLiteEffectLedger(Path(tmp) / "journal.db") as ledger:
            results["side effect, SQLite ledger, per call"] = await measure(
                "noop_effect", 1, max(10, runs // 20), ledger
            )
    return results
