"""Planning a scan from cheap evidence: which lens looks at which lines, and what it costs.

Every question an LLM lens is asked is a :class:`Check` about one line: a sink whose input
is not known to be safe (a specialist's specialty, or the review's ``security`` lens), a
finding an analyzer reported there, or a review cue (a loop in a loop for
``performance``...). A sink whose input is a constant or sanitized is no question at all,
and one that the flow analysis traced from the request *and* an analyzer reported already
has two independent voices. So a file with no relevant sink costs no LLM call.

Checks are grouped by file and function into *regions* (the lines a model is shown), and
each lens's checks in a region are one :class:`Work` item, one scan task. Every lens sees
a region as the same text, first in its prompt, so the model server's prompt cache serves
the second lens (and the judges) the region without reading it again.

:func:`estimate` turns the plan into calls, tokens and seconds with a :class:`CostModel`,
so a run can say before it starts whether it fits its budget.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import msgspec

from smesh.apps.analyzers import RawFinding
from smesh.apps.evidence import FileEvidence
from smesh.apps.flow import SAFE_VERDICTS, FlowStep
from smesh.apps.lens import CWE_ALIASES, Lens
from smesh.apps.pyflow import Site
from smesh.apps.sinks import SINKS

__all__ = [
    "Check",
    "CostModel",
    "Estimate",
    "PlanIndex",
    "Work",
    "estimate",
    "plan_work",
    "site_check",
]

#: lines of a region above the first check and below the last (the function's code above a
#: sink is where its data comes from)
ABOVE, BELOW = 25, 6
#: the same for top-level code of a parsed file (a constant, an import): little context
TOP_ABOVE, TOP_BELOW = 4, 2
#: most lines between the first and the last check of one region
SPAN = 40
#: how close an analyzer's line must be to a site to be about the same thing
NEAR = 2


class Check(msgspec.Struct, frozen=True, kw_only=True):
    """One question about one line for one lens.

    Attributes:
        line: the line asked about.
        end_line: its last line (a call over several lines).
        label: the finding label a *yes* reports (``CWE-78``, ``security``).
        kind: the sink kind, ``analyzer`` (an analyzer's finding), or a review lens.
        code: the line, stripped.
        what: what the line does, in a few words.
        verdict: the flow verdict at the line (``cue`` and ``reported`` for the others).
        path: the lines a value came along (source first).
        arg: the data argument, for sinks.
        seconded: another voice will speak about this line anyway (an analyzer found
            it, or the flow analysis traced input into it): a *yes* needs no judge.
    """

    line: int
    end_line: int
    label: str
    kind: str
    code: str
    what: str
    verdict: str
    path: tuple[FlowStep, ...] = ()
    arg: str = ""
    seconded: bool = False

    def candidates(self) -> list[int]:
        """Lines a judge may name as where the data comes from."""
        return sorted({s.line for s in self.path} | {self.line})


class Work(msgspec.Struct, frozen=True, kw_only=True):
    """What one scan task asks: one lens, one region of one file, its checks there."""

    lens: str
    path: str
    language: str
    start: int
    end: int
    checks: tuple[Check, ...]

    @property
    def id(self) -> str:
        """``path:start-end``."""
        return f"{self.path}:{self.start}-{self.end}"


class CostModel(msgspec.Struct, frozen=True, kw_only=True):
    """How fast a backend reads prompts and writes answers (for estimates only).

    Attributes:
        prompt_tps: prompt tokens read per second.
        output_tps: tokens written per second.
        parallel: calls served at once, in effect.
        question_tokens: tokens of one question after the shared region.
        answer_tokens: tokens of one answer.
        call_overhead_s: fixed cost of a call (scheduling, the protocol's round trips).
    """

    # the embedded 0.5B model on one thread of a busy 2-core machine (measured: ~110 prompt
    # and ~30 generated tokens a second, less under load); the estimate leans pessimistic
    prompt_tps: float = 100.0
    output_tps: float = 25.0
    parallel: float = 1.0
    question_tokens: int = 110
    answer_tokens: int = 40
    call_overhead_s: float = 0.3

    @classmethod
    def for_backend(cls, name: str) -> CostModel:
        """Defaults for a backend by name: the embedded CPU model is the slow case."""
        if name.startswith("local") or name in ("", "oracle", "scripted", "function"):
            return cls()
        return cls(prompt_tps=2000.0, output_tps=60.0, parallel=4.0)


class Estimate(msgspec.Struct, frozen=True, kw_only=True):
    """What a plan will cost.

    Attributes:
        files: files selected.
        files_with_work: files with at least one check.
        tasks: scan tasks.
        checks: questions in them.
        judge_calls: judgements expected on top (findings with one voice).
        calls: LLM calls in all.
        prompt_tokens: tokens the model reads (the shared regions once each).
        output_tokens: tokens it writes.
        seconds: expected wall time of the LLM work.
    """

    files: int
    files_with_work: int
    tasks: int
    checks: int
    judge_calls: int
    calls: int
    prompt_tokens: int
    output_tokens: int
    seconds: float

    def line(self) -> str:
        """One line for a person."""
        return (
            f"planned: {self.checks} checks in {self.files_with_work} of {self.files} files, "
            f"~{self.calls} LLM calls, ~{self.seconds:.0f} s"
        )


def _canonical(cwe: int) -> int:
    return CWE_ALIASES.get(cwe, cwe)


def site_check(site: Site, label: str) -> Check:
    """The check about ``site`` that reports ``label``."""
    spec = SINKS[site.kind]
    if spec.flow and len(site.path) <= 1:  # found on the line alone: the region shows it
        what = f"sends data to {spec.what} ({site.call})"
    elif spec.flow:
        what = f"passes `{site.arg[:80]}` to {spec.what} ({site.call})"
    elif site.kind == "secret":
        what = "writes a password, key or token into the code"
    else:
        what = f"uses {spec.what} ({site.call})"
    return Check(
        line=site.line,
        end_line=site.end_line,
        label=label,
        kind=site.kind,
        code=site.path[-1].code if site.path else "",
        what=what,
        verdict=site.verdict,
        path=site.path,
        arg=site.arg,
    )


def _analyzer_check(finding: RawFinding, label: str, code: str) -> Check:
    return Check(
        line=finding.line_start,
        end_line=max(finding.line_start, finding.line_end),
        label=label,
        kind="analyzer",
        code=code,
        what=f"{finding.message} (an analyzer's rule {finding.rule})",
        verdict="reported",
        seconded=True,
    )


def _lenses_for_cwe(cwe: int, lenses: Mapping[str, Lens]) -> list[str]:
    return [
        n for n, lens in lenses.items() if _canonical(cwe) in {_canonical(c) for c in lens.cwes}
    ]


def _checks(
    ev: FileEvidence,
    everyone: Mapping[str, Lens],
    reported: Sequence[RawFinding],
    review: bool,
    min_affinity: float,
    ask_settled: bool = False,
) -> list[tuple[str, Check]]:
    """``(lens, check)`` for one file."""
    lenses = {n: v for n, v in everyone.items() if v.affinity_for(ev.language) >= min_affinity}
    out: list[tuple[str, Check]] = []
    covered: list[tuple[int, int]] = []  # (line, cwe) of sites asked about
    for site in ev.sites:
        cwe = _canonical(site.cwe)
        if site.verdict in SAFE_VERDICTS and not ask_settled:
            covered.append((site.line, cwe))  # settled: an analyzer's finding there is not asked
            continue
        near = [
            f
            for f in reported
            if _canonical(f.cwe) == cwe and abs(f.line_start - site.line) <= NEAR
        ]
        if site.verdict == "input" and near and not review:
            covered.append((site.line, cwe))
            continue  # the flow and an analyzer agree already: two voices, no call needed
        targets = ["security"] if review and "security" in lenses else _lenses_for_cwe(cwe, lenses)
        for name in targets[:1]:
            label = "security" if review else f"CWE-{cwe}"
            check = site_check(site, label)
            seconded = bool(near) or site.verdict == "input"
            out.append((name, msgspec.structs.replace(check, seconded=seconded)))
            covered.append((site.line, cwe))
    for finding in reported:
        cwe = _canonical(finding.cwe)
        if any(abs(line - finding.line_start) <= NEAR and c == cwe for line, c in covered):
            continue
        if not 1 <= finding.line_start <= len(ev.lines):
            continue  # a line the file does not have: never asked about, never reported
        targets = ["security"] if review and "security" in lenses else _lenses_for_cwe(cwe, lenses)
        if targets:
            code = ev.lines[finding.line_start - 1].strip()[:200]
            label = "security" if review else f"CWE-{cwe}"
            out.append((targets[0], _analyzer_check(finding, label, code)))
            covered.append((finding.line_start, cwe))
    if review:
        for cue in ev.cues:
            if cue.lens in lenses and 1 <= cue.line <= len(ev.lines):
                code = ev.lines[cue.line - 1].strip()[:200]
                check = Check(
                    line=cue.line,
                    end_line=cue.line,
                    label=cue.lens,
                    kind=cue.lens,
                    code=code,
                    what=cue.what,
                    verdict="cue",
                )
                out.append((cue.lens, check))
    return out


def _regions(ev: FileEvidence, lines: Iterable[int]) -> dict[int, tuple[int, int]]:
    """The region each of ``lines`` is shown in: per function, lines at most :data:`SPAN`
    apart share one (each line is in exactly one)."""
    by_scope: dict[tuple[int, int], list[int]] = {}
    for line in sorted(set(lines)):
        by_scope.setdefault(ev.scope_of(line), []).append(line)
    regions: dict[int, tuple[int, int]] = {}
    for (lo, hi), found in by_scope.items():
        clusters: list[list[int]] = [[found[0]]]
        for line in found[1:]:
            if line - clusters[-1][0] <= SPAN:
                clusters[-1].append(line)
            else:
                clusters.append([line])
        top = ev.parsed and (lo, hi) == (1, max(1, len(ev.lines)))
        above, below = (TOP_ABOVE, TOP_BELOW) if top else (ABOVE, BELOW)
        for cluster in clusters:
            region = (max(lo, cluster[0] - above), min(hi, cluster[-1] + below))
            regions.update(dict.fromkeys(cluster, region))
    return regions


def plan_work(
    evidence: Sequence[FileEvidence],
    lenses: Mapping[str, Lens],
    *,
    reported: Mapping[str, Sequence[RawFinding]] | None = None,
    review: bool = False,
    min_affinity: float = 0.5,
    ask_settled: bool = False,
) -> list[Work]:
    """The scan tasks of a run.

    Args:
        evidence: the selected files' evidence.
        lenses: the LLM lenses in the run, by name.
        reported: analyzers' findings per file (asked about where no site covers them).
        review: plan for ``review`` (a ``security`` lens and the cue lenses) rather than
            for the swarm's specialists.
        min_affinity: a lens looks at files in languages it has this affinity for.
        ask_settled: ask about sinks whose input is constant or sanitized too (they
            cost calls and decide nothing: the flow analysis vetoes them; this is for
            measuring the lenses on their own).
    """
    works: list[Work] = []
    for ev in evidence:
        checks = _checks(
            ev, lenses, (reported or {}).get(ev.path, ()), review, min_affinity, ask_settled
        )
        if not checks:
            continue
        regions = _regions(ev, (c.line for _, c in checks))
        grouped: dict[tuple[int, int], dict[str, list[Check]]] = {}
        for name, check in checks:
            grouped.setdefault(regions[check.line], {}).setdefault(name, []).append(check)
        for (start, end), per_lens in sorted(grouped.items()):
            for name in lenses:
                if per_lens.get(name):
                    works.append(
                        Work(
                            lens=name,
                            path=ev.path,
                            language=ev.language,
                            start=start,
                            end=end,
                            checks=tuple(sorted(per_lens[name], key=lambda c: c.line)),
                        )
                    )
    return works


def estimate(
    works: Sequence[Work],
    evidence: Sequence[FileEvidence],
    cost: CostModel,
    *,
    confirm_rate: float = 0.75,
) -> Estimate:
    """What ``works`` will cost with ``cost``.

    Args:
        works: the plan.
        evidence: the files it came from (for the regions' sizes).
        cost: the backend's speed.
        confirm_rate: the share of checks without a second voice expected to be
            confirmed (each such finding then needs one judge).
    """
    lines = {ev.path: ev.lines for ev in evidence}
    regions: set[tuple[str, int, int]] = set()
    prompt = output = calls = judges = checks = 0
    for work in works:
        key = (work.path, work.start, work.end)
        if key not in regions:
            regions.add(key)
            text = lines.get(work.path, [])[work.start - 1 : work.end]
            prompt += int(sum(len(t) for t in text) / 3.2) + 4 * len(text) + 40
        checks += len(work.checks)
        extra = round(confirm_rate * sum(1 for c in work.checks if not c.seconded))
        judges += extra
        calls += len(work.checks) + extra
        prompt += (len(work.checks) + extra) * cost.question_tokens
        output += (len(work.checks) + extra) * cost.answer_tokens
    seconds = (prompt / cost.prompt_tps + output / cost.output_tps) / cost.parallel
    seconds += calls * cost.call_overhead_s
    return Estimate(
        files=len(evidence),
        files_with_work=len({w.path for w in works}),
        tasks=len(works),
        checks=checks,
        judge_calls=judges,
        calls=calls,
        prompt_tokens=prompt,
        output_tokens=output,
        seconds=round(seconds, 1),
    )


class PlanIndex:
    """Looks up the plan by place: who asks about a line, and which region shows it.

    Args:
        works: the plan.
        evidence: the files it came from.
    """

    def __init__(
        self,
        works: Sequence[Work],
        evidence: Sequence[FileEvidence],
        reports: Mapping[str, Sequence[RawFinding]] | None = None,
    ) -> None:
        self.works = list(works)
        self.files = {ev.path: ev for ev in evidence}
        self._by_file: dict[str, list[Work]] = {}
        for work in works:
            self._by_file.setdefault(work.path, []).append(work)
        # analyzer -> its findings: the voices that will report, whoever reports first
        self._reports: dict[str, list[tuple[str, int, int]]] = {}
        for name, found in (reports or {}).items():
            self._reports[name] = [(f.file, f.line_start, _canonical(f.cwe)) for f in found]

    def planned(self, file: str, line: int, label: str) -> set[str]:
        """The voices that will speak about ``label`` near ``line`` of ``file``: the lenses
        planned to ask about it and the analyzers that found it."""
        lenses = {
            w.lens
            for w in self._by_file.get(file, ())
            for c in w.checks
            if c.label == label and abs(c.line - line) <= NEAR
        }
        cwe = int(label[4:]) if label.startswith("CWE-") and label[4:].isdigit() else None
        for name, found in self._reports.items():
            for f, n, c in found:
                if f == file and abs(n - line) <= NEAR and (cwe is None or c == _canonical(cwe)):
                    lenses.add(name)
                    break
        return lenses

    def check_for(self, file: str, line: int, label: str) -> Check | None:
        """The planned check about ``label`` nearest ``line`` (within :data:`NEAR`)."""
        found = [
            c
            for w in self._by_file.get(file, ())
            for c in w.checks
            if c.label == label and abs(c.line - line) <= NEAR
        ]
        return min(found, key=lambda c: (abs(c.line - line), c.line)) if found else None

    def settled(self, file: str, line: int, cwe: int | None) -> Site | None:
        """The site nearest ``line`` when the flow analysis found its input safe
        (constant or sanitized): a finding there needs no judge."""
        site = self.site(file, line, cwe)
        return site if site is not None and site.verdict in SAFE_VERDICTS else None

    def site(self, file: str, line: int, cwe: int | None) -> Site | None:
        """The site nearest ``line`` (of ``cwe`` when given), within :data:`NEAR`."""
        ev = self.files.get(file)
        if ev is None:
            return None
        near = [
            s
            for s in ev.sites
            if abs(s.line - line) <= NEAR and (cwe is None or _canonical(s.cwe) == _canonical(cwe))
        ]
        return min(near, key=lambda s: (abs(s.line - line), s.line)) if near else None

    def anchor(self, file: str, line: int, cwe: int) -> int:
        """The line a report of ``cwe`` near ``line`` is filed at: the nearest site's of
        that weakness (so that an analyzer and a specialist meet on one line), else its own."""
        site = self.site(file, line, cwe)
        return site.line if site is not None else line

    def region_for(self, file: str, line: int) -> tuple[int, int]:
        """The region a prompt about ``line`` shows: a planned one holding it, else the
        window around it."""
        for work in self._by_file.get(file, ()):
            if work.start <= line <= work.end:
                return work.start, work.end
        ev = self.files.get(file)
        if ev is None:
            return max(1, line - ABOVE), line + BELOW
        lo, hi = ev.scope_of(line)
        return max(lo, line - ABOVE), min(hi, line + BELOW)
