"""Read-only file tools, attacked: traversal, absolute paths, symlink escapes, FIFOs, caps."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from smesh.errors import ToolError, UsageError
from smesh.testing.tools import ScriptedModel, call
from smesh.tools import CallContext, ToolLoop
from smesh.tools.files import FileTools

pytestmark = pytest.mark.asyncio
CTX = CallContext(call_id="c", step=1)
SECRET = "TOP-SECRET-OUTSIDE"


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Path]:
    """A root with files, and a secret next to it (outside)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET + "\n")
    root = tmp_path / "root"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "README.md").write_text("# demo\nhello world\n")
    (root / "src" / "main.py").write_text("import os\nprint('hello')\n# TODO: more\n")
    (root / "src" / "pkg" / "util.py").write_text("def helper():\n    return 'Hello'\n")
    (root / ".env").write_text("API_KEY=" + SECRET + "\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text(SECRET)
    (root / "blob.bin").write_bytes(b"\x00\x01" * 100)
    return root, outside


async def _call(tools: FileTools, name: str, **args: object) -> object:
    tool = tools.tools[name]
    return await tool.invoke(tool.validate(dict(args)), CTX)


async def test_list_read_and_grep_inside_the_root(world: tuple[Path, Path]) -> None:
    root, _ = world
    tools = FileTools(root)
    listing = await _call(tools, "list_files")
    assert listing == {
        "entries": [
            {"path": "README.md", "type": "file", "size": 19},
            {"path": "blob.bin", "type": "file", "size": 200},
            {"path": "src/", "type": "dir"},
        ],
        "truncated": False,
    }
    deep = await _call(tools, "list_files", path="src", recursive=True)
    assert [e["path"] for e in deep["entries"]] == [  # type: ignore[index]
        "src/main.py",
        "src/pkg/",
        "src/pkg/util.py",
    ]
    assert await _call(tools, "read_file", path="src/../README.md") == "# demo\nhello world\n"
    found = await _call(tools, "grep", text="hello", ignore_case=True)
    assert found == (
        "README.md:2: hello world\nsrc/main.py:2: print('hello')\nsrc/pkg/util.py:2: return 'Hello'"
    )
    assert await _call(tools, "grep", text="hello", glob="*.md") == "README.md:2: hello world"
    assert await _call(tools, "grep", text="nothing-like-this") == "no matches"
    assert (
        await _call(tools, "grep", text="TODO", path="src/main.py") == "src/main.py:3: # TODO: more"
    )


@pytest.mark.parametrize(
    "path",
    [
        "../outside/secret.txt",
        "src/../../outside/secret.txt",
        "./" + "../" * 30 + "etc/passwd",
        "/etc/passwd",
        "{outside}/secret.txt",
        ".env",
        ".git/config",
        "src/\x00/x",
        "missing.txt",
    ],
)
async def test_paths_that_escape_or_hide_are_refused(world: tuple[Path, Path], path: str) -> None:
    root, outside = world
    tools = FileTools(root)
    path = path.replace("{outside}", str(outside))
    for name, args in [
        ("read_file", {"path": path}),
        ("list_files", {"path": path}),
        ("grep", {"text": "SECRET", "path": path}),
    ]:
        with pytest.raises(ToolError) as caught:
            await _call(tools, name, **args)
        assert SECRET not in str(caught.value)


async def test_symlinks_pointing_outside_are_refused_everywhere(world: tuple[Path, Path]) -> None:
    root, outside = world
    (root / "link_file").symlink_to(outside / "secret.txt")
    (root / "link_dir").symlink_to(outside)
    (root / "src" / "sneaky").symlink_to("../../outside")
    (root / "loop_a").symlink_to(root / "loop_b")
    (root / "loop_b").symlink_to(root / "loop_a")
    tools = FileTools(root)
    for path in ["link_file", "link_dir/secret.txt", "src/sneaky/secret.txt", "loop_a"]:
        with pytest.raises(ToolError):
            await _call(tools, "read_file", path=path)
    with pytest.raises(ToolError):
        await _call(tools, "list_files", path="link_dir")
    # walks neither follow nor read symlinks
    assert await _call(tools, "grep", text="SECRET") == "no matches"
    deep = await _call(tools, "list_files", recursive=True)
    links = [e for e in deep["entries"] if e["type"] == "link"]  # type: ignore[index]
    assert {e["path"] for e in links} == {"link_file", "link_dir", "src/sneaky", "loop_a", "loop_b"}
    assert SECRET not in json.dumps(deep)


async def test_a_symlink_inside_the_root_is_followed(world: tuple[Path, Path]) -> None:
    root, _ = world
    (root / "docs").symlink_to(root / "src")
    tools = FileTools(root)
    assert "print('hello')" in str(await _call(tools, "read_file", path="docs/main.py"))


async def test_a_symlink_swapped_in_after_the_check_is_caught_at_open(
    world: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, outside = world
    tools = FileTools(root)
    checked = tools.resolve

    def racing(path: str) -> Path:
        real = checked(path)
        # the race: between the check and the open, a directory becomes a symlink
        (root / "src").rename(root / "src_moved")
        (root / "src").symlink_to(outside)
        (outside / "main.py").write_text(SECRET)
        return real

    monkeypatch.setattr(tools, "resolve", racing)
    with pytest.raises(ToolError, match="outside the root") as caught:
        await _call(tools, "read_file", path="src/main.py")
    assert SECRET not in str(caught.value)


async def test_fifos_and_devices_are_refused_without_blocking(world: tuple[Path, Path]) -> None:
    root, _ = world
    os.mkfifo(root / "pipe")
    tools = FileTools(root)
    started = time.monotonic()
    with pytest.raises(ToolError, match="not a regular file"):
        await _call(tools, "read_file", path="pipe")
    assert await _call(tools, "grep", text="x") == "no matches"  # skipped, not waited on
    assert time.monotonic() - started < 2


async def test_reads_are_capped_and_continue_at_an_offset(world: tuple[Path, Path]) -> None:
    root, _ = world
    (root / "big.txt").write_text("x" * 10_000)
    tools = FileTools(root, max_read_bytes=4096)
    first = str(await _call(tools, "read_file", path="big.txt"))
    assert first.startswith("x" * 4096 + "\n[truncated: big.txt is 10,000 bytes; bytes 0-4,096")
    assert first.endswith("read on with offset=4096]")
    last = str(await _call(tools, "read_file", path="big.txt", offset=8192))
    assert last == "x" * (10_000 - 8192)
    with pytest.raises(ToolError, match="binary"):
        await _call(tools, "read_file", path="blob.bin")
    with pytest.raises(ToolError, match="offset"):
        await _call(tools, "read_file", path="big.txt", offset=-1)


async def test_listing_and_grep_are_capped(world: tuple[Path, Path]) -> None:
    root, _ = world
    many = root / "many"
    many.mkdir()
    for i in range(50):
        (many / f"f{i:02}.txt").write_text("needle\n" * 10)
    tools = FileTools(root, max_entries=10, max_matches=25, max_file_bytes=10_000)
    listing = await _call(tools, "list_files", path="many")
    assert len(listing["entries"]) == 10 and listing["truncated"]  # type: ignore[index]
    found = str(await _call(tools, "grep", text="needle", path="many"))
    assert found.count("needle") == 25 and found.endswith("[stopped: 25 matches, the limit]")
    (root / "huge.txt").write_text("needle\n" * 5000)  # over max_file_bytes: skipped
    assert "huge.txt" not in str(await _call(tools, "grep", text="needle", glob="huge*"))
    small_scan = FileTools(root, max_scan_bytes=100)
    assert "the limit]" in str(await _call(small_scan, "grep", text="needle", path="many"))


async def test_hidden_files_can_be_allowed(world: tuple[Path, Path]) -> None:
    root, _ = world
    tools = FileTools(root, include_hidden=True, prefix="ws_")
    assert tools.tools.names == ("ws_list_files", "ws_read_file", "ws_grep")
    assert SECRET in str(await _call(tools, "ws_read_file", path=".env"))


async def test_the_tools_in_a_loop_report_refusals_to_the_model(world: tuple[Path, Path]) -> None:
    root, _ = world
    model = ScriptedModel(
        [
            [
                call("read_file", path="../outside/secret.txt"),
                call("read_file", path="README.md"),
                call("grep", text=""),
            ],
            "ok",
        ]
    )
    result = await ToolLoop(FileTools(root).tools).run(model, "x")
    assert [r.status for r in result.calls] == ["error", "ok", "error"]
    assert "outside the root" in result.calls[0].result
    assert SECRET not in json.dumps([r.result for r in result.calls])


async def test_a_root_must_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        FileTools(tmp_path / "missing")
    (tmp_path / "f").write_text("x")
    with pytest.raises(UsageError):
        FileTools(tmp_path / "f")


async def test_a_walk_is_bounded_in_time(tmp_path: Path) -> None:
    for i in range(30):
        (tmp_path / f"d{i}").mkdir()
        (tmp_path / f"d{i}" / "f.txt").write_text("needle")
    tools = FileTools(tmp_path, walk_time_s=0.0)
    listing = await _call(tools, "list_files", recursive=True)
    assert listing["truncated"]  # type: ignore[index]
    assert "ran out of time" in str(await _call(tools, "grep", text="needle"))
