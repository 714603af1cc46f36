"""What ``smesh status`` and ``smesh mesh peers`` report about the mesh.

Listing peers means asking a running peer: a short-lived zenoh session in *client* mode
connects to the endpoint given (it joins no mesh and holds no replica), asks for the
liveliness tokens of every mesh node, and closes.
"""

from __future__ import annotations

import importlib.metadata
import json
from typing import Any

import msgspec
import zenoh

from smesh.errors import TransportError
from smesh.mesh.pki import NodeCredentials
from smesh.mesh.transport import MeshConfig, zenoh_config

__all__ = ["MeshPeer", "list_peers", "mesh_status"]


class MeshPeer(msgspec.Struct, frozen=True, order=True):
    """A node whose liveliness token is up."""

    mesh: str
    node: str


def list_peers(
    connect: str,
    *,
    mesh: str = "*",
    tls: NodeCredentials | None = None,
    timeout_s: float = 2.0,
) -> list[MeshPeer]:
    """The nodes of ``mesh`` (default: every mesh) that the peer at ``connect`` knows.

    Raises:
        TransportError: the session could not be opened.
    """
    config = zenoh_config(MeshConfig(connect=(connect,), tls=tls))
    config.insert_json5("mode", '"client"')
    config.insert_json5("listen/endpoints", json.dumps([]))
    try:
        session: Any = zenoh.open(config)
    except zenoh.ZError as exc:
        raise TransportError(f"cannot reach the mesh at {connect}: {exc}") from None
    try:
        peers: set[MeshPeer] = set()
        for reply in session.liveliness().get(f"smesh/{mesh}/peers/*", timeout=timeout_s):
            sample = reply.ok
            if sample is not None:
                parts = str(sample.key_expr).split("/")
                if len(parts) == 4:
                    peers.add(MeshPeer(mesh=parts[1], node=parts[3]))
        return sorted(peers)
    finally:
        session.close()


def mesh_status(connect: str | None = None, *, timeout_s: float = 2.0) -> dict[str, Any]:
    """The ``mesh`` section of ``smesh status``: versions, and the peers seen from
    ``connect`` when one is given (otherwise nothing is contacted)."""
    report: dict[str, Any] = {
        "zenoh": importlib.metadata.version("eclipse-zenoh"),
        "cryptography": importlib.metadata.version("cryptography"),
        "connect": connect,
        "peers": None,
    }
    if connect is not None:
        try:
            report["peers"] = [msgspec.to_builtins(p) for p in list_peers(connect)]
        except TransportError as exc:
            report["error"] = str(exc)
    return report
