"""Agents that report findings and judge each other's, shared by ``review`` and ``swarm``.

Work reaches these agents as ordinary tasks on the board:

``scan:<lens>:<language>``
    one lens answers the planned checks of one region of one file (see
    :mod:`smesh.apps.plan`): a *yes* becomes a finding in the field (see
    :mod:`smesh.apps.findings`), a *no* a disagreement with whatever another voice
    reported on that line. A lens's affinity for the skill depends on the language.
``analyze:<name>``
    report what a non-LLM analyzer (bandit, the flow analysis, ...) found; an analyzer
    with an opinion on others' reports (the flow analysis) also gives it.
``judge:<group>``
    judge one finding blind, as a member of ``group``. The reporter posts one such task
    for each group its app's policy names; the tasks are content-scoped, so two reporters
    of the same finding post them once.

Every output is JSON kept in the task's result, so a resumed run can rebuild the findings
from the journal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import msgspec

from smesh.agents import Agent, TaskSpec, WorkContext
from smesh.agents.protocol import KIND_TASK, task_intensity
from smesh.agents.runtime import Runtime
from smesh.apps.analyzers import Analyzer, RawFinding
from smesh.apps.files import Chunk
from smesh.apps.findings import FindingLedger, FindingState
from smesh.apps.lens import Lens, cwe_label
from smesh.apps.plan import Check, PlanIndex, Work, site_check
from smesh.apps.questions import ask_prompt, message_of, read_answer, schema_for, severity_of
from smesh.backends.base import Backend
from smesh.decay import Step

__all__ = [
    "AnalyzerAgent",
    "JudgesFor",
    "Opinionated",
    "RegionTurns",
    "ScanAgent",
    "SourceView",
    "analyzer_spec",
    "judge_spec",
    "post_task",
    "scan_spec",
]

_STEP = Step()
JudgesFor = Callable[[FindingState], Sequence[str]]
#: longest an analyzer with opinions waits for the other analyzers to report
OPINION_WAIT_S = 60.0


class SourceView:
    """Read-only access to the files under review."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._cache: dict[str, list[str]] = {}

    def lines(self, path: str) -> list[str]:
        """The lines of ``path`` (relative to the root)."""
        if path not in self._cache:
            target = self.root if self.root.is_file() else self.root / path
            try:
                text = target.read_bytes().decode("utf-8", errors="replace")
            except OSError:
                text = ""
            self._cache[path] = text.splitlines()
        return self._cache[path]

    def chunk(self, path: str, language: str, start: int, end: int) -> Chunk:
        """Lines ``start``..``end`` of ``path`` as a chunk."""
        lines = self.lines(path)
        end = max(start, min(end, len(lines)))
        return Chunk(path, language, start, end, "\n".join(lines[start - 1 : end]))


class RegionTurns:
    """Calls about one region take turns; calls about different regions run together.

    Every prompt about a region starts with the same text, so the model server can serve
    the second call the region from its prompt cache, but only if that call comes after
    the first one, not beside it: four lenses asking about one region at once read it
    four times. One lock per region keeps the cache useful and the slots busy with other
    regions meanwhile.
    """

    def __init__(self) -> None:
        self._locks: dict[tuple[str, int, int], asyncio.Lock] = {}

    def turn(self, region: Chunk) -> asyncio.Lock:
        """The lock of ``region`` (``async with turns.turn(region): ...``)."""
        key = (region.path, region.start_line, region.end_line)
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock


def post_task(rt: Runtime, spec: TaskSpec, origin: str) -> None:
    """Emit a task signal as ``origin`` (the same task posted twice merges into one)."""
    rt.field.emit(
        spec.kind,
        spec.payload(),
        origin=origin,
        intensity=task_intensity(spec.priority),
        decay=_STEP,
        ttl=rt.settings.task_ttl_s,
    )


def scan_spec(work: Work, *, priority: float = 0.5) -> TaskSpec:
    """The task of answering ``work``'s checks."""
    return TaskSpec(
        task_id=f"scan:{work.lens}:{work.id}",
        skill=f"scan:{work.lens}:{work.language}",
        description=f"{work.lens}: {len(work.checks)} check(s) in {work.id}",
        priority=priority,
        max_attempts=2,
        input={"work": msgspec.to_builtins(work)},
        kind=KIND_TASK,
    )


def judge_spec(finding: FindingState, group: str) -> TaskSpec:
    """The task of judging ``finding`` as a member of ``group``."""
    return TaskSpec(
        task_id=f"judge:{finding.address[:16]}:{group}",
        skill=f"judge:{group}",
        description=f"judge a {finding.key.label} finding in {finding.key.file}",
        priority=1.0,
        max_attempts=2,
        input={"finding": finding.address},
    )


def analyzer_spec(analyzer: Analyzer) -> TaskSpec:
    """The task of reporting what ``analyzer`` found."""
    return TaskSpec(
        task_id=f"analyze:{analyzer.name}",
        skill=f"analyze:{analyzer.name}",
        description=f"run {analyzer.name}",
        priority=1.0,
        max_attempts=1,
    )


@runtime_checkable
class Opinionated(Protocol):
    """An analyzer that can also dispute what others report (the flow analysis)."""

    def opinion(self, file: str, line: int, cwe: int | None) -> tuple[str, str] | None:
        """``(opinion, reason)`` about a report near ``line``, or None (no view)."""
        ...


class _Reporter(Agent):
    """What scanners and analyzers share: reporting findings and posting judge tasks."""

    def __init__(
        self,
        id: str,
        *,
        ledger: FindingLedger,
        judges_for: JudgesFor,
        **options: Any,
    ) -> None:
        super().__init__(id, **options)
        self.ledger = ledger
        self.judges_for = judges_for

    def _publish(self, items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Report ``items`` (duplicates in one output collapse to the first)."""
        out: list[dict[str, Any]] = []
        seen: set[tuple[str, str, int]] = set()
        for item in items:
            key = (item["file"], item["label"], item["line_start"] // 3)
            if key in seen:
                continue
            seen.add(key)
            state, _ = self.ledger.report(self.id, **item)
            supporting = set(self.ledger.supporting_groups(state))
            for group in self.judges_for(state):
                if group not in supporting:
                    post_task(self.runtime, judge_spec(state, group), self.id)
            out.append({**item, "key": msgspec.to_builtins(state.key), "finding": state.address})
        return out

    def _dispute(self, file: str, line: int, label: str, reason: str) -> list[dict[str, Any]]:
        """Disagree with what other groups reported as ``label`` near ``line``."""
        own = self.ledger.group(self.id)
        done: list[dict[str, Any]] = []
        for state in list(self.ledger.findings.values()):
            key = state.key
            if key.file != file or key.label != label or not state.notes:
                continue
            if abs(state.lead.line_start - line) > self.ledger.join_within:
                continue
            if own in self.ledger.supporting_groups(state) or self.id in state.judgements:
                continue
            self.ledger.judge(self.id, state.address, "disagree", reason)
            done.append({"finding": state.address, "opinion": "disagree", "reason": reason})
        return done


class ScanAgent(_Reporter):
    """An LLM agent with one lens: it answers the planned checks and judges findings.

    Args:
        id: node id.
        lens: its point of view (also its independence group).
        languages: languages present in the run (its scan skills are built for them).
        source: read access to the files.
        ledger: the shared finding ledger.
        judges_for: which groups should judge a finding.
        backend: the model it asks.
        index: the run's plan, to find the check and region behind a finding it judges.
        role: the system prompt (one per app: the prompts' shared prefix starts here).
        turns: the run's :class:`RegionTurns` (calls about one region take turns).
        answer_tokens: ``max_tokens`` of one answer.
    """

    def __init__(
        self,
        id: str,
        *,
        lens: Lens,
        languages: Sequence[str],
        source: SourceView,
        ledger: FindingLedger,
        judges_for: JudgesFor,
        backend: Backend,
        index: PlanIndex,
        role: str,
        turns: RegionTurns | None = None,
        answer_tokens: int = 110,
    ) -> None:
        skills = {f"scan:{lens.name}:{lang}": lens.affinity_for(lang) for lang in languages}
        skills[f"judge:{lens.name}"] = 1.0
        super().__init__(
            id,
            ledger=ledger,
            judges_for=judges_for,
            backend=backend,
            role=role,
            skills={k: v for k, v in skills.items() if v > 0},
            max_tokens=answer_tokens,
            temperature=0.0,
        )
        self.lens = lens
        self.source = source
        self.index = index
        self.turns = turns or RegionTurns()

    async def perform(self, ctx: WorkContext) -> Any:
        """Answer a scan task's checks, or judge a finding, depending on the skill."""
        if ctx.task.skill.startswith("judge:"):
            return await self._judge_finding(ctx.task)
        return await self._scan(ctx.task)

    async def _answer(self, region: Chunk, check: Check, claim: str = "") -> Any:
        async with self.turns.turn(region):
            response = await self.ask(
                ask_prompt(region, check, self.lens, claim=claim), json_schema=schema_for(check)
            )
        return read_answer(response.parsed, check)

    async def _scan(self, spec: TaskSpec) -> dict[str, Any]:
        work = msgspec.convert(spec.input["work"], Work)
        region = self.source.chunk(work.path, work.language, work.start, work.end)
        found: list[dict[str, Any]] = []
        answers: list[dict[str, Any]] = []
        disputed: list[dict[str, Any]] = []
        for check in work.checks:
            answer = await self._answer(region, check)
            answers.append(
                {
                    "line": check.line,
                    "label": check.label,
                    "yes": answer.yes,
                    "valid": answer.valid,
                    "reason": answer.reason,
                }
            )
            if answer.yes:
                found.append(
                    {
                        "file": work.path,
                        "label": check.label,
                        "line_start": check.line,
                        "line_end": check.end_line,
                        "severity": severity_of(check),
                        "message": message_of(check, answer),
                    }
                )
            elif answer.valid:
                disputed += self._dispute(work.path, check.line, check.label, answer.reason)
        return {"findings": self._publish(found), "judgements": disputed, "answers": answers}

    async def _judge_finding(self, spec: TaskSpec) -> dict[str, Any]:
        address = str(spec.input["finding"])
        state = self.ledger.findings.get(address)
        if state is None or not state.notes:
            return {"judgement": None, "skipped": "unknown finding"}
        if self.lens.name in self.ledger.supporting_groups(state):
            return {"judgement": None, "skipped": "this group already reported it"}
        note = state.lead
        key = state.key
        check = self.index.check_for(key.file, note.line_start, key.label) or self._fallback(
            key.file, note.line_start, note.line_end, key.label
        )
        start, end = self.index.region_for(key.file, check.line)
        language = self.index.files[key.file].language if key.file in self.index.files else ""
        region = self.source.chunk(key.file, language, start, end)
        answer = await self._answer(region, check, claim=note.message)
        opinion = ("agree" if answer.yes else "disagree") if answer.valid else "unsure"
        self.ledger.judge(self.id, address, opinion, answer.reason)
        return {"judgement": {"finding": address, "opinion": opinion, "reason": answer.reason}}

    def _fallback(self, file: str, line: int, end: int, label: str) -> Check:
        """A check about a finding nobody planned to ask about (an analyzer's, say)."""
        cwe = int(label[4:]) if label.startswith("CWE-") and label[4:].isdigit() else None
        site = self.index.site(file, line, cwe)
        lines = self.source.lines(file)
        code = lines[line - 1].strip()[:200] if 1 <= line <= len(lines) else ""
        if site is not None:
            return site_check(site, label)
        return Check(
            line=line,
            end_line=max(line, end),
            label=label,
            kind="analyzer",
            code=code,
            what=f"was reported as {label}",
            verdict="reported",
        )


class AnalyzerAgent(_Reporter):
    """A non-LLM agent: reports one analyzer's findings (and its opinions, if it has any).

    Args:
        id: node id (also its independence group: each analyzer is its own voice).
        analyzer: the tool.
        root: the tree it analyzes.
        files: the selected files (relative paths) it may report on.
        ledger: the shared finding ledger.
        judges_for: which groups should judge a finding.
        label_for: the finding label of a CWE (the review files them all as ``security``).
        result: what the analyzer already returned (or raised), when the pipeline ran it
            before planning; None runs it in the task.
        line_counts: lines per file, to drop reports on lines a file does not have.
        anchor: ``(file, line, cwe) -> line`` the report is filed at (the nearest sink's
            line, so that every voice on one sink meets on one line).
    """

    def __init__(
        self,
        id: str,
        *,
        analyzer: Analyzer,
        root: str | Path,
        files: Sequence[str],
        ledger: FindingLedger,
        judges_for: JudgesFor,
        label_for: Callable[[int], str] = cwe_label,
        result: list[RawFinding] | BaseException | None = None,
        line_counts: dict[str, int] | None = None,
        anchor: Callable[[str, int, int], int] | None = None,
    ) -> None:
        super().__init__(
            id, ledger=ledger, judges_for=judges_for, skills={f"analyze:{analyzer.name}": 1.0}
        )
        self.analyzer = analyzer
        self.root = Path(root)
        self.files = list(files)
        self.label_for = label_for
        self.result = result
        self.line_counts = line_counts or {}
        self.anchor = anchor or (lambda _file, line, _cwe: line)

    async def perform(self, ctx: WorkContext) -> Any:
        """Report every finding on a selected file, then give its opinions."""
        if isinstance(self.result, BaseException):
            raise self.result
        raw = (
            self.result
            if self.result is not None
            else await self.analyzer.run(self.root, self.files)
        )
        wanted = set(self.files)
        items: list[dict[str, Any]] = []
        for f in raw:
            if f.file not in wanted or f.cwe <= 0:
                continue
            if not 1 <= f.line_start <= self.line_counts.get(f.file, f.line_start):
                continue  # a line the file does not have is no evidence of anything
            line = self.anchor(f.file, f.line_start, f.cwe)
            items.append(
                {
                    "file": f.file,
                    "label": self.label_for(f.cwe),
                    "line_start": line,
                    "line_end": max(line, f.line_end),
                    "severity": f.severity,
                    "message": f"{f.message} [{f.rule}]",
                }
            )
        out: dict[str, Any] = {"findings": self._publish(items)}
        if isinstance(self.analyzer, Opinionated):
            out["judgements"] = await self._opinions(self.analyzer)
        return out

    async def _opinions(self, analyzer: Opinionated) -> list[dict[str, Any]]:
        """Once the other analyzers have reported, dispute what the evidence refutes."""
        board = self.runtime.board
        loop = asyncio.get_running_loop()
        deadline = loop.time() + OPINION_WAIT_S
        while loop.time() < deadline:
            others = [
                t
                for t in board.tasks.values()
                if t.spec.skill.startswith("analyze:")
                and t.spec.skill != f"analyze:{self.analyzer.name}"
            ]
            if all(t.final or t.attempt in t.results for t in others):
                break
            await asyncio.sleep(0.05)
        done: list[dict[str, Any]] = []
        for state in list(self.ledger.findings.values()):
            if not state.notes or self.id in state.judgements:
                continue
            label = state.key.label
            cwe = int(label[4:]) if label.startswith("CWE-") and label[4:].isdigit() else None
            view = analyzer.opinion(state.key.file, state.lead.line_start, cwe)
            if view is not None:
                done += self._dispute(state.key.file, state.lead.line_start, label, view[1])
        return done
