"""The README's Python examples run (with a scripted model standing in for the embedded
one), and the commands it documents exist with the options it names."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from smesh.cli import main

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def _run(code: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    return out.getvalue()


def test_the_library_taste_runs() -> None:
    (taste,) = [b for b in BLOCKS if "NetworkField" in b]
    out = _run(taste)
    assert "('bob',)" in out and "of nodes reached" in out


def test_the_agents_example_runs_and_passes_preflight() -> None:
    (example,) = [b for b in BLOCKS if "async def main()" in b]
    assert 'resolve_backend("local")' in example and "authoritative=True" in example
    scripted = (
        "__import__('smesh.testing', fromlist=['FunctionBackend']).FunctionBackend("
        "lambda r: 'def is_even(n):\\n    return n % 2 == 0')"
    )
    out = _run(example.replace('resolve_backend("local")', scripted))
    assert out.startswith("accepted def is_even")


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("agents", ["--demo", "--agents", "--backend", "--resume", "--threads", "--slots"]),
        ("runs", ["--json", "--journal"]),
        ("review", ["--path", "--out", "--resume", "--threads", "--slots", "--format"]),
        ("swarm", ["--path", "--consensus", "--threads", "--slots"]),
        ("code", ["--out", "--coders", "--threads", "--slots", "--unsafe-local-exec"]),
        ("compare", ["--backends", "--prompt", "--threads", "--slots"]),
        ("node", ["--listen", "--split", "--backend", "--threads", "--slots"]),
    ],
)
def test_documented_options_exist(
    command: str, options: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    for option in options:
        assert option in text, (command, option)
    if command in ("agents", "review", "swarm", "code", "compare", "node"):
        assert "Exit status: 0 all work accepted" in " ".join(text.split())
    assert f"smesh {command}" in README


def test_mesh_issue_needs_the_ca_as_documented(capsys: pytest.CaptureFixture[str]) -> None:
    assert "smesh mesh issue NODE --ca DIR" in README
    assert main(["mesh", "issue", "n1"]) == 2
    assert "--ca" in capsys.readouterr().err
