"""Measure how promptly backend calls stop (figures for benchmarks/RESULTS.md).

    python benchmarks/backend_stops.py [--skip-http] [--skip-local] [--reps N]

HTTP: a loopback server that drips one byte every 5 s against ``timeout=5`` (how long until
BackendTimeout), and a 200 MB answer (peak RSS growth of a child process making the call).
Local: the embedded model mid-way through a 2,000-token answer is cancelled; how long until
the call returns and until the server's ``/slots`` shows the slot idle, without and with a
CPU-bound process (``python -c 'while 1: pass'``) running beside it; for comparison, the
same cancel of a plain non-streamed ``handle_chat_completions`` call (what ``local`` did
before), and tokens/s with 1 and 2 threads.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests" / "backends")]


@contextlib.contextmanager
def cpu_load(enabled: bool) -> Iterator[None]:
    """One CPU-bound process beside the measurement, when ``enabled``."""
    if not enabled:
        yield
        return
    hog = subprocess.Popen([sys.executable, "-c", "while 1: pass"])
    try:
        time.sleep(0.5)
        yield
    finally:
        hog.kill()
        hog.wait()


# --- HTTP ----------------------------------------------------------------------------------


async def drip_figures() -> dict[str, float]:
    from _loopback import RawConnection, RawServer
    from test_http_bounds import make

    from smesh.backends import Request
    from smesh.errors import BackendTimeout

    def drip(conn: RawConnection) -> None:
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n")
        conn.drip(b" ", 5.0, limit=60)

    out: dict[str, float] = {}
    for kind in ("openai", "anthropic", "ollama"):
        with RawServer(drip) as server:
            async with make(kind, server.url, timeout=5) as backend:
                started = time.monotonic()
                with contextlib.suppress(BackendTimeout):
                    await backend.complete(Request.of("x"))
                out[kind] = time.monotonic() - started
    return out


def rss_figures() -> dict[str, float]:
    from _loopback import RawServer
    from test_http_bounds import MB, _probe_memory, flood

    out: dict[str, float] = {}
    for kind, mode in (("openai", "complete"), ("anthropic", "complete"), ("ollama", "stream")):
        with RawServer(flood(total=200 * MB, declare=False)) as server:
            result = _probe_memory(kind, server.url, mode)
            out[f"{kind}-{mode}"] = result["peak_growth_kb"] / 1024
            out[f"{kind}-{mode}-sent"] = server.bytes_sent / MB
    return out


# --- local ---------------------------------------------------------------------------------

LONG = "Write a very long story about a lighthouse keeper, chapter by chapter."


async def wait_slots(backend: Any, idle: bool, limit: float) -> float:
    started = time.monotonic()
    while (await backend.busy_slots() == 0) != idle:
        if time.monotonic() - started > limit:
            return float("inf")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def cancel_once(backend: Any) -> tuple[float, float]:
    from smesh.backends import Request

    request = Request.of(LONG, max_tokens=2000, temperature=0, allow_truncated=True)
    task = asyncio.create_task(backend.complete(request))
    await wait_slots(backend, idle=False, limit=120)
    await asyncio.sleep(2.0)
    cancelled = time.monotonic()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    returned = time.monotonic() - cancelled
    freed = returned + await wait_slots(backend, idle=True, limit=60)
    return returned, freed


async def legacy_cancel_once(backend: Any) -> tuple[float, float]:
    """The old path: a non-streamed call in a thread, abandoned on cancel.

    400 tokens rather than 2,000, and the wait for the slot is long enough for it to finish:
    the server must not be closed under a generation nobody can stop.
    """
    from smesh.backends import Request
    from smesh.backends.openai import chat_body

    server = backend._server  # measurement only: drive the same server the old way
    body = chat_body(Request.of(LONG, max_tokens=400, temperature=0), backend.model)
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(loop.run_in_executor(None, server.handle_chat_completions, body))
    await wait_slots(backend, idle=False, limit=120)
    await asyncio.sleep(2.0)
    cancelled = time.monotonic()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    returned = time.monotonic() - cancelled
    freed = returned + await wait_slots(backend, idle=True, limit=300)
    return returned, freed


async def tokens_per_s(backend: Any) -> float:
    from smesh.backends import Request

    request = Request.of(
        "Count from one upwards, in words.", max_tokens=48, temperature=0, allow_truncated=True
    )
    rates = []
    for _ in range(2):
        reply = await backend.complete(request)
        rates.append(reply.tokens_per_s)
    return max(rates)


async def local_figures(reps: int) -> dict[str, Any]:
    from smesh.backends.local import LocalBackend

    out: dict[str, Any] = {}
    async with LocalBackend(n_parallel=2, ctx_per_slot=4096) as backend:
        await backend.start()
        out["threads"] = backend.n_threads
        for loaded in (False, True):
            with cpu_load(loaded):
                runs = [await cancel_once(backend) for _ in range(reps)]
                label = "loaded" if loaded else "idle"
                out[f"return-{label}"] = [round(r, 3) for r, _ in runs]
                out[f"freed-{label}"] = [round(f, 3) for _, f in runs]
        with cpu_load(True):
            returned, freed = await legacy_cancel_once(backend)
            out["legacy-loaded"] = (round(returned, 3), round(freed, 3))
    for threads in (1, 2):
        async with LocalBackend(n_parallel=1, n_threads=threads) as backend:
            await backend.start()
            for loaded in (False, True):
                with cpu_load(loaded):
                    label = "loaded" if loaded else "idle"
                    out[f"tok/s-{threads}t-{label}"] = round(await tokens_per_s(backend), 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-local", action="store_true")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    report: dict[str, Any] = {"loadavg_start": os.getloadavg()[0]}
    if not args.skip_http:
        report["drip_timeout_5s_elapsed"] = asyncio.run(drip_figures())
        report["rss_growth_mb_200mb_body"] = rss_figures()
    if not args.skip_local:
        report["local"] = asyncio.run(local_figures(args.reps))
    report["loadavg_end"] = os.getloadavg()[0]
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
