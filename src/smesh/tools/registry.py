"""Resolve tool strings (``files:./docs``, ``sqlite:shop.db``) to tools.

A tool string is ``KIND`` or ``KIND:ARGUMENT``. Built-in kinds: ``files:ROOT`` (read-only
:class:`~smesh.tools.files.FileTools`), ``sqlite:PATH`` (a read-only
:class:`~smesh.tools.sqlite_query.SQLiteQueryTool`), ``python`` (the sandboxed
:class:`~smesh.tools.python_runner.PythonTool`; refuses to run where there is no sandbox)
and ``python:unsafe-local`` (the same, allowed to run unsandboxed where there is none).
MCP servers need a connection that is opened and closed, so they are used through
:class:`~smesh.tools.mcp.MCPTools` directly.

Third-party packages add kinds under the ``smesh.tools`` entry-point group::

    [project.entry-points."smesh.tools"]
    weather = "mypkg.tools:create"   # create(argument: str | None, **options) -> tools

where the factory returns a :class:`~smesh.tools.base.Tool`, a
:class:`~smesh.tools.toolset.ToolSet` or a list of tools; or at run time with
:func:`register_tool_kind`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from smesh.errors import UnknownName, UsageError
from smesh.tools.base import Tool
from smesh.tools.toolset import ToolSet

__all__ = ["ENTRY_POINT_GROUP", "ToolFactory", "register_tool_kind", "resolve_tools", "tool_kinds"]

#: ``factory(argument, **options)`` returning a Tool, a ToolSet or an iterable of tools.
ToolFactory = Callable[..., Any]

ENTRY_POINT_GROUP = "smesh.tools"
_registered: dict[str, ToolFactory] = {}


def _files(argument: str | None, **options: Any) -> ToolSet:
    from smesh.tools.files import FileTools

    return FileTools(argument or ".", **options).tools


def _sqlite(argument: str | None, **options: Any) -> Tool:
    from smesh.tools.sqlite_query import SQLiteQueryTool

    if not argument:
        raise UsageError("the sqlite tool needs a database: sqlite:PATH")
    return SQLiteQueryTool(argument, **options)


def _python(argument: str | None, **options: Any) -> Tool:
    from smesh.tools.python_runner import PythonTool

    if argument not in (None, "unsafe-local"):
        raise UsageError(f"the python tool is 'python' or 'python:unsafe-local', not {argument!r}")
    return PythonTool(unsafe_local_exec=argument == "unsafe-local", **options)


_BUILTINS: dict[str, ToolFactory] = {"files": _files, "sqlite": _sqlite, "python": _python}


def register_tool_kind(kind: str, factory: ToolFactory, *, replace: bool = False) -> None:
    """Make ``KIND[:ARGUMENT]`` strings resolve through ``factory``.

    Raises:
        UsageError: ``kind`` is malformed, or taken and ``replace`` is False.
    """
    if not kind or ":" in kind or kind != kind.strip():
        raise UsageError(f"a tool kind is a non-empty name without ':', not {kind!r}")
    if not replace and (kind in _registered or kind in _BUILTINS):
        raise UsageError(f"tool kind {kind!r} is already registered")
    _registered[kind] = factory


def _entry_points() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def tool_kinds() -> list[str]:
    """Every kind that resolves: built-ins, registered and installed entry points."""
    return sorted(set(_BUILTINS) | set(_registered) | set(_entry_points()))


def _factory(kind: str) -> ToolFactory:
    if kind in _registered:
        return _registered[kind]
    if kind in _BUILTINS:
        return _BUILTINS[kind]
    found = _entry_points().get(kind)
    if found is None:
        raise UnknownName(
            f"unknown tool kind {kind!r} (known: {', '.join(tool_kinds())}); third-party "
            f"tools register under the {ENTRY_POINT_GROUP!r} entry-point group"
        )
    factory: ToolFactory = found.load()
    return factory


def resolve_tools(spec: str | Tool | ToolSet | Iterable[Any], **options: Any) -> ToolSet:
    """The tools named by ``spec``: a tool string, a tool, a tool set, or a list of those.

    Raises:
        UnknownName: an unknown kind.
        UsageError: a malformed string, or a factory that returned no tools.
    """
    if isinstance(spec, Tool | ToolSet):
        return ToolSet([spec])
    if not isinstance(spec, str):
        return ToolSet(resolve_tools(item, **options) for item in spec)
    kind, _, argument = spec.strip().partition(":")
    if not kind:
        raise UsageError(f"a tool string is KIND[:ARGUMENT], not {spec!r}")
    made = _factory(kind)(argument or None, **options)
    if isinstance(made, Tool | ToolSet):
        return ToolSet([made])
    try:
        return ToolSet(made)
    except TypeError:
        raise UsageError(f"tool kind {kind!r} made {made!r}, not tools") from None
