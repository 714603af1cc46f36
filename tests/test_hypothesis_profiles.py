"""CI runs the property tests derandomized and says so; local runs stay random.

Each check runs a real pytest in a subprocess over a tiny property test that records the
examples it draws, with this suite's own ``conftest.py``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
#: variables by which hypothesis recognises a CI machine (a local run must have none)
CI_VARIABLES = {"CI", "__TOX_ENVIRONMENT_VARIABLE_ORIGINAL_CI", "TF_BUILD", "bamboo.buildKey"}
CI_VARIABLES |= {"BUILDKITE", "CIRCLECI", "CIRRUS_CI", "CODEBUILD_BUILD_ID", "GITHUB_ACTIONS"}
CI_VARIABLES |= {"GITLAB_CI", "HEROKU_TEST_RUN_ID", "TEAMCITY_VERSION"}
RECORDER = """
import os
from hypothesis import given, settings, strategies as st

@settings(max_examples=25, deadline=None)
@given(st.integers(), st.text())
def test_record(n, s):
    with open(os.environ["EXAMPLES"], "a", encoding="utf-8") as f:
        f.write(f"{n!r} {s!r}\\n")
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copy(HERE / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_recorder.py").write_text(RECORDER, encoding="utf-8")
    return tmp_path


def run(project: Path, *args: str, ci: str | None = None) -> tuple[str, list[str]]:
    """The pytest header line about hypothesis, and the examples drawn."""
    examples = project / "examples.txt"
    examples.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in CI_VARIABLES}
    if ci is not None:
        env["CI"] = ci
    env["EXAMPLES"] = str(examples)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(project), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=project,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [header] = [line for line in proc.stdout.splitlines() if line.startswith("hypothesis: ")]
    return header, examples.read_text(encoding="utf-8").splitlines()


def test_the_ci_profile_draws_the_same_examples_every_run(project: Path) -> None:
    header, first = run(project, "--hypothesis-profile", "ci")
    assert header.startswith("hypothesis: profile 'ci', derandomized")
    assert "example database off" in header
    _, second = run(project, "--hypothesis-profile", "ci")
    assert len(first) == 25 and first == second


def test_the_ci_variable_alone_selects_the_ci_profile(project: Path) -> None:
    header, first = run(project, ci="true")
    assert header.startswith("hypothesis: profile 'ci', derandomized")
    _, second = run(project, "--hypothesis-profile", "ci")
    assert first == second


def test_local_runs_stay_random_and_say_how_to_reproduce(project: Path) -> None:
    header, _ = run(project)
    assert header.startswith("hypothesis: profile 'default', random seeds")
    header, seeded = run(project, "--hypothesis-seed", "7")
    assert header.startswith("hypothesis: profile 'default', seed 7")
    _, again = run(project, "--hypothesis-seed", "7")
    assert seeded == again


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_selects_the_ci_profile_when_ci_is_set() -> None:
    def unit(ci: str | None) -> str:
        # under `make test` the parent make's variables would make this one print
        # "Entering/Leaving directory" lines: run it as a top-level make
        inherited = {*CI_VARIABLES, "MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES"}
        env = {k: v for k, v in os.environ.items() if k not in inherited}
        if ci is not None:
            env["CI"] = ci
        proc = subprocess.run(
            ["make", "-n", "unit"],
            cwd=HERE.parent,
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=True,
        )
        return proc.stdout.strip().splitlines()[-1]

    assert unit("1").endswith("pytest --hypothesis-profile=ci")
    assert unit(None).endswith("/pytest")
    ci_run = (HERE.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r'^export CI="\$\{CI:-1\}"\nmake test$', ci_run, re.MULTILINE)
