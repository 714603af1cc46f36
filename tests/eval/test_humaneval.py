"""HumanEval data: public examples parsed from the docstrings, code extraction, programs."""

from __future__ import annotations

import asyncio

import pytest
from _evalkit import canonical, fenced, memorized, problems, wrong

from smesh.eval.coding import hidden_score
from smesh.eval.execute import run_candidate
from smesh.eval.humaneval import (
    Example,
    extract_code,
    load_problems,
    parse_examples,
    program,
    public_tests,
)


def test_all_164_problems_load_and_most_have_public_examples() -> None:
    loaded = load_problems()
    assert len(loaded) == 164
    assert len({p.task_id for p in loaded}) == 164
    with_examples = [p for p in loaded if p.examples]
    assert len(with_examples) >= 130  # measured: 136


def test_doctest_and_informal_examples_are_parsed() -> None:
    doc = '''def f(x):
    """Double it.
    >>> f(2)
    4
    >>> f([1])
    [1, 1]
    """
'''
    assert parse_examples(doc, "f") == [Example("f(2)", "4"), Example("f([1])", "[1, 1]")]
    informal = '''def g(s):
    """Examples:
    g("ab") ➞ True
    g("") => false
    g(3) == 9
    g(a) ➞ 1
    For lst = [1,2] the output should be 3
    """
'''
    got = parse_examples(informal, "g")
    assert Example('g("ab")', "True") in got
    assert Example('g("")', "False") in got
    assert Example("g(3)", "9") in got
    assert Example("g([1,2])", "3") in got
    assert all(e.call != "g(a)" for e in got)  # a name in prose is no example


def test_docstring_closing_quotes_after_the_output_are_not_part_of_it() -> None:
    (p,) = problems("HumanEval/2")
    assert p.examples == (Example("truncate_number(3.5)", "0.5"),)


def test_known_docstring_errata_are_dropped() -> None:
    (median,) = problems("HumanEval/47")
    assert all("1000" not in e.call for e in median.examples)


def test_code_is_taken_from_the_block_that_defines_the_function() -> None:
    reply = "Sure.\n```python\nimport os\n```\nand\n```python\ndef f(x):\n    return x\n```"
    assert extract_code(reply, "f") == "def f(x):\n    return x"
    assert extract_code("def f():\n    return 1\n", "f") == "def f():\n    return 1"
    unterminated = "```python\ndef f():\n    return 2\n"
    assert extract_code(unterminated, "f") == "def f():\n    return 2"


def test_reference_solutions_pass_their_public_and_hidden_tests_in_the_sandbox() -> None:
    chosen = problems("HumanEval/0", "HumanEval/10", "HumanEval/32", "HumanEval/81")

    async def main() -> None:
        for p in chosen:
            code = canonical(p.task_id)
            if p.examples:
                outcome = await run_candidate(program(p, code), public_tests(p))
                assert outcome.passed, (p.task_id, outcome.first_failure())
            assert await hidden_score(p, code) == 1.0, p.task_id
            assert await hidden_score(p, wrong(p.task_id)) == 0.0, p.task_id

    asyncio.run(main())


def test_a_body_only_answer_completes_the_prompt() -> None:
    (p,) = problems("HumanEval/2")
    body = "    return number % 1.0\n"
    assert asyncio.run(hidden_score(p, extract_code(fenced(body), p.entry_point))) == 1.0


@pytest.mark.parametrize("task_id", ["HumanEval/0", "HumanEval/66"])
def test_memorizing_the_examples_passes_public_checks_but_not_hidden_ones(task_id: str) -> None:
    (p,) = problems(task_id)

    async def main() -> tuple[bool, float]:
        outcome = await run_candidate(program(p, memorized(task_id)), public_tests(p))
        return outcome.passed, await hidden_score(p, memorized(task_id))

    assert asyncio.run(main()) == (True, 0.0)


def test_without_the_package_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import smesh.eval.humaneval as he
    from smesh.errors import UsageError

    def missing(name: str) -> object:
        raise ModuleNotFoundError(name)

    monkeypatch.setattr("importlib.resources.files", missing)
    with pytest.raises(UsageError, match=r"smesh\[eval\]"):
        he.load_problems()
