"""LocalBackend's control paths without the model: settings, and stopping a generation.

A stand-in for ``xllamacpp.Server`` streams one chunk every few milliseconds through the
same callback protocol (return True to stop) and notes when it was told to stop, so
cancellation, timeouts and ``aclose`` are checked in milliseconds. The real model gets
the same checks in ``test_local_llm.py`` (marker ``llm``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from smesh.backends import Request, Timeout, resolve_backend
from smesh.backends import local as local_module
from smesh.backends.local import LocalBackend, embedded_settings
from smesh.backends.local_settings import default_threads
from smesh.errors import BackendError, BackendTimeout, BackendUnavailable, UsageError

# --- threads and slots ---------------------------------------------------------------------


def test_settings_come_from_arguments_then_environment_then_defaults() -> None:
    assert embedded_settings(environ={}) == embedded_settings(threads=None, slots=None, environ={})
    defaults = embedded_settings(environ={})
    assert (defaults.threads, defaults.slots) == (default_threads(), 4)
    env = {"SMESH_THREADS": " 3 ", "SMESH_SLOTS": "7"}
    assert embedded_settings(environ=env) == local_module.EmbeddedSettings(threads=3, slots=7)
    assert embedded_settings(1, 2, environ=env) == local_module.EmbeddedSettings(1, 2)
    assert embedded_settings(environ={"SMESH_THREADS": ""}).threads == default_threads()


@pytest.mark.parametrize("raw", ["0", "-2", "two", "1.5"])
def test_a_bad_environment_value_names_its_variable(raw: str) -> None:
    with pytest.raises(UsageError, match=f"SMESH_SLOTS={raw!r}"):
        embedded_settings(environ={"SMESH_SLOTS": raw})
    with pytest.raises(UsageError, match="SMESH_THREADS"):
        embedded_settings(environ={"SMESH_THREADS": raw})


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "4"])
def test_a_bad_argument_is_a_usage_error(bad: Any) -> None:
    with pytest.raises(UsageError, match="threads"):
        embedded_settings(threads=bad, environ={})
    with pytest.raises(UsageError, match="slots"):
        LocalBackend("/nonexistent.gguf", n_parallel=bad)


def test_default_threads_leave_one_core_free() -> None:
    import os

    assert default_threads() == max(1, len(os.sched_getaffinity(0)) - 1)


def test_resolve_backend_takes_threads_and_slots(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMESH_THREADS", "5")
    monkeypatch.setenv("SMESH_SLOTS", "6")
    from_env = resolve_backend("local")
    assert (from_env.n_threads, from_env.n_parallel) == (5, 6)  # type: ignore[attr-defined]
    given = resolve_backend("local", threads=2, slots=3)
    assert (given.n_threads, given.n_parallel) == (2, 3)  # type: ignore[attr-defined]
    with pytest.raises(UsageError, match="not both"):
        resolve_backend("local", threads=2, n_threads=2)
    monkeypatch.setenv("SMESH_SLOTS", "many")
    with pytest.raises(UsageError, match="SMESH_SLOTS"):
        resolve_backend("local")


# --- stopping generations ------------------------------------------------------------------


class FakeServer:
    """Streams ``max_tokens`` chunks, one every ``step`` s, through xllamacpp's callback."""

    step = 0.01

    def __init__(self, params: Any) -> None:
        self.params = params
        self.listening_address = "http://127.0.0.1:9"
        self.stopped_at: list[float] = []
        self.finished = 0
        self.active = 0
        self.lock = threading.Lock()

    def handle_chat_completions(self, body: dict[str, Any], callback: Callable[..., bool]) -> None:
        assert body["stream"] is True and body["return_progress"] is True
        if body.get("max_tokens") == 13:
            callback({"error": {"code": 400, "message": "exceeds the available context size"}})
            return
        if body.get("max_tokens") == 17:
            raise ValueError("bad request body")
        with self.lock:
            self.active += 1
        try:
            for i in range(body["max_tokens"]):
                time.sleep(self.step)
                finish = "length" if i == body["max_tokens"] - 1 else None
                chunk = {"choices": [{"delta": {"content": "a"}, "finish_reason": finish}]}
                if callback(chunk):
                    self.stopped_at.append(time.monotonic())
                    return
            callback({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": i + 1}})
            self.finished += 1
        finally:
            with self.lock:
                self.active -= 1


class FakeParams:
    def __init__(self) -> None:
        self.model = type("M", (), {"path": ""})()
        self.cpuparams = type("C", (), {"n_threads": 0})()
        self.cpuparams_batch = type("C", (), {"n_threads": 0})()
        self.n_ubatch = 512


@pytest.fixture
def fake_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[FakeServer]]:
    made: list[FakeServer] = []

    def server(params: Any) -> FakeServer:
        made.append(FakeServer(params))
        return made[-1]

    fake = type("xllamacpp", (), {"CommonParams": FakeParams, "Server": staticmethod(server)})
    monkeypatch.setattr(local_module, "_import_xllamacpp", lambda: fake)
    yield made


@pytest.fixture
def model_file(tmp_path: Path) -> str:
    path = tmp_path / "fake.gguf"
    path.write_bytes(b"GGUF")
    return str(path)


def long_request(tokens: int = 2000) -> Request:
    return Request.of("tell a long story", max_tokens=tokens, allow_truncated=True)


@pytest.mark.asyncio
async def test_server_gets_the_configured_threads_slots_and_batch(
    fake_server: list[FakeServer], model_file: str
) -> None:
    async with LocalBackend(
        model_file, n_parallel=3, n_threads=2, ctx_per_slot=512, n_batch=128
    ) as backend:
        await backend.start()
        params = fake_server[0].params
    assert (params.n_parallel, params.n_ctx, params.n_batch, params.n_ubatch) == (3, 1536, 128, 128)
    assert params.cpuparams.n_threads == params.cpuparams_batch.n_threads == 2
    assert params.hostnames == ["127.0.0.1"]


@pytest.mark.asyncio
async def test_complete_assembles_the_stream(
    fake_server: list[FakeServer], model_file: str
) -> None:
    async with LocalBackend(model_file, n_parallel=1) as backend:
        reply = await backend.complete(long_request(5))
        streamed = [piece async for piece in backend.stream(long_request(3))]
        for tokens, message in ((13, "context size"), (17, "rejected: bad request body")):
            with pytest.raises(BackendError, match=message):
                await backend.complete(long_request(tokens))
            with pytest.raises(BackendError, match=message):
                async for _ in backend.stream(long_request(tokens)):
                    pass
    assert (reply.text, reply.finish_reason, reply.output_tokens) == ("aaaaa", "length", 5)
    assert streamed == ["a", "a", "a"]


@pytest.mark.asyncio
async def test_a_cancelled_call_stops_its_generation(
    fake_server: list[FakeServer], model_file: str
) -> None:
    async with LocalBackend(model_file, n_parallel=1) as backend:
        task = asyncio.create_task(backend.complete(long_request()))
        await asyncio.sleep(0.2)
        cancelled = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        returned = time.monotonic()
        server = fake_server[0]
        # the stop reached the generation before the call returned: nothing runs on
        assert server.stopped_at and server.stopped_at[0] <= returned
        assert server.active == 0 and server.finished == 0
        assert returned - cancelled < 0.5  # 2,000 steps would have taken 20 s
        # the slot is free for the next call
        assert (await backend.complete(long_request(3))).text == "aaa"


@pytest.mark.asyncio
async def test_a_timeout_around_the_call_stops_the_generation(
    fake_server: list[FakeServer], model_file: str
) -> None:
    async with Timeout(LocalBackend(model_file, n_parallel=1), 0.2) as backend:
        with pytest.raises(BackendTimeout):
            await backend.complete(long_request())
        assert fake_server[0].stopped_at and fake_server[0].active == 0


@pytest.mark.asyncio
async def test_a_closed_stream_stops_its_generation(
    fake_server: list[FakeServer], model_file: str
) -> None:
    import contextlib

    async with LocalBackend(model_file, n_parallel=1) as backend:
        async with contextlib.aclosing(backend.stream(long_request())) as stream:
            async for _ in stream:
                break
        assert fake_server[0].stopped_at and fake_server[0].active == 0


@pytest.mark.asyncio
async def test_aclose_stops_generations_in_flight(
    fake_server: list[FakeServer], model_file: str
) -> None:
    backend = LocalBackend(model_file, n_parallel=2)
    tasks = [asyncio.create_task(backend.complete(long_request())) for _ in range(2)]
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await backend.aclose()
    assert time.monotonic() - started < 1.0
    for task in tasks:
        with pytest.raises(BackendUnavailable, match="closed while generating"):
            await task
    assert len(fake_server[0].stopped_at) == 2


@pytest.mark.asyncio
async def test_a_cancel_waits_for_the_stop_only_up_to_the_grace(
    fake_server: list[FakeServer], model_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stop lands at llama.cpp's next step; when one step is slow (a long prompt step on a
    # busy machine) the call still returns after cancel_grace, and the stop lands later.
    monkeypatch.setattr(FakeServer, "step", 0.6)
    async with LocalBackend(model_file, n_parallel=1, cancel_grace=0.1) as backend:
        task = asyncio.create_task(backend.complete(long_request()))
        await asyncio.sleep(0.05)
        cancelled = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - cancelled < 0.4
        for _ in range(200):
            if fake_server[0].stopped_at:
                break
            await asyncio.sleep(0.01)
        assert fake_server[0].stopped_at
