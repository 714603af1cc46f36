"""The code suite's harness with scripted coders: known answers give known scores, every
condition keeps to the same token budget, and the hidden tests run in the sandbox."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from _evalkit import CodeOracle, canonical, memorized, problems, wrong

import smesh.eval.code as code_suite
from smesh.eval import coding
from smesh.eval.execute import run_candidate
from smesh.testing import FunctionBackend

RIGHT_SECOND = "HumanEval/0"  # wrong first, right after
ALWAYS_RIGHT = "HumanEval/2"
NEVER_RIGHT = "HumanEval/4"
ROTE = "HumanEval/66"  # memorizes the docstring examples: passes them, fails hidden tests
ROTE_FIRST = "HumanEval/3"  # the first answer memorizes the examples, later ones are right
ALL = (RIGHT_SECOND, ALWAYS_RIGHT, NEVER_RIGHT, ROTE, ROTE_FIRST)

BUDGET = 2000


def _plan() -> dict[str, list[str]]:
    return {
        RIGHT_SECOND: [wrong(RIGHT_SECOND), canonical(RIGHT_SECOND)],
        ALWAYS_RIGHT: [canonical(ALWAYS_RIGHT)],
        NEVER_RIGHT: [wrong(NEVER_RIGHT)],
        ROTE: [memorized(ROTE)],
        ROTE_FIRST: [memorized(ROTE_FIRST), canonical(ROTE_FIRST)],
    }


def _run(oracle: CodeOracle, condition: str) -> Any:
    chosen = problems(*ALL)
    backend = FunctionBackend(oracle, name="oracle")
    return asyncio.run(
        code_suite.run_code(
            backend,
            n=len(chosen),
            seed=3,
            budget=BUDGET,
            problems=chosen,
            conditions=(condition,),
            concurrency=1,
        )
    )


class _Merged:
    """The conditions' results side by side (each condition ran with its own oracle, which
    cannot tell the team's coders from the variant's)."""

    def __init__(self, results: list[Any]) -> None:
        self.conditions = [r.conditions[0] for r in results]
        self.extra: dict[str, Any] = {"details": {}}
        for r in results:
            self.extra["details"].update(r.extra["details"])
            self.extra.setdefault("budget_tokens_per_item", r.extra["budget_tokens_per_item"])
            for key in ("team_trust", "team_agree_trust"):
                if r.extra[key]:
                    self.extra[key] = r.extra[key]

    def condition(self, name: str) -> Any:
        return next(c for c in self.conditions if c.name == name)


@pytest.fixture(scope="module")
def outcome() -> tuple[Any, CodeOracle, list[str]]:
    sandboxed: list[str] = []
    real = run_candidate

    async def spy(code: str, tests: str, **options: Any) -> Any:
        sandboxed.append(tests)
        return await real(code, tests, **options)

    mp = pytest.MonkeyPatch()
    mp.setattr(coding, "run_candidate", spy)
    results = []
    oracles = []
    try:
        for name in code_suite.CONDITIONS:
            oracles.append(CodeOracle(_plan()))
            results.append(_run(oracles[-1], name))
    finally:
        mp.undo()
    team_oracle = oracles[code_suite.CONDITIONS.index("team")]
    return _Merged(results), team_oracle, sandboxed


def test_known_answers_give_known_scores(outcome: Any) -> None:
    result, _, _ = outcome
    scores = {c.name: c.score for c in result.conditions}
    # single: only the always-right problem. Best-of-N and the team also recover the one
    # that is right on the second try. A first answer that memorizes the examples fools the
    # team (tests pass, the reviewer approves); best-of-N sees it outnumbered by equal right
    # answers, and the variant sees the right answers agree on generated edge cases.
    assert scores == {"single": 0.2, "best-of-n": 0.6, "team": 0.4, "team-agree": 0.6}
    per_item = {
        name: {i["item"]: i["score"] for i in detail["items"]}
        for name, detail in result.extra["details"].items()
    }
    assert per_item["single"] == dict.fromkeys(ALL, 0) | {ALWAYS_RIGHT: 1}
    assert per_item["team"] == dict.fromkeys(ALL, 0) | {ALWAYS_RIGHT: 1, RIGHT_SECOND: 1}
    assert per_item["team-agree"][ROTE_FIRST] == 1
    single = result.condition("single")
    assert (single.ci_low, single.ci_high) == (0.0, 0.6)  # bootstrap of 1 in 5


def test_every_condition_keeps_to_the_same_budget_per_item(outcome: Any) -> None:
    result, _, _ = outcome
    for name, detail in result.extra["details"].items():
        for item in detail["items"]:
            assert 0 < item["tokens"] <= BUDGET, (name, item)
    best = result.extra["details"]["best-of-n"]["items"]
    # best-of-N samples until the next call would not fit: it spends most of the budget
    assert min(i["tokens"] for i in best) > BUDGET * 0.7
    assert result.extra["budget_tokens_per_item"] == BUDGET


def test_the_team_retries_with_the_failure_as_feedback(outcome: Any) -> None:
    _, oracle, _ = outcome
    team = [
        r
        for r in oracle.requests
        if "coder" in str(r.agent) and "truncate" not in r.messages[0].content
    ]
    retries = [r for r in team if "rejected" in r.messages[-1].content]
    assert retries, "no retry carried feedback"
    assert any("expected" in r.messages[-1].content for r in retries)
    detail = {i["item"]: i["detail"] for i in _items(outcome, "team")}
    assert "accepted on attempt 2" in detail[RIGHT_SECOND]
    assert "accepted on attempt 1" in detail[ALWAYS_RIGHT]
    # the rote answer passes the examples, the reviewer approves: accepted but wrong
    assert "accepted" in detail[ROTE]


def _items(outcome: Any, name: str) -> list[dict[str, Any]]:
    result, _, _ = outcome
    items: list[dict[str, Any]] = result.extra["details"][name]["items"]
    return items


def test_hidden_tests_run_through_the_sandbox_for_every_condition(outcome: Any) -> None:
    _, _, sandboxed = outcome
    hidden = [t for t in sandboxed if "def test_hidden" in t]
    assert len(hidden) == 4 * 5  # four conditions, five problems
    public = [t for t in sandboxed if "def test_example_" in t]
    assert public  # the tester and the selection ran the docstring examples there too


def test_trust_moves_with_the_outcomes(outcome: Any) -> None:
    result, _, _ = outcome
    trust = result.extra["team_trust"]
    assert trust["coder-a"] != 0.5  # the coder that worked was judged by the tests


def test_edge_cases_mutate_the_example_arguments() -> None:
    from smesh.eval.code_agree import edge_cases

    (p,) = problems(ROTE_FIRST)
    calls = edge_cases(p)
    assert calls and all(c.startswith("below_zero(") for c in calls)
    assert not {ex.call for ex in p.examples} & set(calls)


def test_best_of_n_breaks_ties_by_the_most_frequent_answer() -> None:
    (p,) = problems(NEVER_RIGHT)
    checks = coding.PublicChecks()
    a, b = wrong(NEVER_RIGHT), wrong(NEVER_RIGHT) + "\n# variant\n"

    async def main() -> tuple[str | None, str]:
        return await coding.select_candidate(p, [a, b, b], checks)

    pick, why = asyncio.run(main())
    assert pick == b and "pick #2" in why


def test_public_checks_run_once_per_distinct_code() -> None:
    (p,) = problems(ALWAYS_RIGHT)
    checks = coding.PublicChecks()

    async def main() -> None:
        code = canonical(ALWAYS_RIGHT)
        results = await asyncio.gather(*(checks.run(p, code) for _ in range(5)))
        assert all(r.passed for r in results)

    asyncio.run(main())
    assert checks.runs == 1


def test_run_candidate_is_the_only_execution_path() -> None:
    # the suite modules never exec or eval candidate code in-process
    import inspect

    from smesh.eval import code_team, humaneval

    for module in (code_suite, coding, code_team, humaneval):
        source = inspect.getsource(module)
        assert "exec(" not in source and "eval(" not in source.replace("literal_eval(", "")
    assert getattr(coding, "run_candidate") is run_candidate  # noqa: B009
