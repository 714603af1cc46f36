"""The sandboxed Python runner (``run_python``, tool string ``python``): a model's snippet runs
in the sandbox, and hostile snippets get nowhere.

Each hostile snippet goes through the tool as a model would call it (``execute_call``:
validation, timeout, the result the model sees), and the host checks what reached it.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from _hostile import Listener, processes_with

from smesh.errors import UsageError
from smesh.sandbox import Limits, isolation
from smesh.tools import ToolCall, ToolSet, resolve_tools
from smesh.tools.execute import execute_call
from smesh.tools.python_runner import PythonTool

pytestmark = pytest.mark.skipif(
    not isolation().available, reason=f"no sandbox here: {isolation().reason}"
)


def run(code: str, tool: PythonTool | None = None) -> tuple[str, dict[str, Any] | str]:
    """Call the tool with ``code``; (status, the decoded result or the error text)."""
    tools = ToolSet([tool or PythonTool()])
    name = next(iter(tools)).name
    call = ToolCall(id="c1", name=name, arguments={"code": code})
    result, record = asyncio.run(execute_call(call, tools, step=1))
    if record.ok:
        return record.status, json.loads(result.content)
    return record.status, result.content


def test_a_snippet_runs_and_its_output_comes_back() -> None:
    status, out = run("print(sum(i * i for i in range(101)))")
    assert status == "ok" and out == {"exit_code": 0, "output": "338350\n"}
    status, out = run("import sys\nprint('partial')\nsys.exit(3)")
    assert out == {"exit_code": 3, "output": "partial\n"}
    status, out = run("raise ValueError('boom')")
    assert isinstance(out, dict) and out["exit_code"] == 1
    assert "ValueError: boom" in out["output"]


def test_the_model_sees_the_schema_and_bad_arguments_are_refused() -> None:
    (spec,) = ToolSet([PythonTool()]).specs()
    assert spec.name == "run_python" and spec.parameters["required"] == ["code"]
    tools = ToolSet([PythonTool()])
    bad = ToolCall(id="c", name="run_python", arguments={"cmd": "ls"})
    _, record = asyncio.run(execute_call(bad, tools, step=1))
    assert record.status == "invalid"


def test_a_snippet_cannot_reach_the_network() -> None:
    with Listener("tcp") as listener:
        code = (
            "import socket\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.1', {listener.port}), timeout=2)\n"
            "    print('connected')\n"
            "except OSError as exc:\n"
            "    print('blocked', exc)\n"
        )
        status, out = run(code)
        time.sleep(0.3)
        assert status == "ok" and listener.contacts == 0
    assert isinstance(out, dict) and out["output"].startswith("blocked"), out


def test_a_snippet_cannot_write_outside_its_scratch_directory(tmp_path: Path) -> None:
    target = tmp_path / "outside.txt"
    code = (
        "import os\n"
        "open('inside.txt', 'w').write('scratch')\n"
        "print(os.path.exists('inside.txt'))\n"
        f"try:\n    open({str(target)!r}, 'w').write('escaped')\n    print('wrote')\n"
        "except OSError as exc:\n    print('blocked', type(exc).__name__)\n"
    )
    status, out = run(code)
    assert status == "ok" and isinstance(out, dict)
    assert out["output"].splitlines()[0] == "True"
    assert out["output"].splitlines()[1].startswith("blocked"), out
    assert not target.exists()


def test_a_fork_bomb_is_bounded_and_nothing_outlives_the_call() -> None:
    marker = f"smesh-canary-{uuid.uuid4().hex}"
    code = (
        "import os, time\n"
        "forked, error = 0, ''\n"
        "for _ in range(500):\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError as exc:\n"
        "        error = str(exc)\n"
        "        break\n"
        "    if pid == 0:\n"
        "        quiet = os.open('/dev/null', os.O_WRONLY)\n"
        "        os.dup2(quiet, 1)\n"
        "        os.dup2(quiet, 2)\n"
        f"        os.execv('/bin/sh', ['sh', '-c', 'sleep 30', {marker!r}])\n"
        "    forked += 1\n"
        "print('RESULT', forked, error)\n"
    )
    tool = PythonTool(limits=Limits(timeout_s=5, processes=16, output_bytes=4096))
    started = time.monotonic()
    status, out = run(code, tool)
    assert time.monotonic() - started < 20
    assert status == "ok" and isinstance(out, dict), out
    # the children write nowhere (their shells' fork errors once interleaved with this line)
    lines = [x for x in out["output"].splitlines() if x.startswith("RESULT ")]
    assert lines, out
    line = lines[-1]
    forked, _, error = line.removeprefix("RESULT ").partition(" ")
    assert int(forked) < 16 and error.strip(), out  # fork failed once the cap was reached
    assert processes_with(marker) == []  # the sleepers died with the sandbox


def test_time_and_memory_caps_end_a_snippet() -> None:
    tool = PythonTool(limits=Limits(timeout_s=1.5, memory_bytes=256 * 1024**2))
    started = time.monotonic()
    status, out = run("while True:\n    pass\n", tool)
    assert time.monotonic() - started < 15
    assert isinstance(out, dict) and out["killed_by"] == "timeout" and out["exit_code"] == -9
    assert "killed: over its time limit" in out["output"]
    status, out = run("x = bytearray(1024 ** 3)\nprint('allocated')\n", tool)
    assert status == "ok" and isinstance(out, dict) and "allocated" not in out["output"], out
    assert out["exit_code"] != 0


def test_without_a_sandbox_it_refuses_unless_opted_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMESH_BWRAP", str(tmp_path / "no-bwrap"))
    status, out = run("print('ran')", PythonTool())
    assert status == "error" and "refusing to run generated code without a sandbox" in str(out)
    (refusing,) = resolve_tools("python")
    status, out = run("print('ran')", refusing)  # type: ignore[arg-type]
    assert status == "error"
    (unsafe,) = resolve_tools("python:unsafe-local")
    status, out = run("print('ran')", unsafe)  # type: ignore[arg-type]
    assert status == "ok" and isinstance(out, dict)
    assert out["output"] == "ran\n" and out["isolated"] is False
    with pytest.raises(UsageError, match="python:unsafe-local"):
        resolve_tools("python:anything")
