"""Fixtures for the backend tests: a loopback HTTP server and the shared embedded model."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from _loopback import FakeAPIServer


@pytest.fixture
def api_server() -> Iterator[FakeAPIServer]:
    server = FakeAPIServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def closed_port() -> int:
    """A loopback port with nothing listening."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def local_backend() -> AsyncIterator[Any]:
    """One loaded embedded model for every llm test in the session."""
    from smesh.backends.local import LocalBackend
    from smesh.backends.model import model_status

    status = model_status("0.5b")
    if not status.available:
        pytest.skip(f"embedded model not installed: {status.detail}")
    backend = LocalBackend(n_parallel=4, ctx_per_slot=1024)
    await backend.start()
    try:
        yield backend
    finally:
        await backend.aclose()
