"""MCP tools against real MCP servers (stdio subprocess and streamable HTTP on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from smesh.errors import ToolError, UsageError
from smesh.testing.tools import ScriptedModel, call
from smesh.tools import CallContext, ToolLoop, tool
from smesh.tools.mcp import MCPTools

pytest.importorskip("mcp")
pytestmark = pytest.mark.asyncio

SERVER = Path(__file__).with_name("_mcp_server.py")
CTX = CallContext(call_id="c", step=1)


@pytest_asyncio.fixture
async def stdio_server(tmp_path: Path) -> AsyncIterator[MCPTools]:
    with (tmp_path / "server.log").open("w") as log:
        async with MCPTools(
            f"stdio:{sys.executable} {SERVER} stdio", timeout_s=5, errlog=log
        ) as server:
            yield server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def http_url(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    with (tmp_path / "http.log").open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, str(SERVER), "http", str(port)], stdout=log, stderr=log
        )
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                assert proc.poll() is None, (tmp_path / "http.log").read_text()
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            else:
                pytest.fail("the MCP HTTP server did not start")
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


async def test_stdio_server_tools_become_smesh_tools(stdio_server: MCPTools) -> None:
    tools = stdio_server.tools
    assert set(tools.names) == {"add", "text_upper", "fail", "slow", "crash"}
    add = tools["add"]
    assert add.description == "Add two integers."
    assert add.parameters["properties"]["a"]["type"] == "integer"
    assert add.parameters["required"] == ["a", "b"]
    assert add.side_effect  # unannotated: MCP assumes it may change things
    assert not tools["text_upper"].side_effect  # readOnlyHint
    assert await add.invoke({"a": 2, "b": 3}, CTX) == {"result": 5}
    assert await tools["text_upper"].invoke({"text": "hi"}, CTX) == {"result": "HI"}
    assert "5 tools" in repr(stdio_server)


async def test_a_model_uses_mcp_tools_in_the_loop(stdio_server: MCPTools) -> None:
    @tool
    def double(n: int) -> int:
        return 2 * n

    model = ScriptedModel(
        [
            [call("add", a=20, b=1), call("text_upper", text="ok"), call("double", n=4)],
            [call("add", a="x", b=1), call("fail", reason="test"), call("slow", seconds=30)],
            "done",
        ]
    )
    loop = ToolLoop([stdio_server.tools, double])
    started = time.perf_counter()
    result = await loop.run(model, "go")
    assert result.text == "done"
    assert [r.result for r in result.calls[:3]] == ['{"result":21}', '{"result":"OK"}', "8"]
    bad, failed, slow = result.calls[3:]
    assert bad.status == "invalid" and "$.a: expected integer" in bad.result  # checked locally
    assert failed.status == "error" and "failed on purpose: test" in failed.result
    assert slow.status == "timeout" and "did not" in slow.result
    assert time.perf_counter() - started < 15
    # the connection is still usable after a timed-out call
    assert await stdio_server.tools["add"].invoke({"a": 1, "b": 1}, CTX) == {"result": 2}


async def test_a_server_that_dies_mid_call_is_a_tool_error(tmp_path: Path) -> None:
    with (tmp_path / "server.log").open("w") as log:
        async with MCPTools(
            f"stdio:{sys.executable} {SERVER} stdio", timeout_s=5, errlog=log
        ) as server:
            model = ScriptedModel([call("crash"), call("add", a=1, b=2), "gave up"])
            started = time.perf_counter()
            result = await ToolLoop(server.tools).run(model, "x")
            assert time.perf_counter() - started < 15
    assert result.text == "gave up"
    assert [r.ok for r in result.calls] == [False, False]
    assert result.calls[0].status in {"error", "timeout"}


async def test_streamable_http_server(http_url: str) -> None:
    async with MCPTools(http_url, timeout_s=5, prefix="remote_") as server:
        assert set(server.tools.names) == {
            "remote_add",
            "remote_text_upper",
            "remote_fail",
            "remote_slow",
            "remote_crash",
        }
        model = ScriptedModel(
            [[call("remote_add", a=1, b=2), call("remote_fail", reason="r")], "ok"]
        )
        result = await ToolLoop(server.tools).run(model, "x")
        assert [r.status for r in result.calls] == ["ok", "error"]
        assert result.calls[0].result == '{"result":3}'
        assert "failed on purpose: r" in result.calls[1].result
    assert len(server.tools) == 0 and "not connected" in repr(server)
    with pytest.raises(ToolError, match="not connected"):
        await server.call("add", {"a": 1, "b": 1}, timeout_s=1)


async def test_connecting_to_nothing_fails_clearly_and_in_bounded_time(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="cannot connect to MCP server"):
        async with MCPTools("stdio:/nonexistent/server-binary"):
            pass
    port = _free_port()
    started = time.perf_counter()
    with pytest.raises(ToolError, match="MCP server"):
        async with MCPTools(f"http://127.0.0.1:{port}/mcp", connect_timeout_s=3):
            pass
    assert time.perf_counter() - started < 10
    # a process that never speaks MCP: the connect timeout ends the wait
    started = time.perf_counter()
    with pytest.raises(ToolError, match="did not answer within 1 s"):
        async with MCPTools(
            f"stdio:{sys.executable} -c 'import time; time.sleep(30)'", connect_timeout_s=1
        ):
            pass
    assert time.perf_counter() - started < 10


@pytest.mark.parametrize("target", ["", "stdio:", "ftp://x", "server.py", "http:x"])
async def test_bad_targets_are_usage_errors(target: str) -> None:
    with pytest.raises(UsageError):
        MCPTools(target)


async def test_side_effect_override_and_double_connect(tmp_path: Path) -> None:
    with (tmp_path / "server.log").open("w") as log:
        server = MCPTools(f"stdio:{sys.executable} {SERVER} stdio", side_effect=False, errlog=log)
        async with server:
            assert not any(t.side_effect for t in server.tools)
            with pytest.raises(UsageError, match="already connected"):
                await server.__aenter__()
        await server.aclose()


async def test_cancelling_a_call_in_flight_leaves_the_connection_usable(
    stdio_server: MCPTools,
) -> None:
    task: asyncio.Task[Any] = asyncio.create_task(
        stdio_server.tools["slow"].invoke({"seconds": 30}, CTX)
    )
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert await stdio_server.tools["add"].invoke({"a": 1, "b": 1}, CTX) == {"result": 2}
