"""``run_code`` with a scripted team: tests really run, the gate needs tests and review,
rejections come back with feedback, trust moves and the output is a runnable project."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from smesh.apps.code import CodeReport, run_code
from smesh.apps.common import AppOptions
from smesh.backends.base import Request
from smesh.errors import UsageError
from smesh.journal import Journal
from smesh.testing import FunctionBackend

INTERFACES = {
    "counting": "def word_count(text: str) -> int:\n    '''Number of words in text.'''",
    "longest": "def longest_word(text: str) -> str:\n    '''The longest word ('' if none).'''",
    "vowels": "def vowel_count(text: str) -> int:\n    '''Number of vowels in text.'''",
}
GOOD = {
    "counting": "def word_count(text: str) -> int:\n    return len(text.split())\n",
    "longest": (
        "def longest_word(text: str) -> str:\n    return max(text.split(), key=len, default='')\n"
    ),
    "vowels": (
        "def vowel_count(text: str) -> int:\n    return sum(c in 'aeiou' for c in text.lower())\n"
    ),
}
BAD = {
    "counting": "def word_count(text: str) -> int:\n    return 0\n",
    "longest": "def longest_word(text: str) -> str:\n    return ''\n",
    "vowels": "def vowel_count(text: str) -> int:\n    return -1\n",
}
TESTS = {
    "counting": (
        "from textstats.counting import word_count\n\n"
        "def test_words():\n    assert word_count('a b c') == 3\n\n"
        "def test_empty():\n    assert word_count('') == 0\n"
    ),
    "longest": (
        "from textstats.longest import longest_word\n\n"
        "def test_longest():\n    assert longest_word('a bbb cc') == 'bbb'\n"
    ),
    "vowels": (
        "from textstats.vowels import vowel_count\n\n"
        "def test_vowels():\n    assert vowel_count('banana') == 3\n"
    ),
}
KEYS = ["name", "status", "tests_run", "tests_passed", "review", "attempts", "coder"]


def fence(code: str) -> str:
    return f"Here it is:\n```python\n{code}```\n"


class Team:
    """A scripted model for every role; ``bad_coders`` write wrong code until told why."""

    def __init__(
        self,
        modules: tuple[str, ...] = ("counting", "longest"),
        *,
        bad_coders: tuple[str, ...] = (),
        stubborn: bool = False,
        picky_reviews: int = 0,
    ) -> None:
        self.modules = modules
        self.bad_coders = bad_coders
        self.stubborn = stubborn
        self.picky_reviews = picky_reviews
        self.prompts: list[tuple[str, str]] = []

    def module_of(self, prompt: str) -> str:
        found = re.search(r"module textstats/(\w+)\.py", prompt)
        assert found is not None, prompt
        return found.group(1)

    def __call__(self, request: Request) -> Any:
        agent = request.agent or ""
        prompt = request.messages[-1].content
        self.prompts.append((agent, prompt))
        if agent == "architect":
            return {
                "package": "TextStats",
                "modules": [
                    {"name": m, "purpose": f"{m} of text", "interface": INTERFACES[m]}
                    for m in self.modules
                ],
            }
        module = self.module_of(prompt)
        if agent == "tester":
            return fence(TESTS[module])
        if agent == "reviewer":
            if self.picky_reviews > 0:
                self.picky_reviews -= 1
                return {"verdict": "request_changes", "reason": "add a docstring"}
            return {"verdict": "approve", "reason": "implements the interface"}
        retried = "rejected" in prompt
        if agent in self.bad_coders and (self.stubborn or not retried):
            return fence(BAD[module])
        return fence(GOOD[module])


def build(tmp_path: Path, team: Team, **kw: Any) -> CodeReport:
    backend = FunctionBackend(team)
    return asyncio.run(run_code("word statistics for text", tmp_path / "out", backend, **kw))


def test_modules_pass_tests_and_review_and_the_project_runs(tmp_path: Path) -> None:
    report = build(tmp_path, Team())
    assert [m.status for m in report.modules] == ["accepted", "accepted"]
    assert {m.name: (m.tests_run, m.tests_passed) for m in report.modules} == {
        "counting": (2, 2),
        "longest": (1, 1),
    }
    assert all(m.review == "approved" and m.attempts == 1 for m in report.modules)
    out = tmp_path / "out"
    for rel in ("textstats/__init__.py", "textstats/counting.py", "tests/test_counting.py"):
        assert (out / rel).is_file(), rel
    assert not (out / ".smesh-work").exists() and not (out / ".sandbox").exists()
    # the directory is a runnable project: its own test suite passes there
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=out,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "3 passed" in ran.stdout
    doc = report.contract()
    assert list(doc) == ["out", "modules", "summary"]
    assert all(list(m) == KEYS for m in doc["modules"])
    assert doc["summary"]["consensus"] == 2 and doc["summary"]["total"] == 2


def test_a_failing_module_goes_back_with_the_test_output(tmp_path: Path) -> None:
    team = Team(("counting",), bad_coders=("coder-1", "coder-2"))
    report = build(tmp_path, team)
    [module] = report.modules
    assert module.status == "accepted" and module.attempts == 2
    retry = [p for a, p in team.prompts if a.startswith("coder") and "rejected" in p]
    assert len(retry) == 1
    assert "tests: 1/2 passed" in retry[0] and "assert 0 == 3" in retry[0]


def test_passing_tests_are_not_enough_without_the_review(tmp_path: Path) -> None:
    team = Team(("counting",), picky_reviews=1)
    report = build(tmp_path, team)
    [module] = report.modules
    assert module.status == "accepted" and module.attempts == 2 and module.review == "approved"
    retry = [p for a, p in team.prompts if a.startswith("coder") and "rejected" in p]
    assert "add a docstring" in retry[0]


def test_a_module_that_never_passes_fails_after_the_rounds(tmp_path: Path) -> None:
    team = Team(("counting",), bad_coders=("coder-1", "coder-2"), stubborn=True)
    report = build(tmp_path, team, rounds=2)
    [module] = report.modules
    assert (module.status, module.attempts) == ("failed", 2)
    assert (module.tests_run, module.tests_passed) == (2, 1)
    assert report.summary.consensus == 0


def test_trust_follows_outcomes_and_steers_the_next_claims(tmp_path: Path) -> None:
    # coder-1 always writes wrong code, and a little slower, so that coder-2 is free
    # again when coder-1's module comes back: both bid, and reputation decides
    team = Team(("counting", "longest"), bad_coders=("coder-1",), stubborn=True)
    journal = Journal(tmp_path / "j.db")
    backend = FunctionBackend(team, latency=lambda r: 0.3 if r.agent == "coder-1" else 0.0)
    report = asyncio.run(
        run_code(
            "word statistics",
            tmp_path / "out",
            backend,
            coders=2,
            options=AppOptions(journal=journal),
        )
    )
    actions = journal.actions(report.summary.run_id)
    journal.close()
    trust = report.summary.trust
    assert trust["coder-1"] < 0.5 < trust["coder-2"]
    assert [m.status for m in report.modules] == ["accepted", "accepted"]
    assert {m.coder for m in report.modules} == {"coder-2"}
    [taken] = [m for m in report.modules if m.attempts == 2]  # coder-1's, taken over
    claims = [(a.agent, a.detail["bid"]) for a in actions if a.action == "claim"]
    claims = [c for c in claims if c[0].startswith("coder")]
    assert claims[0][1] == claims[1][1] == 0.9  # equal strangers at first
    # afterwards the trusted coder outbids the failed one, which stands back
    assert claims[-1][0] == "coder-2" and claims[-1][1] > 0.9
    assert [c for c in claims if c[0] == "coder-1"] == [("coder-1", 0.9)]
    retaken = [a for a in actions if a.action == "claim" and a.task_id == f"module:{taken.name}"]
    assert [a.agent for a in retaken] == ["coder-1", "coder-2"]


def test_bad_arguments_are_usage_errors(tmp_path: Path) -> None:
    backend = FunctionBackend(lambda r: "")
    with pytest.raises(UsageError, match="empty"):
        asyncio.run(run_code("  ", tmp_path, backend))
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="not a directory"):
        asyncio.run(run_code("x", tmp_path / "file", backend))
    with pytest.raises(UsageError):
        asyncio.run(run_code("x", tmp_path, backend, coders=0))
