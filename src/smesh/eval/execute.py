"""Running untrusted candidate code: the one place the eval harness executes generated code.

Generated code never runs in this process (HumanEval's own ``execution.py`` would ``exec``
it in-process). :func:`run_candidate` writes the candidate and its tests into a fresh
temporary directory and runs them in :class:`smesh.sandbox.Sandbox` (bubblewrap: no
network, a read-only root, a fresh environment, limits on CPU, memory, files and
processes, everything killed at the wall-clock limit).

The sandbox protects the machine, not the score: code that deliberately prints the
runner's result lines could fake a pass. HumanEval candidates are a model's honest
attempts, so that is an accepted limit of the harness.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

import msgspec

from smesh.sandbox import Limits, Sandbox

__all__ = ["Outcome", "TestCase", "run_candidate"]

# Runs each ``test_*`` function of tests.py in order and prints one JSON line per test as
# soon as it ends, so that a run killed at its timeout still reports what it got through.
_RUNNER = """\
import json, sys, traceback
sys.setrecursionlimit(10000)
try:
    import tests
except BaseException as exc:
    print(json.dumps({"load_error": f"{type(exc).__name__}: {exc}"[:500]}), flush=True)
    raise SystemExit(3)
for name in [n for n in dir(tests) if n.startswith("test_")]:
    try:
        getattr(tests, name)()
        row = {"test": name, "ok": True}
    except BaseException as exc:
        text = f"{type(exc).__name__}: {exc}"
        row = {"test": name, "ok": False, "error": text[:500]}
    print(json.dumps(row), flush=True)
"""


class TestCase(msgspec.Struct, frozen=True):
    """One test function's result."""

    __test__ = False  # not a pytest class

    name: str
    ok: bool
    error: str = ""


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """What running a candidate against its tests gave.

    Attributes:
        tests_run: tests that reported (a test cut off by the timeout does not).
        tests_total: test functions that exist (``expected`` when given).
        tests_passed: tests that passed.
        cases: each reported test, in order.
        error: why nothing ran (the candidate did not load) or the run was cut short.
        timed_out: killed at the wall-clock limit.
        seconds: wall time of the run.
    """

    tests_run: int
    tests_total: int
    tests_passed: int
    cases: tuple[TestCase, ...] = ()
    error: str = ""
    timed_out: bool = False
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        """Every test ran and passed, and there was at least one."""
        return self.tests_total > 0 and self.tests_passed == self.tests_total

    def first_failure(self) -> str:
        """A one-line reason for the first failure (for feedback to a coder)."""
        if self.error:
            return self.error
        for case in self.cases:
            if not case.ok:
                return case.error or f"{case.name} failed"
        if self.tests_run < self.tests_total:
            return "some tests did not finish"
        return ""


async def run_candidate(
    code: str,
    tests: str,
    *,
    timeout_s: float = 10.0,
    expected: int | None = None,
    memory_bytes: int = 1024**3,
    sandbox: Sandbox | None = None,
) -> Outcome:
    """Run ``tests`` (a module of ``test_*`` functions that does ``from candidate import *``)
    against ``code`` (saved as ``candidate.py``) in the sandbox.

    Args:
        code: the candidate program.
        tests: the test module's source.
        timeout_s: wall-clock limit of the whole run.
        expected: how many tests there are (a candidate that fails to load, or hangs, then
            counts as failing all of them); default: the ``def test_`` lines in ``tests``.
        memory_bytes: memory limit of the run.
        sandbox: the sandbox to run in (default: a fresh :class:`Sandbox`).

    Raises:
        SandboxUnavailable: no isolation layer here (see :meth:`Sandbox.check`).
    """
    total = expected if expected is not None else tests.count("\ndef test_")
    total += 1 if tests.startswith("def test_") else 0
    limits = Limits(
        timeout_s=timeout_s,
        cpu_s=max(1, int(timeout_s) + 1),
        memory_bytes=memory_bytes,
        file_bytes=8 * 1024**2,
        open_files=64,
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    with tempfile.TemporaryDirectory(prefix="smesh-eval-") as tmp:
        work = Path(tmp)
        (work / "candidate.py").write_text(code, encoding="utf-8")
        (work / "tests.py").write_text(tests, encoding="utf-8")
        (work / "_runner.py").write_text(_RUNNER, encoding="utf-8")
        box = sandbox or Sandbox()
        result = await box.run([box.python, "_runner.py"], cwd=work, limits=limits)
    out = result.output.encode("utf-8")
    timed_out = result.timed_out
    return _outcome(out, total, timed_out, timeout_s, loop.time() - started)


def _outcome(out: bytes, total: int, timed_out: bool, timeout_s: float, seconds: float) -> Outcome:
    cases: list[TestCase] = []
    error = ""
    for line in out.decode("utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # the candidate's own prints
        if not isinstance(row, dict):
            continue
        if "load_error" in row:
            error = "the code does not load: " + str(row["load_error"])
        elif "test" in row:
            cases.append(TestCase(str(row["test"]), bool(row["ok"]), str(row.get("error", ""))))
    if timed_out and not error:
        error = f"timed out after {timeout_s:g} s"
    elif not cases and not error:
        error = "the test process died before reporting (resource limit or crash)"
    return Outcome(
        tests_run=len(cases),
        tests_total=max(total, len(cases)),
        tests_passed=sum(c.ok for c in cases),
        cases=tuple(cases),
        error=error,
        timed_out=timed_out,
        seconds=round(seconds, 4),
    )
