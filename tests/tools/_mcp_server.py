"""A small MCP server for the tests, written with the official ``mcp`` package.

Usage: python _mcp_server.py stdio | python _mcp_server.py http PORT (binds 127.0.0.1)
"""

from __future__ import annotations

import asyncio
import sys

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

app = MCPServer("smesh-test-server", log_level="WARNING")


@app.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@app.tool(name="text.upper", annotations=ToolAnnotations(read_only_hint=True))
def upper(text: str) -> str:
    """Upper-case a text."""
    return text.upper()


@app.tool()
def fail(reason: str) -> str:
    """Always fails."""
    raise ToolError(f"failed on purpose: {reason}")


@app.tool()
async def slow(seconds: float) -> str:
    """Sleep, then answer."""
    await asyncio.sleep(seconds)
    return "woke up"


@app.tool()
def crash() -> str:
    """Kill the server process."""
    import os

    os._exit(3)


if __name__ == "__main__":
    if sys.argv[1] == "stdio":
        app.run()
    else:
        app.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
