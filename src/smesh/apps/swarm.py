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

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from smesh.apps.analyzers import Analyzer, make_analyzer
from smesh.apps.common import ScanReport
from smesh.apps.files import DEFAULT_MAX_BYTES
from smesh.apps.findings import SEVERITIES, Assessment, ConsensusRule, FindingLedger, FindingState
from smesh.apps.lens import Lens, lens_agents
from smesh.apps.options import RunOptions
from smesh.apps.pipeline import JudgesPolicy, ScanPlan, run_scan
from smesh.apps.sarif import SarifResult, SarifRule, sarif_log
from smesh.backends.base import Backend
from smesh.errors import UsageError

__all__ = [
    "DEFAULT_SPECIALISTS",
    "SPECIALISTS",
    "SwarmFinding",
    "SwarmReport",
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


class SwarmFinding(msgspec.Struct, frozen=True, kw_only=True):
    """One finding in ``smesh swarm --format json`` (a stable contract)."""

    file: str
    line: int
    cwe: str
    severity: str
    message: str
    support: list[str]
    consensus: bool

    @classmethod
    def settled(cls, state: FindingState, verdict: Assessment) -> SwarmFinding:
        """A settled finding of the ledger as the swarm reports it (its worst severity)."""
        lead = state.lead
        return cls(
            file=state.key.file,
            line=lead.line_start,
            cwe=state.key.label,
            severity=max((n.severity for n in state.notes.values()), key=SEVERITIES.index),
            message=lead.message,
            support=verdict.support,
            consensus=verdict.consensus,
        )

    def sarif(self) -> SarifResult:
        """This finding as a SARIF result."""
        return SarifResult.of(self, rule=self.cwe, lines=(self.line, self.line))


class SwarmReport(ScanReport[SwarmFinding], frozen=True, kw_only=True):
    """The findings of a swarm run and its summary."""


def specialist_ids(specialists: Sequence[str]) -> list[tuple[str, Lens]]:
    """Agent ids for the requested specialists (a name twice gives two copies).

    Raises:
        UsageError: an unknown specialty.
    """
    return lens_agents(specialists, SPECIALISTS, what="specialist", allow_none=True)


def describe(state: FindingState) -> list[str]:
    """What each reporter and each judge said about a finding."""
    return [f"{a}: {n.message}" for a, n in state.notes.items()] + [
        f"{a}: {o}" + (f" — {r}" if r else "") for a, (o, r) in state.judgements.items()
    ]


def cwe_judges(consensus: int) -> JudgesPolicy:
    """The judges of a finding: the specialists whose specialty covers its CWE, and, when
    they are too few to reach ``consensus``, other specialists (any security expert can
    read code) to fill in."""

    def judges(
        ledger: FindingLedger, present: Mapping[str, Lens], state: FindingState
    ) -> list[str]:
        cwe = int(state.key.label.split("-", 1)[1])
        supporting = set(ledger.supporting_groups(state))
        experts = [n for n, lens in present.items() if cwe in lens.cwes and n not in supporting]
        need = consensus - len(supporting) - len(experts)
        others = [n for n in present if n not in supporting and n not in experts]
        return experts + others[: max(0, need)]

    return judges


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
    options: RunOptions | None = None,
) -> SwarmReport:
    """Scan ``root`` with the specialists and analyzers.

    Raises:
        UsageError: bad arguments, or nothing under ``root`` to scan.
    """
    if consensus < 1:
        raise UsageError(f"--consensus must be >= 1, got {consensus}")
    lenses = specialist_ids(list(specialists))
    if lenses and backend is None:
        raise UsageError("LLM specialists need a backend")
    tools = [make_analyzer(a) if isinstance(a, str) else a for a in analyzers]
    if not lenses and not tools:
        raise UsageError("a swarm needs at least one specialist or analyzer")
    plan = ScanPlan(
        lenses=lenses,
        analyzers=tools,
        rule=ConsensusRule(quorum=0.0, margin=0.01, min_groups=consensus),
        judges=cwe_judges(consensus),
        finding=SwarmFinding.settled,
        notes=describe,
        report=SwarmReport,
        max_files=max_files,
        extensions=extensions,
        chunk_bytes=chunk_bytes,
    )
    return await run_scan(root, backend, plan, options)


def swarm_sarif(report: SwarmReport) -> dict[str, Any]:
    """The swarm's findings as a SARIF 2.1.0 log: one rule per CWE found."""
    cwes = sorted({f.cwe for f in report.findings}, key=lambda cwe: int(cwe.split("-", 1)[1]))
    rules = [
        SarifRule(
            id=cwe,
            description=f"{cwe} (see the CWE entry)",
            tags=("security", f"external/cwe/{cwe.lower()}"),
        )
        for cwe in cwes
    ]
    return sarif_log(report, tool="smesh-swarm", rules=rules)
