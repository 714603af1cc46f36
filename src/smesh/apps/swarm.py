"""``smesh swarm``: vulnerability specialists and static analyzers share one field.

LLM specialists (injection, XSS, auth, crypto, deserialization, path traversal, SSRF)
scan the files their specialty suits; non-LLM analyzers (bandit first) run over the tree
as agents of their own. Every report is a finding keyed by (file, CWE, line bucket), so a
specialist and an analyzer that see the same weakness land on one signal. The specialists
whose specialty covers a finding's CWE judge it blind, and an agreement reinforces it.

Only *independent* support counts: each specialty and each analyzer is one voice, however
many copies of a specialist run. A finding reaches consensus when ``--consensus N``
independent voices support it and the trust-weighted dissent does not outweigh them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from smesh.agents import Agent, TaskSpec, Team
from smesh.agents.board import TaskBoard
from smesh.apps.analyzers import Analyzer, make_analyzer
from smesh.apps.common import AppOptions, ScanReport, summarize
from smesh.apps.files import DEFAULT_MAX_BYTES, chunk_file, select_files
from smesh.apps.findings import ConsensusRule, FindingLedger, FindingState
from smesh.apps.sarif import SarifResult, SarifRule, to_sarif
from smesh.apps.scan import (
    AnalyzerAgent,
    Lens,
    ScanAgent,
    Settlement,
    SourceView,
    analyzer_spec,
    outputs_in_order,
    scan_spec,
)
from smesh.backends.base import Backend
from smesh.clock import SystemClock
from smesh.errors import UsageError
from smesh.field import Field
from smesh.trust import TrustTable

__all__ = [
    "DEFAULT_SPECIALISTS",
    "SPECIALISTS",
    "SwarmFinding",
    "SwarmReport",
    "analyzer_failures",
    "run_swarm",
    "swarm_sarif",
]

_CODE: tuple[str, ...] = ("python", "javascript", "typescript", "go", "rust", "java", "kotlin")
_CODE += ("c", "cpp", "csharp", "ruby", "php", "swift", "scala", "lua", "shell")
_WEB = ("javascript", "typescript", "html", "php", "ruby")


def _aff(value: float, langs: Sequence[str] = _CODE, **others: float) -> dict[str, float]:
    return {**dict.fromkeys(langs, value), **others}


def _specialist(name: str, what: str, cwes: tuple[int, ...], affinity: dict[str, float]) -> Lens:
    return Lens(
        name=name,
        role=(
            f"You are an application security expert specialised in {what}. You report only "
            "weaknesses of your specialty that the code really has."
        ),
        focus=what,
        cwes=cwes,
        affinity=affinity,
    )


SPECIALISTS: dict[str, Lens] = {
    "injection": _specialist(
        "injection",
        "injection: SQL built from input (CWE 89), OS commands built from input (CWE 78), "
        "eval or exec of input (CWE 94)",
        (89, 78, 94),
        _aff(0.9, sql=0.9),
    ),
    "xss": _specialist(
        "xss",
        "cross-site scripting: user input written into HTML without escaping (CWE 79)",
        (79,),
        _aff(0.9, _WEB, go=0.5, java=0.5, python=0.4),
    ),
    "auth": _specialist(
        "auth",
        "authentication and secrets: hard-coded passwords, tokens or keys (CWE 798), "
        "missing authentication (CWE 306), broken authentication (CWE 287)",
        (798, 306, 287),
        _aff(0.8),
    ),
    "crypto": _specialist(
        "crypto",
        "cryptography: weak hashes such as MD5 or SHA1 (CWE 327), weak randomness for "
        "secrets (CWE 330)",
        (327, 330),
        _aff(0.8),
    ),
    "deserialization": _specialist(
        "deserialization",
        "unsafe deserialization of untrusted data: pickle, yaml.load, Java serialization (CWE 502)",
        (502,),
        _aff(0.9, ("python", "java", "php", "ruby", "csharp", "kotlin", "scala")),
    ),
    "path-traversal": _specialist(
        "path-traversal",
        "path traversal: file paths built from user input without normalising them and "
        "checking they stay inside the intended directory (CWE 22)",
        (22,),
        _aff(0.8),
    ),
    "ssrf": _specialist(
        "ssrf",
        "server-side request forgery: the server fetching a URL the user controls (CWE 918)",
        (918,),
        _aff(0.8, ("python", "javascript", "typescript", "go", "java", "php", "ruby")),
    ),
}
DEFAULT_SPECIALISTS: tuple[str, ...] = tuple(SPECIALISTS)
DEFAULT_ANALYZERS: tuple[str, ...] = ("bandit",)
MIN_AFFINITY = 0.5
#: analyzers start with this trust: deterministic, but not free of false positives
ANALYZER_TRUST = 0.7


class SwarmFinding(msgspec.Struct, frozen=True, kw_only=True):
    """One finding in ``smesh swarm --format json`` (a stable contract)."""

    file: str
    line: int
    cwe: str
    severity: str
    message: str
    support: list[str]
    consensus: bool


class SwarmReport(ScanReport[SwarmFinding], frozen=True, kw_only=True):
    """The findings of a swarm run and its summary.

    Attributes:
        analyzer_failures: one line per analyzer that did not work (error, unparsable
            output, timeout, never ran); ``smesh swarm`` then exits 1.
    """

    analyzer_failures: list[str] = msgspec.field(default_factory=list)

    def contract(self) -> dict[str, Any]:
        """``{"findings", "summary"}``, plus ``"analyzer_failures"`` when one failed."""
        doc = super().contract()
        if self.analyzer_failures:
            doc["analyzer_failures"] = list(self.analyzer_failures)
        return doc


def specialist_ids(specialists: Sequence[str]) -> list[tuple[str, Lens]]:
    """Agent ids for the requested specialists (a name twice gives two copies).

    Raises:
        UsageError: an unknown specialty.
    """
    unknown = [s for s in specialists if s not in SPECIALISTS]
    if unknown:
        raise UsageError(
            f"unknown specialist {', '.join(unknown)}; choose from {', '.join(SPECIALISTS)}"
        )
    seen: dict[str, int] = {}
    out: list[tuple[str, Lens]] = []
    for s in specialists:
        seen[s] = seen.get(s, 0) + 1
        copies = specialists.count(s)
        out.append((s if copies == 1 else f"{s}-{seen[s]}", SPECIALISTS[s]))
    return out


async def run_swarm(
    root: str | Path,
    backend: Backend | None,
    *,
    specialists: Sequence[str] = DEFAULT_SPECIALISTS,
    analyzers: Sequence[str | Analyzer] = DEFAULT_ANALYZERS,
    consensus: int = 2,
    max_files: int | None = None,
    extensions: Sequence[str] | None = None,
    chunk_bytes: int = DEFAULT_MAX_BYTES,
    options: AppOptions | None = None,
) -> SwarmReport:
    """Scan ``root`` with the specialists and analyzers.

    Raises:
        UsageError: bad arguments, or nothing under ``root`` to scan.
    """
    opts = options or AppOptions()
    if consensus < 1:
        raise UsageError(f"--consensus must be >= 1, got {consensus}")
    lenses = specialist_ids(list(specialists))
    if lenses and backend is None:
        raise UsageError("LLM specialists need a backend")
    tools = [make_analyzer(a) if isinstance(a, str) else a for a in analyzers]
    if not lenses and not tools:
        raise UsageError("a swarm needs at least one specialist or analyzer")
    files = select_files(root, extensions=extensions, max_files=max_files)
    if not files:
        raise UsageError(f"no source files under {str(root)!r}")
    clock = opts.clock or SystemClock()
    field = Field(clock)
    trust = TrustTable()
    groups = {agent_id: lens.name for agent_id, lens in lenses}
    groups.update({tool.name: tool.name for tool in tools})
    rule = ConsensusRule(quorum=0.0, margin=0.01, min_groups=consensus)
    ledger = FindingLedger(field, groups=groups, trust=trust, rule=rule)
    source = SourceView(root)
    present = {lens.name: lens for _, lens in lenses}
    languages = sorted({f.language for f in files})

    def judges_for(state: FindingState) -> list[str]:
        # the specialists of the finding's CWE judge it; when they are too few to reach
        # consensus, other specialists (any security expert can read code) fill in
        cwe = int(state.key.label.split("-", 1)[1])
        supporting = set(ledger.supporting_groups(state))
        experts = [n for n, lens in present.items() if cwe in lens.cwes and n not in supporting]
        need = consensus - len(supporting) - len(experts)
        others = [n for n in present if n not in supporting and n not in experts]
        return experts + others[: max(0, need)]

    agents: list[Agent] = []
    for agent_id, lens in lenses:
        assert backend is not None
        agents.append(
            ScanAgent(
                agent_id,
                lens=lens,
                languages=languages,
                source=source,
                ledger=ledger,
                judges_for=judges_for,
                backend=backend,
            )
        )
    base = Path(root)
    for tool in tools:
        agents.append(
            AnalyzerAgent(
                tool.name,
                analyzer=tool,
                root=base if base.is_dir() else base.parent,
                files=[f.path for f in files],
                ledger=ledger,
                judges_for=judges_for,
            )
        )
    tasks: list[TaskSpec] = [analyzer_spec(tool) for tool in tools]
    for f in files:
        for chunk in chunk_file(root, f, chunk_bytes):
            for name, lens in present.items():
                if lens.affinity_for(f.language) >= MIN_AFFINITY:
                    tasks.append(scan_spec(chunk, name))
    team = Team(
        agents,
        field=field,
        settings=opts.settings,
        budget=opts.budget,
        journal=opts.journal,
        seed=opts.seed,
        run_id=opts.run_id,
        trust=trust,
        resume=opts.resume,
    )
    for tool in tools:
        if tool.name not in trust:
            trust.set(tool.name, ANALYZER_TRUST, clock.now())
    if opts.resume:
        ledger.replay(outputs_in_order(team.board))
    settlement = Settlement(team.board, ledger)
    opts.started(team.board)
    report = await team.run(tasks, on_change=opts.on_change)
    now = field.clock.now()
    settlement.finish(now)
    findings: list[SwarmFinding] = []
    notes: list[list[str]] = []
    for state in ledger.ordered():
        verdict = ledger.assess(state, now)
        lead = state.lead
        findings.append(
            SwarmFinding(
                file=state.key.file,
                line=lead.line_start,
                cwe=state.key.label,
                severity=max(
                    (n.severity for n in state.notes.values()),
                    key=("low", "medium", "high").index,
                ),
                message=lead.message,
                support=verdict.support,
                consensus=verdict.consensus,
            )
        )
        notes.append(
            [f"{a}: {n.message}" for a, n in state.notes.items()]
            + [f"{a}: {o}" + (f" — {r}" if r else "") for a, (o, r) in state.judgements.items()]
        )
    ledger.close()
    summary = summarize(report, consensus=sum(f.consensus for f in findings), total=len(findings))
    return SwarmReport(
        findings=findings,
        summary=summary,
        judgements=notes,
        root=str(root),
        analyzer_failures=analyzer_failures(team.board, tools),
    )


def analyzer_failures(board: TaskBoard, tools: Sequence[Analyzer]) -> list[str]:
    """One line per analyzer whose task did not end accepted, with the error it raised."""
    failed: list[str] = []
    for tool in tools:
        task = board.tasks.get(f"analyze:{tool.name}")
        if task is not None and task.outcome == "accepted":
            continue
        errors = [] if task is None else [r.payload.get("error") for r in task.results.values()]
        reason = next((str(e) for e in reversed(errors) if e), "it did not finish")
        failed.append(f"{tool.name}: {reason}")
    return failed


def swarm_sarif(report: SwarmReport) -> dict[str, Any]:
    """The swarm's findings as a SARIF 2.1.0 log."""
    rules = sorted(
        {
            SarifRule(
                id=f.cwe,
                description=f"{f.cwe} (see the CWE entry)",
                tags=("security", f"external/cwe/{f.cwe.lower()}"),
            )
            for f in report.findings
        },
        key=lambda r: int(r.id.split("-", 1)[1]),
    )
    results = [
        SarifResult(
            rule=f.cwe,
            file=f.file,
            line_start=f.line,
            line_end=f.line,
            severity=f.severity,
            message=f.message,
            consensus=f.consensus,
            properties={"support": f.support},
        )
        for f in report.findings
    ]
    base = Path(report.root) if report.root else None
    if base is not None and base.is_file():
        base = base.parent
    return to_sarif(
        tool="smesh-swarm",
        rules=rules,
        results=results,
        root=base,
        properties={"summary": msgspec.to_builtins(report.summary)},
    )
