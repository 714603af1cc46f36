"""smesh: coordinate many LLM agents through a shared signal field, with no orchestrator.

The public API is re-exported here; everything else lives in modules you need not know.
"""

from typing import TYPE_CHECKING, Any

from smesh._version import __version__
from smesh.clock import Clock, SystemClock, VirtualClock
from smesh.decay import Custom, Decay, Exponential, Linear, Sigmoid, Step, parse_decay
from smesh.errors import (
    AuthenticationFailed,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    BadResponse,
    BudgetExceeded,
    InvalidMessage,
    InvalidSignal,
    ModelNotFound,
    NotPermitted,
    RateLimited,
    RuntimeFailure,
    SignalNotFound,
    SmeshError,
    TransportError,
    UnknownName,
    UsageError,
)
from smesh.field import Field, FieldEvent, FieldStats, Sensed, Subscription
from smesh.network import Network
from smesh.node import Node
from smesh.signal import Signal, compute_address
from smesh.trust import TrustTable

if TYPE_CHECKING:
    from smesh.diffusion import NetworkField, Spread
    from smesh.sim import SimConfig, SimResult, SimTick, run_simulation

# Names whose modules pull in numpy load on first use, which keeps `import smesh` fast.
_LAZY = {
    "NetworkField": "smesh.diffusion",
    "Spread": "smesh.diffusion",
    "SimConfig": "smesh.sim",
    "SimResult": "smesh.sim",
    "SimTick": "smesh.sim",
    "run_simulation": "smesh.sim",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'smesh' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AuthenticationFailed",
    "BackendError",
    "BackendTimeout",
    "BackendUnavailable",
    "BadResponse",
    "BudgetExceeded",
    "Clock",
    "Custom",
    "Decay",
    "Exponential",
    "Field",
    "FieldEvent",
    "FieldStats",
    "InvalidMessage",
    "InvalidSignal",
    "Linear",
    "ModelNotFound",
    "Network",
    "NetworkField",
    "Node",
    "NotPermitted",
    "RateLimited",
    "RuntimeFailure",
    "Sensed",
    "Sigmoid",
    "Signal",
    "SignalNotFound",
    "SimConfig",
    "SimResult",
    "SimTick",
    "SmeshError",
    "Spread",
    "Step",
    "Subscription",
    "SystemClock",
    "TransportError",
    "TrustTable",
    "UnknownName",
    "UsageError",
    "VirtualClock",
    "__version__",
    "compute_address",
    "parse_decay",
    "run_simulation",
]
