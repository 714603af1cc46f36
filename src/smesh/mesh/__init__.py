"""The mesh: one field shared by many processes over Eclipse Zenoh (``pip install smesh[mesh]``).

Importing :mod:`smesh` never imports zenoh or cryptography; importing this package does.
See ``docs/mesh.md`` for the design.
"""

from smesh.mesh.field import MeshField
from smesh.mesh.identity import Identity, node_id_of
from smesh.mesh.provenance import Provenance, ProvenanceLink
from smesh.mesh.replica import MeshStats
from smesh.mesh.transport import MeshConfig, PeerLink

__all__ = [
    "Identity",
    "MeshConfig",
    "MeshField",
    "MeshStats",
    "PeerLink",
    "Provenance",
    "ProvenanceLink",
    "node_id_of",
]
