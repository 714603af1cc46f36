"""A :class:`ToolSet` resolves tool names; a :class:`ToolGrant` says which names are allowed.

Permissions are intersections, never unions: an agent working on a task uses only the
tools it has AND the task allows, and a subtask's grant is always narrowed from its
parent's, so no chain of subtasks can widen what a task was given::

    agent_tools = ToolSet([read_file, grep, send_email])
    grant = ToolGrant.of(task.tools)                   # e.g. ("read_file", "grep")
    usable = grant.apply(agent_tools)                  # read_file, grep
    child = grant.narrow(["grep", "send_email"])       # grep only
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import msgspec

from smesh.errors import UnknownName, UsageError
from smesh.tools.base import Tool
from smesh.tools.messages import ToolSpec

__all__ = ["ToolGrant", "ToolSet"]


class ToolSet:
    """An ordered, name-unique collection of tools.

    Args:
        tools: tools, or other tool sets (flattened), in the order the model sees them.

    Raises:
        UsageError: two tools share a name, or an item is not a tool.
    """

    __slots__ = ("_specs", "_tools")

    def __init__(self, tools: Iterable[Tool | ToolSet] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for item in tools:
            for one in item if isinstance(item, ToolSet) else (item,):
                if not isinstance(one, Tool):
                    raise UsageError(f"not a tool: {one!r} (decorate functions with @tool)")
                if one.name in self._tools:
                    raise UsageError(f"two tools are named {one.name!r}")
                self._tools[one.name] = one
        self._specs: tuple[ToolSpec, ...] | None = None

    def get(self, name: str) -> Tool | None:
        """The tool called ``name``, or None."""
        return self._tools.get(name)

    def __getitem__(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            raise UnknownName(
                f"no tool named {name!r} (have: {', '.join(self._tools) or 'none'})"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def __bool__(self) -> bool:
        return bool(self._tools)

    @property
    def names(self) -> tuple[str, ...]:
        """The tools' names, in order."""
        return tuple(self._tools)

    def specs(self) -> tuple[ToolSpec, ...]:
        """What the model is told about every tool, in order (computed once)."""
        if self._specs is None:
            self._specs = tuple(t.spec() for t in self._tools.values())
        return self._specs

    def only(self, names: Iterable[str] | None) -> ToolSet:
        """The tools whose names are in ``names`` (all of them when ``names`` is None)."""
        if names is None:
            return self
        wanted = set(names)
        return ToolSet(t for n, t in self._tools.items() if n in wanted)

    def __repr__(self) -> str:
        return f"ToolSet({list(self._tools)})"


class ToolGrant(msgspec.Struct, frozen=True):
    """The tool names a task may use.

    Attributes:
        allowed: the permitted names; None means "whatever the agent has" (no limit
            from the task). An empty set permits no tool at all.
    """

    allowed: frozenset[str] | None = None

    @classmethod
    def of(cls, names: Iterable[str] | None) -> ToolGrant:
        """A grant from a task's list of tool names (None: unrestricted)."""
        if names is None:
            return cls(None)
        if isinstance(names, str):
            raise UsageError("tool names must be a list of names, not one string")
        return cls(frozenset(names))

    @property
    def names(self) -> list[str] | None:
        """The permitted names, sorted, as a task's ``tools`` field holds them (None: no
        limit)."""
        return None if self.allowed is None else sorted(self.allowed)

    def permits(self, name: str) -> bool:
        """Whether a tool called ``name`` may be used under this grant."""
        return self.allowed is None or name in self.allowed

    def narrow(self, names: Iterable[str] | ToolGrant | None) -> ToolGrant:
        """This grant intersected with ``names``: what a subtask asking for them gets.

        A subtask that names no tools (None) inherits this grant, not an unlimited one.
        """
        other = names if isinstance(names, ToolGrant) else ToolGrant.of(names)
        if other.allowed is None:
            return self
        if self.allowed is None:
            return other
        return ToolGrant(self.allowed & other.allowed)

    def apply(self, tools: ToolSet) -> ToolSet:
        """The agent's tools this grant permits (the intersection)."""
        return tools.only(self.allowed)
