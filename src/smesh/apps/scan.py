"""Agents that report findings and judge each other's, shared by ``review`` and ``swarm``.

Work reaches these agents as ordinary tasks on the board:

``scan:<lens>:<language>``
    look at one chunk of one file through one lens (a review category or a vulnerability
    specialty). A reviewer's affinity for the skill depends on the language, so reviewers
    claim the files they are suited to. Each reported issue goes into the field as a
    finding (see :mod:`smesh.apps.findings`).
``analyze:<name>``
    run a non-LLM analyzer (bandit, ...) over the tree and report what it finds.
``judge:<group>``
    judge one finding blind, as a member of ``group``. The reporter posts one such task
    for every other group that should judge its finding; the tasks are content-scoped,
    so two reporters of the same finding post them once.

Every output is JSON kept in the task's result, so a resumed run can rebuild the findings
from the journal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from smesh.agents import Agent, TaskSpec, WorkContext
from smesh.agents.protocol import KIND_TASK, task_intensity
from smesh.agents.runtime import Runtime
from smesh.apps.analyzers import Analyzer, RawFinding
from smesh.apps.files import Chunk, numbered
from smesh.apps.findings import SEVERITIES, FindingLedger, FindingState
from smesh.apps.lens import Lens, cwe_label
from smesh.backends.base import Backend
from smesh.decay import Step

__all__ = [
    "AnalyzerAgent",
    "JudgesFor",
    "ScanAgent",
    "SourceView",
    "analyzer_spec",
    "judge_spec",
    "post_task",
    "scan_spec",
]

_STEP = Step()
JudgesFor = Callable[[FindingState], Sequence[str]]


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
        text = "\n".join(self.lines(path)[start - 1 : end])
        return Chunk(path, language, start, end, text)

    def context(self, path: str, start: int, end: int, around: int = 5) -> Chunk:
        """The lines of a finding with ``around`` lines either side."""
        lines = self.lines(path)
        a = max(1, start - around)
        b = min(len(lines), max(start, end) + around)
        return Chunk(path, "", a, b, "\n".join(lines[a - 1 : b]))


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


def scan_spec(chunk: Chunk, lens: str, *, priority: float = 0.5) -> TaskSpec:
    """The task of scanning ``chunk`` through ``lens``."""
    return TaskSpec(
        task_id=f"scan:{lens}:{chunk.id}",
        skill=f"scan:{lens}:{chunk.language}",
        description=f"look at {chunk.id} for {lens} issues",
        priority=priority,
        max_attempts=2,
        input={
            "path": chunk.path,
            "language": chunk.language,
            "start_line": chunk.start_line,
            "end_line": chunk.end_line,
        },
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


def _finding_schema(lens: Lens) -> dict[str, Any]:
    item: dict[str, Any] = {
        "type": "object",
        "properties": {
            "line": {"type": "integer"},
            "code": {"type": "string", "maxLength": 160},
            "severity": {"type": "string", "enum": list(SEVERITIES)},
            "message": {"type": "string", "maxLength": 240},
        },
        "required": ["line", "code", "severity", "message"],
    }
    if lens.cwes:
        item["properties"]["cwe"] = {"type": "integer", "enum": list(lens.cwes)}
        item["required"].insert(0, "cwe")
    return {
        "type": "object",
        "properties": {"findings": {"type": "array", "items": item, "maxItems": 5}},
        "required": ["findings"],
    }


# Reason before verdict, as in smesh.agents.prompts.JUDGEMENT_SCHEMA: the small embedded
# model judges better when it has to explain itself before it commits.
JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "reason": {"type": "string", "maxLength": 200},
        "verdict": {"type": "string", "enum": ["agree", "disagree", "unsure"]},
    },
    "required": ["reason", "verdict"],
}


def locate(chunk: Chunk, line: int, code: str) -> int | None:
    """The line of ``chunk`` an item refers to: where its quoted code is (nearest to the
    reported line), else the reported line if it lies in the chunk, else None."""
    needle = " ".join(code.split())
    lines = chunk.text.splitlines()
    if len(needle) >= 4:
        hits = [
            chunk.start_line + i
            for i, text in enumerate(lines)
            if needle in " ".join(text.split()) or (len(text.strip()) >= 4 and text.strip() in code)
        ]
        if hits:
            return min(hits, key=lambda n: (abs(n - line), n))
    if chunk.start_line <= line <= chunk.end_line:
        return line
    return None


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
        out: list[dict[str, Any]] = []
        for item in items:
            state, _ = self.ledger.report(self.id, **item)
            supporting = set(self.ledger.supporting_groups(state))
            for group in self.judges_for(state):
                if group not in supporting:
                    post_task(self.runtime, judge_spec(state, group), self.id)
            out.append({**item, "key": msgspec.to_builtins(state.key), "finding": state.address})
        return out


class ScanAgent(_Reporter):
    """An LLM agent with one lens: it scans chunks and judges other lenses' findings.

    Args:
        id: node id.
        lens: its point of view (also its independence group).
        languages: languages present in the run (its scan skills are built for them).
        source: read access to the files.
        ledger: the shared finding ledger.
        judges_for: which groups should judge a finding.
        backend: the model it asks.
        scan_tokens: ``max_tokens`` of a scan call.
        judge_tokens: ``max_tokens`` of a judgement call.
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
        scan_tokens: int = 400,
        judge_tokens: int = 96,
    ) -> None:
        skills = {f"scan:{lens.name}:{lang}": lens.affinity_for(lang) for lang in languages}
        skills[f"judge:{lens.name}"] = 1.0
        super().__init__(
            id,
            ledger=ledger,
            judges_for=judges_for,
            backend=backend,
            role=lens.role,
            skills={k: v for k, v in skills.items() if v > 0},
            max_tokens=scan_tokens,
            temperature=0.1,
        )
        self.lens = lens
        self.source = source
        self.judge_tokens = judge_tokens

    async def perform(self, ctx: WorkContext) -> Any:
        """Scan a chunk, or judge a finding, depending on the task's skill."""
        if ctx.task.skill.startswith("judge:"):
            return await self._judge_finding(ctx.task)
        return await self._scan(ctx.task)

    async def _scan(self, spec: TaskSpec) -> dict[str, Any]:
        data = spec.input
        chunk = self.source.chunk(
            data["path"], data["language"], int(data["start_line"]), int(data["end_line"])
        )
        lens = self.lens
        cwe = f'"cwe": {lens.cwes[0]}, ' if lens.cwes else ""
        cwe_hint = (
            f' and the "cwe" number that fits ({", ".join(map(str, lens.cwes))})'
            if lens.cwes
            else ""
        )
        # Small models take any "reply [] if none" exit they are offered, so none is.
        prompt = (
            f"Find {lens.focus} in this {chunk.language} code.\n\n"
            f"File {chunk.path} ({chunk.language}), lines {chunk.start_line}-{chunk.end_line}:"
            f"\n{numbered(chunk)}\n\n"
            'List each problem (at most 5) with its line number, the offending "code" copied '
            'from that line, a severity (low, medium or high), a one-sentence "message"'
            + cwe_hint
            + '. Answer as JSON: {"findings": [{'
            + cwe
            + '"line": 7, "code": "...", "severity": "high", "message": "..."}]}'
        )
        response = await self.ask(prompt, json_schema=_finding_schema(lens))
        items: list[dict[str, Any]] = []
        for raw in (response.parsed or {}).get("findings", []):
            label = lens.label_of(raw)
            line = locate(chunk, int(raw.get("line", 0)), str(raw.get("code", "")))
            if label is None or line is None:
                continue
            items.append(
                {
                    "file": chunk.path,
                    "label": label,
                    "line_start": line,
                    "line_end": line,
                    "severity": str(raw.get("severity", "medium")),
                    "message": str(raw.get("message", "")).strip() or f"{label} issue",
                }
            )
        return {"findings": self._publish(items)}

    async def _judge_finding(self, spec: TaskSpec) -> dict[str, Any]:
        address = str(spec.input["finding"])
        state = self.ledger.findings.get(address)
        if state is None or not state.notes:
            return {"judgement": None, "skipped": "unknown finding"}
        if self.lens.name in self.ledger.supporting_groups(state):
            return {"judgement": None, "skipped": "this group already reported it"}
        note = state.lead
        context = self.source.context(state.key.file, note.line_start, note.line_end)
        prompt = (
            f"A colleague reported this {state.key.label} issue in {state.key.file}, "
            f"line {note.line_start} (severity {note.severity}):\n{note.message}\n\n"
            f"The code:\n{numbered(context)}\n\n"
            "Look at the code yourself. Is the report correct? Reply as JSON with a "
            'one-sentence "reason" and a "verdict" ("agree", "disagree" or "unsure").'
        )
        response = await self.ask(
            prompt, json_schema=JUDGE_SCHEMA, max_tokens=self.judge_tokens, temperature=0.0
        )
        parsed = response.parsed or {}
        opinion = str(parsed.get("verdict", "unsure"))
        reason = str(parsed.get("reason", ""))
        self.ledger.judge(self.id, address, opinion, reason)
        return {"judgement": {"finding": address, "opinion": opinion, "reason": reason}}


class AnalyzerAgent(_Reporter):
    """A non-LLM agent: runs one analyzer over the tree and reports its findings.

    Args:
        id: node id (also its independence group: each analyzer is its own voice).
        analyzer: the tool it runs.
        root: the tree to analyze.
        files: the selected files (relative paths) the analyzer may report on.
        ledger: the shared finding ledger.
        judges_for: which groups should judge a finding.
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
    ) -> None:
        super().__init__(
            id, ledger=ledger, judges_for=judges_for, skills={f"analyze:{analyzer.name}": 1.0}
        )
        self.analyzer = analyzer
        self.root = Path(root)
        self.files = list(files)

    async def perform(self, ctx: WorkContext) -> Any:
        """Run the analyzer and report every finding on a selected file."""
        raw: list[RawFinding] = await self.analyzer.run(self.root, self.files)
        wanted = set(self.files)
        items = [
            {
                "file": f.file,
                "label": cwe_label(f.cwe),
                "line_start": f.line_start,
                "line_end": f.line_end,
                "severity": f.severity,
                "message": f"{f.message} [{f.rule}]",
            }
            for f in raw
            if f.file in wanted and f.cwe > 0
        ]
        return {"findings": self._publish(items)}


def analyzer_spec(analyzer: Analyzer) -> TaskSpec:
    """The task of running ``analyzer`` once over the tree."""
    return TaskSpec(
        task_id=f"analyze:{analyzer.name}",
        skill=f"analyze:{analyzer.name}",
        description=f"run {analyzer.name}",
        priority=1.0,
        max_attempts=1,
    )
