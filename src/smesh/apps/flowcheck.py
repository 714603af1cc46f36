"""The flow analysis as an analyzer: an independent, deterministic voice in a scan.

:class:`FlowAnalyzer` reports a weakness where the cheap flow analysis
(:mod:`smesh.apps.pyflow`, :mod:`smesh.apps.evidence`) traced the requester's input all the
way into a sink with nothing in between that makes it safe: a complete source-to-sink
path. It also has an *opinion* on what others report: where the value reaching a sink is
a constant or is sanitized, it disagrees, and says why. Where it is not sure (a parameter,
an unknown call) it says nothing: that is what the LLM judges are for.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from smesh.apps.analyzers import RawFinding
from smesh.apps.evidence import FileEvidence, gather
from smesh.apps.files import select_files
from smesh.apps.lens import CWE_ALIASES
from smesh.apps.pyflow import Site
from smesh.apps.sinks import SINKS

__all__ = ["FlowAnalyzer", "describe_path"]

#: how close a reported line must be to a site for the opinion to be about it
NEAR = 2


def describe_path(site: Site) -> str:
    """The path of a site in a few words: ``input: request.args (line 4) -> ... -> line 9``."""
    steps = [f"{s.note} (line {s.line})" for s in site.path]
    return " -> ".join(steps)


def _canonical(cwe: int) -> int:
    return CWE_ALIASES.get(cwe, cwe)


class FlowAnalyzer:
    """Reports complete source-to-sink paths and disputes reports on safe flows.

    Args:
        evidence: the files' evidence, when the caller has it already (else each run
            gathers it).
    """

    name = "flow"
    #: its findings are the plan's sites: the planner must not count them as an
    #: analyzer's independent report when it decides what to ask
    evidence_based = True

    def __init__(self, evidence: Sequence[FileEvidence] = ()) -> None:
        self.files: dict[str, FileEvidence] = {ev.path: ev for ev in evidence}

    def use(self, evidence: Sequence[FileEvidence]) -> None:
        """Take the evidence a pipeline gathered, so that it is not gathered twice."""
        self.files.update({ev.path: ev for ev in evidence})

    async def run(self, root: Path, files: Sequence[str]) -> list[RawFinding]:
        """Every site on ``files`` whose input is the requester's, unsanitized."""
        wanted = [f for f in files if f not in self.files]
        if wanted:
            chosen = {f.path: f for f in select_files(root)}
            for name in wanted:
                if name in chosen:
                    self.files[name] = gather(root, chosen[name])
        findings: list[RawFinding] = []
        for name in files:
            ev = self.files.get(name)
            for site in ev.sites if ev is not None else ():
                if site.verdict != "input":
                    continue
                spec = SINKS[site.kind]
                findings.append(
                    RawFinding(
                        file=name,
                        line_start=site.line,
                        line_end=site.end_line,
                        cwe=spec.cwe,
                        severity="high",
                        rule=f"flow-{site.kind}",
                        message=f"input reaches {spec.what}: {describe_path(site)}",
                    )
                )
        return findings

    def opinion(self, file: str, line: int, cwe: int | None) -> tuple[str, str] | None:
        """``("disagree", why)`` when the value at a site near ``line`` (of ``cwe``, or of
        any weakness when None) is a constant or sanitized; None when it has no view."""
        ev = self.files.get(file)
        if ev is None:
            return None
        near = [
            s
            for s in ev.sites
            if abs(s.line - line) <= NEAR and (cwe is None or _canonical(s.cwe) == _canonical(cwe))
        ]
        if not near:
            return None
        site = min(near, key=lambda s: (abs(s.line - line), s.line))
        if site.verdict == "constant":
            return "disagree", f"`{site.arg[:60]}` is a constant: {describe_path(site)}"
        if site.verdict == "sanitized":
            return "disagree", f"`{site.arg[:60]}` is made safe first: {describe_path(site)}"
        return None
