"""Tool strings and third-party tool kinds."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from smesh.errors import UnknownName, UsageError
from smesh.testing.tools import ScriptedTool
from smesh.tools import ToolSet
from smesh.tools.registry import register_tool_kind, resolve_tools, tool_kinds


def test_builtin_kinds(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    sqlite3.connect(db).close()
    tools = resolve_tools([f"files:{tmp_path}", f"sqlite:{db}"])
    assert tools.names == ("list_files", "read_file", "grep", "sql_query")
    assert {"files", "sqlite"} <= set(tool_kinds())
    with pytest.raises(UsageError, match="needs a database"):
        resolve_tools("sqlite")


def test_objects_pass_through_and_lists_flatten() -> None:
    ping = ScriptedTool("ping")
    assert resolve_tools(ping).names == ("ping",)
    assert resolve_tools([ToolSet([ping]), ScriptedTool("pong")]).names == ("ping", "pong")


def test_registered_kinds_and_errors() -> None:
    def weather(argument: str | None, **options: Any) -> list[ScriptedTool]:
        return [ScriptedTool(f"weather_{argument or 'here'}", **options)]

    register_tool_kind("weather-test", weather)
    try:
        assert resolve_tools("weather-test:paris", timeout_s=2).names == ("weather_paris",)
        with pytest.raises(UsageError, match="already registered"):
            register_tool_kind("weather-test", weather)
        register_tool_kind("weather-test", lambda a: 42, replace=True)
        with pytest.raises(UsageError, match="not tools"):
            resolve_tools("weather-test")
    finally:
        register_tool_kind("weather-test", weather, replace=True)
    for bad in ["", "a:b"]:
        with pytest.raises(UsageError):
            register_tool_kind(bad, weather)
    with pytest.raises(UnknownName, match="entry-point group"):
        resolve_tools("no-such-kind:x")
    with pytest.raises(UsageError):
        resolve_tools(":x")


def test_a_third_party_kind_is_found_through_its_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fake_smesh_tools.py").write_text(
        "from smesh.testing.tools import ScriptedTool\n"
        "def create(argument, **options):\n"
        "    return ScriptedTool('third_party_' + (argument or 'x'), ['hi'])\n"
    )
    dist = tmp_path / "fake_smesh_tools-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-smesh-tools\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[smesh.tools]\nfaketool = fake_smesh_tools:create\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "faketool" in tool_kinds()
    assert resolve_tools("faketool:abc").names == ("third_party_abc",)
