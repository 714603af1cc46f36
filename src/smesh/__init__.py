"""smesh: coordinate many LLM agents through a shared signal field, with no orchestrator.

The public API is re-exported here; everything else lives in modules you need not know.
"""

from typing import TYPE_CHECKING, Any

from smesh._version import __version__
from smesh.clock import Clock, SystemClock, VirtualClock
from smesh.decay import Custom, Decay, Exponential, Linear, Sigmoid, Step, parse_decay
from smesh.errors import (
    AnalyzerFailed,
    AuthenticationFailed,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    BadResponse,
    BudgetExceeded,
    CircuitOpen,
    ConfigurationError,
    InvalidDependency,
    InvalidMessage,
    InvalidSignal,
    InvalidValue,
    ModelNotFound,
    NotPermitted,
    RateLimited,
    RuntimeFailure,
    SandboxUnavailable,
    SignalNotFound,
    SmeshError,
    TaskBudgetExceeded,
    ToolError,
    ToolTimeout,
    TransportError,
    TruncatedResponse,
    UnknownName,
    UsageError,
)
from smesh.field import Field, FieldEvent, FieldStats, Sensed, Subscription
from smesh.network import Network
from smesh.node import Node
from smesh.signal import Signal, compute_address
from smesh.trust import TrustTable

if TYPE_CHECKING:
    from smesh.agents import (
        Agent,
        ApprovalSpec,
        Budget,
        FunctionAgent,
        HumanAgent,
        Judgement,
        QueueChannel,
        RunReport,
        Settings,
        TaskHandle,
        TaskReport,
        TaskSpec,
        Team,
        VerifySpec,
        WorkContext,
    )
    from smesh.agents.journal import Journal
    from smesh.backends import (
        Backend,
        BackendBase,
        Message,
        Request,
        Response,
        probe_backends,
        register_backend,
        resolve_backend,
    )
    from smesh.diffusion import NetworkField, Spread
    from smesh.sim import SimConfig, SimResult, SimTick, run_simulation
    from smesh.tools import Tool, ToolLoop, ToolSet, tool

# Names whose modules pull in numpy, asyncio or the backends load on first use, which
# keeps `import smesh` fast.
_LAZY = {
    **dict.fromkeys(
        [
            "Agent",
            "ApprovalSpec",
            "Budget",
            "FunctionAgent",
            "HumanAgent",
            "Judgement",
            "QueueChannel",
            "RunReport",
            "Settings",
            "TaskHandle",
            "TaskReport",
            "TaskSpec",
            "Team",
            "VerifySpec",
            "WorkContext",
        ],
        "smesh.agents",
    ),
    **dict.fromkeys(
        [
            "Backend",
            "BackendBase",
            "Message",
            "Request",
            "Response",
            "probe_backends",
            "register_backend",
            "resolve_backend",
        ],
        "smesh.backends",
    ),
    "Journal": "smesh.agents.journal",
    "NetworkField": "smesh.diffusion",
    "Spread": "smesh.diffusion",
    "SimConfig": "smesh.sim",
    "SimResult": "smesh.sim",
    "SimTick": "smesh.sim",
    "run_simulation": "smesh.sim",
    **dict.fromkeys(["Tool", "ToolLoop", "ToolSet", "tool"], "smesh.tools"),
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
    "Agent",
    "AnalyzerFailed",
    "ApprovalSpec",
    "AuthenticationFailed",
    "Backend",
    "BackendBase",
    "BackendError",
    "BackendTimeout",
    "BackendUnavailable",
    "BadResponse",
    "Budget",
    "BudgetExceeded",
    "CircuitOpen",
    "Clock",
    "ConfigurationError",
    "Custom",
    "Decay",
    "Exponential",
    "Field",
    "FieldEvent",
    "FieldStats",
    "FunctionAgent",
    "HumanAgent",
    "InvalidDependency",
    "InvalidMessage",
    "InvalidSignal",
    "InvalidValue",
    "Journal",
    "Judgement",
    "Linear",
    "Message",
    "ModelNotFound",
    "Network",
    "NetworkField",
    "Node",
    "NotPermitted",
    "QueueChannel",
    "RateLimited",
    "Request",
    "Response",
    "RunReport",
    "RuntimeFailure",
    "SandboxUnavailable",
    "Sensed",
    "Settings",
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
    "TaskBudgetExceeded",
    "TaskHandle",
    "TaskReport",
    "TaskSpec",
    "Team",
    "Tool",
    "ToolError",
    "ToolLoop",
    "ToolSet",
    "ToolTimeout",
    "TransportError",
    "TruncatedResponse",
    "TrustTable",
    "UnknownName",
    "UsageError",
    "VerifySpec",
    "VirtualClock",
    "WorkContext",
    "__version__",
    "compute_address",
    "parse_decay",
    "probe_backends",
    "register_backend",
    "resolve_backend",
    "run_simulation",
    "tool",
]
