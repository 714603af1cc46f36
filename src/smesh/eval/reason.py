"""The ``reason`` suite: procedurally generated problems from ``reasoning-gym``.

Conditions, at the same token budget per problem:

- *single*: one step-by-step answer at temperature 0.
- *majority*: self-consistency — step-by-step samples at temperature 0.7 until the budget
  is spent, the most frequent answer wins (ties: the earliest).
- *smesh*: voters of several styles (step by step, cool and hot; answer directly) answer
  blind, in turn, until the budget is spent. Each answer is a content-scoped signal in a
  field, so voters giving the same answer reinforce one signal; the answer whose signal
  carries the most trust (its origin plus its reinforcers, each weighted by the trust its
  style earned) wins. Trust is learned from the verifier's ground truth on a warm-up
  split and the suite is scored on the held-out split.
- *smesh-unweighted* (ablation): the same voters and answers with every trust at 0.5 —
  what the mix of styles gives without trust.
- *smesh-tool* / *smesh-tool-unweighted* (variant): the same, plus a different kind of
  voter — a calculator entity that asks the model for a Python expression and answers
  with its value, computed in the sandbox. Trust decides how much it counts.

The warm-up costs tokens once for the whole run; they are reported in ``extra``, not per
problem.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from typing import Any

import msgspec

from smesh.backends import Backend, Request
from smesh.clock import VirtualClock
from smesh.errors import BudgetExceeded, UsageError
from smesh.eval.budget import Metered, TokenMeter
from smesh.eval.result import EvalResult
from smesh.eval.runner import Attempt, ConditionRun, Progress, build_result, run_condition
from smesh.field import Field
from smesh.trust import TrustTable

__all__ = [
    "CONDITIONS",
    "DATASETS",
    "DEFAULT_BUDGET",
    "Problem",
    "Style",
    "consensus",
    "extract_answer",
    "make_problems",
    "normalize_answer",
    "run_reason",
]

CONDITIONS = (
    "single",
    "majority",
    "smesh",
    "smesh-unweighted",
    "smesh-tool",
    "smesh-tool-unweighted",
)
DEFAULT_BUDGET = 600
MAX_SAMPLES = 24

#: (dataset name, configuration): difficulties where the embedded 0.5B model is neither near
#: 0 nor near 100 % (measured; see benchmarks/RESULTS.md)
DATASETS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("basic_arithmetic", {"min_terms": 2, "max_terms": 3, "min_digits": 1, "max_digits": 2}),
)


class Problem(msgspec.Struct, frozen=True, kw_only=True):
    """One generated problem with what its verifier needs."""

    id: str
    dataset: str
    question: str
    answer: str
    entry: dict[str, Any]


class Style(msgspec.Struct, frozen=True):
    """A voter style: how it is asked, and how hot it samples. A *tool* style asks for a
    Python expression and answers with its value, computed in the sandbox."""

    name: str
    system: str
    temperature: float
    max_tokens: int
    tool: bool = False


COT = (
    "Solve the problem step by step, briefly. Finish with one line of the form "
    "'Answer: <final answer>'."
)
DIRECT = "Reply with one line of the form 'Answer: <final answer>' and nothing else."
SINGLE = Style("single", COT, 0.0, 256)
SAMPLE = Style("cot-0.7", COT, 0.7, 256)
STYLES = (
    Style("cot-0.3", COT, 0.3, 256),
    Style("direct-0.5", DIRECT, 0.5, 32),
    Style("cot-0.9", COT, 0.9, 256),
)
CALC = Style(
    "calc",
    "Write one Python expression that computes the answer to the problem. Reply with the "
    "expression only, on one line.",
    0.2,
    64,
    tool=True,
)
#: the voters of the ``smesh-tool`` variant: the same styles plus a calculator entity
TOOL_STYLES = (*STYLES, CALC)


def make_problems(
    n: int, seed: int, datasets: Sequence[tuple[str, dict[str, Any]]] = DATASETS
) -> list[Problem]:
    """``n`` problems, spread evenly over ``datasets``, generated from ``seed``.

    Raises:
        UsageError: ``reasoning-gym`` is not installed, or a dataset name is unknown.
    """
    try:
        import reasoning_gym
    except ImportError:
        raise UsageError(
            "the reason suite needs the reasoning-gym package: pip install 'smesh[eval]'"
        ) from None
    per = [n // len(datasets) + (1 if i < n % len(datasets) else 0) for i in range(len(datasets))]
    problems: list[Problem] = []
    for (name, config), count in zip(datasets, per, strict=True):
        if count == 0:
            continue
        try:
            data = reasoning_gym.create_dataset(name, size=count, seed=seed, **config)
        except (KeyError, ValueError) as exc:
            raise UsageError(f"reasoning-gym dataset {name!r}: {exc}") from None
        for i, entry in enumerate(data):
            problems.append(
                Problem(
                    id=f"{name}/{seed}/{i}",
                    dataset=name,
                    question=str(entry["question"]),
                    answer=str(entry["answer"]),
                    entry=dict(entry),
                )
            )
    random.Random(seed).shuffle(problems)
    return problems


_ANSWER = re.compile(r"answer\s*[:=]\s*(.+)", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def extract_answer(text: str) -> str | None:
    """The final answer in a reply: the last ``Answer: ...`` line, else the last number."""
    found = _ANSWER.findall(text)
    if found:
        answer = str(found[-1]).strip()
        for _ in range(2):  # "**-7**." -> "-7"
            answer = answer.strip("*`$ ").rstrip(".")
        return answer or None
    numbers = _NUMBER.findall(text)
    return numbers[-1] if numbers else None


def normalize_answer(answer: str) -> str:
    """A canonical form for counting equal answers: numbers by value, text by words."""
    text = (
        answer.strip().replace(",", "")
        if _NUMBER.fullmatch(answer.strip().replace(",", ""))
        else answer
    )
    if _NUMBER.fullmatch(text.strip()):
        value = float(text)
        if math.isfinite(value) and value == int(value):
            return str(int(value))
        return f"{value:.6g}"
    words = re.findall(r"[a-z0-9]+", answer.lower())
    return " ".join(words)


def verify(problem: Problem, answer: str | None) -> float:
    """The dataset's own verifier (1.0 right, 0.0 wrong; some give partial credit)."""
    if answer is None:
        return 0.0
    import reasoning_gym

    score = reasoning_gym.get_score_answer_fn(problem.dataset)(answer, problem.entry)
    return float(score)


async def ask(backend: Backend, problem: Problem, style: Style, agent: str) -> str | None:
    """One voter's blind answer (None if its reply held none)."""
    request = Request.of(
        problem.question,
        system=style.system,
        temperature=style.temperature,
        max_tokens=style.max_tokens,
        agent=agent,
        allow_truncated=True,
    )
    response = await backend.complete(request)
    if style.tool:
        return await evaluate(response.text)
    return extract_answer(response.text)


_VALUE = (
    "from candidate import *\n\n\ndef test_value():\n    raise AssertionError('=' + repr(RESULT))\n"
)


async def evaluate(text: str) -> str | None:
    """The value of the expression in a reply, computed in the sandbox (None if it has
    none or it fails)."""
    lines = [ln.strip().strip("`") for ln in text.strip().splitlines() if ln.strip()]
    lines = [ln for ln in lines if ln and not ln.startswith(("```", "python"))]
    if not lines:
        return None
    expression = re.sub(r"^(answer|expression)\s*[:=]\s*", "", lines[0], flags=re.I)
    from smesh.eval.execute import run_candidate

    outcome = await run_candidate(f"RESULT = ({expression})\n", _VALUE, timeout_s=5.0)
    if not outcome.cases or not outcome.cases[0].error:
        return None
    _, sep, value = outcome.cases[0].error.partition(": =")
    return value.strip("'\"") or None if sep else None


def consensus(votes: Sequence[tuple[str, str]], weight: Any) -> tuple[str | None, dict[str, float]]:
    """The answer with the most trust behind it, found through the field.

    Args:
        votes: ``(voter, answer)`` in the order given.
        weight: ``weight(voter) -> float``, e.g. the trust of the voter's style.

    Each vote is a content-scoped ``answer`` signal: voters with the same (normalized)
    answer land on one signal as its origin and reinforcers. Returns the winning answer
    (ties: the earliest signal) and the mass behind each answer.
    """
    field = Field(VirtualClock())
    raw: dict[str, str] = {}
    order: list[str] = []
    for voter, answer in votes:
        key = normalize_answer(answer)
        if not key:
            continue
        raw.setdefault(key, answer)
        signal = field.emit("answer", {"answer": key}, origin=voter, ttl=3600.0)
        if signal.address not in order:
            order.append(signal.address)
    masses: dict[str, float] = {}
    best: tuple[float, int, str] | None = None
    for rank, address in enumerate(order):
        live = field.get(address)
        if live is None:
            continue
        key = str(live.payload["answer"])
        mass = sum(weight(v) for v in (live.origin, *live.reinforcers))
        masses[raw[key]] = round(mass, 4)
        if best is None or (mass, -rank) > (best[0], best[1]):
            best = (mass, -rank, raw[key])
    return (best[2] if best is not None else None), masses


async def single(problem: Problem, backend: Backend, meter: TokenMeter) -> Attempt:
    """One step-by-step answer at temperature 0."""
    try:
        answer = await ask(Metered(backend, meter), problem, SINGLE, "single")
    except BudgetExceeded:
        return Attempt(answer=None, detail="budget too small for one call")
    return Attempt(answer=answer, detail="one sample")


async def majority(problem: Problem, backend: Backend, meter: TokenMeter) -> Attempt:
    """Self-consistency: sample until the budget is spent; the most frequent answer wins."""
    model = Metered(backend, meter)
    votes: list[tuple[str, str]] = []
    for i in range(MAX_SAMPLES):
        try:
            answer = await ask(model, problem, SAMPLE, f"sample-{i}")
        except BudgetExceeded:
            break
        if answer is not None:
            votes.append((f"sample-{i}", answer))
    pick, masses = consensus(votes, lambda voter: 1.0)
    return Attempt(answer=pick, detail=f"{len(votes)} votes: {_show(masses)}")


async def collect_votes(
    problem: Problem, backend: Backend, meter: TokenMeter, styles: Sequence[Style] = STYLES
) -> list[tuple[str, str]]:
    """Voters of every style in turn, blind, until the budget is spent."""
    model = Metered(backend, meter)
    votes: list[tuple[str, str]] = []
    for i in range(MAX_SAMPLES):
        style = styles[i % len(styles)]
        voter = f"{style.name}#{i // len(styles)}"
        try:
            answer = await ask(model, problem, style, voter)
        except BudgetExceeded:
            break
        if answer is not None:
            votes.append((voter, answer))
    return votes


def style_of(voter: str) -> str:
    """The style a voter id belongs to (``cot-0.3#2`` -> ``cot-0.3``)."""
    return voter.split("#", 1)[0]


def smesh(
    trust: TrustTable | None,
    cache: dict[str, tuple[list[tuple[str, str]], int, int]],
    styles: Sequence[Style] = STYLES,
) -> Any:
    """Trust-weighted consensus over voters of several styles (None: unweighted).

    The weighted and unweighted conditions see the very same votes: the first to run on a
    problem collects them, and the other replays them (and is charged the same tokens).
    """

    async def solve(problem: Problem, backend: Backend, meter: TokenMeter) -> Attempt:
        cached = cache.get(problem.id)
        if cached is None:
            votes = await collect_votes(problem, backend, meter, styles)
            cache[problem.id] = (votes, meter.used, meter.calls)
        else:
            votes, meter.used, meter.calls = cached[0], cached[1], cached[2]
        if trust is None:
            pick, masses = consensus(votes, lambda voter: 0.5)
        else:
            pick, masses = consensus(votes, lambda voter: trust.get(style_of(voter), 0.0))
        return Attempt(answer=pick, detail=f"{len(votes)} votes: {_show(masses)}")

    return solve


def _show(masses: dict[str, float]) -> str:
    ranked = sorted(masses.items(), key=lambda kv: -kv[1])[:4]
    return ", ".join(f"{answer[:30]!s}={mass:g}" for answer, mass in ranked)


async def warm_up(
    problems: Sequence[Problem],
    backend: Backend,
    trust: TrustTable,
    styles: Sequence[Style] = STYLES,
) -> dict[str, Any]:
    """Learn each style's trust from ground truth: every style answers every warm-up
    problem once, and the verifier's verdict updates the style's trust."""
    meter = TokenMeter(None)
    model = Metered(backend, meter)
    right: dict[str, int] = {s.name: 0 for s in styles}
    for problem in problems:
        for style in styles:
            answer = await ask(model, problem, style, f"warm-up/{style.name}")
            ok = verify(problem, answer) >= 1.0
            right[style.name] += ok
            trust.record(style.name, ok, 0.0)
    return {
        "problems": len(problems),
        "tokens": meter.used,
        "accuracy": {k: round(v / max(1, len(problems)), 3) for k, v in right.items()},
        "trust": {k: round(v, 3) for k, v in sorted(trust.snapshot(0.0).items())},
    }


async def run_reason(
    backend: Backend,
    *,
    n: int,
    seed: int,
    budget: int | None = DEFAULT_BUDGET,
    warmup: int | None = None,
    conditions: Sequence[str] = CONDITIONS,
    datasets: Sequence[tuple[str, dict[str, Any]]] = DATASETS,
    concurrency: int = 4,
    progress: Progress | None = None,
) -> EvalResult:
    """Run the reason suite: ``warmup`` problems (default ``max(6, n // 2)``) to learn
    trust, then ``n`` held-out problems scored under every condition."""
    unknown = set(conditions) - set(CONDITIONS)
    if unknown:
        raise UsageError(f"unknown reason condition(s): {', '.join(sorted(unknown))}")
    if n < 1:
        raise UsageError("--n must be at least 1")
    warm = max(len(datasets), n // 2) if warmup is None else warmup
    pool = make_problems(n + warm, seed, datasets)
    # the split is by dataset, so both halves hold every dataset in the same proportion
    held: list[Problem] = []
    learn: list[Problem] = []
    for name, _ in datasets:
        mine = [p for p in pool if p.dataset == name]
        cut = round(len(mine) * warm / (n + warm))
        learn.extend(mine[:cut])
        held.extend(mine[cut:])
    trust = TrustTable("beta", relaxation=0.0)
    warm_info = await warm_up(learn, backend, trust) if "smesh" in conditions else {}
    tool_trust = TrustTable("beta", relaxation=0.0)
    tool_warm = (
        await warm_up(learn, backend, tool_trust, TOOL_STYLES) if "smesh-tool" in conditions else {}
    )
    items = [(p.id, p) for p in held]

    async def score(problem: Problem, attempt: Attempt) -> float:
        return verify(problem, attempt.answer)

    votes: dict[str, tuple[list[tuple[str, str]], int, int]] = {}
    tool_votes: dict[str, tuple[list[tuple[str, str]], int, int]] = {}
    solvers = {
        "single": single,
        "majority": majority,
        "smesh": smesh(trust, votes),
        "smesh-unweighted": smesh(None, votes),
        "smesh-tool": smesh(tool_trust, tool_votes, TOOL_STYLES),
        "smesh-tool-unweighted": smesh(None, tool_votes, TOOL_STYLES),
    }
    runs: list[ConditionRun] = []
    for name in conditions:
        runs.append(
            await run_condition(
                name,
                items,
                solvers[name],
                score,
                backend=backend,
                budget=budget,
                concurrency=concurrency,
                progress=progress,
            )
        )
    per_dataset: dict[str, dict[str, float]] = {}
    for run in runs:
        for name, _ in datasets:
            scores = [r.score for r, p in zip(run.records, held, strict=True) if p.dataset == name]
            if scores:
                per_dataset.setdefault(name, {})[run.name] = round(sum(scores) / len(scores), 4)
    return build_result(
        "reason",
        backend,
        held,
        seed,
        budget,
        runs,
        extra={
            "benchmark": "reasoning-gym",
            "datasets": [{"name": name, **config} for name, config in datasets],
            "warm_up": warm_info,
            "warm_up_tool": tool_warm,
            "per_dataset": per_dataset,
            "styles": [msgspec.to_builtins(s) | {"system": s.system[:40]} for s in TOOL_STYLES],
        },
    )
