"""Non-LLM analyzers that join a swarm as agents: bandit first, others by registration.

An analyzer is anything with a ``name`` and ``async run(root, files) -> [RawFinding]``.
Each runs as a subprocess with a timeout, is killed and reaped if it overruns, and
reports weaknesses by CWE so that its findings meet the LLM specialists' on the same key.
Register another with :func:`register_analyzer` (e.g. semgrep, gosec, eslint).

File names come from the scanned repository, so they are hostile input: a file called
``-o.py`` must not become an option. :func:`file_arguments` makes each name unreadable as
an option (``./`` in front) and the analyzers pass them after ``--``, in batches that keep
the command line short. An analyzer that fails (an error exit, output it cannot parse, a
timeout) raises :class:`~smesh.errors.AnalyzerFailed`: a failed analyzer is never a clean
scan with no findings.
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

from smesh.errors import AnalyzerFailed, BackendUnavailable, UnknownName

__all__ = [
    "ANALYZERS",
    "Analyzer",
    "BanditAnalyzer",
    "RawFinding",
    "file_arguments",
    "make_analyzer",
    "register_analyzer",
    "run_tool",
]

#: longest file list (bytes) handed to one analyzer process; more files run in batches
MAX_ARGV_BYTES = 64 * 1024
#: most bytes of stdout kept from an analyzer (its JSON report); more is a failure
MAX_OUTPUT_BYTES = 64 * 1024**2


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


def file_arguments(files: Sequence[str], max_bytes: int = MAX_ARGV_BYTES) -> list[list[str]]:
    """Relative file names as safe command-line arguments, in batches.

    Each name gets a ``./`` in front, so that no name (``-o.py``, ``--flag.py``) can be
    read as an option even by a tool that ignores ``--``; absolute names and names that
    climb out of the root (``..``) are dropped. Batches stay under ``max_bytes``.
    """
    batches: list[list[str]] = []
    size = 0
    for name in files:
        parts = name.split("/")
        if not name or name.startswith("/") or ".." in parts or "\0" in name:
            continue
        arg = "./" + name
        if not batches or size + len(arg) + 1 > max_bytes:
            batches.append([])
            size = 0
        batches[-1].append(arg)
        size += len(arg) + 1
    return batches


async def _read_capped(stream: asyncio.StreamReader | None, limit: int) -> tuple[bytes, bool]:
    """Read ``stream`` to its end keeping at most ``limit`` bytes; True if it had more."""
    if stream is None:
        return b"", False
    kept = bytearray()
    over = False
    while chunk := await stream.read(1 << 16):
        if len(kept) + len(chunk) > limit:
            over = True
            kept += chunk[: max(0, limit - len(kept))]
        else:
            kept += chunk
    return bytes(kept), over


async def run_tool(
    argv: Sequence[str],
    *,
    cwd: Path,
    timeout_s: float,
    name: str,
    max_output: int = MAX_OUTPUT_BYTES,
) -> tuple[int, bytes, bytes]:
    """Run a tool, return ``(exit status, stdout, stderr)``; kill and reap it on timeout.

    Raises:
        BackendUnavailable: it could not start.
        AnalyzerFailed: it did not finish in time, or printed more than ``max_output``.
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
            (out, out_over), (err, _) = await asyncio.gather(
                _read_capped(proc.stdout, max_output), _read_capped(proc.stderr, 1 << 20)
            )
            await proc.wait()
    except (TimeoutError, asyncio.CancelledError) as exc:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proc.wait(), 5.0)
        if isinstance(exc, asyncio.CancelledError):
            raise
        raise AnalyzerFailed(f"{name}: no answer within {timeout_s:g} s", backend=name) from None
    if out_over:
        raise AnalyzerFailed(f"{name}: printed more than {max_output} bytes", backend=name)
    return proc.returncode or 0, out, err


_BANDIT_SEVERITY = {"LOW": "low", "MEDIUM": "medium", "HIGH": "high"}
#: rules bandit files under a CWE other than the weakness they describe (eval and exec
#: under OS command injection, yaml.load under input validation): findings are keyed by
#: CWE, so these are re-filed where a specialist of that weakness meets them
BANDIT_RULE_CWE: dict[str, int] = {"B307": 94, "B102": 94, "B506": 502}
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
        """Run bandit on the Python files among ``files`` (names after ``--``).

        Raises:
            BackendUnavailable: bandit is not installed.
            AnalyzerFailed: bandit exited with an error, timed out, or printed no report.
        """
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
        findings: list[RawFinding] = []
        for batch in file_arguments(targets):
            code, out, err = await run_tool(
                [*argv, "--", *batch], cwd=base, timeout_s=self.timeout_s, name=self.name
            )
            if code not in (0, 1):  # 1 means "issues found"
                tail = err.decode(errors="replace").strip().splitlines()
                raise AnalyzerFailed(
                    f"bandit failed (exit {code}): {tail[-1] if tail else 'no output'}",
                    backend=self.name,
                )
            findings += parse_bandit(out)
        findings.sort(key=lambda f: (f.file, f.line_start, f.rule))
        return findings


def parse_bandit(out: bytes) -> list[RawFinding]:
    """Findings from bandit's JSON report.

    Raises:
        AnalyzerFailed: the output is empty, not JSON, or not a bandit report.
    """
    text = out.decode("utf-8", errors="replace")
    if not text.strip():
        raise AnalyzerFailed("bandit printed no report", backend="bandit")
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AnalyzerFailed(f"bandit printed invalid JSON: {exc}", backend="bandit") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise AnalyzerFailed("bandit's report has no results list", backend="bandit")
    findings: list[RawFinding] = []
    for item in data["results"]:
        cwe = item.get("issue_cwe") or {}
        lines = item.get("line_range") or [item.get("line_number", 1)]
        path = str(item.get("filename", "")).replace(os.sep, "/")
        while path.startswith("./"):
            path = path[2:]
        findings.append(
            RawFinding(
                file=path,
                line_start=int(item.get("line_number", lines[0])),
                line_end=int(max(lines)),
                cwe=BANDIT_RULE_CWE.get(str(item.get("test_id", "")), int(cwe.get("id", 0) or 0)),
                severity=_BANDIT_SEVERITY.get(str(item.get("issue_severity")), "medium"),
                rule=str(item.get("test_id", "")),
                message=str(item.get("issue_text", "")).strip(),
            )
        )
    findings.sort(key=lambda f: (f.file, f.line_start, f.rule))
    return findings


def _flow() -> Analyzer:
    from smesh.apps.flowcheck import FlowAnalyzer  # it builds on this module

    return FlowAnalyzer()


#: analyzer name -> factory
ANALYZERS: dict[str, Callable[[], Analyzer]] = {"bandit": BanditAnalyzer, "flow": _flow}


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
