"""Choosing the files an app looks at, and cutting long ones into chunks.

Files are chosen by extension (any language the table below knows, or the extensions you
pass), skipping what no reviewer should read: version-control and tool directories,
virtual environments, ``node_modules``, build output, vendored code, binaries and huge
files. Long files are cut into chunks on line boundaries; a single line longer than a
chunk is cut at a UTF-8 character boundary, never inside a character.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import msgspec

from smesh.errors import UsageError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_FILE_BYTES",
    "IGNORED_DIRS",
    "LANGUAGES",
    "Chunk",
    "SourceFile",
    "chunk_file",
    "chunk_lines",
    "language_of",
    "numbered",
    "select_files",
]

#: extension -> language name
LANGUAGES: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".rs": "rust",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".tsx": "typescript",
    ".go": "go",
    ".java": "java",
    ".kt": "kotlin",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".hpp": "cpp",
    ".cs": "csharp",
    ".rb": "ruby",
    ".php": "php",
    ".swift": "swift",
    ".scala": "scala",
    ".sh": "shell",
    ".bash": "shell",
    ".sql": "sql",
    ".html": "html",
    ".vue": "javascript",
    ".lua": "lua",
}

#: directory names never descended into
IGNORED_DIRS: frozenset[str] = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "venv",
        "env",
        ".env",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        "__pycache__",
        "node_modules",
        "bower_components",
        "vendor",
        "third_party",
        "third-party",
        "external",
        "build",
        "dist",
        "target",
        "out",
        ".next",
        ".smesh",
        "site-packages",
        ".idea",
        ".vscode",
    }
)

_MINIFIED_SUFFIXES = (".min.js", ".min.css", ".bundle.js")
DEFAULT_MAX_FILE_BYTES = 512 * 1024  # larger files are generated or data, not code
DEFAULT_MAX_BYTES = 4000  # bytes per chunk: fits a small model's context with room to answer


class SourceFile(msgspec.Struct, frozen=True):
    """A file chosen for review.

    Attributes:
        path: the path relative to the root, with ``/`` separators.
        language: the language its extension names.
        size: its size in bytes.
    """

    path: str
    language: str
    size: int


class Chunk(msgspec.Struct, frozen=True):
    """Consecutive whole lines of one file (1-based, inclusive).

    Attributes:
        path: the file's relative path.
        language: its language.
        start_line: first line of the chunk.
        end_line: last line of the chunk.
        text: the decoded lines.
    """

    path: str
    language: str
    start_line: int
    end_line: int
    text: str

    @property
    def id(self) -> str:
        """A stable id: ``path:start-end``."""
        return f"{self.path}:{self.start_line}-{self.end_line}"


def language_of(path: str | Path, extensions: Iterable[str] | None = None) -> str | None:
    """The language of ``path`` by extension, or None when it is not selected."""
    name = Path(path).name.lower()
    if name.endswith(_MINIFIED_SUFFIXES):
        return None
    suffix = Path(name).suffix
    if extensions is not None:
        wanted = {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}
        if suffix not in wanted:
            return None
        return LANGUAGES.get(suffix, suffix.lstrip(".") or "text")
    return LANGUAGES.get(suffix)


def _is_binary(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            head = fh.read(8192)
    except OSError:
        return True
    return b"\0" in head


def select_files(
    root: str | Path,
    *,
    extensions: Iterable[str] | None = None,
    max_files: int | None = None,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> list[SourceFile]:
    """The files under ``root`` worth reviewing, sorted by path.

    Args:
        root: a directory (or a single file).
        extensions: only these extensions (default: every language in :data:`LANGUAGES`).
        max_files: keep at most this many (the first by path).
        max_file_bytes: skip files larger than this.

    Raises:
        UsageError: ``root`` does not exist.
    """
    base = Path(root)
    if not base.exists():
        raise UsageError(f"no such file or directory: {str(root)!r}")
    exts = list(extensions) if extensions is not None else None
    if base.is_file():
        candidates: Iterator[tuple[Path, str]] = iter([(base, base.name)])
    else:
        candidates = _walk(base)
    chosen: list[SourceFile] = []
    for path, rel in candidates:
        language = language_of(path, exts)
        if language is None or path.is_symlink():
            continue
        try:
            size = path.stat().st_size
        except OSError:
            continue
        if size == 0 or size > max_file_bytes or _is_binary(path):
            continue
        chosen.append(SourceFile(rel, language, size))
    chosen.sort(key=lambda f: f.path)
    return chosen[:max_files] if max_files is not None else chosen


def _walk(base: Path) -> Iterator[tuple[Path, str]]:
    for dirpath, dirnames, filenames in os.walk(base):
        # prune in place, in sorted order, so the walk is deterministic
        dirnames[:] = sorted(
            d for d in dirnames if d not in IGNORED_DIRS and not d.endswith(".egg-info")
        )
        for name in sorted(filenames):
            path = Path(dirpath) / name
            yield path, path.relative_to(base).as_posix()


def _utf8_cut(data: bytes, limit: int) -> int:
    """The largest cut point <= ``limit`` that does not split a UTF-8 character."""
    cut = min(limit, len(data))
    # a continuation byte is 0b10xxxxxx; step back to the start of its character
    while 0 < cut < len(data) and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    return cut if cut > 0 else min(limit, len(data))


def chunk_lines(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> list[tuple[int, int, bytes]]:
    """Cut ``data`` into ``(start_line, end_line, bytes)`` pieces of at most ``max_bytes``.

    Pieces end on line boundaries. A line longer than ``max_bytes`` on its own is split
    into several pieces (all numbered with that line), each cut at a character boundary.
    """
    if max_bytes < 4:
        raise UsageError(f"max_bytes must be >= 4, got {max_bytes}")
    lines = data.splitlines(keepends=True)
    pieces: list[tuple[int, int, bytes]] = []
    current: list[bytes] = []
    size = 0
    start = 1
    for number, line in enumerate(lines, start=1):
        if size + len(line) > max_bytes and current:
            pieces.append((start, number - 1, b"".join(current)))
            current, size = [], 0
        if not current:
            start = number
        if len(line) > max_bytes:
            rest = line
            while len(rest) > max_bytes:
                cut = _utf8_cut(rest, max_bytes)
                pieces.append((number, number, rest[:cut]))
                rest = rest[cut:]
            current, size = [rest], len(rest)
            continue
        current.append(line)
        size += len(line)
    if current:
        pieces.append((start, len(lines), b"".join(current)))
    return pieces


def chunk_file(
    root: str | Path, source: SourceFile, max_bytes: int = DEFAULT_MAX_BYTES
) -> list[Chunk]:
    """Read ``source`` under ``root`` and cut it into chunks (see :func:`chunk_lines`)."""
    base = Path(root)
    path = base if base.is_file() else base / source.path
    data = path.read_bytes()
    return [
        Chunk(source.path, source.language, a, b, piece.decode("utf-8", errors="replace"))
        for a, b, piece in chunk_lines(data, max_bytes)
    ]


def numbered(chunk: Chunk) -> str:
    """The chunk's lines, each prefixed by its line number (what a model is shown)."""
    lines = chunk.text.splitlines()
    width = len(str(chunk.start_line + len(lines)))
    return "\n".join(f"{chunk.start_line + i:>{width}} | {line}" for i, line in enumerate(lines))
