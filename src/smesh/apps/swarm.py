"""``smesh swarm``: vulnerability specialists and static analyzers share one field.

Non-LLM analyzers run first, as agents of their own: bandit, and the flow analysis, which
reports a weakness where it traces the requester's input into a sink unsanitized and
disputes reports where what reaches the sink is a constant or sanitized. The cheap
evidence then plans the LLM work (:mod:`smesh.apps.plan`): each specialist (injection,
XSS, auth, crypto, deserialization, path traversal, SSRF) answers focused questions about
the sinks of its specialty whose input is not known to be safe, and about analyzer
findings nothing else covers; a file with no such sink costs no call. A flow question's
answer must name the line the data comes from, one on the traced path.

Every report is a finding keyed by (file, CWE, line bucket), so a specialist and an
analyzer that see the same weakness land on one signal. Only *independent* support
counts: each specialty and each analyzer is one voice, however many copies of a
specialist run. A finding reaches consensus when ``--consensus N`` independent voices
support it and the trust-weighted dissent does not outweigh them; one that still lacks
voices after the planned questions is judged blind by the specialists of its CWE.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from smesh.apps.analyzers import Analyzer, make_analyzer
from smesh.apps.common import ScanReport
from smesh.apps.findings import SEVERITIES, Assessment, ConsensusRule, FindingState
from smesh.apps.flow import FlowStep
from smesh.apps.lens import CWE_ALIASES, Lens, lens_agents
from smesh.apps.options import RunOptions
from smesh.apps.pipeline import JudgesPolicy, Judging, ScanPlan, run_scan
from smesh.apps.plan import PlanIndex
from smesh.apps.questions import SWARM_ROLE
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
        "eval or exec of input (CWE 94), LDAP filters (CWE 90) or XPath queries (CWE 643) "
        "built from input",
        (89, 78, 94, 90, 643),
        _aff(0.9, sql=0.9),
    ),
    "xss": _specialist(
        "xss",
        "cross-site scripting: user input written into HTML without escaping (CWE 79)",
        (79,),
        # python too: Flask and Django views write HTML
        _aff(0.9, _WEB, go=0.5, java=0.5, python=0.8),
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
        "unsafe deserialization of untrusted data: pickle, yaml.load, Java serialization "
        "(CWE 502), XML parsers that resolve external entities (CWE 611)",
        (502, 611),
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
        "server-side request forgery: the server fetching a URL the user controls (CWE 918), "
        "and redirects to a URL the user controls (CWE 601)",
        (918, 601),
        _aff(0.8, ("python", "javascript", "typescript", "go", "java", "php", "ruby")),
    ),
}
DEFAULT_SPECIALISTS: tuple[str, ...] = tuple(SPECIALISTS)
DEFAULT_ANALYZERS: tuple[str, ...] = ("bandit", "flow")


class SwarmFinding(msgspec.Struct, frozen=True, kw_only=True):
    """One finding in ``smesh swarm --format json`` (a stable contract)."""

    file: str
    line: int
    cwe: str
    severity: str
    message: str
    support: list[str]
    consensus: bool
    reporters: list[str] = []
    flow: list[FlowStep] = []

    @classmethod
    def settled(cls, state: FindingState, verdict: Assessment, index: PlanIndex) -> SwarmFinding:
        """A settled finding of the ledger as the swarm reports it (its worst severity),
        with the path the flow analysis traced to it, if any."""
        lead = state.lead
        label = state.key.label
        cwe = int(label[4:]) if label[4:].isdigit() else None
        site = index.site(state.key.file, lead.line_start, cwe)
        return cls(
            file=state.key.file,
            line=lead.line_start,
            cwe=label,
            severity=max((n.severity for n in state.notes.values()), key=SEVERITIES.index),
            message=lead.message,
            support=verdict.support,
            consensus=verdict.consensus,
            reporters=state.reporters,
            flow=list(site.path) if site is not None and len(site.path) > 1 else [],
        )

    def sarif(self) -> SarifResult:
        """This finding as a SARIF result (its flow as a code flow)."""
        return SarifResult.of(
            self, rule=self.cwe, lines=(self.line, self.line), flow=tuple(self.flow)
        )


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


def _covers(lens: Lens, cwe: int) -> bool:
    return CWE_ALIASES.get(cwe, cwe) in {CWE_ALIASES.get(c, c) for c in lens.cwes}


def cwe_judges(consensus: int) -> JudgesPolicy:
    """The judges a finding still needs to reach ``consensus`` independent voices.

    None when it has them, when the flow analysis found the input at that sink safe (the
    evidence settles it), or when the lenses planned to ask about that line will weigh in
    anyway. Otherwise the specialists whose specialty covers its CWE; when they are too
    few, other specialists (any security expert can read code) fill in. A CWE no
    specialist in the catalogue covers is not judged at all: it stays the analyzer's.
    """

    def judges(judging: Judging, state: FindingState) -> list[str]:
        ledger, present, index = judging.ledger, judging.present, judging.index
        label = state.key.label
        cwe = int(label[4:]) if label[4:].isdigit() else 0
        supporting = set(ledger.supporting_groups(state))
        line = state.lead.line_start if state.notes else state.key.bucket
        planned = index.planned(state.key.file, line, label) - supporting
        need = consensus - len(supporting) - len(planned)
        if need <= 0 or index.settled(state.key.file, line, cwe) is not None:
            return []
        if not any(_covers(lens, cwe) for lens in SPECIALISTS.values()):
            return []
        free = [n for n in present if n not in supporting and n not in planned]
        experts = [n for n in free if _covers(present[n], cwe)]
        others = [n for n in free if n not in experts]
        return (experts + others)[:need] if experts else others[:need]

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
    only: Sequence[str] | None = None,
    ask_settled: bool = False,
    options: RunOptions | None = None,
) -> SwarmReport:
    """Scan ``root`` with the specialists and analyzers.

    Args:
        root: the directory (or file) to scan.
        backend: the specialists' model (None when there are none).
        specialists: specialty names (a name twice runs two copies).
        analyzers: analyzer names or instances.
        consensus: independent voices a finding needs.
        max_files: scan at most this many files.
        extensions: only files with these extensions.
        only: only these files (relative to ``root``), e.g. the ones changed since a commit.
        ask_settled: ask the specialists about sinks the flow analysis found safe too
            (costs calls, changes no consensus: the evidence vetoes; for measuring the
            specialists on their own).
        options: how to run the team.

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
        rule=ConsensusRule(
            quorum=0.0,
            margin=0.01,
            min_groups=consensus,
            veto=tuple(t.name for t in tools if getattr(t, "evidence_based", False)),
        ),
        judges=cwe_judges(consensus),
        finding=SwarmFinding.settled,
        notes=describe,
        report=SwarmReport,
        role=SWARM_ROLE,
        # every voice on one sink files it at the sink's line (analyzers' reports are
        # moved to the nearest sink of their weakness), so one line is one finding and
        # two sinks of one weakness on neighbouring lines are two
        bucket_size=1,
        join_within=0,
        max_files=max_files,
        extensions=extensions,
        only=only,
        ask_settled=ask_settled,
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
