"""Findings as signals, and the consensus the agents earn on them.

A finding is a content-scoped ``finding`` signal whose payload is its *key*: the file, a
label (a review category or a CWE) and a line bucket. Two agents that report the same
issue therefore land on one signal: the second report reinforces the first. Each reporter
adds an origin-scoped ``finding-note`` with its own line range, severity and message.
Judges answer blind (from the finding and the code, never from others' judgements) with a
``judgement`` signal; an agreement also reinforces the finding. So the agents behind a
finding are exactly its signal's origin plus its reinforcers.

Support is counted by *independence group* (a specialisation or an analyzer): two copies
of one specialist are one voice, however many of them agree. The groups for and against
are weighed by trust with :func:`smesh.agents.protocol.tally`, and a finding reaches
consensus when at least ``min_groups`` independent groups support it and the tally accepts.
Trust is learned from settled findings, as the task board learns it from decisions: an
agent whose report or judgement matches a clear outcome gains, one that contradicts it
loses.

The ledger is a read model, like the task board: it follows the field and decides
nothing that every process would not compute the same way from the same signals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Literal

import msgspec

from smesh.agents.protocol import KIND_FINDING, Finding, Payload, decode, encode, tally
from smesh.decay import Step
from smesh.errors import UsageError
from smesh.field import Field, FieldEvent
from smesh.signal import Signal
from smesh.trust import TrustTable

__all__ = [
    "KIND_FINDING",
    "KIND_JUDGEMENT",
    "KIND_NOTE",
    "Assessment",
    "ConsensusRule",
    "FindingJudgement",
    "FindingKey",
    "FindingLedger",
    "FindingNote",
    "FindingState",
    "Note",
    "Opinion",
]

KIND_NOTE = "finding-note"
KIND_JUDGEMENT = "judgement"

Opinion = Literal["agree", "disagree", "unsure"]
OPINIONS: tuple[str, ...] = ("agree", "disagree", "unsure")
SEVERITIES: tuple[str, ...] = ("low", "medium", "high")
_STEP = Step()
_TTL = 10 * 365 * 24 * 3600.0  # findings and judgements are durable for the run


#: What makes two reports the same finding (file, label, line bucket): the typed payload of a
#: ``finding`` signal, defined with the other built-in kinds in :mod:`smesh.agents.protocol`.
FindingKey = Finding


class FindingNote(Payload, frozen=True):
    """The payload of a ``finding-note``: one reporter's account of a finding."""

    KIND: ClassVar[str] = KIND_NOTE
    finding: str
    line_start: int
    line_end: int
    severity: str
    message: str


class FindingJudgement(Payload, frozen=True):
    """The payload of a ``judgement``: one judge's blind opinion of a finding."""

    KIND: ClassVar[str] = KIND_JUDGEMENT
    finding: str
    opinion: str
    reason: str


class Note(msgspec.Struct, frozen=True):
    """One reporter's account of a finding."""

    agent: str
    line_start: int
    line_end: int
    severity: str
    message: str


class ConsensusRule(msgspec.Struct, frozen=True, kw_only=True):
    """When a finding counts as agreed.

    Attributes:
        quorum: trust-weighted mass the supporting groups need.
        margin: lead that mass needs over the dissenting groups' mass.
        min_groups: independent groups that must support it.
        veto: groups whose disagreement no support outweighs: a deterministic check
            that *proves* the finding wrong (the flow analysis disputes only where the
            value reaching the sink is a constant or sanitized).
    """

    quorum: float = 0.9
    margin: float = 0.3
    min_groups: int = 1
    veto: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.quorum < 0 or self.margin < 0 or self.min_groups < 1:
            raise UsageError("quorum and margin must be >= 0 and min_groups >= 1")


class Assessment(msgspec.Struct, frozen=True, kw_only=True):
    """Where a finding stands.

    Attributes:
        support: one agent per independent group that reported or confirmed it.
        dissent: one agent per independent group that disagreed.
        unsure: agents that could not tell.
        support_mass: trust-weighted mass behind it.
        dissent_mass: trust-weighted mass against it.
        consensus: whether the rule accepts it.
        disputed: not agreed, and at least one independent group disagreed.
        refuted: the dissent carries the tally against it.
    """

    support: list[str]
    dissent: list[str]
    unsure: list[str]
    support_mass: float
    dissent_mass: float
    consensus: bool
    disputed: bool
    refuted: bool


class FindingState:
    """Everything the field says about one finding."""

    __slots__ = ("address", "judgements", "key", "notes", "settled", "signal")

    def __init__(self, signal: Signal, key: FindingKey) -> None:
        self.signal = signal
        self.address = signal.address
        self.key = key
        self.notes: dict[str, Note] = {}
        self.judgements: dict[str, tuple[str, str]] = {}  # agent -> (opinion, reason)
        self.settled = False

    @property
    def reporters(self) -> list[str]:
        """Agents that reported it, first reporter first."""
        return list(self.notes)

    @property
    def supporters(self) -> list[str]:
        """The signal's origin plus its reinforcers: reporters and confirming judges."""
        return [self.signal.origin, *self.signal.reinforcers]

    @property
    def lead(self) -> Note:
        """The first reporter's note (its line range, severity and message)."""
        return next(iter(self.notes.values()))


class FindingLedger:
    """Follows the finding signals of one field and weighs them.

    Args:
        field: the shared field.
        groups: agent id -> independence group (its specialisation or analyzer).
        trust: the shared reputation table.
        rule: when a finding counts as agreed.
        bucket_size: lines per bucket: reports of one file and label in the same bucket
            are one finding.
        join_within: a report this close (in lines) to a finding of the same file and label
            in a neighbouring bucket joins it too.
    """

    def __init__(
        self,
        field: Field,
        *,
        groups: Mapping[str, str],
        trust: TrustTable,
        rule: ConsensusRule | None = None,
        bucket_size: int = 10,
        join_within: int = 3,
    ) -> None:
        if bucket_size < 1 or join_within < 0:
            raise UsageError("bucket_size must be >= 1 and join_within >= 0")
        self.join_within = join_within
        self.field = field
        self.groups = dict(groups)
        self.trust = trust
        self.rule = rule or ConsensusRule()
        self.bucket_size = bucket_size
        self.findings: dict[str, FindingState] = {}
        self._on_learn: list[Callable[[str, str, bool, float], None]] = []
        self._sub = field.subscribe(self._on_event, kinds=[KIND_FINDING, KIND_NOTE, KIND_JUDGEMENT])
        for signal in field.signals():
            if signal.kind in (KIND_FINDING, KIND_NOTE, KIND_JUDGEMENT):
                self._on_event(FieldEvent(type="emit", signal=signal, by=signal.origin, time=0.0))

    def close(self) -> None:
        """Stop following the field."""
        self._sub.cancel()

    def on_learn(self, callback: Callable[[str, str, bool, float], None]) -> None:
        """Call ``callback(agent, finding, success, trust)`` after each trust update."""
        self._on_learn.append(callback)

    def group(self, agent: str) -> str:
        """The independence group of ``agent`` (itself when unknown)."""
        return self.groups.get(agent, agent)

    # -- writing (called by the agents) ----------------------------------------------------

    def find_near(self, file: str, label: str, line: int) -> FindingState | None:
        """An existing finding with this file and label that a report at ``line`` joins:
        the one in its bucket, else the nearest within ``join_within`` lines."""
        own = FindingKey(file, label, line // self.bucket_size)
        for state in self.findings.values():
            if state.key == own:
                return state
        best: tuple[int, str, FindingState] | None = None
        for state in self.findings.values():
            key = state.key
            if key.file != file or key.label != label or not state.notes:
                continue
            distance = abs(state.lead.line_start - line)
            if distance <= self.join_within and (
                best is None or (distance, state.address) < best[:2]
            ):
                best = (distance, state.address, state)
        return None if best is None else best[2]

    def report(
        self,
        agent: str,
        *,
        file: str,
        label: str,
        line_start: int,
        line_end: int,
        severity: str,
        message: str,
        key: FindingKey | None = None,
    ) -> tuple[FindingState, bool]:
        """Report a finding as ``agent``; returns its state and whether it is new.

        A report near an existing finding of the same file and label joins it (reinforcing
        its signal); otherwise it lands on the key of its own line bucket.
        """
        severity = severity if severity in SEVERITIES else "medium"
        if key is None:
            near = self.find_near(file, label, line_start)
            key = (
                near.key
                if near is not None
                else FindingKey(file, label, line_start // self.bucket_size)
            )
        known = {s.key: s for s in self.findings.values()}.get(key)
        signal = self.field.emit(KIND_FINDING, encode(key), origin=agent, decay=_STEP, ttl=_TTL)
        note = FindingNote(
            signal.address,
            int(line_start),
            int(max(line_start, line_end)),
            severity,
            " ".join(message.split())[:500],
        )
        self.field.emit(
            KIND_NOTE, encode(note), origin=agent, scope="origin", decay=_STEP, ttl=_TTL
        )
        return self.findings[signal.address], known is None

    def judge(self, agent: str, address: str, opinion: str, reason: str) -> None:
        """Record ``agent``'s blind judgement of a finding; an agreement reinforces it."""
        if opinion not in OPINIONS:
            opinion = "unsure"
        state = self.findings.get(address)
        if state is None:
            raise UsageError(f"no finding {address}")
        judgement = FindingJudgement(address, opinion, " ".join(reason.split())[:300])
        self.field.emit(
            KIND_JUDGEMENT,
            encode(judgement),
            origin=agent,
            scope="origin",
            decay=_STEP,
            ttl=_TTL,
        )
        if opinion == "agree" and self.field.get(address) is not None:
            self.field.reinforce(address, by=agent)

    # -- reading ---------------------------------------------------------------------------

    def _on_event(self, event: FieldEvent) -> None:
        # payloads are decoded at the edge: a malformed one is ignored, never a crash
        signal = event.signal
        if signal.kind == KIND_FINDING:
            if event.type == "emit" and signal.address not in self.findings:
                key = decode(FindingKey, signal.payload)
                if key is not None:
                    self.findings[signal.address] = FindingState(signal, key)
            elif event.type == "reinforce" and signal.address in self.findings:
                self.findings[signal.address].signal = signal
            return
        if event.type != "emit":
            return
        if signal.kind == KIND_NOTE:
            note = decode(FindingNote, signal.payload)
            state = None if note is None else self.findings.get(note.finding)
            if note is not None and state is not None:
                state.notes.setdefault(
                    signal.origin,
                    Note(
                        signal.origin, note.line_start, note.line_end, note.severity, note.message
                    ),
                )
        else:
            judged = decode(FindingJudgement, signal.payload)
            state = None if judged is None else self.findings.get(judged.finding)
            if judged is not None and state is not None:
                state.judgements[signal.origin] = (judged.opinion, judged.reason)

    def supporting_groups(self, state: FindingState) -> list[str]:
        """Independence groups behind a finding, in the order they joined it."""
        return list(dict.fromkeys(self.group(a) for a in state.supporters))

    def assess(self, state: FindingState, now: float) -> Assessment:
        """Weigh a finding by independent groups and trust."""
        support: dict[str, str] = {}
        for agent in state.supporters:
            support.setdefault(self.group(agent), agent)
        dissent: dict[str, str] = {}
        unsure: list[str] = []
        for agent, (opinion, _) in state.judgements.items():
            if opinion == "disagree":
                dissent.setdefault(self.group(agent), agent)
            elif opinion == "unsure":
                unsure.append(agent)

        def group_trust(group: str) -> float:
            members = [a for a in (*state.supporters, *state.judgements) if self.group(a) == group]
            return max((self.trust.get(a, now) for a in members), default=0.5)

        # a group found on both sides (one copy for, one against) counts for neither
        both = set(support) & set(dissent)
        result = tally(
            {"approve": list(support), "reject": list(dissent)},
            group_trust,
            quorum=self.rule.quorum,
            margin=self.rule.margin,
        )
        enough = len(set(support) - both) >= self.rule.min_groups
        vetoed = any(group in self.rule.veto for group in dissent)
        consensus = enough and result.outcome == "accepted" and not vetoed
        return Assessment(
            support=[support[g] for g in support if g not in both],
            dissent=[dissent[g] for g in dissent if g not in both],
            unsure=unsure,
            support_mass=round(result.approve, 4),
            dissent_mass=round(result.reject, 4),
            consensus=consensus,
            disputed=not consensus and bool(set(dissent) - both),
            refuted=result.outcome == "rejected" or vetoed,
        )

    def settle(self, address: str, now: float) -> Assessment | None:
        """Settle a finding once its judges are done: learn trust from a clear outcome.

        Agreement with a consensus, or dissent from a refuted finding, earns trust; the
        opposite loses it. Unclear outcomes teach nothing. Settling twice does nothing.
        """
        state = self.findings.get(address)
        if state is None or state.settled:
            return None
        state.settled = True
        verdict = self.assess(state, now)
        if not (verdict.consensus or verdict.refuted):
            return verdict
        updates: list[tuple[str, bool]] = [(a, verdict.consensus) for a in state.supporters]
        updates += [
            (a, not verdict.consensus)
            for a, (opinion, _) in state.judgements.items()
            if opinion == "disagree" and a not in state.supporters
        ]
        for agent, success in updates:
            value = self.trust.record(agent, success, now)
            for callback in self._on_learn:
                callback(agent, address, success, value)
        return verdict

    def ordered(self) -> list[FindingState]:
        """Findings with at least one note, by file, first line and label."""
        states = [s for s in self.findings.values() if s.notes]
        return sorted(states, key=lambda s: (s.key.file, s.lead.line_start, s.key.label))

    def replay(self, records: Iterable[tuple[str, Any]]) -> None:
        """Re-emit findings and judgements from durable task outputs (a resumed run).

        Args:
            records: ``(agent, output)`` pairs in the order they were produced; an output
                holds ``findings`` (reports, with their ``key``), a ``judgement`` or a list
                of ``judgements``.
        """
        for agent, output in records:
            if not isinstance(output, dict):
                continue
            for item in output.get("findings", ()) or ():
                self.report(
                    agent,
                    file=item["file"],
                    label=item["label"],
                    line_start=int(item["line_start"]),
                    line_end=int(item["line_end"]),
                    severity=str(item["severity"]),
                    message=str(item["message"]),
                    key=msgspec.convert(item["key"], FindingKey),
                )
            judgements = [output.get("judgement"), *(output.get("judgements") or ())]
            for judgement in judgements:
                if isinstance(judgement, dict) and judgement.get("finding") in self.findings:
                    self.judge(
                        agent,
                        judgement["finding"],
                        str(judgement.get("opinion")),
                        str(judgement.get("reason", "")),
                    )
