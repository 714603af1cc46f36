"""The tool interface: an ABC with one required method, :meth:`Tool.invoke`.

Most tools are plain functions turned into tools by :func:`smesh.tools.tool`. Write a
:class:`Tool` subclass for anything else (a client of a remote service, a tool whose
schema is only known at run time, such as an MCP server's)::

    class Clock(Tool):
        name = "now"
        description = "The current UTC time, ISO 8601."

        async def invoke(self, args, ctx):
            return datetime.now(UTC).isoformat()

Third-party packages publish tools under the ``smesh.tools`` entry-point group (see
:mod:`smesh.tools.registry`); :mod:`smesh.testing.tools` has test doubles.
"""

from __future__ import annotations

import asyncio
import re
from abc import ABC, abstractmethod
from typing import Any

import msgspec

from smesh.backends.base import check_schema
from smesh.errors import ToolError, UsageError
from smesh.tools.messages import ToolSpec

__all__ = ["EMPTY_PARAMETERS", "CallContext", "Reconciled", "Tool", "check_tool_name"]

#: The schema of a tool without arguments.
EMPTY_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
DEFAULT_TIMEOUT_S = 30.0


def check_tool_name(name: object) -> str:
    """Return ``name`` if every provider accepts it as a tool name, else raise UsageError."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise UsageError(f"a tool name must match [A-Za-z0-9_-]{{1,64}}, not {name!r}")
    return name


class CallContext(msgspec.Struct, frozen=True, kw_only=True):
    """What a tool may know about the call it serves.

    A function tool receives it when it declares a parameter annotated ``CallContext``
    (that parameter is not part of the schema the model sees).

    Attributes:
        call_id: the model's id for this call.
        step: the model turn that asked for it, from 1.
        effect_id: the side effect's id, stable across a crash and resume: pass it to an
            external service as its idempotency key. None for tools without side effects.
    """

    call_id: str
    step: int
    effect_id: str | None = None


class Reconciled(msgspec.Struct, frozen=True):
    """What :meth:`Tool.reconcile` found out about an effect whose outcome was lost.

    Attributes:
        performed: the effect did happen (``result`` is its result) or it did not (the
            call is then safe to run now).
        result: the effect's result when it was performed.
    """

    performed: bool
    result: Any = None


class Tool(ABC):
    """A capability a model may call.

    Subclasses set the class attributes (or pass them to ``__init__``) and implement
    :meth:`invoke`.

    Attributes:
        name: the name the model calls it by.
        description: what it does and when to use it (the model reads this).
        parameters: the JSON Schema (an object schema) of its arguments.
        side_effect: it changes the world (sends, pays, writes): each call is recorded in
            the effect ledger before it runs, and never repeated after a crash.
        timeout_s: the longest one call may take.
        concurrent: calls to it may overlap; when False, calls run one at a time.
    """

    name: str = ""
    description: str = ""
    parameters: dict[str, Any] = EMPTY_PARAMETERS
    side_effect: bool = False
    timeout_s: float = DEFAULT_TIMEOUT_S
    concurrent: bool = True
    _lock: asyncio.Lock | None = None  # per instance, made on first use

    def __init__(
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        parameters: dict[str, Any] | None = None,
        side_effect: bool | None = None,
        timeout_s: float | None = None,
        concurrent: bool | None = None,
    ) -> None:
        if name is not None:
            self.name = name
        if description is not None:
            self.description = description
        if parameters is not None:
            self.parameters = parameters
        if side_effect is not None:
            self.side_effect = side_effect
        if timeout_s is not None:
            self.timeout_s = timeout_s
        if concurrent is not None:
            self.concurrent = concurrent
        check_tool_name(self.name)
        if not (isinstance(self.timeout_s, int | float) and self.timeout_s > 0):
            raise UsageError(f"tool {self.name}: timeout_s must be > 0, not {self.timeout_s!r}")
        if not isinstance(self.parameters, dict) or self.parameters.get("type") != "object":
            raise UsageError(f"tool {self.name}: parameters must be an object schema")
        self._lock: asyncio.Lock | None = None

    @abstractmethod
    async def invoke(self, args: dict[str, Any], ctx: CallContext) -> Any:
        """Run the tool on validated ``args``; return a JSON-compatible value.

        Raise :class:`~smesh.errors.ToolError` (or any exception) to report a failure;
        the loop shows its message to the model.
        """

    def validate(self, args: dict[str, Any]) -> dict[str, Any]:
        """Check ``args`` before the call and return them (possibly converted).

        The default checks them against :attr:`parameters` (the common subset of JSON
        Schema). Raises:
            ToolError: the arguments do not match.
        """
        problem = check_schema(args, self.parameters, "$")
        if problem is not None:
            raise ToolError(f"invalid arguments for {self.name}: {problem}", tool=self.name)
        return args

    async def reconcile(self, args: dict[str, Any]) -> Reconciled | None:
        """Find out whether a side effect whose outcome was lost did happen.

        Called on resume for a call whose intent was recorded but whose outcome never
        was (the process died in between). Return None when it cannot tell: the call is
        then reported as uncertain and not repeated.
        """
        return None

    def spec(self) -> ToolSpec:
        """What the model is told about this tool."""
        return ToolSpec(name=self.name, description=self.description, parameters=self.parameters)

    @property
    def lock(self) -> asyncio.Lock:
        """The lock that keeps calls to a non-concurrent tool one at a time."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    def __repr__(self) -> str:
        flags = [f for f, on in (("side_effect", self.side_effect),) if on]
        extra = f" ({', '.join(flags)})" if flags else ""
        return f"<{type(self).__name__} {self.name}{extra}>"
