"""Who tests the tester: ``smesh code`` with scripted tests that are themselves wrong.

The tests really run (in the sandbox); the scripted model writes correct code and
*broken* tests: one that forgets to import what it tests, one that calls a helper it
never defined, one whose expected value is wrong. The coders must not be blamed for any
of them, the tester must, and the generated project's own pytest must pass whenever the
report says every module is accepted.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

from _coders import GOOD, Team, fence

from smesh.apps.code import CodeReport, run_code
from smesh.apps.testcheck import Case, blame, check_tests, drop_tests, read_cases, signature
from smesh.backends.base import Request
from smesh.testing import FunctionBackend

NO_IMPORT = (
    "def test_words():\n    assert word_count('a b c') == 3\n\n"
    "def test_empty():\n    assert word_count('') == 0\n"
)
UNDEFINED_HELPER = (
    "from textstats.counting import word_count\n\n"
    "def test_words():\n    assert word_count(make_text()) == 3\n"
)
WRONG_EXPECTATION = (
    "from textstats.counting import word_count\n\n"
    "def test_words():\n    assert word_count('a b c') == 3\n\n"
    "def test_two_words():\n    assert word_count('python programming') == 7\n"
)
GOOD_TESTS = (
    "from textstats.counting import word_count\n\n"
    "def test_words():\n    assert word_count('a b c') == 3\n"
)


class BrokenTestsTeam(Team):
    """The scripted team, with the tester's successive test files and the arbiter's view."""

    def __init__(
        self, tests: list[str], *, arbiter: str = "the test", different: bool = True
    ) -> None:
        super().__init__(("counting",))
        self.different = different
        self.tests = list(tests)
        self.arbiter = arbiter
        self.arbitrations: list[str] = []

    def __call__(self, request: Request) -> Any:
        agent = request.agent or ""
        prompt = request.messages[-1].content
        if agent == "arbiter":
            self.arbitrations.append(prompt)
            properties = (request.json_schema or {}).get("properties", {})
            if "returns" in properties:  # the concrete question: which value is returned
                options = properties["returns"]["enum"]
                # the test's value is 7 in WRONG_EXPECTATION; the code returns the other
                test_value = next(o for o in options if o == "7")
                code_value = next(o for o in options if o != "7")
                returns = code_value if self.arbiter == "the test" else test_value
                return {"reason": "worked out by hand", "returns": returns}
            return {"reason": "worked out by hand", "wrong": self.arbiter}
        if agent == "tester":
            self.prompts.append((agent, prompt))
            return fence(self.tests.pop(0) if len(self.tests) > 1 else self.tests[0])
        if agent == "coder-2" and self.different:  # an independent, equivalent implementation
            return fence(
                "def word_count(text: str) -> int:\n    return sum(1 for _ in text.split())\n"
            )
        return super().__call__(request)


def build(tmp_path: Path, team: Team) -> CodeReport:
    return asyncio.run(
        run_code("word statistics for text", tmp_path / "out", FunctionBackend(team))
    )


def own_pytest_passes(out: Path) -> bool:
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=out,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return ran.returncode == 0


def test_a_test_that_forgets_its_import_is_fixed_before_it_runs(tmp_path: Path) -> None:
    report = build(tmp_path, BrokenTestsTeam([NO_IMPORT]))
    [module] = report.modules
    assert (module.status, module.attempts, module.tests_passed) == ("accepted", 1, 2)
    written = (tmp_path / "out" / "tests" / "test_counting.py").read_text()
    assert written.startswith("from textstats.counting import word_count\n")
    assert report.summary.trust["coder-1"] >= 0.5  # never blamed
    assert own_pytest_passes(tmp_path / "out")


def test_a_test_broken_on_its_own_is_rewritten_and_the_tester_loses_trust(
    tmp_path: Path,
) -> None:
    team = BrokenTestsTeam([UNDEFINED_HELPER, GOOD_TESTS])
    report = build(tmp_path, team)
    [module] = report.modules
    assert (module.status, module.attempts) == ("accepted", 1)
    asked = [p for a, p in team.prompts if a == "tester"]
    assert len(asked) == 2 and "make_text" in asked[1]  # told what was wrong with it
    trust = report.summary.trust
    # both verifiers approved the module once; the tester also paid for its broken test
    assert trust["tester"] < trust["reviewer"]
    assert any("make_text" in f for f in report.tester_failures)
    assert min(v for k, v in report.summary.trust.items() if k.startswith("coder")) >= 0.5
    assert own_pytest_passes(tmp_path / "out")


def test_two_coders_failing_one_assertion_alike_send_it_to_the_arbiter(tmp_path: Path) -> None:
    team = BrokenTestsTeam([WRONG_EXPECTATION])
    report = build(tmp_path, team)
    [module] = report.modules
    # coder-1's correct code was rejected once; coder-2's identical failure made the
    # assertion suspect; the arbiter found the test wrong; the test went, the code stayed
    assert (module.status, module.attempts) == ("accepted", 2)
    # the question is concrete: which of the two values does the call return?
    [question] = team.arbitrations
    assert "what does `word_count('python programming')` return: 2 or 7?" in question
    written = (tmp_path / "out" / "tests" / "test_counting.py").read_text()
    assert "test_two_words" not in written and "test_words" in written
    trust = report.summary.trust
    assert trust["tester"] < trust["reviewer"]
    assert trust["coder-1"] >= 0.5 and trust["coder-2"] >= 0.5  # the first got it back
    assert any("test_two_words" in f for f in report.tester_failures)
    assert own_pytest_passes(tmp_path / "out")


def test_when_the_arbiter_backs_the_test_the_code_stays_rejected(tmp_path: Path) -> None:
    team = BrokenTestsTeam([WRONG_EXPECTATION], arbiter="the code")
    report = build(tmp_path, team)
    [module] = report.modules
    assert module.status == "failed" and module.attempts == 3
    assert len(team.arbitrations) == 1  # one ruling per assertion, remembered
    assert report.summary.consensus == 0


def test_check_tests_adds_forgotten_imports_and_flags_undefined_names() -> None:
    fixed = check_tests(NO_IMPORT, "textstats", "counting", ["word_count"])
    assert fixed.problems == [] and fixed.added == ["word_count"]
    assert fixed.source.startswith("from textstats.counting import word_count\n")
    broken = check_tests(UNDEFINED_HELPER, "textstats", "counting", ["word_count"])
    assert broken.problems == ["`make_text` is used but never defined or imported"]
    assert check_tests("def f(:\n", "p", "m", []).problems[0].startswith("the test file")
    assert check_tests("x = 1\n", "p", "m", []).problems == ["the file has no test functions"]
    assert "test_two_words" not in drop_tests(WRONG_EXPECTATION, {"test_two_words"})


def test_blame_tells_the_testers_failures_from_the_coders() -> None:
    def case(**kw: Any) -> Case:
        return Case(
            **{"test": "tests/test_m.py::test_a", "phase": "call", "outcome": "failed", **kw}
        )

    test_file, names = "test_m.py", ["f"]
    name_error = case(path="/w/tests/test_m.py", message="NameError: name 'g' is not defined")
    assert blame(name_error, test_file, names) == "tester"
    inside = case(path="/w/pkg/m.py", message="ZeroDivisionError: division by zero")
    assert blame(inside, test_file, names) == "coder"
    assertion = case(path="/w/tests/test_m.py", message="AssertionError: assert 2 == 7")
    assert blame(assertion, test_file, names) == "assertion"
    assert signature(assertion) == "test_a: AssertionError: assert 2 == 7"
    missing = case(phase="collect", outcome="error", message="ImportError: cannot import name 'f'")
    assert blame(missing, test_file, names) == "coder"  # the interface promised it
    stray = case(phase="collect", outcome="error", message="ImportError: cannot import name 'h'")
    assert blame(stray, test_file, names) == "tester"
    fixture = case(phase="setup", outcome="error", message="fixture 'db' not found")
    assert blame(fixture, test_file, names) == "tester"


def test_read_cases_skips_lines_it_cannot_trust(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"test": "t::a", "phase": "call", "outcome": "passed"}\nnot json\n{"x": 1}\n')
    assert [c.name for c in read_cases(path)] == ["a"]
    assert read_cases(tmp_path / "missing.jsonl") == []
    assert GOOD["counting"]  # the scripted coders' code is the reference implementation


def test_tests_run_at_import_are_left_to_pytest() -> None:
    source = GOOD_TESTS + "\n\ntest_words()\nassert word_count('x') == 1\n"
    checked = check_tests(source, "textstats", "counting", ["word_count"])
    assert checked.problems == [] and checked.removed == 2
    assert "test_words()\n" not in checked.source and "def test_words" in checked.source


def test_an_import_error_inside_the_module_is_the_coders() -> None:
    # an error while importing has no crash record: the traceback text says where it was
    broken = Case(
        test="tests/test_m.py", phase="collect", outcome="error",
        message="tests/test_m.py:1: in <module>\n    from pkg.m import f\n"
        "pkg/m.py:1: in <module>\n    import nosuchmod\n"
        "E   ModuleNotFoundError: No module named 'nosuchmod'",
    )  # fmt: skip
    assert blame(broken, "test_m.py", ["f"]) == "coder"
    own = Case(
        test="tests/test_m.py", phase="collect", outcome="error",
        message="tests/test_m.py:1: in <module>\n    import nosuch\n"
        "E   ModuleNotFoundError: No module named 'nosuch'",
    )  # fmt: skip
    assert blame(own, "test_m.py", ["f"]) == "tester"


def test_disputed_reads_the_failed_equality_either_way_round() -> None:
    from smesh.apps.testcheck import disputed

    tests = (
        "from p.m import f\n\n"
        "def test_a():\n    assert f('a b') == 7, 'case 1'\n\n"
        "def test_b():\n    assert 'X' == f('x')\n\n"
        "def test_c():\n    assert len('ab') == 3\n"
    )
    a = Case(
        test="tests/t.py::test_a", phase="call", outcome="failed", line=4,
        message="AssertionError: case 1\nassert 2 == 7\n +  where 2 = f('a b')",
    )  # fmt: skip
    got = disputed(a, tests, ["f"])
    assert got is not None and (got.call, got.expected, got.actual) == ("f('a b')", "7", "2")
    b = Case(
        test="tests/t.py::test_b", phase="call", outcome="failed", line=7,
        message="AssertionError: assert 'X' == 'x'",
    )  # fmt: skip
    got = disputed(b, tests, ["f"])
    assert got is not None and (got.call, got.expected, got.actual) == ("f('x')", "'X'", "'x'")
    c = Case(
        test="tests/t.py::test_c", phase="call", outcome="failed", line=10,
        message="AssertionError: assert 2 == 3",
    )  # fmt: skip
    assert disputed(c, tests, ["f"]) is None  # no call of the interface: no question
    assert disputed(Case(test="x", phase="call", outcome="failed", line=99), tests, ["f"]) is None


def test_a_test_of_many_asserts_is_split_one_assert_each() -> None:
    """One wrong expectation among five asserts must not hide the other four (nor fail
    correct code on every promise): flat tests are split before they run."""
    source = (
        "from p.m import f\n\n"
        "def test_f():\n"
        '    """Checks f."""\n'
        "    assert f('') == 0, 'case 1'\n"
        "    # a comment\n"
        "    assert f('a b') == 7\n"
        "    print('done')\n\n"
        "def test_g():\n"
        "    x = f('a')\n"
        "    assert x == 1\n"
        "    assert x > 0\n"
    )
    checked = check_tests(source, "p", "m", ["f"])
    assert "def test_f_1():\n    assert f('') == 0, 'case 1'\n" in checked.source
    assert "def test_f_2():\n    assert f('a b') == 7\n" in checked.source
    assert "def test_f():" not in checked.source
    assert "def test_g():" in checked.source  # it computes first: kept whole
    assert checked.problems == []


def test_the_same_code_failing_twice_is_not_two_voices(tmp_path: Path) -> None:
    """Two coders who wrote the same code (docstrings and hints aside) are one piece of
    evidence: their alike failure sends nothing to the arbiter, the test stands."""
    team = BrokenTestsTeam([WRONG_EXPECTATION], different=False)
    report = build(tmp_path, team)
    [module] = report.modules
    assert team.arbitrations == [] and module.status == "failed"


def test_same_code_ignores_docstrings_comments_and_hints() -> None:
    from smesh.apps.codegate import same_code

    a = 'def f(x: int) -> int:\n    """Doc."""\n    # note\n    return x + 1\n'
    b = "def f(x):\n    return x+1\n"
    assert same_code(a) == same_code(b)
    assert same_code(b) != same_code("def f(x):\n    return 1 + x\n")


def test_a_copy_of_the_module_pasted_into_the_tests_is_removed() -> None:
    """A test file that defines the function it tests would test its own copy."""
    source = "from p.m import f\n\ndef f(x):\n    return 0\n\ndef test_f():\n    assert f(1) == 2\n"
    checked = check_tests(source, "p", "m", ["f"])
    assert "def f(" not in checked.source and "def test_f():" in checked.source
    assert checked.source.startswith("from p.m import f\n") and checked.problems == []
