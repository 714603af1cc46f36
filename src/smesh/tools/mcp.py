"""The tools of any MCP server, as smesh tools (needs ``pip install 'smesh[mcp]'``).

:class:`MCPTools` connects to a Model Context Protocol server with the official ``mcp``
package, lists its tools (name, description and input schema come from the server) and
calls them. It is an async context manager: the connection, and for ``stdio:`` the
server process, live exactly as long as the ``async with`` block::

    async with MCPTools("stdio:python server.py") as server:
        result = await ToolLoop([*server.tools, add]).run(model, "...")

    async with MCPTools("http://127.0.0.1:8000/mcp") as server:   # streamable HTTP
        ...

A tool the server marks read-only (``readOnlyHint``) is side-effect free; any other is
treated as having side effects (MCP's own default), so with an effect ledger its calls
are journaled and never repeated after a crash. Pass ``side_effect=`` to decide yourself.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import sys
from typing import TYPE_CHECKING, Any, TextIO

from smesh.errors import BackendUnavailable, ToolError, ToolTimeout, UsageError
from smesh.tools.base import DEFAULT_TIMEOUT_S, CallContext, Tool
from smesh.tools.toolset import ToolSet

if TYPE_CHECKING:
    from mcp import Client
    from mcp.types import CallToolResult
    from mcp.types import Tool as RemoteTool

__all__ = ["MCPTool", "MCPTools"]

_MAX_PAGES = 100  # a server whose tool list never ends cannot hang the connect
_CLOSE_TIMEOUT_S = 10.0
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def _import_mcp() -> Any:
    try:
        import mcp
    except ImportError:
        raise BackendUnavailable(
            "MCP tools need the mcp package; run: pip install 'smesh[mcp]'", backend="mcp"
        ) from None
    return mcp


def _content_text(result: CallToolResult) -> str:
    parts: list[str] = []
    for block in result.content:
        text = getattr(block, "text", None)
        if isinstance(text, str):
            parts.append(text)
        else:
            mime = getattr(block, "mime_type", None) or getattr(block, "type", "content")
            parts.append(f"[{getattr(block, 'type', 'content')}: {mime}]")
    return "\n".join(parts)


class MCPTool(Tool):
    """One tool of a connected MCP server (made by :class:`MCPTools`)."""

    def __init__(
        self,
        server: MCPTools,
        remote: RemoteTool,
        *,
        name: str,
        side_effect: bool,
        timeout_s: float,
    ) -> None:
        schema = dict(remote.input_schema or {})
        schema.setdefault("type", "object")
        schema.setdefault("properties", {})
        super().__init__(
            name=name,
            description=remote.description or remote.title or remote.name,
            parameters=schema,
            side_effect=side_effect,
            timeout_s=timeout_s,
        )
        self.remote_name = remote.name
        self._server = server

    async def invoke(self, args: dict[str, Any], ctx: CallContext) -> Any:
        """Call the tool on the server; its structured result if any, else its text.

        Raises:
            ToolError: the server reported an error, or the connection failed.
            ToolTimeout: no answer within the tool's timeout.
        """
        return await self._server.call(self.remote_name, args, timeout_s=self.timeout_s)


class MCPTools:
    """A connection to an MCP server and its tools.

    Args:
        target: ``stdio:COMMAND ARGS...`` (a server run as a subprocess, talking over its
            stdin/stdout) or an ``http://`` / ``https://`` URL (streamable HTTP).
        timeout_s: the longest one tool call may take.
        connect_timeout_s: the longest connecting and listing the tools may take.
        prefix: put before every tool name (e.g. ``"github_"``), to keep names unique.
        side_effect: force every tool's side-effect flag (default: from the server's
            ``readOnlyHint`` annotation; unannotated tools have side effects).
        env: environment of a ``stdio:`` server (default: the SDK's safe subset).
        cwd: working directory of a ``stdio:`` server.
        errlog: where a ``stdio:`` server's stderr goes (default: ours).

    Raises:
        UsageError: the target is neither ``stdio:...`` nor an HTTP URL.
    """

    def __init__(
        self,
        target: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        connect_timeout_s: float = 30.0,
        prefix: str = "",
        side_effect: bool | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        errlog: TextIO | None = None,
    ) -> None:
        kind, _, rest = target.partition(":")
        if kind == "stdio":
            argv = shlex.split(rest)
            if not argv:
                raise UsageError(f"no command after 'stdio:' in {target!r}")
            self._argv: list[str] | None = argv
        elif kind in {"http", "https"} and rest.startswith("//"):
            self._argv = None
        else:
            raise UsageError(
                f"an MCP target is 'stdio:COMMAND ...' or an http(s) URL, not {target!r}"
            )
        if timeout_s <= 0 or connect_timeout_s <= 0:
            raise UsageError("MCP timeouts must be > 0")
        self.target = target
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.prefix = prefix
        self.side_effect = side_effect
        self._env = env
        self._cwd = cwd
        self._errlog = errlog
        self._client: Client | None = None
        self._owner: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._tools = ToolSet()

    @property
    def tools(self) -> ToolSet:
        """The server's tools (empty until connected)."""
        return self._tools

    def _client_for(self, mcp: Any) -> Client:
        if self._argv is None:
            return mcp.Client(self.target, read_timeout_seconds=self.timeout_s)  # type: ignore[no-any-return]
        params = mcp.StdioServerParameters(
            command=self._argv[0], args=self._argv[1:], env=self._env, cwd=self._cwd
        )
        transport = mcp.stdio_client(params, errlog=self._errlog or sys.stderr)
        return mcp.Client(transport, read_timeout_seconds=self.timeout_s)  # type: ignore[no-any-return]

    async def __aenter__(self) -> MCPTools:
        """Connect, list the server's tools, and make them smesh tools."""
        if self._owner is not None:
            raise UsageError(f"MCP server {self.target!r} is already connected")
        mcp = _import_mcp()
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[list[RemoteTool]] = loop.create_future()
        self._stop = asyncio.Event()
        # The connection lives in a task of its own: the SDK's cancel scopes must be
        # entered and left by one task, and ours may be entered and left by different ones.
        self._owner = asyncio.create_task(self._hold(mcp, ready, self._stop))
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                remote = await asyncio.shield(ready)
        except BaseException as exc:
            await self.aclose()
            if isinstance(exc, TimeoutError):
                raise ToolError(
                    f"MCP server {self.target!r} did not answer within {self.connect_timeout_s:g} s"
                ) from None
            if isinstance(exc, Exception):
                raise ToolError(
                    f"cannot connect to MCP server {self.target!r}: {type(exc).__name__}: {exc}"
                ) from exc
            raise
        self._tools = ToolSet(self._wrap(t) for t in remote)
        return self

    async def _hold(
        self, mcp: Any, ready: asyncio.Future[list[RemoteTool]], stop: asyncio.Event
    ) -> None:
        """Own the connection: open it, list the tools, wait for the stop, close it."""
        try:
            async with self._client_for(mcp) as client:
                remote = await self._list(client)
                self._client = client
                ready.set_result(remote)
                await stop.wait()
        except Exception as exc:
            if not ready.done():
                ready.set_exception(exc)
            # else: the server went away; calls in flight and later fail on their own
        finally:
            self._client = None
            if not ready.done():
                ready.cancel()

    async def _list(self, client: Client) -> list[RemoteTool]:
        tools: list[RemoteTool] = []
        cursor: str | None = None
        for _ in range(_MAX_PAGES):
            page = await client.list_tools(cursor=cursor)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if cursor is None:
                break
        return tools

    def _wrap(self, remote: RemoteTool) -> MCPTool:
        name = _UNSAFE.sub("_", self.prefix + remote.name)[:64]
        annotations = remote.annotations
        read_only = bool(annotations is not None and annotations.read_only_hint)
        side_effect = self.side_effect if self.side_effect is not None else not read_only
        return MCPTool(self, remote, name=name, side_effect=side_effect, timeout_s=self.timeout_s)

    async def call(self, name: str, args: dict[str, Any], *, timeout_s: float) -> Any:
        """Call the server's tool ``name`` (its own name, unprefixed)."""
        from mcp import MCPError
        from mcp.types import REQUEST_TIMEOUT

        if self._client is None:
            raise ToolError(f"MCP server {self.target!r} is not connected", tool=name)
        try:
            result = await self._client.call_tool(name, args, read_timeout_seconds=timeout_s)
        except MCPError as exc:
            if exc.code == REQUEST_TIMEOUT:
                raise ToolTimeout(
                    f"{name} on MCP server {self.target!r} did not answer within {timeout_s:g} s",
                    tool=name,
                ) from None
            raise ToolError(f"MCP server error: {exc.message}", tool=name) from None
        except Exception as exc:  # the connection broke, the server died ...
            raise ToolError(
                f"MCP server {self.target!r} failed: {type(exc).__name__}: {exc}", tool=name
            ) from None
        if result.is_error:
            raise ToolError(_content_text(result) or f"{name} failed", tool=name)
        if result.structured_content is not None:
            return result.structured_content
        return _content_text(result)

    async def aclose(self) -> None:
        """Disconnect (and stop a ``stdio:`` server). Safe to call twice."""
        owner, self._owner = self._owner, None
        self._tools = ToolSet()
        if owner is None:
            return
        self._stop.set()
        if self._client is None:
            owner.cancel()  # still connecting (or already failed): nothing to close politely
        # asyncio.wait, not wait_for: the owner's own cancellation must not look like ours
        await asyncio.wait({owner}, timeout=_CLOSE_TIMEOUT_S)
        if not owner.done():
            owner.cancel()  # the SDK terminates a stdio server when cancelled
            await asyncio.wait({owner}, timeout=_CLOSE_TIMEOUT_S)
        if owner.done() and not owner.cancelled():
            owner.exception()  # retrieved: its failure was already reported to the calls

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = f"{len(self._tools)} tools" if self._client is not None else "not connected"
        return f"<MCPTools {self.target} ({state})>"
