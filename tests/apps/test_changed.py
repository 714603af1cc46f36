"""``review --changed REF``: only the files changed since a git ref, as CI runs it (real
git in a temporary repository, SARIF out)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _oracle import SAMPLES, Oracle

from smesh.apps.changes import changed_files
from smesh.backends import register_backend
from smesh.cli import main
from smesh.errors import UsageError
from smesh.testing import FunctionBackend

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    """The samples committed as ``base``; then db.py edited, a file added, one deleted."""
    root = tmp_path / "repo"
    shutil.copytree(SAMPLES, root)
    (root / "vulnerable_py" / "app" / "old.py").write_text("def gone():\n    return 1\n")
    (root / ".gitignore").write_text("*.log\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "t@example.com")
    git(root, "config", "user.name", "t")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "base")
    git(root, "tag", "base")
    db = root / "vulnerable_py" / "app" / "db.py"
    db.write_text(db.read_text() + "\n\ndef count(conn):\n    return 1\n")
    git(root, "commit", "-qam", "change db")
    (root / "vulnerable_py" / "app" / "report.py").unlink()
    (root / "vulnerable_py" / "app" / "old.py").unlink()
    (root / "vulnerable_py" / "app" / "new.py").write_text(
        "import os\n\n\ndef run(c):\n    os.system(c)\n"
    )
    (root / "debug.log").write_text("ignored\n")
    return root


@pytest.fixture(autouse=True)
def oracle() -> Iterator[Oracle]:
    known = Oracle(SAMPLES)
    register_backend("oracle", lambda model=None, **kw: FunctionBackend(known), replace=True)
    yield known


def smesh(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_changed_files_are_the_edited_and_the_new_ones(repo: Path) -> None:
    assert changed_files(repo, "base") == [
        "vulnerable_py/app/db.py",
        "vulnerable_py/app/new.py",
    ]
    # relative to a subdirectory under review, and nothing since HEAD but the new file
    assert changed_files(repo / "vulnerable_py", "HEAD") == ["app/new.py"]


def test_review_changed_writes_sarif_for_the_changed_files_only(
    repo: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    validate_sarif: Callable[[Any], None],
    oracle: Oracle,
) -> None:
    out = tmp_path / "review.sarif"
    code, _, _ = smesh(
        capsys, "review", "--path", str(repo), "--changed", "base", "--backend", "oracle",
        "--format", "sarif", "--out", str(out), "--journal", str(tmp_path / "j.db"),
    )  # fmt: skip
    assert code == 0
    log = json.loads(out.read_text())
    validate_sarif(log)
    uris = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for r in log["runs"][0]["results"]
    }
    # db.py's planted secret and injection; nothing from files.py, server.js (unchanged)
    # or report.py (deleted); new.py's shell call was asked about (a parameter reaches
    # it) and, planted nowhere, not confirmed by the oracle
    assert uris == {"vulnerable_py/app/db.py"}
    assert {path for _, path, _ in oracle.checks} == {
        "vulnerable_py/app/db.py",
        "vulnerable_py/app/new.py",
    }


def test_nothing_changed_is_an_empty_report_and_success(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "all in")
    code, out, _ = smesh(
        capsys, "review", "--path", str(repo), "--changed", "HEAD", "--backend", "oracle",
        "--json", "--journal", str(tmp_path / "j.db"),
    )  # fmt: skip
    assert code == 0
    doc = json.loads(out)
    assert doc["findings"] == [] and doc["summary"]["llm_calls"] == 0


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("no-such-branch", "names no commit"),
        ("--output=pwned", "names no commit"),
        ("", "needs a git ref"),
    ],
)
def test_a_bad_ref_is_a_usage_error(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], ref: str, message: str
) -> None:
    code, out, err = smesh(
        capsys, "review", "--path", str(repo), "--changed", ref, "--backend", "oracle",
        "--journal", str(tmp_path / "j.db"),
    )  # fmt: skip
    assert code == 2 and out == "" and message in err
    assert "Traceback" not in err and not (repo / "pwned").exists()


def test_outside_a_git_work_tree_is_a_usage_error(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(UsageError, match="not inside a git work tree"):
        changed_files(plain, "HEAD")
