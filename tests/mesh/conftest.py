"""Fixtures for the mesh tests: real peer processes on 127.0.0.1, stopped after each test."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("zenoh")
pytest.importorskip("cryptography")

from _meshkit import PEER, Peer


@pytest.fixture
def mesh_name() -> str:
    """A mesh name of its own for each test, so that tests never meet."""
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture
def spawn() -> Iterator[Callable[..., Peer]]:
    """Start peers (``spawn(*args, ready=True)``); every one is stopped at teardown."""
    peers: list[Peer] = []

    def start(
        *args: str, ready: bool = True, prefix: list[str] | None = None, script: Path = PEER
    ) -> Peer:
        peer = Peer(list(args), prefix=prefix, script=script)
        peers.append(peer)
        return peer.wait_ready() if ready else peer

    yield start
    for peer in peers:
        peer.stop()
    for peer in peers:
        peer.kill()
