"""``smesh bench --suite backends``: the embedded model through the backend layer.

Figures:

- ``local_tokens_per_s``: generated tokens per second of one request, end to end.
- ``local_parallel_speedup``: 4 requests run one after another, over the same 4 run
  concurrently (the server's parallel slots batch them).
- ``local_overhead_pct``: wall time of ``LocalBackend.complete`` over a direct
  ``xllamacpp.Server.handle_chat_completions`` call with the same body, minus one, in %.

Every request generates a fixed number of tokens (``ignore_eos``) at temperature 0, so the
two sides of each comparison do the same work. Direct and wrapped calls are interleaved so
drift in machine load hits both alike.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

from smesh.backends.local import LocalBackend
from smesh.bench import BenchResult

__all__ = ["run"]

PARALLEL = 4


def _request(prompt: str, tokens: int) -> Any:
    from smesh.backends import Request

    return Request.of(prompt, max_tokens=tokens, temperature=0.0, allow_truncated=True)


class _Recording(LocalBackend):
    """LocalBackend that notes the server's own generation time of every reply."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.server_seconds: list[float] = []

    async def raw_chat(self, body: Mapping[str, Any]) -> dict[str, Any]:
        data = await super().raw_chat(body)
        self.server_seconds.append(_server_seconds(data))
        return data


async def _measure(quick: bool, progress: Callable[[str], None]) -> list[BenchResult]:
    from smesh.backends.openai import chat_body

    gen_tokens = 32 if quick else 64
    backend = _Recording(n_parallel=PARALLEL, ctx_per_slot=1024, extra={"ignore_eos": True})
    progress("loading the embedded model")
    await backend.start()
    try:
        await backend.complete(_request("Warm up.", 4))

        progress("single-stream tokens/s")
        rates = []
        for i in range(2 if quick else 4):
            r = await backend.complete(_request(f"Count from {i} upwards, in words.", gen_tokens))
            rates.append(r.tokens_per_s)

        progress("4 sequential vs 4 concurrent")
        speedups = []
        for rep in range(1 if quick else 3):
            prompts = [f"Write a haiku about the number {rep * 10 + i}." for i in range(PARALLEL)]
            started = time.perf_counter()
            for p in prompts:
                await backend.complete(_request(p, gen_tokens))
            sequential = time.perf_counter() - started
            prompts = [
                f"Write a haiku about the colour no. {rep * 10 + i}." for i in range(PARALLEL)
            ]
            started = time.perf_counter()
            async with asyncio.TaskGroup() as tg:
                for p in prompts:
                    tg.create_task(backend.complete(_request(p, gen_tokens)))
            concurrent = time.perf_counter() - started
            speedups.append(sequential / concurrent)

        progress("backend-layer overhead")
        # Generation time on two busy cores varies by tens of percent from call to call, far
        # more than the 2 % we look for, so each call's own generation time (the server's
        # prompt_ms + predicted_ms) is subtracted from its wall time: what is left is the
        # time spent outside llama.cpp, for the direct call and for the backend layer.
        request = _request("Explain recursion in one sentence.", 16)
        body = chat_body(request, backend.model)
        body.update(backend.extra)
        direct_wall, direct_extra, wrapped_extra = [], [], []
        for _ in range(6 if quick else 20):
            started = time.perf_counter()
            data = backend.direct_chat(body)
            wall = time.perf_counter() - started
            direct_wall.append(wall)
            direct_extra.append(wall - _server_seconds(data))
            started = time.perf_counter()
            await backend.complete(request)
            wall = time.perf_counter() - started
            wrapped_extra.append(wall - backend.server_seconds[-1])
    finally:
        await backend.aclose()

    d = statistics.median(direct_wall)
    layer = statistics.median(wrapped_extra) - statistics.median(direct_extra)
    overhead = layer / d * 100
    return [
        BenchResult(
            name="local_tokens_per_s",
            value=statistics.median(rates),
            unit="tok/s",
            higher_is_better=True,
            detail=f"one request, {gen_tokens} generated tokens, prompt included",
        ),
        BenchResult(
            name="local_parallel_speedup",
            value=statistics.median(speedups),
            unit="x",
            target=1.8,
            higher_is_better=True,
            detail=f"{PARALLEL} sequential / {PARALLEL} concurrent requests, "
            f"{gen_tokens} tokens each",
        ),
        BenchResult(
            name="local_overhead_pct",
            value=overhead,
            unit="%",
            target=2.0,
            detail=f"backend layer adds {layer * 1000:.2f} ms to a {d * 1000:.0f} ms direct "
            "call (16 tokens; generation time subtracted per call)",
        ),
    ]


def _server_seconds(data: dict[str, Any]) -> float:
    timings = data.get("timings", {})
    return (float(timings.get("prompt_ms", 0.0)) + float(timings.get("predicted_ms", 0.0))) / 1000


def run(*, quick: bool = False, progress: Callable[[str], None] | None = None) -> list[BenchResult]:
    """Run the backends suite (loads the embedded model; tens of seconds on two cores)."""
    return asyncio.run(_measure(quick, progress or (lambda _: None)))
