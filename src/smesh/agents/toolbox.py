"""An agent's tools, as given to ``Agent(..., tools=[...])``.

Tools come in four shapes: a :class:`~smesh.tools.Tool`, a :class:`~smesh.tools.ToolSet`,
a tool string (``files:ROOT``, ``sqlite:PATH``, ``python``; resolved at once, so a bad
one fails when the agent is built) and a *provider*: anything with a ``tools`` property,
such as a :class:`~smesh.tools.MCPTools` connection, whose tools are known only once it is
connected and are therefore read at every task::

    async with MCPTools("stdio:python server.py") as server:
        agent = Agent("ops", backend=llm, skills={"ops": 1.0}, tools=[server, "python"])
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from smesh.errors import UsageError
from smesh.tools.base import Tool
from smesh.tools.registry import resolve_tools
from smesh.tools.toolset import ToolSet

__all__ = ["AgentTools", "ToolProvider", "ToolSource"]


@runtime_checkable
class ToolProvider(Protocol):
    """Something whose tools are known only at run time (an MCP connection)."""

    @property
    def tools(self) -> ToolSet:
        """Its tools now (empty while not connected)."""
        ...


#: What ``Agent(tools=[...])`` takes.
ToolSource = Tool | ToolSet | ToolProvider | str


class AgentTools:
    """The tools of one agent: fixed ones resolved once, providers read when used.

    Args:
        sources: the tools, tool sets, tool strings and providers.
        max_steps: model turns that may call tools per attempt (the tool loop's limit).

    Raises:
        UsageError: an item is none of the four shapes, a tool string is malformed, or two
            tools share a name.
        UnknownName: a tool string of an unknown kind.
    """

    __slots__ = ("_fixed", "_providers", "max_steps")

    def __init__(self, sources: Iterable[ToolSource], *, max_steps: int = 8) -> None:
        self.max_steps = max_steps
        if isinstance(sources, str | Tool | ToolSet):
            sources = [sources]  # one source passed bare: forgive it
        fixed: list[Tool | ToolSet] = []
        providers: list[ToolProvider] = []
        for source in sources:
            if isinstance(source, str):
                fixed.append(resolve_tools(source))
            elif isinstance(source, Tool | ToolSet):
                fixed.append(source)
            elif isinstance(source, ToolProvider):
                providers.append(source)
            else:
                raise UsageError(
                    f"an agent's tools are tools, tool sets, tool strings or MCPTools, "
                    f"not {source!r}"
                )
        self._fixed = ToolSet(fixed)
        self._providers = tuple(providers)

    def current(self) -> ToolSet:
        """Every tool the agent has now.

        Raises:
            UsageError: a provider has no tools (an MCP server not connected), or its tool
                names clash with another tool's.
        """
        if not self._providers:
            return self._fixed
        sets = [self._fixed]
        for provider in self._providers:
            tools = provider.tools
            if not tools:
                raise UsageError(
                    f"{provider!r} has no tools: connect it (async with ...) before the run"
                )
            sets.append(tools)
        return ToolSet(sets)

    def __bool__(self) -> bool:
        return bool(self._fixed) or bool(self._providers)

    def __repr__(self) -> str:
        providers = "".join(f", {p!r}" for p in self._providers)
        return f"AgentTools({list(self._fixed.names)}{providers})"
