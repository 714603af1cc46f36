"""Tools: typed functions a model may call, the loop that calls them, and exactly-once effects.

* :func:`tool` turns a typed function into a :class:`Tool`; :class:`Tool` is the ABC for
  anything else. :class:`ToolSet` resolves names; :class:`ToolGrant` intersects permissions.
* :class:`ToolLoop` runs reason → act → observe over any model function.
* :class:`EffectLedger` (:class:`SQLiteEffectLedger`, :class:`MemoryEffectLedger`) makes
  ``side_effect=True`` calls happen once across a crash and resume.
* Built-ins: :class:`FileTools` (read-only files under a root), :class:`SQLiteQueryTool`
  (read-only SQL), :class:`PythonTool` (snippets in the sandbox), :class:`MCPTools` (any
  MCP server's tools; ``smesh[mcp]``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from smesh.tools.base import CallContext, Reconciled, Tool
from smesh.tools.function import FunctionTool, tool
from smesh.tools.ledger import (
    EffectLedger,
    EffectRecord,
    EffectScope,
    MemoryEffectLedger,
    effect_id,
)
from smesh.tools.loop import ModelFn, ToolLoop, ToolLoopResult, run_tool_loop
from smesh.tools.messages import (
    AssistantTurn,
    CallStatus,
    ToolCall,
    ToolCallRecord,
    ToolResult,
    ToolSpec,
    Turn,
)
from smesh.tools.registry import register_tool_kind, resolve_tools
from smesh.tools.sqlite_ledger import SQLiteEffectLedger
from smesh.tools.toolset import ToolGrant, ToolSet

if TYPE_CHECKING:
    from smesh.tools.files import FileTools
    from smesh.tools.mcp import MCPTools
    from smesh.tools.python_runner import PythonTool
    from smesh.tools.sqlite_query import SQLiteQueryTool

_LAZY = {
    "FileTools": "smesh.tools.files",
    "MCPTools": "smesh.tools.mcp",
    "PythonTool": "smesh.tools.python_runner",
    "SQLiteQueryTool": "smesh.tools.sqlite_query",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'smesh.tools' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AssistantTurn",
    "CallContext",
    "CallStatus",
    "EffectLedger",
    "EffectRecord",
    "EffectScope",
    "FileTools",
    "FunctionTool",
    "MCPTools",
    "MemoryEffectLedger",
    "ModelFn",
    "PythonTool",
    "Reconciled",
    "SQLiteEffectLedger",
    "SQLiteQueryTool",
    "Tool",
    "ToolCall",
    "ToolCallRecord",
    "ToolGrant",
    "ToolLoop",
    "ToolLoopResult",
    "ToolResult",
    "ToolSet",
    "ToolSpec",
    "Turn",
    "effect_id",
    "register_tool_kind",
    "resolve_tools",
    "run_tool_loop",
    "tool",
]
