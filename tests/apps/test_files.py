"""File selection and chunking: ignores, languages, line boundaries, UTF-8 safety."""

from __future__ import annotations

from pathlib import Path

import pytest

from smesh.apps.files import Chunk, chunk_file, chunk_lines, numbered, select_files
from smesh.errors import UsageError


def write(root: Path, rel: str, data: bytes | str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())


def test_selects_source_files_of_any_language_and_skips_the_usual_noise(tmp_path: Path) -> None:
    for rel in ("src/a.py", "web/app.ts", "cmd/main.go", "lib/x.rs", "ui/page.jsx"):
        write(tmp_path, rel, "x = 1\n")
    for rel in (
        ".git/hooks/pre-commit.py",
        ".venv/lib/site.py",
        "venv/lib/x.py",
        "node_modules/left-pad/index.js",
        "build/lib/a.py",
        "dist/bundle.js",
        "target/debug/x.rs",
        "vendor/github.com/x/y.go",
        "third_party/z.c",
        "pkg.egg-info/x.py",
        "__pycache__/a.py",
        "static/app.min.js",
        "README.md",
        "data.json",
    ):
        write(tmp_path, rel, "x = 1\n")
    write(tmp_path, "src/blob.py", b"\x00\x01binary\x00")
    write(tmp_path, "src/huge.py", "x = 1\n" * 200_000)
    write(tmp_path, "src/empty.py", "")
    chosen = select_files(tmp_path)
    assert [(f.path, f.language) for f in chosen] == [
        ("cmd/main.go", "go"),
        ("lib/x.rs", "rust"),
        ("src/a.py", "python"),
        ("ui/page.jsx", "javascript"),
        ("web/app.ts", "typescript"),
    ]
    assert [f.path for f in select_files(tmp_path, extensions=["go", ".rs"])] == [
        "cmd/main.go",
        "lib/x.rs",
    ]
    assert len(select_files(tmp_path, max_files=2)) == 2


def test_a_missing_root_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        select_files(tmp_path / "nope")


def test_a_single_file_root_is_reviewed_as_itself(tmp_path: Path) -> None:
    write(tmp_path, "one.py", "print(1)\n")
    [only] = select_files(tmp_path / "one.py")
    assert only.path == "one.py"
    [chunk] = chunk_file(tmp_path / "one.py", only)
    assert chunk.text == "print(1)\n" and (chunk.start_line, chunk.end_line) == (1, 1)


def test_chunks_end_on_line_boundaries_and_cover_every_line() -> None:
    data = b"".join(f"line {i:03d}\n".encode() for i in range(1, 101))  # 9 bytes a line
    pieces = chunk_lines(data, max_bytes=100)
    assert all(len(p) <= 100 for _, _, p in pieces)
    assert all(p.endswith(b"\n") for _, _, p in pieces)
    assert b"".join(p for _, _, p in pieces) == data
    assert pieces[0][:2] == (1, 11)
    # consecutive, gap-free line numbering
    assert [a for a, _, _ in pieces[1:]] == [b + 1 for _, b, _ in pieces[:-1]]
    assert pieces[-1][1] == 100


def test_a_line_longer_than_a_chunk_is_cut_between_utf8_characters() -> None:
    line = ("é€😀" * 50).encode()  # 2-, 3- and 4-byte characters
    data = b"short\n" + line + b"\nend\n"
    pieces = chunk_lines(data, max_bytes=10)
    for _, _, piece in pieces:
        piece.decode("utf-8")  # never raises: no character is split
        assert len(piece) <= 10
    assert b"".join(p for _, _, p in pieces) == data
    long_numbers = {a for a, b, p in pieces if a == b == 2}
    assert long_numbers == {2}


def test_numbered_shows_real_line_numbers() -> None:
    chunk = Chunk("a.py", "python", 9, 11, "a\nb\nc\n")
    assert numbered(chunk).splitlines() == [" 9 | a", "10 | b", "11 | c"]
    assert chunk.id == "a.py:9-11"


def test_chunk_size_below_four_bytes_is_refused() -> None:
    with pytest.raises(UsageError):
        chunk_lines(b"x\n", max_bytes=3)
