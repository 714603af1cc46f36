"""Child process for the memory tests: one call against a flooding server, RSS measured.

Run as ``python _big_body_client.py KIND URL MODE``; prints one JSON object: the error the
call raised and how far the peak resident set grew during it, in kB. A separate process
keeps the measurement clean of the test runner's own allocations.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def _reset_peak() -> bool:
    # Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0).
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _backend(kind: str, url: str) -> Any:
    if kind == "openai":
        from smesh.backends.openai import OpenAIBackend

        return OpenAIBackend("m", base_url=url, api_key="k", timeout=60)
    if kind == "anthropic":
        from smesh.backends.anthropic import AnthropicBackend

        return AnthropicBackend("c", api_key="k", base_url=url, timeout=60)
    from smesh.backends.ollama import OllamaBackend

    return OllamaBackend("m", host=url, timeout=60)


async def _call(backend: Any, mode: str) -> str:
    from smesh.backends import Request

    request = Request.of("x")
    try:
        if mode == "stream":
            count = 0
            async for _ in backend.stream(request):
                count += 1  # pieces are dropped: only the backend may hold memory
        else:
            await backend.complete(request)
    except Exception as exc:  # the test asserts on the type
        return type(exc).__name__
    return "none"


async def main(kind: str, url: str, mode: str) -> dict[str, Any]:
    async with _backend(kind, url) as backend:
        warm = await _call(backend, mode)  # the server answers the first call with "{}"
        before = _status_kb("VmRSS")
        reset = _reset_peak()
        error = await _call(backend, mode)
        peak_after = _status_kb("VmHWM")
    return {
        "warm_error": warm,
        "error": error,
        "rss_before_kb": before,
        # Without a reset the peak includes start-up, which only overstates the growth.
        "peak_growth_kb": peak_after - before,
        "peak_reset": reset,
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(*sys.argv[1:4]))))
