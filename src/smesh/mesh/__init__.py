"""The mesh: one field shared by many processes over Eclipse Zenoh (``pip install smesh[mesh]``).

Importing :mod:`smesh` never imports zenoh or cryptography; importing this package does.
See ``docs/mesh.md`` for the design.
"""

from smesh.mesh.field import MeshField
from smesh.mesh.identity import Identity, agent_name, node_id_of, node_of, speaks_for
from smesh.mesh.limits import Limits
from smesh.mesh.provenance import Provenance, ProvenanceLink
from smesh.mesh.replica import MeshStats
from smesh.mesh.transport import MeshConfig, PeerLink

__all__ = [
    "Identity",
    "Limits",
    "MeshConfig",
    "MeshField",
    "MeshStats",
    "PeerLink",
    "Provenance",
    "ProvenanceLink",
    "agent_name",
    "node_id_of",
    "node_of",
    "speaks_for",
]
