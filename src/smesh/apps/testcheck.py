"""Who tests the tester: checking generated tests, and telling whose failure a failure is.

A failing test is evidence against the test as much as against the code. Before a
generated test file runs, :func:`check_tests` makes sure it parses, has test functions,
and imports what it tests: a name of the module's interface that a test uses but never
imports is imported (the model forgot the line; the coder is not to blame for it), and
tests it calls at import (``test_x()`` at the bottom of the file) are left to pytest.
While it runs, :data:`REPORTER` (a ``conftest.py`` put next to it) records how each test
ended: which exception, raised in which file. :func:`blame` reads that: an error raised
by the test file itself before it reached the code under test (a ``NameError``, an
``ImportError``, a ``SyntaxError``) is the tester's; an exception raised inside the module
is the coder's; a failed assertion could be either, and :func:`signature` is what two
implementations must share for the assertion itself to be suspect.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import msgspec

__all__ = [
    "REPORTER",
    "RESULTS",
    "Case",
    "TestsCheck",
    "blame",
    "check_tests",
    "drop_tests",
    "interface_names",
    "read_cases",
    "signature",
    "smoke_tests",
]

#: the file the reporter writes, in the directory the tests run in
RESULTS = ".smesh-results.jsonl"
#: a conftest.py that records every test's outcome and where it crashed
REPORTER = f'''"""Records each test's outcome for smesh (generated; not part of the project)."""
import json
import os


def _write(record):
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "{RESULTS}"), "a") as fh:
        fh.write(json.dumps(record) + "\\n")


def _crash(report):
    crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
    if crash is None:
        return {{"path": "", "line": 0, "message": str(report.longrepr or "")[-300:]}}
    return {{"path": str(crash.path), "line": crash.lineno, "message": str(crash.message)[:300]}}


def pytest_runtest_logreport(report):
    if report.when == "call" or report.outcome != "passed":
        record = {{"test": report.nodeid, "phase": report.when, "outcome": report.outcome}}
        if report.outcome != "passed":
            record.update(_crash(report))
        _write(record)


def pytest_collectreport(report):
    if report.outcome == "failed":
        _write({{"test": report.nodeid, "phase": "collect", "outcome": "error", **_crash(report)}})
'''

Blame = Literal["tester", "coder", "assertion"]
#: errors a test raises by itself when it is broken (not when the code is)
_TESTER_ERRORS = ("NameError", "SyntaxError", "IndentationError", "ModuleNotFoundError")


class Case(msgspec.Struct, frozen=True, kw_only=True):
    """How one test (or the collection of a test file) ended.

    Attributes:
        test: pytest's node id (``tests/test_x.py::test_a``).
        phase: ``collect``, ``setup``, ``call`` or ``teardown``.
        outcome: ``passed``, ``failed`` or ``error`` (a collection failure).
        path: the file the exception was raised in.
        line: its line.
        message: the exception's message (``AssertionError: assert 2 == 7``...).
    """

    test: str
    phase: str
    outcome: str
    path: str = ""
    line: int = 0
    message: str = ""

    @property
    def name(self) -> str:
        """The test function's name (the file's, for a collection failure)."""
        return self.test.rsplit("::", 1)[-1]

    @property
    def error(self) -> str:
        """The exception's class name, as far as the message tells."""
        head = self.message.split(":", 1)[0].strip()
        if re.fullmatch(r"[A-Za-z_][\w.]*", head or "-"):
            return head.rsplit(".", 1)[-1]
        return "AssertionError" if self.message.startswith("assert") else ""


def read_cases(path: Path) -> list[Case]:
    """The cases the reporter wrote (an empty list when there is no usable file)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    cases: list[Case] = []
    for line in text.splitlines()[:2000]:
        try:
            cases.append(msgspec.convert(json.loads(line), Case))
        except (ValueError, msgspec.ValidationError):
            continue  # the tests run in the same directory: never trust a line blindly
    return cases


_FRAME = re.compile(r"^(\S+\.py):(\d+): ", re.M)
_RAISED = re.compile(r"^E\s+([A-Za-z_][\w.]*)(?::|$)", re.M)


def crash_site(case: Case) -> tuple[str, str]:
    """``(file, exception)`` where ``case`` crashed: the reporter's, or, for an error
    while importing (which has no crash record), the innermost frame and the ``E`` line
    of the traceback text."""
    if case.path:
        return case.path, case.error
    frames = _FRAME.findall(case.message)
    raised = _RAISED.findall(case.message)
    path = frames[-1][0] if frames else ""
    error = raised[-1].rsplit(".", 1)[-1] if raised else case.error
    return path, error


def blame(case: Case, test_file: str, interface: Iterable[str]) -> Blame:
    """Whose failure ``case`` is.

    The tester's when its own file broke before reaching the code (a name it never
    defined, a module that does not exist, a syntax error, a missing fixture) or imports
    a name the interface does not promise; the coder's when the exception comes from the
    module, or the module lacks a name the interface promises; an assertion that failed
    in the test is ``assertion``: either side may be wrong.
    """
    path, error = crash_site(case)
    in_test = bool(path) and (path.endswith(test_file) or Path(path).name == Path(test_file).name)
    names = set(interface)
    if error == "ImportError" and (in_test or not path):
        missing = re.search(r"cannot import name '(\w+)'", case.message)
        return "coder" if missing and missing.group(1) in names else "tester"
    if case.phase == "setup" or (error in _TESTER_ERRORS and (in_test or not path)):
        return "tester"
    if case.phase == "collect":
        return "tester" if in_test or not path else "coder"
    if error == "AssertionError" and in_test:
        return "assertion"
    return "coder"


def signature(case: Case) -> str:
    """What a failure looks like, for comparing two implementations: the test and the
    assertion message pytest produced (its values included)."""
    return f"{case.name}: {case.message.splitlines()[0] if case.message else case.error}"


class Disputed(msgspec.Struct, frozen=True):
    """One failed equality, as a question with two answers: what does ``call`` return,
    ``expected`` (the test's value) or ``actual`` (what the implementations returned)?"""

    call: str
    expected: str
    actual: str


def disputed(case: Case, tests: str, interface: Iterable[str]) -> Disputed | None:
    """The equality a failed ``assert CALL == VALUE`` (either way round) disputes, from the
    assertion's line in ``tests`` and the values pytest printed; None when the failure is
    not such an assertion (then the question stays the test as a whole)."""
    lines = tests.splitlines()
    if not 1 <= case.line <= len(lines):
        return None
    try:
        node = ast.parse(lines[case.line - 1].strip()).body[0]
    except (SyntaxError, IndexError):
        return None
    test = node.test if isinstance(node, ast.Assert) else None
    if not (
        isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)
    ):
        return None
    names = set(interface)

    def calls_interface(expr: ast.expr) -> bool:
        return any(
            isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in names
            for n in ast.walk(expr)
        )

    printed = [ln.strip().removeprefix("AssertionError: ") for ln in case.message.splitlines()]
    shown = next((ln[len("assert ") :] for ln in printed if ln.startswith("assert ")), None)
    if shown is None or " == " not in shown:
        return None
    left_value, right_value = shown.split(" == ", 1)
    left, right = test.left, test.comparators[0]
    if calls_interface(left) and not calls_interface(right):
        call, expected, actual = ast.unparse(left), ast.unparse(right), left_value
    elif calls_interface(right) and not calls_interface(left):
        call, expected, actual = ast.unparse(right), ast.unparse(left), right_value
    else:
        return None
    expected, actual = expected.strip(), actual.strip()
    if not expected or not actual or expected == actual or len(expected) + len(actual) > 400:
        return None
    return Disputed(call=call, expected=expected, actual=actual)


def interface_names(interface: str) -> list[str]:
    """The functions and classes an interface text promises."""
    return list(dict.fromkeys(re.findall(r"(?:def|class)\s+([A-Za-z_]\w*)", interface)))


class TestsCheck(msgspec.Struct, frozen=True):
    """The outcome of :func:`check_tests`.

    Attributes:
        source: the test file, with the imports it forgot added.
        problems: what is wrong with it that no import fixes (empty: it can run).
        added: names whose import was added.
        removed: top-level statements removed because they ran tests at import.
    """

    __test__ = False  # not a pytest test class

    source: str
    problems: list[str]
    added: list[str]
    removed: int = 0


def _defined(tree: ast.Module) -> set[str]:
    names: set[str] = set(dir(__builtins__)) if not isinstance(__builtins__, dict) else set()
    if isinstance(__builtins__, dict):
        names |= set(__builtins__)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
            if not isinstance(node, ast.ClassDef):
                args = node.args
                every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
                names |= {a.arg for a in every if a is not None}
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
    return names


def _no_work_at_import(source: str, tree: ast.Module) -> tuple[str, ast.Module, int]:
    """The file without top-level asserts and calls of its tests: a test file that runs
    its tests while pytest imports it fails at collection, not in a test, and whatever
    made it fail, the report says nothing about which promise the code broke."""
    drop = [
        n
        for n in tree.body
        if isinstance(n, ast.Assert)
        or (
            isinstance(n, ast.Expr)
            and isinstance(n.value, ast.Call)
            and isinstance(n.value.func, ast.Name)
            and n.value.func.id.startswith("test")
        )
    ]
    if not drop:
        return source, tree, 0
    lines = source.splitlines(keepends=True)
    for node in sorted(drop, key=lambda n: n.lineno, reverse=True):
        del lines[node.lineno - 1 : (node.end_lineno or node.lineno)]
    text = "".join(lines)
    try:
        return text, ast.parse(text), len(drop)
    except SyntaxError:
        return source, tree, 0


def _flat_asserts(node: ast.stmt) -> list[ast.Assert] | None:
    """The asserts of a test function made of nothing else (docstrings and prints aside),
    when it has two or more; else None."""
    if not (
        isinstance(node, ast.FunctionDef)
        and node.name.startswith("test")
        and not node.decorator_list
        and not (node.args.args or node.args.posonlyargs or node.args.kwonlyargs)
    ):
        return None
    asserts: list[ast.Assert] = []
    for stmt in node.body:
        if isinstance(stmt, ast.Assert):
            asserts.append(stmt)
        elif not (
            isinstance(stmt, ast.Expr)
            and (
                isinstance(stmt.value, ast.Constant)
                or (
                    isinstance(stmt.value, ast.Call)
                    and isinstance(stmt.value.func, ast.Name)
                    and stmt.value.func.id == "print"
                )
            )
        ):
            return None
    return asserts if len(asserts) >= 2 else None


def _one_assert_each(source: str, tree: ast.Module) -> tuple[str, ast.Module]:
    """Split test functions that are only a list of asserts into one test per assert.

    A small model writes one test with five asserts; the first wrong one hides the
    others, so one mistaken expectation fails correct code on every promise, and two
    coders' failures can only be compared, and a suspect assertion judged, one assertion
    at a time. The split tests are named ``<test>_<n>``."""
    lines = source.splitlines(keepends=True)
    changed = False
    for node in sorted(tree.body, key=lambda n: n.lineno, reverse=True):
        asserts = _flat_asserts(node)
        if asserts is None or not isinstance(node, ast.FunctionDef):
            continue
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        parts = []
        for k, stmt in enumerate(asserts, start=1):
            text = ast.get_source_segment(source, stmt) or ast.unparse(stmt)
            body = "\n".join("    " + ln.strip() for ln in text.splitlines())
            parts.append(f"def {node.name}_{k}():\n{body}\n\n\n")
        lines[first - 1 : node.end_lineno or node.lineno] = parts
        changed = True
    if not changed:
        return source, tree
    text = "".join(lines)
    try:
        return text, ast.parse(text)
    except SyntaxError:  # an assert spread over lines that did not survive: keep it whole
        return source, tree


def _no_copies(source: str, tree: ast.Module, interface: Sequence[str]) -> tuple[str, ast.Module]:
    """The file without its own top-level definitions of names the module promises.

    A small model pastes the module into its test file: the definition shadows the import,
    and the tests then test the tester's copy, never the coder's code."""
    promised = set(interface)
    drop = [
        n
        for n in tree.body
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and n.name in promised
    ]
    if not drop:
        return source, tree
    lines = source.splitlines(keepends=True)
    for node in sorted(drop, key=lambda n: n.lineno, reverse=True):
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        del lines[first - 1 : node.end_lineno or node.lineno]
    text = "".join(lines)
    try:
        return text, ast.parse(text)
    except SyntaxError:
        return source, tree


def check_tests(source: str, package: str, module: str, interface: Sequence[str]) -> TestsCheck:
    """Check a generated test file before it runs, and add the imports it forgot.

    Args:
        source: the test file.
        package: the package under test.
        module: the module under test (in ``package``).
        interface: the names the module promises.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return TestsCheck(
            source, [f"the test file does not parse: {exc.msg} (line {exc.lineno})"], []
        )
    tests = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test")]
    if not tests:
        return TestsCheck(source, ["the file has no test functions"], [])
    source, tree, moved = _no_work_at_import(source, tree)
    source, tree = _one_assert_each(source, tree)
    source, tree = _no_copies(source, tree, interface)
    target = f"{package}.{module}"
    imports_module = any(
        (isinstance(n, ast.ImportFrom) and n.module == target)
        or (isinstance(n, ast.Import) and any(a.name == target for a in n.names))
        for n in ast.walk(tree)
    )
    defined = _defined(tree)
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    missing = sorted(used - defined)
    added = [name for name in missing if name in interface]
    problems = [
        f"`{name}` is used but never defined or imported"
        for name in missing
        if name not in interface
    ]
    if not imports_module and not added:
        added = [name for name in interface if name in used] or list(interface[:1])
    if added:
        source = f"from {target} import {', '.join(added)}\n" + source
    return TestsCheck(source, problems, added, moved)


def drop_tests(source: str, names: Iterable[str]) -> str:
    """The test file without the test functions called ``names``."""
    drop = set(names)
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    lines = source.splitlines(keepends=True)
    spans = [
        (min([n.lineno, *(d.lineno for d in n.decorator_list)]), n.end_lineno or n.lineno)
        for n in tree.body
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name in drop
    ]
    for start, end in sorted(spans, reverse=True):
        del lines[start - 1 : end]
    return "".join(lines)


def smoke_tests(package: str, module: str, interface: Sequence[str]) -> str:
    """The least a module must pass when every generated test was unusable: it imports,
    and what its interface promises exists and is callable."""
    target = f"{package}.{module}"
    body = [f'"""Smoke tests of {target} (its generated tests were unusable)."""', ""]
    body += ["import importlib", "", ""]
    body += ["def test_the_interface_exists():", f"    mod = importlib.import_module({target!r})"]
    for name in interface or ():
        body.append(f"    assert callable(getattr(mod, {name!r}, None)), {name!r}")
    return "\n".join(body) + "\n"
