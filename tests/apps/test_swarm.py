"""``run_swarm`` on the planted samples: specialists (scripted) and bandit (real)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from _oracle import ISSUES, SAMPLES, TOLERANCE, canonical, oracle_backend

from smesh.apps.analyzers import RawFinding, parse_bandit
from smesh.apps.reports import swarm_text
from smesh.apps.swarm import SwarmReport, run_swarm, swarm_sarif
from smesh.errors import UsageError
from smesh.testing import ScriptedBackend

pytest.importorskip("bandit", reason="the swarm tests run the real bandit")

KEYS = ["file", "line", "cwe", "severity", "message", "support", "consensus", "reporters", "flow"]
EXPECTED = {(i["file"], i["line"], f"CWE-{canonical(i['cwes'][0])}") for i in ISSUES if i["cwes"]}
BANDIT = {(i["file"], i["line"]) for i in ISSUES if i["bandit"]}


def planted(file: str, line: int, cwe: str | None = None) -> tuple[str, int, str] | None:
    """The planted vulnerability a finding at ``file:line`` (of ``cwe``) stands for.

    Findings are filed at the line of the sink (the query executed, the file opened),
    which may be a line or two from where the issue was planted (the query built)."""
    for pf, pl, pc in EXPECTED:
        if pf == file and abs(pl - line) <= TOLERANCE and cwe in (None, pc):
            return pf, pl, pc
    return None


def swarm(**kw: Any) -> tuple[SwarmReport, Any]:
    backend, oracle = oracle_backend(SAMPLES)
    return asyncio.run(run_swarm(SAMPLES, backend, **kw)), oracle


@pytest.fixture(scope="module")
def scanned() -> tuple[SwarmReport, Any]:
    return swarm()


def test_every_planted_vulnerability_is_found_once(scanned: tuple[SwarmReport, Any]) -> None:
    report, _ = scanned
    assert {planted(f.file, f.line, f.cwe) for f in report.findings} == EXPECTED
    assert len(report.findings) == len(EXPECTED)  # bandit and a specialist: one finding


def test_bandit_and_a_specialist_corroborate_the_same_finding(
    scanned: tuple[SwarmReport, Any],
) -> None:
    report, _ = scanned
    for f in report.findings:
        assert f.consensus, f
        origin = planted(f.file, f.line, f.cwe)
        assert origin is not None
        if origin[:2] in BANDIT:
            # bandit and the specialist of the CWE, asked about that sink: no judge needed
            assert sorted(f.support) == sorted(["bandit", _specialist(f.cwe)]), f
        elif f.file.endswith(".js") and f.cwe != "CWE-798":
            # the flow analysis traced req.query into the sink; the specialist confirmed
            assert sorted(f.support) == sorted(["flow", _specialist(f.cwe)]), f
        else:
            # only a specialist found it; another specialist judged it blind and agreed
            assert "bandit" not in f.support and len(f.support) == 2, f


def _specialist(cwe: str) -> str:
    from smesh.apps.swarm import SPECIALISTS

    return next(n for n, lens in SPECIALISTS.items() if int(cwe[4:]) in lens.cwes)


def test_the_json_contract_has_exactly_the_documented_keys(
    scanned: tuple[SwarmReport, Any],
) -> None:
    report, _ = scanned
    doc = report.contract()
    assert list(doc) == ["findings", "summary", "plan"]
    assert all(list(f) == KEYS for f in doc["findings"])
    assert doc["summary"]["consensus"] == len(EXPECTED)
    assert doc["plan"]["checks"] == doc["plan"]["tasks"] == 10  # one per sink to confirm


def test_sarif_output_is_valid_2_1_0(
    scanned: tuple[SwarmReport, Any], validate_sarif: Callable[[Any], None]
) -> None:
    report, _ = scanned
    sarif = swarm_sarif(report)
    validate_sarif(sarif)
    run = sarif["runs"][0]
    assert run["tool"]["driver"]["name"] == "smesh-swarm"
    rules = {r["id"] for r in run["tool"]["driver"]["rules"]}
    assert rules == {cwe for _, _, cwe in EXPECTED}
    assert {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in run["results"]
    } == {f for f, _, _ in EXPECTED}
    # a traced path is a code flow: the SQL injection's goes from find_user's parameter
    sqli = next(r for r in run["results"] if r["ruleId"] == "CWE-89")
    steps = sqli["codeFlows"][0]["threadFlows"][0]["locations"]
    lines = [s["location"]["physicalLocation"]["region"]["startLine"] for s in steps]
    assert lines == [13, 15, 16]
    assert f"Consensus ({len(EXPECTED)})" in swarm_text(report)


def test_copies_of_one_specialist_are_not_independent_support() -> None:
    report, oracle = swarm(specialists=["path-traversal", "path-traversal"], analyzers=[])
    [finding] = report.findings
    assert (finding.file, finding.line, finding.cwe) == ("vulnerable_py/app/files.py", 13, "CWE-22")
    assert len(finding.support) == 1 and not finding.consensus
    assert oracle.judged == []  # a copy never judges its own specialty's finding
    # with one independent voice enough, the same finding is agreed
    report, _ = swarm(specialists=["path-traversal", "path-traversal"], analyzers=[], consensus=1)
    assert report.findings[0].consensus


def test_bandit_alone_cannot_reach_a_consensus_of_two() -> None:
    report, _ = swarm(specialists=[], analyzers=["bandit"])
    assert {planted(f.file, f.line)[:2] for f in report.findings} == BANDIT  # type: ignore[index]
    assert all(f.support == ["bandit"] and not f.consensus for f in report.findings)
    assert report.summary.llm_calls == 0


def test_a_specialist_judges_what_bandit_found_in_its_specialty() -> None:
    report, oracle = swarm(specialists=["deserialization"], analyzers=["bandit"])
    pickle = next(f for f in report.findings if f.cwe == "CWE-502")
    # the deserialization specialist found it too: corroboration by report, no judging
    assert sorted(pickle.support) == ["bandit", "deserialization"] and pickle.consensus
    sqli = next(f for f in report.findings if f.cwe == "CWE-89")
    # no injection specialist: the only specialist fills in as judge, and agrees
    assert sorted(sqli.support) == ["bandit", "deserialization"] and sqli.consensus
    assert ("deserialization", "vulnerable_py/app/db.py", 16, "agree") in oracle.judged


class FakeAnalyzer:
    """A second analyzer plugged into the swarm: reports the SQL injection as CWE-89."""

    name = "fake-sast"

    async def run(self, root: Path, files: Sequence[str]) -> list[RawFinding]:
        return [
            RawFinding(
                file="vulnerable_py/app/db.py",
                line_start=16,
                line_end=16,
                cwe=89,
                severity="high",
                rule="FAKE1",
                message="query built from input",
            )
        ]


def test_another_analyzer_plugs_in_and_counts_as_an_independent_voice() -> None:
    report = asyncio.run(
        run_swarm(SAMPLES, None, specialists=[], analyzers=["bandit", FakeAnalyzer()])
    )
    sqli = next(f for f in report.findings if f.cwe == "CWE-89")
    assert sorted(sqli.support) == ["bandit", "fake-sast"] and sqli.consensus
    assert sum(f.consensus for f in report.findings) == 1


def test_parse_bandit_reads_its_json_report() -> None:
    raw = b"""{"results": [{"filename": "./a/b.py", "line_number": 3, "line_range": [3, 4],
    "issue_cwe": {"id": 78}, "issue_severity": "HIGH", "test_id": "B602",
    "issue_text": "shell"}], "errors": []}"""
    [f] = parse_bandit(raw)
    assert (f.file, f.line_start, f.line_end, f.cwe, f.severity, f.rule) == (
        "a/b.py",
        3,
        4,
        78,
        "high",
        "B602",
    )


def test_bad_arguments_are_usage_errors() -> None:
    backend = ScriptedBackend([])
    with pytest.raises(UsageError, match="unknown specialist"):
        asyncio.run(run_swarm(SAMPLES, backend, specialists=["phishing"]))
    with pytest.raises(UsageError, match="consensus"):
        asyncio.run(run_swarm(SAMPLES, backend, consensus=0))
    with pytest.raises(UsageError, match="unknown analyzer"):
        asyncio.run(run_swarm(SAMPLES, backend, analyzers=["nope"]))
    with pytest.raises(UsageError, match="at least one"):
        asyncio.run(run_swarm(SAMPLES, None, specialists=[], analyzers=[]))
