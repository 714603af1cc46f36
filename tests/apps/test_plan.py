"""Cost in proportion to the code: the evidence decides which lens looks at which lines,
prompts share the code as a prefix, the flow evidence settles constant and sanitized
inputs, and answers are validated before they become findings."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from smesh.agents.runtime import Budget
from smesh.apps.analyzers import RawFinding
from smesh.apps.evidence import gather
from smesh.apps.files import select_files
from smesh.apps.options import RunOptions
from smesh.apps.pipeline import fit_budget
from smesh.apps.plan import CostModel, estimate, plan_work
from smesh.apps.swarm import SPECIALISTS, SwarmReport, run_swarm
from smesh.backends.base import Request
from smesh.testing import FunctionBackend

pytest.importorskip("bandit", reason="the plan uses bandit's findings")

PROJECT = {
    "app/routes.py": (
        "import os\nfrom flask import Flask, request\n\napp = Flask(__name__)\n\n\n"
        "@app.route('/ls')\ndef listing():\n    os.system('ls ' + request.args['dir'])\n"
        "    return 'ok'\n"
    ),
    "app/db.py": (
        "def find(cur, name):\n    query = \"SELECT * FROM users WHERE name = '%s'\" % name\n"
        "    cur.execute(query)\n    with open(name) as fh:\n        return fh.read()\n"
    ),
    "app/files.py": (
        "import os\n\nBASE = '/srv'\n\n\ndef read(name):\n"
        "    with open(os.path.join(BASE, os.path.basename(name))) as fh:\n"
        "        return fh.read()\n"
    ),
    "app/models.py": (
        "class User:\n    def __init__(self, name):\n        self.name = name\n\n"
        "    def greeting(self):\n        return 'hello ' + self.name\n"
    ),
    "app/tokens.py": (
        "import hashlib\nimport random\n\n\ndef token(data):\n"
        "    salt = random.choice('abcdef')\n    return hashlib.md5(data + salt).hexdigest()\n"
    ),
    "app/const.py": "import os\n\n\ndef today():\n    os.system('date')\n",
}


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    for name, text in PROJECT.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def planned(root: Path, **kw: Any) -> dict[str, list[tuple[str, int, str]]]:
    evidence = [gather(root, f) for f in select_files(root)]
    works = plan_work(evidence, SPECIALISTS, **kw)
    out: dict[str, list[tuple[str, int, str]]] = {}
    for w in works:
        out.setdefault(w.path, []).extend((w.lens, c.line, c.label) for c in w.checks)
    return out


def confirm_all(request: Request) -> dict[str, Any]:
    properties = (request.json_schema or {})["properties"]
    answer: dict[str, Any] = {"reason": "confirmed", "answer": properties["answer"]["enum"][0]}
    if "source_line" in properties:
        answer["source_line"] = properties["source_line"]["enum"][0]
    return answer


def swarm(root: Path, backend: FunctionBackend, **kw: Any) -> SwarmReport:
    return asyncio.run(run_swarm(root, backend, **kw))


def test_the_evidence_decides_which_specialist_looks_at_which_line(project: Path) -> None:
    bandit_sqli = RawFinding(
        file="app/db.py",
        line_start=2,
        line_end=2,
        cwe=89,
        severity="medium",
        rule="B608",
        message="sql",
    )
    request_to_shell = RawFinding(
        file="app/routes.py",
        line_start=9,
        line_end=9,
        cwe=78,
        severity="high",
        rule="B605",
        message="shell",
    )
    plan = planned(
        project, reported={"app/db.py": [bandit_sqli], "app/routes.py": [request_to_shell]}
    )
    assert plan == {
        # a parameter into SQL, and into open(): one specialist each
        "app/db.py": [("injection", 3, "CWE-89"), ("path-traversal", 4, "CWE-22")],
        # weak randomness and a weak hash: the crypto specialist, both in one task
        "app/tokens.py": [("crypto", 6, "CWE-330"), ("crypto", 7, "CWE-327")],
    }
    # not asked: the request into os.system (the flow analysis and bandit agree already),
    # the basename()d path, the constant command, and models.py, which has no sink at all


def test_settled_sinks_are_asked_only_when_measuring_the_specialists(project: Path) -> None:
    plan = planned(project, ask_settled=True)
    assert ("path-traversal", 7, "CWE-22") in plan["app/files.py"]
    assert ("injection", 5, "CWE-78") in plan["app/const.py"]
    assert "app/models.py" not in plan


def test_lenses_on_one_region_share_the_prompt_prefix(project: Path) -> None:
    prompts: list[tuple[str | None, str]] = []

    def record(request: Request) -> dict[str, Any]:
        prompts.append((request.system, request.messages[-1].content))
        return confirm_all(request)

    swarm(project, FunctionBackend(record), analyzers=[])
    db = [p for p in prompts if "File app/db.py" in p[1]]
    assert len(db) == 4  # injection and path-traversal, then a judge for each
    (system_a, a), (system_b, b) = db[:2]
    assert system_a == system_b  # one system prompt for every lens: the prefix starts there
    shared = a[: next(i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)]
    assert shared.startswith("File app/db.py (python), lines 1-5:")
    assert "5 |         return fh.read()" in shared  # the whole region, then the questions


def test_a_proven_constant_is_never_consensus(project: Path) -> None:
    calls: list[str] = []

    def yes(request: Request) -> dict[str, Any]:
        calls.append(request.messages[-1].content)
        return confirm_all(request)

    report = swarm(project, FunctionBackend(yes))
    const = [f for f in report.findings if f.file == "app/const.py"]
    assert len(const) == 1 and const[0].reporters == ["bandit"]
    assert not const[0].consensus and const[0].support == ["bandit"]
    assert not any("File app/const.py" in c for c in calls)  # nobody was asked
    # asked anyway (measuring mode), a yes-sayer still cannot outvote the proof
    report = swarm(project, FunctionBackend(yes), ask_settled=True)
    const = [f for f in report.findings if f.file == "app/const.py"]
    assert len(const) == 1 and sorted(const[0].reporters) == ["bandit", "injection"]
    assert not const[0].consensus
    # the request into the shell: bandit and the traced path, no model needed
    route = next(f for f in report.findings if f.file == "app/routes.py")
    assert route.consensus and sorted(route.support) == ["bandit", "flow"]
    assert [s.line for s in route.flow] == [9, 9]


def test_an_answer_that_points_nowhere_is_no_finding(project: Path) -> None:
    def off_path(request: Request) -> dict[str, Any]:
        answer = confirm_all(request)
        if "source_line" in answer:
            answer["source_line"] = 999  # a line that is not on the traced path
        return answer

    report = swarm(project, FunctionBackend(off_path), analyzers=[])
    labels = {(f.file, f.cwe) for f in report.findings}
    # the flow checks (SQL, path) were not confirmed; the construct checks were
    assert labels == {("app/tokens.py", "CWE-330"), ("app/tokens.py", "CWE-327")}


class Repeating:
    """An analyzer that reports one finding twice, and one on a line the file lacks."""

    name = "repeating"

    async def run(self, root: Path, files: Sequence[str]) -> list[RawFinding]:
        twice = RawFinding(
            file="app/models.py",
            line_start=6,
            line_end=6,
            cwe=79,
            severity="low",
            rule="R1",
            message="echo",
        )
        ghost = RawFinding(
            file="app/models.py",
            line_start=400,
            line_end=400,
            cwe=79,
            severity="low",
            rule="R2",
            message="ghost",
        )
        return [twice, twice, ghost]


def test_duplicates_collapse_and_lines_that_do_not_exist_are_dropped(project: Path) -> None:
    report = asyncio.run(run_swarm(project, None, specialists=[], analyzers=[Repeating()]))
    assert [(f.file, f.line, f.reporters) for f in report.findings] == [
        ("app/models.py", 6, ["repeating"])
    ]


def test_a_scan_that_cannot_finish_in_its_budget_says_so_with_the_estimate(
    project: Path,
) -> None:
    evidence = [gather(project, f) for f in select_files(project)]
    works = plan_work(evidence, SPECIALISTS)
    est = estimate(works, evidence, CostModel())
    # without bandit's report the request into the shell has one voice: it is asked too
    assert est.checks == 5 and est.files == 6 and est.files_with_work == 3 and est.seconds > 0
    _, warning = fit_budget(RunOptions(budget=Budget(wall_s=1.0, calls=2)), est)
    assert warning is not None
    assert f"~{est.seconds:.0f} s of LLM work against a budget of 1 s" in warning
    assert f"~{est.calls} LLM calls against a budget of 2" in warning
    fitted, none = fit_budget(RunOptions(fit_budget=True), est)
    assert none is None
    assert (
        fitted.budget.limits["wall_s"] >= est.seconds and fitted.budget.limits["calls"] >= est.calls
    )
    # a limit that was given is kept; only the missing one is fitted
    kept, _ = fit_budget(RunOptions(budget=Budget(calls=3), fit_budget=True), est)
    assert kept.budget.limits["calls"] == 3 and kept.budget.limits["wall_s"] is not None
