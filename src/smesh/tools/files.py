"""Read-only file access under one root directory: ``list_files``, ``read_file``, ``grep``.

Nothing outside the root can be read: a path is resolved (symlinks followed) and must stay
under the root; after opening, the open file's real path is checked again, so a symlink
swapped in between cannot redirect the read. Only regular files are read (a FIFO or a
device is refused before it can block), hidden entries (``.git``, ``.env``) are off unless
allowed, and every answer is capped: bytes read, entries listed, matches and bytes
searched, and the wall time of a walk. ``grep`` searches for a fixed string, not a regular
expression, so a hostile pattern cannot make it backtrack forever.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from smesh.errors import ToolError, UsageError
from smesh.tools.function import FunctionTool
from smesh.tools.toolset import ToolSet

__all__ = ["FileTools"]

_PROC_FD = Path("/proc/self/fd")
_BINARY_SNIFF = 8192


class FileTools:
    """Read-only tools over the files under ``root``.

    Args:
        root: the directory the tools may read; nothing outside it is reachable.
        max_read_bytes: cap on the bytes one ``read_file`` returns.
        max_entries: cap on the entries one ``list_files`` returns.
        max_matches: cap on the lines one ``grep`` returns.
        max_scan_bytes: cap on the bytes one ``grep`` reads in all.
        max_file_bytes: files larger than this are skipped by ``grep``.
        walk_time_s: cap on the wall time of one listing or search.
        include_hidden: allow names starting with a dot.
        prefix: put before each tool's name.

    Raises:
        UsageError: ``root`` is not an existing directory.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        max_read_bytes: int = 64 * 1024,
        max_entries: int = 500,
        max_matches: int = 200,
        max_scan_bytes: int = 32 * 1024 * 1024,
        max_file_bytes: int = 2 * 1024 * 1024,
        walk_time_s: float = 10.0,
        include_hidden: bool = False,
        prefix: str = "",
    ) -> None:
        resolved = Path(root).resolve()
        if not resolved.is_dir():
            raise UsageError(f"FileTools needs an existing directory, not {str(root)!r}")
        self.root = resolved
        self.max_read_bytes = max_read_bytes
        self.max_entries = max_entries
        self.max_matches = max_matches
        self.max_scan_bytes = max_scan_bytes
        self.max_file_bytes = max_file_bytes
        self.walk_time_s = walk_time_s
        self.include_hidden = include_hidden
        limit = walk_time_s + 5.0
        self.tools = ToolSet(
            [
                FunctionTool(self.list_files, name=prefix + "list_files", timeout_s=limit),
                FunctionTool(self.read_file, name=prefix + "read_file", timeout_s=limit),
                FunctionTool(self.grep, name=prefix + "grep", timeout_s=limit),
            ]
        )

    # -- paths -----------------------------------------------------------------------------

    def _inside(self, path: Path) -> bool:
        return path == self.root or path.is_relative_to(self.root)

    def _hidden(self, relative: Path) -> bool:
        return not self.include_hidden and any(p.startswith(".") for p in relative.parts)

    def resolve(self, path: str) -> Path:
        """The real path of ``path`` (relative to the root), if it stays under the root.

        Raises:
            ToolError: absolute, escaping, hidden, missing or unresolvable.
        """
        if not isinstance(path, str) or "\x00" in path:
            raise ToolError("a path must be text without NUL bytes")
        if os.path.isabs(path):
            raise ToolError(f"paths are relative to the root, not absolute: {path!r}")
        try:
            real = (self.root / path).resolve(strict=True)
        except FileNotFoundError:
            raise ToolError(f"no such file or directory: {path!r}") from None
        except (OSError, RuntimeError) as exc:  # symlink loops, permissions
            raise ToolError(f"cannot resolve {path!r}: {exc}") from None
        if not self._inside(real):
            raise ToolError(f"{path!r} is outside the root directory")
        if self._hidden(real.relative_to(self.root)):
            raise ToolError(f"{path!r} is hidden")
        return real

    def _open_regular(self, real: Path, shown: str) -> int:
        """Open a regular file under the root without following a swapped-in symlink."""
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(real, flags)
        except OSError as exc:
            raise ToolError(f"cannot open {shown!r}: {exc.strerror}") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ToolError(f"{shown!r} is not a regular file")
            if _PROC_FD.is_dir():  # Linux: where did the open really land?
                landed = Path(os.readlink(_PROC_FD / str(fd)))
                if not self._inside(landed):
                    raise ToolError(f"{shown!r} is outside the root directory")
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _walk(self, start: Path, deadline: float) -> Iterator[tuple[Path, os.DirEntry[str]]]:
        """Entries under ``start`` (never through symlinked directories), sorted, bounded."""
        stack = [start]
        while stack:
            directory = stack.pop()
            try:
                with os.scandir(directory) as scan:
                    entries = sorted(scan, key=lambda e: e.name)
            except OSError:
                continue
            subdirs: list[Path] = []
            for entry in entries:
                if time.monotonic() > deadline:
                    return
                if not self.include_hidden and entry.name.startswith("."):
                    continue
                yield directory, entry
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append(Path(entry.path))
            stack.extend(reversed(subdirs))

    # -- the tools -------------------------------------------------------------------------

    def list_files(self, path: str = ".", recursive: bool = False) -> dict[str, Any]:
        """List the files and directories under a directory of the workspace.

        Args:
            path: the directory, relative to the workspace root.
            recursive: also list everything below it.
        """
        start = self.resolve(path)
        if not start.is_dir():
            raise ToolError(f"{path!r} is not a directory")
        deadline = time.monotonic() + self.walk_time_s
        entries: list[dict[str, Any]] = []
        truncated = False
        walk = self._walk(start, deadline) if recursive else _one_level(start, self)
        for _, entry in walk:
            if len(entries) >= self.max_entries:
                truncated = True
                break
            relative = Path(entry.path).relative_to(self.root).as_posix()
            if entry.is_symlink():
                entries.append({"path": relative, "type": "link"})
            elif entry.is_dir(follow_symlinks=False):
                entries.append({"path": relative + "/", "type": "dir"})
            elif entry.is_file(follow_symlinks=False):
                size = entry.stat(follow_symlinks=False).st_size
                entries.append({"path": relative, "type": "file", "size": size})
            else:
                entries.append({"path": relative, "type": "other"})
        truncated = truncated or time.monotonic() > deadline
        return {"entries": entries, "truncated": truncated}

    def read_file(self, path: str, offset: int = 0) -> str:
        """Read a text file of the workspace (long files come in pieces).

        Args:
            path: the file, relative to the workspace root.
            offset: the byte to start at (to continue a long file).
        """
        if offset < 0:
            raise ToolError("offset must be >= 0")
        fd = self._open_regular(self.resolve(path), path)
        try:
            size = os.fstat(fd).st_size
            os.lseek(fd, offset, os.SEEK_SET)
            data = os.read(fd, self.max_read_bytes)
        finally:
            os.close(fd)
        if b"\x00" in data[:_BINARY_SNIFF]:
            raise ToolError(f"{path!r} is a binary file")
        text = data.decode("utf-8", errors="replace")
        end = offset + len(data)
        if end < size:
            text += (
                f"\n[truncated: {path} is {size:,} bytes; bytes {offset:,}-{end:,} shown; "
                f"read on with offset={end}]"
            )
        return text

    def grep(self, text: str, path: str = ".", glob: str = "*", ignore_case: bool = False) -> str:
        """Find the lines of the workspace's text files that contain a fixed string.

        Args:
            text: the string to look for (plain text, not a regular expression).
            path: a file or a directory to search, relative to the workspace root.
            glob: only search files whose name matches this pattern, e.g. ``*.py``.
            ignore_case: match regardless of case.
        """
        if not text:
            raise ToolError("grep needs a non-empty string to look for")
        needle = text.lower() if ignore_case else text
        start = self.resolve(path)
        deadline = time.monotonic() + self.walk_time_s
        files: Iterator[Path]
        if start.is_dir():
            files = (
                Path(e.path)
                for _, e in self._walk(start, deadline)
                if e.is_file(follow_symlinks=False) and fnmatch.fnmatch(e.name, glob)
            )
        else:
            files = iter([start])
        lines: list[str] = []
        scanned = 0
        note = ""
        for file in files:
            if time.monotonic() > deadline:
                note = "[stopped: the search ran out of time]"
                break
            try:
                fd = self._open_regular(file, file.name)
            except ToolError:
                continue
            try:
                size = os.fstat(fd).st_size
                if size > self.max_file_bytes:
                    continue
                if scanned + size > self.max_scan_bytes:
                    note = f"[stopped: searched {scanned:,} bytes, the limit]"
                    break
                data = os.read(fd, size + 1)
            finally:
                os.close(fd)
            scanned += len(data)
            if b"\x00" in data[:_BINARY_SNIFF]:
                continue
            shown = file.relative_to(self.root).as_posix()
            for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
                if needle in (line.lower() if ignore_case else line):
                    lines.append(f"{shown}:{number}: {line.strip()[:300]}")
                    if len(lines) >= self.max_matches:
                        note = f"[stopped: {self.max_matches} matches, the limit]"
                        break
            if len(lines) >= self.max_matches:
                break
        if not note and time.monotonic() > deadline:
            note = "[stopped: the search ran out of time]"
        out = "\n".join(lines) if lines else "no matches"
        return f"{out}\n{note}" if note else out


def _one_level(start: Path, tools: FileTools) -> Iterator[tuple[Path, os.DirEntry[str]]]:
    with os.scandir(start) as scan:
        entries = sorted(scan, key=lambda e: e.name)
    for entry in entries:
        if tools.include_hidden or not entry.name.startswith("."):
            yield start, entry
