"""A scripted "model" that knows the planted issues of the samples (tests only).

``review`` and ``swarm`` ask their lenses focused questions about one line each (see
:mod:`smesh.apps.questions`): the region of the file first, then ``<lens> check, line
N: ...`` and a choice of answers whose first one confirms the problem. The oracle confirms
exactly when a planted issue of the asking lens (its category, or a CWE of its specialty)
lies within the tolerance of that line, and a judge (a prompt with ``Reported:``) agrees
on the same condition. Extra false positives can be planted per lens: the oracle then
confirms that check as a scanner (but, knowing the truth, rejects it as a judge).
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

_REGION = re.compile(r"^File (\S+) \((\w+)\), lines (\d+)-(\d+):", re.M)
_CHECK = re.compile(r"^(\S+) check, line (\d+):", re.M)
_CLAIM = re.compile(r"^Reported as (\S+):", re.M)


def canonical(cwe: int) -> int:
    return CWE_ALIASES.get(cwe, cwe)


def _issue_file(path: str, issue: dict[str, Any]) -> bool:
    return (
        issue["file"] == path or issue["file"].endswith("/" + path) or path.endswith(issue["file"])
    )


def planted(path: str, line: int, lens: str) -> bool:
    """Whether a planted issue of ``lens`` (a lens name, or a finding label: a review
    category or ``CWE-n``) lies near ``line`` of ``path``."""
    specialty = SPECIALISTS.get(lens)
    for issue in ISSUES:
        if not _issue_file(path, issue) or abs(issue["line"] - line) > TOLERANCE:
            continue
        if lens.startswith("CWE-"):
            if canonical(int(lens[4:])) in {canonical(c) for c in issue["cwes"]}:
                return True
        elif specialty is not None and specialty.cwes:
            wanted = {canonical(c) for c in specialty.cwes}
            if wanted & {canonical(c) for c in issue["cwes"]}:
                return True
        elif lens in LENSES and issue["category"] == lens:
            return True
    return False


class Oracle:
    """Call it with a request; see the module docstring."""

    def __init__(
        self, root: Path, *, false_positives: dict[str, list[dict[str, Any]]] | None = None
    ) -> None:
        self.root = root
        self.false_positives = false_positives or {}
        self.scans: list[tuple[str, str]] = []
        self.checks: list[tuple[str, str, int]] = []
        self.judged: list[tuple[str, str, int, str]] = []

    def _planted_fp(self, lens: str, path: str, line: int) -> bool:
        return any(
            _issue_file(path, fp) and abs(fp["line"] - line) <= TOLERANCE
            for fp in self.false_positives.get(lens, [])
        )

    def __call__(self, request: Request) -> dict[str, Any]:
        prompt = request.messages[-1].content
        region = _REGION.search(prompt)
        check = _CHECK.search(prompt)
        assert region is not None and check is not None, prompt
        path, lens, line = region.group(1), check.group(1), int(check.group(2))
        properties = (request.json_schema or {})["properties"]
        options = properties["answer"]["enum"]
        answer: dict[str, Any] = {}
        if "source_line" in properties:
            answer["source_line"] = properties["source_line"]["enum"][0]
        claim = _CLAIM.search(prompt)
        if claim is not None:
            truth = planted(path, line, claim.group(1))  # judged by what was reported
            self.judged.append((lens, path, line, "agree" if truth else "disagree"))
            ok = truth
        else:
            if (lens, path) not in self.scans:
                self.scans.append((lens, path))
            self.checks.append((lens, path, line))
            ok = planted(path, line, lens) or self._planted_fp(lens, path, line)
        answer["reason"] = "planted" if ok else "not an issue"
        answer["answer"] = options[0] if ok else options[1]
        return answer


def oracle_backend(root: Path, **options: Any) -> tuple[FunctionBackend, Oracle]:
    oracle = Oracle(root, **options)
    return FunctionBackend(oracle, name="oracle"), oracle


def as_planted(found: set[tuple[str, int, str]]) -> set[tuple[str, int, str]]:
    """``(file, line, category)`` findings mapped onto the planted issue within the
    tolerance: a finding is filed at the sink's line (the query executed), which may be a
    line or two from where the issue was planted (the query built)."""
    out = set()
    for file, line, category in found:
        match = [
            (i["file"], i["line"], i["category"])
            for i in ISSUES
            if i["file"] == file
            and i["category"] == category
            and abs(i["line"] - line) <= TOLERANCE
        ]
        out.add(match[0] if match else (file, line, category))
    return out
