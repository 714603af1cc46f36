"""A scripted "model" that knows the planted issues of the samples (tests only).

It answers the scan prompts of ``review`` and ``swarm`` with exactly the planted issues of
the chunk it is shown (for the asking lens), and judges a finding ``agree`` when it is a
planted issue and ``disagree`` otherwise. Extra false positives can be planted per lens to
exercise disputes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from smesh.apps.lens import CWE_ALIASES
from smesh.apps.review import LENSES
from smesh.apps.swarm import SPECIALISTS
from smesh.backends.base import Request
from smesh.testing import FunctionBackend

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
EXPECTED: dict[str, Any] = json.loads((SAMPLES / "EXPECTED.json").read_text())
ISSUES: list[dict[str, Any]] = EXPECTED["issues"]
TOLERANCE: int = EXPECTED["line_tolerance"]

_SCAN = re.compile(r"^File (\S+) \((\w+)\), lines (\d+)-(\d+):", re.M)
_JUDGE = re.compile(r"reported this (\S+) issue in (\S+), line (\d+)")


def canonical(cwe: int) -> int:
    return CWE_ALIASES.get(cwe, cwe)


def _lens_of(request: Request) -> tuple[str, tuple[int, ...]]:
    for lens in (*LENSES.values(), *SPECIALISTS.values()):
        if request.system == lens.role:
            return lens.name, lens.cwes
    raise AssertionError(f"unknown role {request.system!r}")


def _issue_file(path: str, issue: dict[str, Any]) -> bool:
    return (
        issue["file"] == path or issue["file"].endswith("/" + path) or path.endswith(issue["file"])
    )


class Oracle:
    """Call it with a request; see the module docstring."""

    def __init__(
        self, root: Path, *, false_positives: dict[str, list[dict[str, Any]]] | None = None
    ) -> None:
        self.root = root
        self.false_positives = false_positives or {}
        self.scans: list[tuple[str, str]] = []
        self.judged: list[tuple[str, str, int, str]] = []

    def _line(self, path: str, number: int) -> str:
        target = self.root if self.root.is_file() else self.root / path
        return target.read_text().splitlines()[number - 1]

    def __call__(self, request: Request) -> dict[str, Any]:
        prompt = request.messages[-1].content
        name, cwes = _lens_of(request)
        judge = _JUDGE.search(prompt)
        if judge is not None:
            label, path, line = judge.group(1), judge.group(2), int(judge.group(3))
            ok = any(self._matches(i, path, label, line) for i in ISSUES)
            self.judged.append((name, path, line, "agree" if ok else "disagree"))
            return {
                "verdict": "agree" if ok else "disagree",
                "reason": "planted" if ok else "not an issue",
            }
        scan = _SCAN.search(prompt)
        assert scan is not None, prompt
        path, start, end = scan.group(1), int(scan.group(3)), int(scan.group(4))
        self.scans.append((name, path))
        found: list[dict[str, Any]] = []
        for issue in ISSUES:
            if not _issue_file(path, issue) or not start <= issue["line"] <= end:
                continue
            if cwes:
                picked = [c for c in issue["cwes"] if c in cwes]
                if not picked:
                    continue
                extra: dict[str, Any] = {"cwe": picked[0]}
            elif issue["category"] == name:
                extra = {}
            else:
                continue
            found.append(
                {
                    **extra,
                    "line": issue["line"],
                    "code": self._line(path, issue["line"]).strip(),
                    "severity": issue["severity"],
                    "message": issue["what"],
                }
            )
        for fp in self.false_positives.get(name, []):
            if _issue_file(path, fp) and start <= fp["line"] <= end:
                found.append(
                    {
                        "line": fp["line"],
                        "code": self._line(path, fp["line"]).strip(),
                        "severity": "low",
                        "message": fp["what"],
                    }
                )
        return {"findings": found}

    @staticmethod
    def _matches(issue: dict[str, Any], path: str, label: str, line: int) -> bool:
        if not _issue_file(path, issue) or abs(issue["line"] - line) > TOLERANCE:
            return False
        if label.startswith("CWE-"):
            return canonical(int(label[4:])) in {canonical(c) for c in issue["cwes"]}
        return bool(issue["category"] == label)


def oracle_backend(root: Path, **options: Any) -> tuple[FunctionBackend, Oracle]:
    oracle = Oracle(root, **options)
    return FunctionBackend(oracle, name="oracle"), oracle
