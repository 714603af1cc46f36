"""The gate of ``smesh code``: the tester, who tests the tester, and the arbiter.

A module is accepted when the tester's tests pass *and* the reviewer approves (see
:class:`Gate`). The tester writes the tests once per module and runs them in a sandbox,
but a failing test is evidence against the test as much as against the code:

- before a test file runs it is checked (:func:`smesh.apps.testcheck.check_tests`): it
  must parse and import what it tests; a forgotten import of an interface name is added;
- a test that breaks before reaching the code (a ``NameError``, an ``ImportError``, a
  syntax error, a missing fixture) is the tester's failure: the tester rewrites its tests
  (twice at most), then drops the broken ones, and loses trust; the coder is not blamed;
- when two coders' independent implementations fail the same assertion the same way,
  the assertion is suspect: an :class:`Arbiter` (neither the tester nor the reviewer)
  judges it. A wrong assertion is dropped, the tester loses trust and the coder it got
  rejected gets that back; a right one rejects the code as usual.

If no usable test is left, the module must at least import and have its interface
(:func:`smesh.apps.testcheck.smoke_tests`).
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import msgspec

from smesh.agents import Agent, Judgement, TaskSpec, WorkContext
from smesh.agents.board import TaskBoard, TaskState
from smesh.agents.protocol import Ruling
from smesh.apps.demo import extract_code
from smesh.apps.scan import post_task
from smesh.apps.testcheck import (
    REPORTER,
    RESULTS,
    Case,
    blame,
    check_tests,
    disputed,
    drop_tests,
    interface_names,
    read_cases,
    signature,
    smoke_tests,
)
from smesh.backends.base import Backend
from smesh.sandbox import Limits, Sandbox, TestRun, run_pytest

__all__ = ["ARBITER", "REVIEWER", "TESTER", "WORKDIR", "Arbiter", "Gate", "Tester", "latest_code"]

TESTER = "tester"
REVIEWER = "reviewer"
ARBITER = "arbiter"
WORKDIR = ".smesh-work"
#: times the tester rewrites tests that broke on their own before dropping them
REWRITES = 2
#: longest the tester waits for the arbiter's ruling on one assertion
ARBITRATION_WAIT_S = 180.0

ARBITRATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "reason": {"type": "string", "maxLength": 200},
        "wrong": {"type": "string", "enum": ["the test", "the code"]},
    },
    "required": ["reason", "wrong"],
}


class Gate(Agent):
    """A verifier of the code gate: a module is accepted when the tester *and* the
    reviewer approve, and rejected as soon as either rejects (whatever their trust)."""

    def settle(self, task: TaskState, attempt: int) -> Ruling | None:
        ballots = task.ballots(attempt)
        approvers = set(ballots.get("approve", ()))
        if ballots.get("reject"):
            return Ruling("rejected", "votes")
        if {TESTER, REVIEWER} <= approvers:
            return Ruling("accepted", "votes")
        return None


def latest_code(task: TaskState) -> dict[str, str] | None:
    """The accepted output of a module task, else its latest output with code."""
    outputs = [(attempt, task.result(attempt)) for attempt in sorted(task.results, reverse=True)]
    for attempt, result in outputs:
        output = result.output if result is not None else None
        decision = task.decision(attempt)
        accepted = decision is not None and decision.verdict == "accepted"
        if accepted and isinstance(output, dict) and output.get("code"):
            return output
    for _, result in outputs:
        output = result.output if result is not None else None
        if isinstance(output, dict) and output.get("code"):
            return output
    return None


def workspace(out: Path, board: TaskBoard, task: TaskState, output: Any) -> Path:
    """A fresh directory inside ``out`` holding the package as it stands, with the
    candidate ``output`` for ``task`` in place and the outcome reporter beside it."""
    data = task.spec.input
    package = data["package"]
    work = out / WORKDIR / f"{data['module']['name']}-{task.attempt}"
    shutil.rmtree(work, ignore_errors=True)
    (work / package).mkdir(parents=True)
    (work / package / "__init__.py").write_text("", encoding="utf-8")
    for other in board.tasks.values():
        if other is task or not other.spec.task_id.startswith("module:"):
            continue
        latest = latest_code(other)
        if latest is not None:
            (work / latest["file"]).write_text(latest["code"], encoding="utf-8")
    (work / output["file"]).write_text(output["code"], encoding="utf-8")
    (work / "conftest.py").write_text(REPORTER, encoding="utf-8")
    return work


class Arbiter(Agent):
    """Rules on a suspect assertion: is the test wrong, or the code?"""

    def __init__(self, backend: Backend) -> None:
        super().__init__(
            ARBITER,
            backend=backend,
            role="You are a meticulous engineer who checks what a function must return.",
            skills={"arbitrate": 1.0},
            max_tokens=160,
            temperature=0.0,
        )

    async def perform(self, ctx: WorkContext) -> Any:
        """Ask which side is wrong; returns ``{"wrong": "the test"|"the code", "reason"}``.

        When the failure is one equality (``assert f(x) == v``), the question is concrete:
        which of the two values does ``f(x)`` return by the interface, the test's or the
        implementations'? A small model computes a value far more reliably than it judges
        "which is wrong" (asked that, it wrote "the test's expectation is wrong" and
        answered "the code"). The values are offered in a fixed (sorted) order, so neither
        side is always first."""
        data = ctx.task.input
        if data.get("call"):
            return await self._which_value(data)
        prompt = (
            f"The interface:\n{data['interface']}\n\nThis test:\n```python\n{data['test']}\n```\n"
            f"Two different implementations, written independently, both fail it the same "
            f"way:\n{data['failure']}\n\nWork out by hand what the interface promises for "
            "that input. Is the test's expectation wrong, or the code? Reply as JSON with a "
            'one-sentence "reason" and "wrong" ("the test" or "the code").'
        )
        parsed = (await self.ask(prompt, json_schema=ARBITRATION_SCHEMA)).parsed or {}
        wrong = (
            parsed.get("wrong") if parsed.get("wrong") in ("the test", "the code") else "the code"
        )
        return {"wrong": wrong, "reason": str(parsed.get("reason", ""))[:300]}

    async def _which_value(self, data: dict[str, Any]) -> dict[str, str]:
        call, expected, actual = data["call"], data["expected"], data["actual"]
        options = sorted({expected, actual})
        schema = {
            "type": "object",
            "properties": {
                "reason": {"type": "string", "maxLength": 300},
                "returns": {"type": "string", "enum": options},
            },
            "required": ["reason", "returns"],
        }
        prompt = (
            f"The interface:\n{data['interface']}\n\nBy this interface, what does "
            f"`{call}` return: {' or '.join(options)}? Work it out by hand, step by step, "
            'in "reason", then give the value in "returns".'
        )
        parsed = (await self.ask(prompt, json_schema=schema)).parsed or {}
        returns = parsed.get("returns")
        # no usable answer: the test stands, as when no ruling comes in time
        wrong = "the test" if returns == actual else "the code"
        reason = f"{call} returns {returns}: " + str(parsed.get("reason", ""))
        return {"wrong": wrong, "reason": reason[:300]}


class Tester(Gate):
    """Writes pytest tests for a module (kept in ``out/tests``), checks them, runs them,
    and tells its own failures from the coder's (see the module docstring)."""

    def __init__(
        self, backend: Backend, *, out: Path, limits: Limits, sandbox: Sandbox | None = None
    ) -> None:
        super().__init__(
            TESTER,
            backend=backend,
            role="You are a test engineer. You write small, correct pytest tests.",
            verifies={"code": 1.0},
            max_tokens=700,
        )
        self.out = out
        self.limits = limits
        self.sandbox = sandbox or Sandbox(limits=limits)
        self.runs: dict[tuple[str, int], TestRun] = {}
        #: (module task, failure signature) -> {coder: attempt} that failed that way
        self.failed_as: dict[tuple[str, str], dict[str, int]] = {}
        #: (module task, test) -> the arbiter's ruling, so one assertion is ruled on once
        self.rulings: dict[tuple[str, str], str] = {}
        #: what went wrong with the tester's own tests, for the report
        self.own_failures: list[str] = []

    def _path(self, data: dict[str, Any]) -> Path:
        return self.out / "tests" / f"test_{data['module']['name']}.py"

    def _save(self, data: dict[str, Any], tests: str) -> None:
        path = self._path(data)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(tests, encoding="utf-8")

    async def _write_tests(self, data: dict[str, Any], code: str, problems: list[str]) -> str:
        module = data["module"]
        prompt = (
            f"Write pytest tests for the module {data['package']}/{module['name']}.py.\n"
            f"Purpose: {module['purpose']}\nInterface:\n{module['interface']}\n\n"
            f"The module:\n```python\n{code[:3000]}\n```\n\n"
            f"Import it as `from {data['package']}.{module['name']} import ...`. Write 2 to 5 "
            "short test functions with plain asserts that check the interface's promises; "
            "work out each expected value by hand. Reply with the test file in one "
            "```python block."
        )
        if problems:
            prompt += "\n\nYour previous tests were broken on their own:\n" + "\n".join(
                f"- {p[:300]}" for p in problems
            )
        return extract_code((await self.ask(prompt)).text).strip() + "\n"

    async def _tests_for(self, data: dict[str, Any], code: str) -> str:
        """The module's tests: the saved ones, else freshly written and checked."""
        module = data["module"]
        names = interface_names(module["interface"])
        path = self._path(data)
        if path.is_file() and path.read_text(encoding="utf-8").strip():
            kept = check_tests(
                path.read_text(encoding="utf-8"), data["package"], module["name"], names
            )
            if not kept.problems:
                return kept.source
        problems: list[str] = []
        for _ in range(REWRITES + 1):
            checked = check_tests(
                await self._write_tests(data, code, problems),
                data["package"],
                module["name"],
                names,
            )
            if not checked.problems:
                self._save(data, checked.source)
                return checked.source
            problems = checked.problems
            self._own_failure(f"{module['name']}: {'; '.join(problems)}")
        tests = smoke_tests(data["package"], module["name"], names)
        self._save(data, tests)
        return tests

    def _own_failure(self, what: str) -> None:
        self.own_failures.append(what)
        rt = self.runtime
        rt.board.trust.record(self.id, False, rt.now())

    async def _run(
        self, task: TaskSpec, state: TaskState, output: dict[str, Any], tests: str
    ) -> tuple[TestRun, list[Case]]:
        work = workspace(self.out, self.runtime.board, state, output)
        (work / "tests").mkdir(exist_ok=True)
        name = f"tests/test_{task.input['module']['name']}.py"
        (work / name).write_text(tests, encoding="utf-8")
        run = await run_pytest(work, [name], limits=self.limits, sandbox=self.sandbox)
        return run, read_cases(work / RESULTS)

    async def judge(self, task: TaskSpec, output: Any) -> Judgement:
        """Run the module's tests against the candidate; blame each failure right."""
        if not isinstance(output, dict) or not output.get("code"):
            return Judgement("reject", "the result holds no code")
        board = self.runtime.board
        state = board.tasks[task.task_id]
        attempt = state.attempt
        coder = state.results[attempt].origin if attempt in state.results else ""
        data = task.input
        module = data["module"]
        names = interface_names(module["interface"])
        test_file = f"test_{module['name']}.py"
        tests = await self._tests_for(data, str(output["code"]))
        rewrites = 0
        for _ in range(REWRITES + 4):  # bounded: every pass rewrites, drops or decides
            run, cases = await self._run(task, state, output, tests)
            self.runs[(task.task_id, attempt)] = run
            failing = [c for c in cases if c.outcome != "passed"]
            if run.passed or not failing:
                break
            mine = [c for c in failing if blame(c, test_file, names) == "tester"]
            if mine:
                detail = "; ".join(f"{c.name}: {c.message[:120]}" for c in mine[:4])
                self._own_failure(f"{module['name']}: {detail}")
                if rewrites < REWRITES:
                    rewrites += 1
                    problems = [f"{c.name} failed on its own: {c.message[:200]}" for c in mine]
                    written = await self._write_tests(data, str(output["code"]), problems)
                    checked = check_tests(written, data["package"], module["name"], names)
                    tests = checked.source if not checked.problems else tests
                else:
                    tests = self._without(data, tests, {c.name for c in mine})
                continue
            wrong = await self._suspects(
                task, tests, failing, coder, attempt, module, str(output["code"])
            )
            if not wrong:
                break
            tests = self._without(data, tests, wrong)
        self._save(data, tests)
        if run.passed:
            return Judgement("approve", f"{run.tests_passed}/{run.tests_run} tests passed")
        failing_lines = [
            ln for ln in run.output.splitlines() if ln.startswith(("E ", "FAILED", "ERROR"))
        ]
        detail = "; ".join(failing_lines[:6]) or run.output[-400:]
        return Judgement(
            "reject", f"tests: {run.tests_passed}/{run.tests_run} passed. {detail}"[:900]
        )

    def _without(self, data: dict[str, Any], tests: str, names: set[str]) -> str:
        """``tests`` without the named tests (the smoke tests when none is left)."""
        module = data["module"]
        left = drop_tests(tests, names)
        checked = check_tests(
            left, data["package"], module["name"], interface_names(module["interface"])
        )
        if checked.problems:
            return smoke_tests(
                data["package"], module["name"], interface_names(module["interface"])
            )
        return checked.source

    async def _suspects(
        self,
        task: TaskSpec,
        tests: str,
        failing: list[Case],
        coder: str,
        attempt: int,
        module: dict[str, Any],
        code: str,
    ) -> set[str]:
        """The failed assertions the arbiter found wrong (two coders failed them alike).

        Two failures count as independent only when the implementations differ: the same
        model often writes the same code twice, and the same code failing twice is one
        piece of evidence, not two (measured: two identical ``slugify`` that dropped the
        spaces sent a right test to the arbiter, which sided with the code)."""
        names = interface_names(module["interface"])
        wrong: set[str] = set()
        state = self.runtime.board.tasks.get(task.task_id)
        mine = same_code(code)
        for case in failing:
            if blame(case, f"test_{module['name']}.py", names) != "assertion":
                continue
            seen = self.failed_as.setdefault((task.task_id, signature(case)), {})
            others = {
                c: a
                for c, a in seen.items()
                if c != coder and state is not None and same_code(_code_of(state, a)) != mine
            }
            seen.setdefault(coder, attempt)
            if not others:
                continue
            ruling = await self._arbitrate(task, tests, case, module)
            if ruling != "the test":
                continue
            wrong.add(case.name)
            self._own_failure(f"{module['name']}: {case.name} expected the wrong thing")
            self._undo(task.task_id, others)
        return wrong

    def _undo(self, task_id: str, rejected: dict[str, int]) -> None:
        """Trust as it should have moved on attempts rejected for a wrong assertion: the
        coder was right, so was every verifier that approved, the tester was not."""
        rt = self.runtime
        now = rt.now()
        state = rt.board.tasks.get(task_id)
        for coder, attempt in rejected.items():
            rt.board.trust.record(coder, True, now)
            rt.board.trust.record(self.id, False, now)
            ballots = state.ballots(attempt) if state is not None else {}
            for voter in ballots.get("approve", ()):
                if voter != self.id:
                    rt.board.trust.record(voter, True, now)

    async def _arbitrate(
        self, task: TaskSpec, tests: str, case: Case, module: dict[str, Any]
    ) -> str:
        """Post the suspect assertion for the arbiter and wait (bounded) for its ruling."""
        key = (task.task_id, case.name)
        if key in self.rulings:
            return self.rulings[key]
        source = _function_source(tests, case.name)
        question = disputed(case, tests, interface_names(module["interface"]))
        spec = TaskSpec(
            task_id=f"arbitrate:{task.task_id}:{case.name}",
            skill="arbitrate",
            description=f"is {case.name} or the code wrong?",
            priority=1.0,
            max_attempts=1,
            input={
                "interface": module["interface"],
                "test": source,
                "failure": case.message,
                **(msgspec.to_builtins(question) if question is not None else {}),
            },
        )
        post_task(self.runtime, spec, self.id)
        board = self.runtime.board
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ARBITRATION_WAIT_S
        ruling = "the code"  # no ruling in time: the test stands
        while loop.time() < deadline:
            state = board.tasks.get(spec.task_id)
            if state is not None and state.final:
                outputs = [r.payload.get("output") for r in state.results.values()]
                found = next((o for o in outputs if isinstance(o, dict)), {})
                ruling = str(found.get("wrong", "the code"))
                break
            await asyncio.sleep(0.1)
        self.rulings[key] = ruling
        return ruling


def _code_of(state: TaskState, attempt: int) -> str:
    result = state.result(attempt)
    output = result.output if result is not None else None
    return str(output.get("code", "")) if isinstance(output, dict) else ""


def same_code(code: str) -> str:
    """A key equal for two implementations that differ only in docstrings, comments,
    formatting and type hints."""
    import ast

    try:
        tree = ast.parse(code)
    except SyntaxError:
        return " ".join(code.split())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            body.pop(0)  # a docstring
        if isinstance(node, ast.arg):
            node.annotation = None
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            node.returns = None
    return ast.dump(tree)


def _function_source(source: str, name: str) -> str:
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source[:1500]
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return ast.get_source_segment(source, node) or source[:1500]
    return source[:1500]
