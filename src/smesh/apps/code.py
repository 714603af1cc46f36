"""``smesh code``: an architect, coders, a tester and a reviewer build a project.

The architect turns the brief into a plan and posts one task per module (its file and its
interface). Coders claim module tasks by affinity times reputation. Each result is judged
blind by two verifiers: the tester writes pytest tests for the module and **runs** them in
a sandbox (see :mod:`smesh.sandbox`: no network, a private copy of the project, no
view of the host), and the reviewer approves or asks
for changes. A module is accepted only when the tests pass *and* the review approves; a
rejection sends it back, with both verifiers' feedback, for a bounded number of rounds.
Decisions move the coder's trust, which scales its next bids, so it changes who gets the
next module. The tester is tested too (see :mod:`smesh.apps.codegate`): tests that break
on their own or that an arbiter finds wrong are the tester's failures, not the coder's.
At the end the accepted code and its tests are written to the output directory and the
whole suite is run there once more: a module whose tests do not pass there is reported
``failed``, so "every module accepted" means the project's own pytest passes.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from smesh.agents import Agent, Judgement, TaskSpec, VerifySpec, WorkContext
from smesh.agents.board import TaskBoard, TaskState
from smesh.apps.codegate import REVIEWER, WORKDIR, Arbiter, Gate, Tester, latest_code
from smesh.apps.common import Summary, summarize
from smesh.apps.demo import extract_code
from smesh.apps.options import RunOptions
from smesh.apps.scan import post_task
from smesh.backends.base import Backend
from smesh.errors import UsageError
from smesh.sandbox import Limits, Sandbox, run_pytest
from smesh.trust import TrustTable

__all__ = ["DEFAULT_CALLS", "DEFAULT_SECONDS", "CodeModule", "CodeReport", "run_code"]

PLAN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "package": {"type": "string", "maxLength": 30},
        "modules": {
            "type": "array",
            "minItems": 1,
            "maxItems": 4,
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "maxLength": 30},
                    "purpose": {"type": "string", "maxLength": 200},
                    "interface": {"type": "string", "maxLength": 600},
                },
                "required": ["name", "purpose", "interface"],
            },
        },
    },
    "required": ["package", "modules"],
}
REVIEW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["approve", "request_changes"]},
        "reason": {"type": "string", "maxLength": 240},
    },
    "required": ["verdict", "reason"],
}
ARCHITECT = "architect"
#: the budget of a coding run when the command line gives none (it plans nothing ahead)
DEFAULT_CALLS = 400
DEFAULT_SECONDS = 1800.0


class CodeModule(msgspec.Struct, frozen=True, kw_only=True):
    """One module in ``smesh code --json`` (a stable contract)."""

    name: str
    status: str
    tests_run: int
    tests_passed: int
    review: str
    attempts: int
    coder: str | None


class CodeReport(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of a coding run."""

    out: str
    modules: list[CodeModule]
    summary: Summary
    package: str = ""
    tester_failures: list[str] = []

    def contract(self) -> dict[str, Any]:
        """The ``--json`` document: ``{"out", "modules": [...], "summary": {...}}``, plus
        ``"tester_failures"`` (the tester's own broken or wrong tests) when there were any."""
        doc: dict[str, Any] = {
            "out": self.out,
            "modules": msgspec.to_builtins(self.modules),
            "summary": msgspec.to_builtins(self.summary),
        }
        if self.tester_failures:
            doc["tester_failures"] = list(self.tester_failures)
        return doc


def identifier(text: str, fallback: str) -> str:
    """A safe lowercase Python identifier made from ``text``."""
    name = re.sub(r"[^a-z0-9_]+", "_", text.strip().lower()).strip("_")
    if not name or name[0].isdigit():
        name = fallback
    return name[:30]


def module_spec(plan: dict[str, Any], index: int, verify: VerifySpec, rounds: int) -> TaskSpec:
    """The task of writing module ``index`` of ``plan``."""
    package = plan["package"]
    module = plan["modules"][index]
    return TaskSpec(
        task_id=f"module:{module['name']}",
        skill="code",
        description=f"write {package}/{module['name']}.py",
        priority=0.8,
        verify=verify,
        max_attempts=rounds,
        input={"package": package, "module": module, "plan": plan},
    )


class Architect(Agent):
    """Turns the brief into a plan and posts one task per module."""

    def __init__(self, backend: Backend, *, verify: VerifySpec, rounds: int) -> None:
        super().__init__(
            ARCHITECT,
            backend=backend,
            role="You are a software architect. You split a program into small Python modules.",
            skills={"architect": 1.0},
            max_tokens=600,
        )
        self.verify = verify
        self.rounds = rounds

    async def perform(self, ctx: WorkContext) -> Any:
        """Ask for a plan, normalise it and post the module tasks."""
        brief = str(ctx.task.input["brief"])
        prompt = (
            f"Brief: {brief}\n\nPlan a small Python package for it: a package name and 1 to "
            "3 modules. For each module give its name, its purpose in one sentence and its "
            "interface: the exact Python signatures (functions or classes) with a one-line "
            'docstring each. Reply as JSON {"package": ..., "modules": [{"name", "purpose", '
            '"interface"}]}.'
        )
        parsed = (await self.ask(prompt, json_schema=PLAN_SCHEMA)).parsed or {}
        package = identifier(str(parsed.get("package", "")), "app")
        modules: list[dict[str, str]] = []
        for i, m in enumerate(parsed.get("modules", [])[:4]):
            name = identifier(str(m.get("name", "")), f"module{i + 1}")
            if name in {x["name"] for x in modules} or name in ("__init__", package):
                name = f"{name}_{i + 1}"
            modules.append(
                {"name": name, "purpose": str(m["purpose"]), "interface": str(m["interface"])}
            )
        if not modules:
            raise UsageError("the plan has no modules")
        plan = {"brief": brief, "package": package, "modules": modules}
        for index in range(len(modules)):
            post_task(self.runtime, module_spec(plan, index, self.verify, self.rounds), self.id)
        return plan


def _overview(plan: dict[str, Any]) -> str:
    return "\n".join(f"- {plan['package']}/{m['name']}.py: {m['purpose']}" for m in plan["modules"])


class Coder(Agent):
    """Writes one module from its interface (and, on a retry, the reviewers' feedback).

    A rejected module goes to a coder who has not tried it yet, when there is one: a
    second, independent implementation is what tells a wrong test from wrong code (see
    :mod:`smesh.apps.codegate`).

    Args:
        id: node id.
        backend: the model.
        peers: the ids of every coder of the run.
    """

    def __init__(self, id: str, backend: Backend, peers: Sequence[str] = ()) -> None:
        super().__init__(
            id,
            backend=backend,
            role="You are a careful Python programmer. You reply with code only.",
            skills={"code": 0.9},
            max_tokens=900,
        )
        self.peers = [p for p in peers if p != id]

    def score(self, task: TaskState, now: float) -> float:
        """As any agent's, but none for a retry of a module this coder wrote while a
        coder who has not tried it exists (it will bid when it is free)."""
        base = super().score(task, now)
        tried = {r.origin for r in task.results.values()}
        if self.id in tried and any(p not in tried for p in self.peers):
            return 0.0
        return base

    async def perform(self, ctx: WorkContext) -> Any:
        """Write the module; returns ``{"file", "code"}``."""
        data = ctx.task.input
        plan, module = data["plan"], data["module"]
        prompt = (
            f"Project brief: {plan['brief']}\nModules:\n{_overview(plan)}\n\n"
            f"Write the complete module {plan['package']}/{module['name']}.py.\n"
            f"Purpose: {module['purpose']}\nInterface:\n{module['interface']}\n"
            f"Other modules are imported as `from {plan['package']} import NAME`."
        )
        if ctx.feedback:
            prompt += "\n\nYour previous attempt was rejected:\n" + "\n".join(
                f"- {reason[:600]}" for reason in ctx.feedback
            )
        prompt += "\n\nReply with the whole module in one ```python block."
        response = await self.ask(prompt)
        code = extract_code(response.text).strip() + "\n"
        return {"file": f"{plan['package']}/{module['name']}.py", "code": code}


class Reviewer(Gate):
    """Approves a module or requests changes, from its interface and code."""

    def __init__(self, backend: Backend) -> None:
        super().__init__(
            REVIEWER,
            backend=backend,
            role="You are a strict but fair code reviewer.",
            verifies={"code": 0.9},
            max_tokens=160,
        )

    async def judge(self, task: TaskSpec, output: Any) -> Judgement:
        """Ask the model to approve or request changes."""
        if not isinstance(output, dict) or not output.get("code"):
            return Judgement("reject", "the result holds no code")
        module = task.input["module"]
        prompt = (
            f"Interface the module must implement:\n{module['interface']}\n\n"
            f"The module {output['file']}:\n```python\n{str(output['code'])[:3000]}\n```\n\n"
            "Does it implement the interface correctly and readably? Reply as JSON with "
            '"verdict" ("approve" or "request_changes") and a one-sentence "reason".'
        )
        parsed = (await self.ask(prompt, json_schema=REVIEW_SCHEMA)).parsed or {}
        reason = str(parsed.get("reason", ""))
        if parsed.get("verdict") == "approve":
            return Judgement("approve", reason)
        return Judgement("reject", reason)


def materialize(out: Path, board: TaskBoard) -> tuple[str, list[TaskState]]:
    """Write the modules (accepted code, else the last attempt) and a README into ``out``."""
    modules = [t for t in board.tasks.values() if t.spec.task_id.startswith("module:")]
    if not modules:
        return "", []
    package = str(modules[0].spec.input["package"])
    (out / package).mkdir(parents=True, exist_ok=True)
    (out / package / "__init__.py").write_text(
        f'"""{package}: generated by smesh code."""\n', encoding="utf-8"
    )
    (out / "tests").mkdir(exist_ok=True)
    (out / "conftest.py").write_text("# lets pytest import the package from here\n")
    for task in modules:
        latest = latest_code(task)
        if latest is not None:
            (out / latest["file"]).write_text(latest["code"], encoding="utf-8")
    plan = modules[0].spec.input["plan"]
    lines = [f"# {package}", "", str(plan["brief"]), "", "Modules:", "", _overview(plan), ""]
    lines += ["Run the tests with `python -m pytest tests`.", ""]
    (out / "README.md").write_text("\n".join(lines), encoding="utf-8")
    shutil.rmtree(out / WORKDIR, ignore_errors=True)
    return package, modules


def _review_of(task: TaskState) -> str:
    last = max(task.results) if task.results else None
    if last is None:
        return "none"
    ballots = task.ballots(last)
    if REVIEWER in ballots.get("approve", ()):
        return "approved"
    if REVIEWER in ballots.get("reject", ()):
        return "changes requested"
    return "none"


async def run_code(
    brief: str,
    out: str | Path,
    backend: Backend,
    *,
    coders: int = 2,
    rounds: int = 3,
    limits: Limits | None = None,
    options: RunOptions | None = None,
    unsafe_local_exec: bool = False,
) -> CodeReport:
    """Build a project for ``brief`` in ``out`` with a team of agents.

    The generated tests run in a :class:`~smesh.sandbox.Sandbox`; where it cannot be
    built, the run is refused before anything starts unless ``unsafe_local_exec``.

    Raises:
        UsageError: an empty brief, a bad count, or ``out`` is not a directory.
        SandboxUnavailable: no sandbox here and no ``unsafe_local_exec``.
    """
    if not brief.strip():
        raise UsageError("the brief is empty")
    if coders < 1 or rounds < 1:
        raise UsageError("--coders and --rounds must be >= 1")
    target = Path(out)
    if target.exists() and not target.is_dir():
        raise UsageError(f"--out {str(out)!r} exists and is not a directory")
    sandbox = Sandbox(limits=limits or Limits(), unsafe_local_exec=unsafe_local_exec)
    sandbox.check()  # refuse before any model call, not at the first test run
    target.mkdir(parents=True, exist_ok=True)
    target = target.resolve()
    opts = options or RunOptions()
    if opts.fit_budget:  # it plans nothing ahead: fixed defaults, fitted in place
        opts.budget.fill(calls=DEFAULT_CALLS, wall_s=DEFAULT_SECONDS)
    verify = VerifySpec(quorum=1.0, margin=0.0, timeout_s=opts.settings.work_timeout_s)
    tester = Tester(backend, out=target, limits=sandbox.limits, sandbox=sandbox)
    names = [f"coder-{i + 1}" for i in range(coders)]
    agents: list[Agent] = [
        Architect(backend, verify=verify, rounds=rounds),
        *(Coder(name, backend, peers=names) for name in names),
        tester,
        Reviewer(backend),
        Arbiter(backend),
    ]
    team = opts.team(agents, field=opts.field(), trust=TrustTable())
    opts.started(team.board)
    plan_task = TaskSpec(
        task_id="architect",
        skill="architect",
        description="plan the modules",
        priority=1.0,
        max_attempts=2,
        input={"brief": brief.strip()},
    )
    report = await team.run([plan_task], on_change=opts.on_change)
    package, modules = materialize(target, team.board)
    results: list[CodeModule] = []
    for task in modules:
        name = str(task.spec.input["module"]["name"])
        test_file = target / "tests" / f"test_{name}.py"
        final = (
            await run_pytest(
                target, [f"tests/test_{name}.py"], limits=tester.limits, sandbox=sandbox
            )
            if test_file.is_file()
            else None
        )
        last = max(task.results) if task.results else None
        # accepted by the gate and passing in the project as written: the report never
        # says "accepted" for a module whose own tests fail there
        ok = task.outcome == "accepted" and (final is None or final.passed)
        results.append(
            CodeModule(
                name=name,
                status="accepted" if ok else "failed",
                tests_run=final.tests_run if final is not None else 0,
                tests_passed=final.tests_passed if final is not None else 0,
                review=_review_of(task),
                attempts=len(task.results),
                coder=task.results[last].origin if last is not None else None,
            )
        )
    shutil.rmtree(target / ".sandbox", ignore_errors=True)
    accepted = sum(m.status == "accepted" for m in results)
    summary = summarize(report, consensus=accepted, total=len(results))
    return CodeReport(
        out=str(target),
        modules=results,
        summary=summary,
        package=package,
        tester_failures=list(tester.own_failures),
    )
