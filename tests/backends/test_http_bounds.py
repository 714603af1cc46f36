"""HTTP backends against servers that misbehave on purpose (real sockets on 127.0.0.1).

A server that drips bytes must not hold a call past its ``timeout`` (a deadline for the
whole exchange, not for each read); a server that floods must not grow the client's
memory past ``max_response_bytes``; a cancelled call must close its connection so the
server can stop; malformed and cut-off answers are typed errors, never a hang.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _loopback import RawConnection, RawServer

import smesh
from smesh.backends import Request, Timeout
from smesh.backends._http import DEFAULT_MAX_RESPONSE_BYTES
from smesh.backends.anthropic import AnthropicBackend
from smesh.backends.ollama import OllamaBackend
from smesh.backends.openai import OpenAIBackend
from smesh.errors import BackendTimeout, BackendUnavailable, BadResponse, UsageError

KINDS = ["openai", "anthropic", "ollama"]
STREAMING = ["openai", "ollama"]
MB = 1024 * 1024


def make(kind: str, url: str, **options: Any) -> Any:
    if kind == "openai":
        return OpenAIBackend("m", base_url=url, api_key="k", **options)
    if kind == "anthropic":
        return AnthropicBackend("c", api_key="k", base_url=url, **options)
    return OllamaBackend("m", host=url, **options)


async def call(backend: Any, mode: str = "complete") -> None:
    request = Request.of("x")
    if mode == "stream":
        async for _ in backend.stream(request):
            pass
    else:
        await backend.complete(request)


async def wait_until(predicate: Callable[[], object], limit: float = 5.0) -> None:
    ends = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > ends:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


# --- server behaviours ---------------------------------------------------------------------


def drip_headers(conn: RawConnection) -> None:
    conn.read_request()
    # A valid status line, then one header whose value never ends: every byte arrives well
    # within a per-read timeout, so only a deadline on the whole exchange stops the call.
    conn.send(b"HTTP/1.1 200 OK\r\nX-Drip: ")
    conn.drip(b"a", 0.2)


def drip_body(conn: RawConnection) -> None:
    conn.read_request()
    conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 999\r\n\r\n")
    conn.drip(b" ", 0.2)


def drip_stream(conn: RawConnection) -> None:
    conn.read_request()
    conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
    conn.drip(b"\n", 0.2)  # blank lines: a live but silent stream


def hold(conn: RawConnection) -> None:
    conn.read_request()
    conn.hold()


def first_line(kind: str) -> bytes:
    if kind == "openai":
        return b'data: {"choices": [{"delta": {"content": "a"}}]}\n\n'
    return b'{"message": {"content": "a"}, "done": false}\n'


def hold_stream(kind: str) -> Callable[[RawConnection], None]:
    def behaviour(conn: RawConnection) -> None:
        conn.read_request()
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
        conn.send(head + first_line(kind))
        conn.hold()

    return behaviour


def flood(*, total: int, declare: bool, lines: bool = False, status: int = 200) -> Any:
    """A server whose first answer is ``{}`` and whose later ones are ``total`` bytes."""
    served = [0]

    def behaviour(conn: RawConnection) -> None:
        conn.read_request()
        served[0] += 1
        if served[0] == 1:  # warm-up call of the memory probe
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
            return
        length = f"Content-Length: {total}\r\n" if declare else ""
        conn.send(f"HTTP/1.1 {status} X\r\n{length}Connection: close\r\n\r\n".encode())
        line = b'data: {"choices": [{"delta": {"content": "aaaaaaaa"}}]}\n'
        conn.send_repeated(line * 1000 if lines else b"a" * MB, total)

    return behaviour


# --- the deadline covers the whole exchange ------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("behaviour", [drip_headers, drip_body], ids=["headers", "body"])
@pytest.mark.asyncio
async def test_a_dripping_server_is_cut_off_at_the_deadline(
    kind: str, behaviour: Callable[[RawConnection], None]
) -> None:
    with RawServer(behaviour) as server:
        async with make(kind, server.url, timeout=1.0) as backend:
            started = time.monotonic()
            with pytest.raises(BackendTimeout, match="within 1 s"):
                await call(backend)
            elapsed = time.monotonic() - started
        # the server dripped for 20 s; a per-read timeout would have waited all of it
        assert 0.9 <= elapsed < 2.5
        await wait_until(lambda: server.closed_at, limit=3)


@pytest.mark.parametrize("kind", STREAMING)
@pytest.mark.asyncio
async def test_a_dripping_stream_is_cut_off_at_the_deadline(kind: str) -> None:
    with RawServer(drip_stream) as server:
        async with make(kind, server.url, timeout=1.0) as backend:
            started = time.monotonic()
            with pytest.raises(BackendTimeout):
                await call(backend, "stream")
            assert 0.9 <= time.monotonic() - started < 2.5


# --- cancellation closes the connection ----------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.asyncio
async def test_a_cancelled_call_closes_its_connection(kind: str) -> None:
    with RawServer(hold) as server:
        async with make(kind, server.url, timeout=60) as backend:
            task = asyncio.create_task(call(backend))
            await wait_until(lambda: server.requests)
            cancelled = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert time.monotonic() - cancelled < 0.5
            await wait_until(lambda: server.closed_at, limit=3)
        assert server.closed_at[0] - cancelled < 1.0


@pytest.mark.parametrize("kind", STREAMING)
@pytest.mark.asyncio
async def test_a_cancelled_stream_closes_its_connection(kind: str) -> None:
    with RawServer(hold_stream(kind)) as server:
        async with make(kind, server.url, timeout=60) as backend:
            task = asyncio.create_task(call(backend, "stream"))
            await wait_until(lambda: server.requests)
            await asyncio.sleep(0.1)  # the first line is in
            cancelled = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await wait_until(lambda: server.closed_at, limit=3)
        assert server.closed_at[0] - cancelled < 1.0


@pytest.mark.asyncio
async def test_a_timeout_wrapper_closes_the_connection_it_gives_up_on() -> None:
    with RawServer(hold) as server:
        async with Timeout(make("openai", server.url, timeout=60), 0.3) as backend:
            started = time.monotonic()
            with pytest.raises(BackendTimeout):
                await call(backend)
            await wait_until(lambda: server.closed_at, limit=3)
        # nothing keeps running after the timeout: the server saw the connection go
        assert server.closed_at[0] - started < 1.3


# --- answers are read up to a cap ----------------------------------------------------------


def _probe_memory(kind: str, url: str, mode: str) -> dict[str, Any]:
    src = str(Path(smesh.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    script = Path(__file__).with_name("_big_body_client.py")
    done = subprocess.run(
        [sys.executable, str(script), kind, url, mode],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.parametrize(
    ("kind", "mode", "declare", "lines"),
    [
        ("openai", "complete", False, False),
        ("anthropic", "complete", False, False),
        ("ollama", "complete", False, False),
        ("openai", "complete", True, False),
        ("openai", "stream", False, False),
        ("openai", "stream", False, True),
        ("ollama", "stream", False, False),
    ],
    ids=[
        "openai-undeclared",
        "anthropic-undeclared",
        "ollama-undeclared",
        "openai-declared",
        "openai-stream-one-line",
        "openai-stream-many-lines",
        "ollama-stream-one-line",
    ],
)
def test_a_200_mb_answer_is_refused_without_buffering_it(
    kind: str, mode: str, declare: bool, lines: bool
) -> None:
    total = 200 * MB
    with RawServer(flood(total=total, declare=declare, lines=lines)) as server:
        result = _probe_memory(kind, server.url, mode)
        sent = server.bytes_sent
    assert result["error"] == "BadResponse"
    # The cap is 8 MB; the body and its one copy, plus httpx's buffers, stay well under 50.
    assert result["peak_growth_kb"] < 50 * 1024, result
    # the client stopped reading: nowhere near 200 MB went out (socket buffers aside)
    assert sent < DEFAULT_MAX_RESPONSE_BYTES + 16 * MB


@pytest.mark.asyncio
async def test_max_response_bytes_is_configurable() -> None:
    body = json.dumps(
        {"choices": [{"message": {"content": "a" * 20_000}, "finish_reason": "stop"}]}
    ).encode()

    def answer(conn: RawConnection) -> None:
        conn.read_request()
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        conn.send(head.encode() + body)

    with RawServer(answer) as server:
        async with make("openai", server.url, max_response_bytes=10_000) as small:
            with pytest.raises(BadResponse, match="max_response_bytes=10000"):
                await call(small)
        async with make("openai", server.url) as default:
            reply = await default.complete(Request.of("x"))
    assert len(reply.text) == 20_000
    for bad in (0, -1, 1.5, True):
        with pytest.raises(UsageError, match="max_response_bytes"):
            make("ollama", "http://127.0.0.1:1", max_response_bytes=bad)
    with pytest.raises(UsageError, match="timeout"):
        make("anthropic", "http://127.0.0.1:1", timeout=0)


@pytest.mark.asyncio
async def test_a_huge_error_body_is_read_only_for_its_message() -> None:
    with RawServer(flood(total=200 * MB, declare=True, status=503)) as server:
        async with make("openai", server.url) as backend:
            with pytest.raises(BadResponse):
                await call(backend)  # the warm-up "{}"
            started = time.monotonic()
            with pytest.raises(BackendUnavailable, match="HTTP 503"):
                await call(backend)
            assert time.monotonic() - started < 2
        assert server.bytes_sent < 16 * MB


# --- malformed and cut-off answers ---------------------------------------------------------


def _answer(raw: bytes) -> Callable[[RawConnection], None]:
    def behaviour(conn: RawConnection) -> None:
        conn.read_request()
        conn.send(raw)

    return behaviour


@pytest.mark.parametrize(
    ("raw", "error", "message"),
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", BackendUnavailable, "connection broke"),
        (b"", BackendUnavailable, "connection broke"),
        (
            b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"choices"',
            BackendUnavailable,
            "connection broke",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 9\r\n\r\nnot gzip!",
            BadResponse,
            "undecodable",
        ),
        (
            b'HTTP/1.1 200 OK\r\nContent-Length: 12\r\nConnection: close\r\n\r\n{"choices": ',
            BadResponse,
            "malformed JSON",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n[]",
            BadResponse,
            "JSON object",
        ),
    ],
    ids=["not-http", "closed-silently", "body-cut-short", "bad-gzip", "cut-json", "not-object"],
)
@pytest.mark.asyncio
async def test_malformed_answers_are_typed_errors(
    raw: bytes, error: type[Exception], message: str
) -> None:
    with RawServer(_answer(raw)) as server:
        async with make("openai", server.url, timeout=5) as backend:
            started = time.monotonic()
            with pytest.raises(error, match=message):
                await call(backend)
            assert time.monotonic() - started < 2


@pytest.mark.asyncio
async def test_a_gzipped_answer_is_capped_after_decoding() -> None:
    bomb = gzip.compress(b" " * (50 * MB))  # ~50 KB on the wire

    def behaviour(conn: RawConnection) -> None:
        conn.read_request()
        head = (
            "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n"
            f"Content-Length: {len(bomb)}\r\nConnection: close\r\n\r\n"
        )
        conn.send(head.encode() + bomb)

    with RawServer(behaviour) as server:
        async with make("ollama", server.url, max_response_bytes=MB) as backend:
            with pytest.raises(BadResponse, match="max_response_bytes"):
                await call(backend)


@pytest.mark.parametrize("kind", STREAMING)
@pytest.mark.asyncio
async def test_a_chunked_stream_cut_short_is_an_error_not_an_end(kind: str) -> None:
    line = first_line(kind)
    chunk = f"{len(line):x}\r\n".encode() + line + b"\r\n"
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk  # no final chunk
    with RawServer(_answer(raw)) as server:
        async with make(kind, server.url, timeout=5) as backend:
            with pytest.raises(BackendUnavailable):
                await call(backend, "stream")


# --- the status probe ----------------------------------------------------------------------


def test_the_ollama_probe_is_bounded_in_time_and_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    from smesh.backends.probe import ollama_models

    def drip_tags(conn: RawConnection) -> None:
        conn.read_request()
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n")
        conn.drip(b" ", 0.2)

    with RawServer(drip_tags) as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        started = time.monotonic()
        answer = ollama_models(timeout=1.0)
        assert time.monotonic() - started < 2.5
    assert isinstance(answer, str) and "within 1 s" in answer
    with RawServer(flood(total=200 * MB, declare=False)) as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        assert ollama_models() == []  # the first answer is "{}"
        answer = ollama_models()
        sent = server.bytes_sent
    assert isinstance(answer, str) and "more than" in answer
    assert sent < 16 * MB
