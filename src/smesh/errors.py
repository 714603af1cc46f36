"""The exceptions smesh raises.

Every exception derives from :class:`SmeshError`. Misuse of the API (a bad argument, an
unknown name) is kept apart from failures that happen at run time (a server that does not
answer, a model that replies with garbage), so callers can catch one without the other::

    SmeshError
    ├── UsageError                 misuse: the caller can fix it by changing the call
    │   ├── InvalidValue           a value outside its domain (a topology size, a setting ...)
    │   │   └── InvalidSignal          a signal's (intensity > 1, ttl <= 0, a payload not JSON)
    │   ├── UnknownName            an unknown topology, decay, backend or trust model
    │   ├── NotPermitted           e.g. withdrawing or renewing a signal you did not emit
    │   ├── InvalidDependency      a task depends on an unknown task, or on itself via a cycle
    │   ├── SandboxUnavailable     no isolation layer for generated code (and no unsafe opt-in)
    │   └── ConfigurationError     the set-up cannot work, found before the run: a task no agent
    │                              can do or verify, an unreachable backend or a missing key,
    │                              an unwritable output, a damaged journal
    └── RuntimeFailure             something outside the caller's control went wrong
        ├── SignalNotFound         the address is not live (expired, withdrawn, never emitted)
        ├── BackendError           an LLM or tool backend failed (carries ``.backend``)
        │   ├── BackendUnavailable     not installed, not reachable
        │   │   └── CircuitOpen            the circuit breaker fails calls fast (``.retry_in``)
        │   ├── AuthenticationFailed   401/403 from a provider
        │   ├── RateLimited            429; ``.retry_after`` in seconds when known
        │   ├── BackendTimeout         no answer in time
        │   ├── BadResponse            malformed or schema-violating output
        │   │   └── TruncatedResponse      the reply stopped at ``max_tokens`` (``.partial``)
        │   ├── ModelNotFound          the model file or wheel is missing or corrupt
        │   └── AnalyzerFailed         a static analyzer errored or printed garbage
        ├── BudgetExceeded         a hard budget (calls, tokens, cost, time) ran out
        │   └── TaskBudgetExceeded     one task's own cap on calls (``max_calls``) ran out
        ├── ToolError              a tool call failed (carries ``.tool``); fed back to the model
        │   └── ToolTimeout            the tool did not finish within its timeout
        └── TransportError         the mesh transport failed (carries ``.node``)
            └── InvalidMessage         a malformed, forged or replayed network message
"""

from __future__ import annotations

__all__ = [
    "AnalyzerFailed",
    "AuthenticationFailed",
    "BackendError",
    "BackendTimeout",
    "BackendUnavailable",
    "BadResponse",
    "BudgetExceeded",
    "CircuitOpen",
    "ConfigurationError",
    "InvalidDependency",
    "InvalidMessage",
    "InvalidSignal",
    "InvalidValue",
    "ModelNotFound",
    "NotPermitted",
    "RateLimited",
    "RuntimeFailure",
    "SandboxUnavailable",
    "SignalNotFound",
    "SmeshError",
    "TaskBudgetExceeded",
    "ToolError",
    "ToolTimeout",
    "TransportError",
    "TruncatedResponse",
    "UnknownName",
    "UsageError",
]


class SmeshError(Exception):
    """Root of every exception raised by smesh.

    Attributes:
        node: id of the node involved, if any.
        signal: address of the signal involved, if any.
        backend: name of the backend involved, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        node: str | None = None,
        signal: str | None = None,
        backend: str | None = None,
    ) -> None:
        super().__init__(message)
        self.node = node
        self.signal = signal
        self.backend = backend


class UsageError(SmeshError, ValueError):
    """The API was called wrongly; changing the call fixes it."""


class InvalidValue(UsageError):
    """A value lies outside its domain: a topology size, a trust parameter, a setting."""


class InvalidSignal(InvalidValue):
    """A signal, or a part of one (its payload, its decay), lies outside its domain."""


class UnknownName(UsageError, LookupError):
    """A name (topology, decay, backend, trust model, ...) that smesh does not know."""


class NotPermitted(UsageError):
    """The operation is not allowed for this caller, e.g. renewing another node's signal."""


class InvalidDependency(UsageError):
    """A task depends on a task nobody posted, or the dependencies form a cycle."""


class SandboxUnavailable(UsageError):
    """Generated code would run, but the sandbox cannot be built here and the caller did not
    opt in to running it unsandboxed."""


class ConfigurationError(UsageError):
    """The run as set up cannot work, and nothing has run yet: a task whose skill no agent
    has, a verification no verifier can satisfy, a backend that does not answer its probe
    or has no key, an output that cannot be written, a journal that cannot be read.
    Changing the set-up fixes it (the command line exits 2)."""


class RuntimeFailure(SmeshError):
    """Something outside the caller's control failed at run time."""


class SignalNotFound(RuntimeFailure, KeyError):
    """The address names no live signal."""

    def __str__(self) -> str:  # KeyError quotes its message; we don't want that
        return str(self.args[0]) if self.args else ""


class BackendError(RuntimeFailure):
    """A backend (LLM, tool, human) failed to answer usefully."""


class BackendUnavailable(BackendError):
    """The backend cannot be used now: not installed, unreachable, or its circuit is open."""


class CircuitOpen(BackendUnavailable):
    """The circuit breaker is open: calls fail fast until it half-opens.

    Attributes:
        retry_in: seconds until the breaker lets a trial call through.
    """

    def __init__(self, message: str, *, retry_in: float, backend: str | None = None) -> None:
        super().__init__(message, backend=backend)
        self.retry_in = retry_in


class AuthenticationFailed(BackendError):
    """The provider refused the credentials (HTTP 401/403)."""


class RateLimited(BackendError):
    """The provider asked us to slow down (HTTP 429).

    Attributes:
        retry_after: seconds the provider asked us to wait, if it said.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        node: str | None = None,
        signal: str | None = None,
        backend: str | None = None,
    ) -> None:
        super().__init__(message, node=node, signal=signal, backend=backend)
        self.retry_after = retry_after


class BackendTimeout(BackendError, TimeoutError):
    """The backend did not answer within its timeout."""


class BadResponse(BackendError):
    """The backend answered, but the answer is malformed, truncated or violates the schema."""


class TruncatedResponse(BadResponse):
    """The reply stopped at ``max_tokens``; it is never returned as if complete.

    Attributes:
        partial: the text produced before the cut.
        max_tokens: the limit that was hit.
    """

    def __init__(self, message: str, *, partial: str, max_tokens: int, backend: str) -> None:
        super().__init__(message, backend=backend)
        self.partial = partial
        self.max_tokens = max_tokens


class ModelNotFound(BackendError):
    """A model file or model wheel is missing, partial or corrupt."""


class AnalyzerFailed(BackendError):
    """A static analyzer exited with an error, crashed or printed output it cannot parse."""


class BudgetExceeded(RuntimeFailure):
    """A hard budget on calls, tokens, cost or wall time ran out."""


class TaskBudgetExceeded(BudgetExceeded):
    """One task's cap on backend calls (its subtasks' included) ran out; the run goes on."""


class ToolError(RuntimeFailure):
    """A tool call failed: bad arguments, an exception in the tool, an unknown tool.

    The tool-calling loop never lets one escape: it becomes an error result the model sees.

    Attributes:
        tool: name of the tool involved, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        tool: str | None = None,
        node: str | None = None,
        signal: str | None = None,
        backend: str | None = None,
    ) -> None:
        super().__init__(message, node=node, signal=signal, backend=backend)
        self.tool = tool


class ToolTimeout(ToolError, TimeoutError):
    """The tool did not finish within its timeout."""


class TransportError(RuntimeFailure):
    """The mesh transport failed."""


class InvalidMessage(TransportError):
    """A network message was malformed, oversized, forged or replayed and was dropped."""
