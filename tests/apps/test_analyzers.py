"""Analyzers get file names safely, and a failed analyzer fails the run.

A scanned repository names its own files, so ``-o.py`` and ``--unknown-flag.py`` are
attacks on the analyzer's command line (issue 10, found-4): the first made bandit write
its report into the repository and the swarm report 0 findings, the second made bandit
exit 2 and the swarm still exit 0 with 0 findings.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from smesh.apps.analyzers import (
    BanditAnalyzer,
    RawFinding,
    file_arguments,
    parse_bandit,
    register_analyzer,
)
from smesh.apps.swarm import run_swarm
from smesh.cli import main
from smesh.errors import AnalyzerFailed

pytest.importorskip("bandit", reason="these tests run the real bandit")

SHELL = "import subprocess\n\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n"
PICKLE = "import pickle\n\n\ndef load(data):\n    return pickle.loads(data)\n"
HOSTILE = ("-o.py", "--unknown-flag.py", "-r.py", "--help.py")


def make_repo(root: Path, hostile: bool) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "shell.py").write_text(SHELL)
    (root / "pkg" / "load.py").write_text(PICKLE)
    if hostile:
        for i, name in enumerate(HOSTILE):
            (root / name).write_text(SHELL if i % 2 == 0 else PICKLE)
    return root


def listing(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*"))}


def key(f: RawFinding) -> tuple[str, int, int, str]:
    return (f.file, f.line_start, f.cwe, f.rule)


def test_hostile_file_names_are_analyzed_not_obeyed(tmp_path: Path) -> None:
    clean = make_repo(tmp_path / "clean", hostile=False)
    dirty = make_repo(tmp_path / "dirty", hostile=True)
    before = listing(dirty)
    files = sorted(str(p.relative_to(dirty)) for p in dirty.rglob("*.py"))
    found = asyncio.run(BanditAnalyzer().run(dirty, files))
    baseline = asyncio.run(
        BanditAnalyzer().run(clean, sorted(str(p.relative_to(clean)) for p in clean.rglob("*.py")))
    )
    assert listing(dirty) == before, "bandit wrote into the scanned repository"
    assert baseline and {key(f) for f in found if f.file.startswith("pkg/")} == {
        key(f) for f in baseline
    }
    # the hostile files were scanned like any other: each holds one planted weakness
    by_file = {f.file for f in found}
    assert set(HOSTILE) <= by_file, by_file


def test_the_swarm_reports_the_same_findings_with_hostile_names(tmp_path: Path) -> None:
    clean = make_repo(tmp_path / "clean", hostile=False)
    dirty = make_repo(tmp_path / "dirty", hostile=True)
    before = listing(dirty)

    def scan(root: Path) -> set[tuple[str, int, str]]:
        report = asyncio.run(run_swarm(root, None, specialists=[], analyzers=["bandit"]))
        assert report.analyzer_failures == []
        return {(f.file, f.line, f.cwe) for f in report.findings}

    with_hostile, without = scan(dirty), scan(clean)
    assert without and {f for f in with_hostile if f[0].startswith("pkg/")} == without
    assert {f[0] for f in with_hostile} - {f[0] for f in without} == set(HOSTILE)
    assert listing(dirty) == before


def test_file_arguments_can_never_read_as_options() -> None:
    batches = file_arguments(["-o.py", "--x.py", "a/b.py", "/etc/passwd", "../up.py", ""])
    assert batches == [["./-o.py", "./--x.py", "./a/b.py"]]
    many = file_arguments([f"f{i:04}.py" for i in range(3000)], max_bytes=4096)
    assert len(many) > 1 and all(sum(len(a) + 1 for a in b) <= 4096 for b in many)
    assert [a for b in many for a in b] == [f"./f{i:04}.py" for i in range(3000)]


def fake_python(tmp_path: Path, script: str) -> str:
    """An 'interpreter' that ignores ``-m bandit ...`` and does what ``script`` says."""
    path = tmp_path / "fake-python"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("echo 'usage: bandit' >&2; exit 2\n", "exit 2"),
        ("echo 'not json'; exit 0\n", "invalid JSON"),
        ("exit 0\n", "no report"),
        ("echo '[1, 2]'; exit 1\n", "no results"),
        ("kill -SEGV $$\n", "exit"),
    ],
)
def test_a_failing_bandit_raises_analyzer_failed(tmp_path: Path, script: str, message: str) -> None:
    (tmp_path / "a.py").write_text(SHELL)
    bandit = BanditAnalyzer(python=fake_python(tmp_path, script))
    with pytest.raises(AnalyzerFailed, match=message):
        asyncio.run(bandit.run(tmp_path, ["a.py"]))


def test_a_hung_bandit_is_killed_and_fails(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text(SHELL)
    bandit = BanditAnalyzer(python=fake_python(tmp_path, "sleep 30\n"), timeout_s=1)
    with pytest.raises(AnalyzerFailed, match="no answer within 1 s"):
        asyncio.run(bandit.run(tmp_path, ["a.py"]))


def test_parse_bandit_refuses_what_is_not_a_report() -> None:
    for raw in (b"", b"  \n", b"{", b'{"errors": []}', b'"x"'):
        with pytest.raises(AnalyzerFailed):
            parse_bandit(raw)
    assert parse_bandit(b'{"results": [], "errors": []}') == []


class Crashing:
    """An analyzer that crashes (a bug, not a clean scan)."""

    name = "crashing"

    async def run(self, root: Path, files: Sequence[str]) -> list[RawFinding]:
        raise RuntimeError("segfault in the rule engine")


class Broken:
    """An analyzer whose tool failed."""

    name = "broken"

    async def run(self, root: Path, files: Sequence[str]) -> list[RawFinding]:
        raise AnalyzerFailed("broken failed (exit 2): unrecognized arguments", backend="broken")


def test_failed_analyzers_are_reported_not_taken_for_clean_scans(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", hostile=False)
    report = asyncio.run(
        run_swarm(repo, None, specialists=[], analyzers=["bandit", Crashing(), Broken()])
    )
    failures = report.analyzer_failures
    assert len(failures) == 2, failures
    assert failures[0].startswith("crashing: ") and "segfault in the rule engine" in failures[0]
    assert failures[1].startswith("broken: ") and "unrecognized arguments" in failures[1]
    assert report.findings, "bandit's own findings still count"
    assert report.contract()["analyzer_failures"] == failures
    fine = asyncio.run(run_swarm(repo, None, specialists=[], analyzers=["bandit"]))
    assert "analyzer_failures" not in fine.contract()


@pytest.fixture
def broken_analyzer() -> Iterator[None]:
    register_analyzer("broken", Broken)
    yield
    from smesh.apps.analyzers import ANALYZERS

    ANALYZERS.pop("broken", None)


def test_smesh_swarm_exits_1_when_an_analyzer_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], broken_analyzer: None
) -> None:
    repo = make_repo(tmp_path / "repo", hostile=True)
    before = listing(repo)
    args = ["swarm", "--path", str(repo), "--specialists", "none", "--json"]
    args += ["--journal", str(tmp_path / "j.db")]
    assert main([*args, "--analyzers", "bandit"]) == 0
    out, _ = capsys.readouterr()
    assert json.loads(out)["findings"] and listing(repo) == before
    assert main([*args, "--analyzers", "bandit,broken"]) == 1
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["analyzer_failures"] == [
        "broken: AnalyzerFailed: broken failed (exit 2): unrecognized arguments"
    ]
    assert "smesh: analyzer failed: broken" in err
    assert not any(name.startswith(".py") for name in os.listdir(repo))
