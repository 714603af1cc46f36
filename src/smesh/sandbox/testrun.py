"""Running pytest in a sandbox and counting the results from its JUnit report."""

from __future__ import annotations

import os
import sys
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path

import msgspec

from smesh.sandbox.box import Sandbox
from smesh.sandbox.host import Limits

__all__ = ["TestRun", "run_pytest"]

#: characters of pytest's output a TestRun keeps (for the coder's feedback)
_KEEP = 2000
_MAX_REPORT_BYTES = 16 * 1024**2


class TestRun(msgspec.Struct, frozen=True, kw_only=True):
    """What a test run did.

    Attributes:
        tests_run: tests collected and run.
        tests_passed: tests that passed.
        passed: every test passed and at least one ran.
        exit_code: pytest's exit status (-9 when killed).
        timed_out: killed at the wall-clock limit.
        output: the tail of pytest's output (for feedback).
        killed_by: the limit that ended the run (``timeout``, ``memory``), if any.
        isolated: ran inside the sandbox (False: unsafe local execution).
    """

    __test__ = False  # not a pytest test class

    tests_run: int
    tests_passed: int
    passed: bool
    exit_code: int
    timed_out: bool = False
    output: str = ""
    killed_by: str = ""
    isolated: bool = True


def _counts(report: Path) -> tuple[int, int]:
    try:
        if not report.is_file() or report.stat().st_size > _MAX_REPORT_BYTES:
            return 0, 0
        root = ET.parse(report).getroot()
    except (OSError, ET.ParseError):
        return 0, 0
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    run = failed = 0
    for suite in suites:
        tests = int(suite.get("tests", 0))
        skipped = int(suite.get("skipped", 0))
        run += tests - skipped
        failed += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    return run, max(0, run - failed)


async def run_pytest(
    workdir: Path,
    tests: list[str],
    *,
    limits: Limits | None = None,
    python: str = sys.executable,
    env: Mapping[str, str] | None = None,
    sandbox: Sandbox | None = None,
) -> TestRun:
    """Run pytest on ``tests`` (paths relative to ``workdir``) in a sandbox on ``workdir``.

    ``python`` is the interpreter when no ``sandbox`` is given (else the sandbox's). The
    counts come from pytest's JUnit report (ignored when larger than 16 MiB: it was
    written where the code under test could write too).

    Raises:
        SandboxUnavailable: no isolation layer, and the sandbox is not opted in to
            unsafe local execution.
    """
    box = sandbox or Sandbox(python=python)
    python = box.python
    root = Path(os.path.realpath(workdir))
    report = root / ".sandbox" / "junit.xml"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.unlink(missing_ok=True)
    argv = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(root)]
    argv += [f"--junitxml={report}", *tests]
    # plain pytest: no plugin of the caller's environment loads (faster, and the generated
    # tests behave the same whatever is installed)
    environment = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", **(env or {})}
    result = await box.run(argv, cwd=root, env=environment, limits=limits)
    run, passed = _counts(report)
    text = result.output if not result.error else f"{result.output}\n(sandbox: {result.error})"
    if len(text) > _KEEP:
        text = (
            f"[... {result.output_bytes - _KEEP} bytes of output not shown ...]\n" + text[-_KEEP:]
        )
    return TestRun(
        tests_run=run,
        tests_passed=passed,
        passed=result.ok and run > 0 and passed == run,
        exit_code=result.exit_code,
        timed_out=result.timed_out,
        output=text,
        killed_by=result.killed_by,
        isolated=result.isolated,
    )
