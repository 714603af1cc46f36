"""Non-LLM analyzers that join a swarm as agents: bandit first, others by registration.

An analyzer is anything with a ``name`` and ``async run(root, files) -> [RawFinding]``.
Each runs as a subprocess with a timeout, is killed and reaped if it overruns, and
reports weaknesses by CWE so that its findings meet the LLM specialists' on the same key.
Register another with :func:`register_analyzer` (e.g. semgrep, gosec, eslint).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import msgspec

from smesh.errors import BackendError, BackendUnavailable, UnknownName

__all__ = [
    "ANALYZERS",
    "Analyzer",
    "BanditAnalyzer",
    "RawFinding",
    "make_analyzer",
    "register_analyzer",
    "run_tool",
]


class RawFinding(msgspec.Struct, frozen=True, kw_only=True):
    """One issue as an analyzer reports it.

    Attributes:
        file: path relative to the analyzed root, ``/`` separated.
        line_start: first line.
        line_end: last line.
        cwe: the weakness id.
        severity: ``low``, ``medium`` or ``high``.
        rule: the analyzer's own rule id (``B608``).
        message: what it says.
    """

    file: str
    line_start: int
    line_end: int
    cwe: int
    severity: str
    rule: str
    message: str


@runtime_checkable
class Analyzer(Protocol):
    """A static analyzer that can join the swarm."""

    name: str

    async def run(self, root: Path, files: Sequence[str]) -> list[RawFinding]:
        """Analyze ``files`` (relative to ``root``) and return what it finds."""
        ...


async def run_tool(
    argv: Sequence[str], *, cwd: Path, timeout_s: float, name: str
) -> tuple[int, bytes, bytes]:
    """Run a tool, return ``(exit status, stdout, stderr)``; kill and reap it on timeout.

    Raises:
        BackendError: it did not finish in time or could not start.
    """
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise BackendUnavailable(f"{name}: cannot start: {exc}", backend=name) from None
    try:
        async with asyncio.timeout(timeout_s):
            out, err = await proc.communicate()
    except (TimeoutError, asyncio.CancelledError) as exc:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proc.wait(), 5.0)
        if isinstance(exc, asyncio.CancelledError):
            raise
        raise BackendError(f"{name}: no answer within {timeout_s:g} s", backend=name) from None
    return proc.returncode or 0, out, err


_BANDIT_SEVERITY = {"LOW": "low", "MEDIUM": "medium", "HIGH": "high"}
#: bandit's import-only warnings (B4xx blacklist imports) and asserts: the call-site rules
#: already catch the real uses, so these are skipped unless asked for
BANDIT_DEFAULT_SKIPS: tuple[str, ...] = ("B101", "B403", "B404")


class BanditAnalyzer:
    """bandit, run as ``python -m bandit -f json`` on the selected Python files.

    Args:
        skips: bandit test ids to skip.
        timeout_s: longest bandit may run.
        python: the interpreter that has bandit installed.
    """

    name = "bandit"

    def __init__(
        self,
        *,
        skips: Sequence[str] = BANDIT_DEFAULT_SKIPS,
        timeout_s: float = 120.0,
        python: str = sys.executable,
    ) -> None:
        self.skips = tuple(skips)
        self.timeout_s = timeout_s
        self.python = python

    def available(self) -> bool:
        """Whether bandit can be imported by :attr:`python`."""
        if self.python == sys.executable:
            import importlib.util

            return importlib.util.find_spec("bandit") is not None
        return shutil.which(self.python) is not None

    async def run(self, root: Path, files: Sequence[str]) -> list[RawFinding]:
        """Run bandit on the Python files among ``files``."""
        targets = [f for f in files if f.endswith((".py", ".pyi"))]
        if not targets:
            return []
        if not self.available():
            raise BackendUnavailable(
                "bandit is not installed; run: pip install 'smesh[swarm]'", backend=self.name
            )
        base = root if root.is_dir() else root.parent
        argv = [self.python, "-m", "bandit", "-f", "json", "-q"]
        if self.skips:
            argv += ["-s", ",".join(self.skips)]
        code, out, err = await run_tool(
            [*argv, *targets], cwd=base, timeout_s=self.timeout_s, name=self.name
        )
        if code not in (0, 1):  # 1 means "issues found"
            tail = err.decode(errors="replace").strip().splitlines()
            raise BackendError(
                f"bandit failed (exit {code}): {tail[-1] if tail else 'no output'}",
                backend=self.name,
            )
        return parse_bandit(out)


def parse_bandit(out: bytes) -> list[RawFinding]:
    """Findings from bandit's JSON report."""
    try:
        data: Any = json.loads(out.decode("utf-8", errors="replace") or "{}")
    except json.JSONDecodeError as exc:
        raise BackendError(f"bandit printed invalid JSON: {exc}", backend="bandit") from None
    findings: list[RawFinding] = []
    for item in data.get("results", []):
        cwe = item.get("issue_cwe") or {}
        lines = item.get("line_range") or [item.get("line_number", 1)]
        path = str(item.get("filename", "")).replace(os.sep, "/")
        findings.append(
            RawFinding(
                file=path[2:] if path.startswith("./") else path,
                line_start=int(item.get("line_number", lines[0])),
                line_end=int(max(lines)),
                cwe=int(cwe.get("id", 0) or 0),
                severity=_BANDIT_SEVERITY.get(str(item.get("issue_severity")), "medium"),
                rule=str(item.get("test_id", "")),
                message=str(item.get("issue_text", "")).strip(),
            )
        )
    findings.sort(key=lambda f: (f.file, f.line_start, f.rule))
    return findings


#: analyzer name -> factory
ANALYZERS: dict[str, Callable[[], Analyzer]] = {"bandit": BanditAnalyzer}


def register_analyzer(name: str, factory: Callable[[], Analyzer]) -> None:
    """Make another analyzer available to ``smesh swarm --analyzers``."""
    ANALYZERS[name] = factory


def make_analyzer(name: str) -> Analyzer:
    """Build a registered analyzer by name.

    Raises:
        UnknownName: no analyzer of that name.
    """
    factory = ANALYZERS.get(name)
    if factory is None:
        raise UnknownName(f"unknown analyzer {name!r} (known: {', '.join(sorted(ANALYZERS))})")
    return factory()
