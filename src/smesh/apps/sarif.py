"""SARIF 2.1.0 output for ``review`` and ``swarm``: the one writer both use.

One run, one tool (``smesh-review`` or ``smesh-swarm``), one rule per category or CWE.
Agreed findings are results of kind ``fail`` with a level from their severity; findings
the agents did not agree on are kept as kind ``review`` (level ``none``, as SARIF requires
for any kind but ``fail``), so a viewer can show them apart. Who supported a finding, and
whether it was disputed, goes in the result's property bag; the run's summary goes in the
run's. An app says which rules it has and how one of its findings reads as a SARIF result
(a ``sarif()`` method, see :class:`SarifFinding`); :func:`sarif_log` does the rest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import msgspec

from smesh._version import __version__
from smesh.apps.common import ScanReport

__all__ = ["SARIF_SCHEMA_URI", "SarifFinding", "SarifResult", "SarifRule", "sarif_log", "to_sarif"]

SARIF_SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVELS = {"high": "error", "medium": "warning", "low": "note"}


class SarifRule(msgspec.Struct, frozen=True, kw_only=True):
    """A rule: a review category or a CWE.

    Attributes:
        id: ``security`` or ``CWE-89``.
        description: one line about it.
        tags: extra tags (``security``, ``external/cwe/cwe-89``).
    """

    id: str
    description: str
    tags: tuple[str, ...] = ()


class _Finding(Protocol):
    """What every scan finding has, whatever else its report says about it."""

    @property
    def file(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def support(self) -> list[str]: ...
    @property
    def consensus(self) -> bool: ...


class SarifResult(msgspec.Struct, frozen=True, kw_only=True):
    """One finding as SARIF sees it."""

    rule: str
    file: str
    line_start: int
    line_end: int
    severity: str
    message: str
    consensus: bool
    properties: dict[str, Any] = {}
    flow: tuple[Any, ...] = ()

    @classmethod
    def of(
        cls,
        finding: _Finding,
        *,
        rule: str,
        lines: tuple[int, int],
        flow: tuple[Any, ...] = (),
        **properties: Any,
    ) -> SarifResult:
        """The result of a scan finding under ``rule``; its supporters and ``properties``
        go in the property bag, its source-to-sink path (steps with ``line``, ``code`` and
        ``note``) becomes a code flow."""
        return cls(
            rule=rule,
            file=finding.file,
            line_start=lines[0],
            line_end=lines[1],
            severity=finding.severity,
            message=finding.message,
            consensus=finding.consensus,
            properties={"support": finding.support, **properties},
            flow=flow,
        )


class SarifFinding(Protocol):
    """A finding that knows how it reads as a SARIF result."""

    def sarif(self) -> SarifResult:
        """This finding as a SARIF result."""
        ...


def _rule(rule: SarifRule) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": rule.id,
        "name": rule.id.replace("-", ""),
        "shortDescription": {"text": rule.description},
    }
    if rule.id.startswith("CWE-"):
        number = rule.id.split("-", 1)[1]
        data["helpUri"] = f"https://cwe.mitre.org/data/definitions/{number}.html"
    if rule.tags:
        data["properties"] = {"tags": list(rule.tags)}
    return data


def _code_flow(file: str, steps: Sequence[Any]) -> dict[str, Any]:
    """A source-to-sink path as a SARIF code flow: one thread, one location per step."""
    locations = [
        {
            "location": {
                "physicalLocation": {
                    "artifactLocation": {"uri": file, "uriBaseId": "SRCROOT"},
                    "region": {"startLine": max(1, int(step.line))},
                },
                "message": {"text": str(step.note) or "step"},
            }
        }
        for step in steps
    ]
    return {"threadFlows": [{"locations": locations}]}


def _fingerprint(result: SarifResult) -> str:
    text = f"{result.rule}\0{result.file}\0{result.line_start}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def to_sarif(
    *,
    tool: str,
    rules: Sequence[SarifRule],
    results: Sequence[SarifResult],
    root: str | Path | None = None,
    properties: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A SARIF 2.1.0 log with one run.

    Args:
        tool: the driver's name.
        rules: every rule a result may refer to (more are added for unknown ids).
        results: the findings.
        root: the analyzed directory; result URIs are relative to it (``SRCROOT``).
        properties: extra facts about the run (the summary).
    """
    index: dict[str, int] = {}
    table: list[dict[str, Any]] = []
    for rule in [*rules, *(SarifRule(id=r.rule, description=r.rule) for r in results)]:
        if rule.id not in index:
            index[rule.id] = len(table)
            table.append(_rule(rule))
    out_results: list[dict[str, Any]] = []
    for r in results:
        location = {
            "physicalLocation": {
                "artifactLocation": {"uri": r.file, "uriBaseId": "SRCROOT"},
                "region": {"startLine": max(1, r.line_start), "endLine": max(1, r.line_end)},
            }
        }
        item: dict[str, Any] = {
            "ruleId": r.rule,
            "ruleIndex": index[r.rule],
            "kind": "fail" if r.consensus else "review",
            "level": _LEVELS.get(r.severity, "warning") if r.consensus else "none",
            "message": {"text": r.message or r.rule},
            "locations": [location],
            "partialFingerprints": {"smesh/v1": _fingerprint(r)},
            "properties": {"severity": r.severity, "consensus": r.consensus, **r.properties},
        }
        if r.flow:
            item["codeFlows"] = [_code_flow(r.file, r.flow)]
        out_results.append(item)
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": tool,
                "version": __version__,
                "informationUri": "https://github.com/smesh/smesh",
                "rules": table,
            }
        },
        "columnKind": "utf16CodeUnits",
        "results": out_results,
    }
    if root is not None:
        uri = Path(root).resolve().as_uri()
        run["originalUriBaseIds"] = {"SRCROOT": {"uri": uri if uri.endswith("/") else uri + "/"}}
    if properties:
        run["properties"] = dict(properties)
    return {"$schema": SARIF_SCHEMA_URI, "version": "2.1.0", "runs": [run]}


def sarif_log(report: ScanReport[Any], *, tool: str, rules: Sequence[SarifRule]) -> dict[str, Any]:
    """A scan report as a SARIF 2.1.0 log.

    Args:
        report: a ``review`` or ``swarm`` report; its findings are :class:`SarifFinding`.
        tool: the driver's name (``smesh-review``, ``smesh-swarm``).
        rules: the rules its findings refer to.
    """
    findings: list[SarifFinding] = report.findings
    base = Path(report.root) if report.root else None
    if base is not None and base.is_file():
        base = base.parent
    return to_sarif(
        tool=tool,
        rules=rules,
        results=[f.sarif() for f in findings],
        root=base,
        properties={"summary": msgspec.to_builtins(report.summary)},
    )
