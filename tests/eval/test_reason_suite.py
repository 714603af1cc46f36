"""The reason suite's harness with scripted voters: trust learned on the warm-up split
decides the consensus; known answers give known scores; budgets are equal."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import smesh.eval.reason as reason_suite
from smesh.backends import Request
from smesh.testing import FunctionBackend

DATASETS = (("basic_arithmetic", {"min_terms": 2, "max_terms": 3, "max_digits": 2}),)
N, WARM, SEED, BUDGET = 6, 4, 5, 600


def _oracle() -> tuple[FunctionBackend, list[Request]]:
    """Direct answers are right; step-by-step ones are confidently wrong (answer + 1); the
    calculator is given the right expression, which the sandbox evaluates."""
    pool = reason_suite.make_problems(N + WARM, SEED, DATASETS)
    answers = {p.question: p.answer for p in pool}
    expressions = {p.question: str(p.entry["metadata"]["expression"]) for p in pool}
    seen: list[Request] = []

    def reply(request: Request) -> str:
        seen.append(request)
        question = request.messages[-1].content
        right = answers[question]
        if request.system == reason_suite.DIRECT:
            return f"Answer: {right}"
        if request.system == reason_suite.CALC.system:
            return f"```python\n{expressions[question]}\n```"
        return f"First I add things up carefully.\nAnswer: {int(right) + 1}"

    return FunctionBackend(reply, name="voters"), seen


@pytest.fixture(scope="module")
def outcome() -> tuple[Any, list[Request]]:
    backend, seen = _oracle()
    result = asyncio.run(
        reason_suite.run_reason(
            backend, n=N, seed=SEED, budget=BUDGET, warmup=WARM, datasets=DATASETS, concurrency=2
        )
    )
    return result, seen


def test_trust_learned_on_the_warm_up_overrules_a_wrong_majority(outcome: Any) -> None:
    result, _ = outcome
    scores = {c.name: c.score for c in result.conditions}
    assert scores["single"] == scores["majority"] == scores["smesh-unweighted"] == 0.0
    assert scores["smesh"] == scores["smesh-tool"] == 1.0
    warm = result.extra["warm_up"]
    assert warm["problems"] == WARM
    assert warm["accuracy"] == {"cot-0.3": 0.0, "direct-0.5": 1.0, "cot-0.9": 0.0}
    assert warm["trust"]["direct-0.5"] > 0.8
    assert warm["trust"]["cot-0.3"] < 0.2
    assert result.extra["warm_up_tool"]["accuracy"]["calc"] == 1.0  # evaluated in the sandbox


def test_held_out_problems_are_not_the_warm_up_ones(outcome: Any) -> None:
    result, seen = outcome
    held = {i["item"] for i in result.extra["details"]["single"]["items"]}
    assert len(held) == N
    warm_questions = {r.messages[-1].content for r in seen if str(r.agent).startswith("warm-up/")}
    held_questions = {r.messages[-1].content for r in seen if r.agent == "single"}
    assert len(warm_questions) == WARM and not warm_questions & held_questions


def test_every_condition_keeps_to_the_budget(outcome: Any) -> None:
    result, _ = outcome
    for name, detail in result.extra["details"].items():
        for item in detail["items"]:
            assert item["tokens"] <= BUDGET, (name, item)
    assert result.extra["details"]["majority"]["calls_per_item"] > 1


def test_agreeing_voters_reinforce_one_signal_and_trust_weighs_them() -> None:
    votes = [("a#0", "42"), ("b#0", "42.0"), ("c#0", "41")]
    pick, masses = reason_suite.consensus(votes, lambda v: 1.0)
    assert pick == "42" and masses == {"42": 2.0, "41": 1.0}
    trusted = {"a": 0.1, "b": 0.1, "c": 0.9}
    pick, _ = reason_suite.consensus(votes, lambda v: trusted[reason_suite.style_of(v)])
    assert pick == "41"


def test_answers_are_extracted_and_normalized() -> None:
    assert reason_suite.extract_answer("so it is 12.\nAnswer: **-7**.") == "-7"
    assert reason_suite.extract_answer("the total is 3 and then 5") == "5"
    assert reason_suite.extract_answer("no idea") is None
    assert (
        reason_suite.normalize_answer("1,200") == reason_suite.normalize_answer("1200.0") == "1200"
    )
    assert reason_suite.normalize_answer("Alice is a knight.") == "alice is a knight"


def test_unknown_conditions_and_bad_sizes_are_usage_errors() -> None:
    from smesh.errors import UsageError

    backend, _ = _oracle()
    with pytest.raises(UsageError):
        asyncio.run(reason_suite.run_reason(backend, n=2, seed=1, conditions=("nope",)))
    with pytest.raises(UsageError):
        asyncio.run(reason_suite.run_reason(backend, n=0, seed=1))
