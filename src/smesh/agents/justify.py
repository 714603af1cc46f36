"""Justified decisions: a receiver accepts a ``decision`` only if it can re-derive it.

A decision signal is a claim ("attempt 2 of task t is accepted, on the votes"); on a shared
field, or a mesh of processes that do not trust each other, anyone can emit one. So a
decision names what it rests on (:class:`~smesh.agents.protocol.Decision`'s ``basis``,
``result`` and ``cites``) and every board re-derives it from the cited signals in its own
field, weighed in its own trust table, before it acts on it. The rule depends on the basis:

``votes``
    ``cites`` maps vote signals to the voters counted on each. Every cited signal must be a
    vote on the cited result of that attempt, every cited voter must be on it (its origin or
    a reinforcer: on a mesh, a name its node signed for), and the trust-weighted tally of the
    cited voters (trust as of the result's time, like the decider's) must reach the task's
    quorum and margin for the decision's verdict. A voter seen under both verdicts counts for
    neither.
``checks``
    ``cites`` lists check signals; each must be a check on the cited result by an agent
    allowed to check the task's skill (:meth:`Justifier.allow_checker`); one rejecting
    check rejects, otherwise the checks accept.
``error`` / ``unverified`` / ``timeout``
    the worker's own verdict on its result: the decision's origin is the result's, and the
    result has an error (``error``); the task asks no verification and the result has none
    (``unverified``, accepted only); or the task's verification ``timeout_s`` passed
    between the result and the decision (``timeout``, on the worker's own clock).
``give-up``
    the task's poster fails its own task.

A basis with no rule is unjustified; :meth:`Justifier.add_rule` adds one. A task that
asks a human's approval (``TaskSpec.approval``) is accepted by no decision in the field:
every board derives that decision from the approver's own signed ``approval`` signal
(:mod:`smesh.agents.workflow`), so an ``accepted`` one here is dropped (``needs_approval``)
however good its votes. Only
``failed`` may end an attempt at or past ``max_attempts`` with a rejection (counted from the
task's last restart), and only then.

Over a mesh a decision can arrive before the votes it cites (diffusion has no order). A
decision whose evidence is missing is *held*, re-checked when a vote, check or result of
its task arrives, and dropped when ``hold_s`` passes or more than ``max_held`` wait (the
oldest first). Every drop is counted by reason (:meth:`Justifier.stats`).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

import msgspec

from smesh.agents.evidence import (
    ATTEMPT_BOUND,
    DEFAULT_RULES,
    EVIDENCE_KINDS,
    SHARED_BASES,
    Case,
    Justification,
    Lookup,
    Rule,
    Settle,
    cite_checks,
    cite_votes,
    decision_scope,
    settle_rule,
    vote_address,
)
from smesh.agents.protocol import Decision, TaskSpec
from smesh.signal import Signal
from smesh.trust import TrustTable

__all__ = [
    "Case",
    "Justification",
    "Justifier",
    "Lookup",
    "Rule",
    "Settle",
    "cite_checks",
    "cite_votes",
    "decision_scope",
    "team_checkers",
    "vote_address",
]


def team_checkers(
    agents: Iterable[Any], checkers: Mapping[str, Iterable[str]] | None = None
) -> dict[str, set[str]]:
    """``checkers`` (skill -> names) plus every authoritative agent of ``agents`` for each
    skill it verifies: the checker policy of a team (given to its board when it is built,
    so the decisions it adopts from the field, a resumed run's, are judged by it)."""
    allowed = {skill: set(names) for skill, names in (checkers or {}).items()}
    for agent in agents:
        if agent.authoritative:
            for skill, affinity in agent.verifies.items():
                if affinity > 0:
                    allowed.setdefault(skill, set()).add(agent.id)
    return allowed


class _Held(msgspec.Struct):
    deadline: float
    spec: TaskSpec
    poster: str
    decision: Decision
    signal: Signal
    first: int


class Justifier:
    """Re-derives decisions for one board; holds the ones whose evidence is on its way.

    Args:
        trust: the receiver's trust table (votes are weighed in it).
        hold_s: longest a decision waits for the evidence it cites (the field's clock).
        max_held: most decisions waiting at once; the oldest is dropped past it.
        checkers: skill -> names allowed to post authoritative checks of that skill; a name
            ``*/agent`` allows that agent name on any node (``<node id>/agent``).
    """

    def __init__(
        self,
        trust: TrustTable,
        *,
        hold_s: float = 30.0,
        max_held: int = 1024,
        checkers: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.trust = trust
        self.hold_s = hold_s
        self.max_held = max_held
        self.rules: dict[str, Rule] = dict(DEFAULT_RULES)
        self._checkers: dict[str, set[str]] = {}
        self._held: OrderedDict[tuple[str, str], _Held] = OrderedDict()
        self._by_task: Counter[str] = Counter()
        self.counters: Counter[str] = Counter()
        #: set by this board's own agents while they emit a decision they settled with this
        #: board's rule and trust table: re-deriving it here would repeat their tally. (The
        #: field publishes synchronously, so it covers exactly that emission; other boards,
        #: other processes and peers re-derive it.)
        self.own = False
        self._own = 0
        #: whether any decision waits for its evidence (the board looks on every event)
        self.holding = False
        for skill, names in (checkers or {}).items():
            for name in names:
                self.allow_checker(skill, name)

    # -- policy ----------------------------------------------------------------------------

    def add_rule(self, basis: str, rule: Rule) -> None:
        """Justify decisions of ``basis`` with ``rule`` (replacing any built-in one)."""
        self.rules[basis] = rule

    def follow(self, settles: Sequence[Settle], tasks: Mapping[str, Any]) -> None:
        """Also accept decisions on votes or checks that one of ``settles`` (a team's own
        acceptance rules, :meth:`~smesh.agents.verifying.Verifying.settle` overrides)
        re-derives from this board's ``tasks``: a team that decides by its own rule judges
        by it too. The built-in rule is tried first."""
        for basis in SHARED_BASES:
            self.rules[basis] = settle_rule(settles, tasks, self.rules[basis])

    def follow_agents(
        self, agents: Iterable[Any], tasks: Mapping[str, Any], builtin: object
    ) -> None:
        """:meth:`follow` the acceptance rules of those of ``agents`` whose ``settle`` is not
        ``builtin`` (a team with its own acceptance rule judges decisions by it too)."""
        custom = {type(a).settle: a.settle for a in agents if type(a).settle is not builtin}
        if custom:
            self.follow(list(custom.values()), tasks)

    def allow_checker(self, skill: str, name: str) -> None:
        """Let ``name`` (or ``*/agent``: that agent on any node) post checks of ``skill``."""
        self._checkers.setdefault(skill, set()).add(name)

    def allow_checkers(self, name: str, skills: Collection[str]) -> None:
        """Let ``name`` post checks of each of ``skills``."""
        for skill in skills:
            self.allow_checker(skill, name)

    def may_check(self, name: str, skill: str) -> bool:
        """Whether ``name``'s checks of ``skill`` are authoritative here."""
        allowed = self._checkers.get(skill)
        if not allowed:
            return False
        if name in allowed:
            return True
        _, slash, agent = name.partition("/")
        return bool(slash) and "*/" + agent in allowed

    # -- judging ---------------------------------------------------------------------------

    def judge(
        self,
        spec: TaskSpec,
        poster: str,
        decision: Decision,
        signal: Signal,
        lookup: Lookup,
        *,
        first: int = 1,
    ) -> Justification:
        """Apply the rule of ``decision``'s basis (pure: no state changes); ``first`` is the
        task's first attempt since its last restart (its attempts are counted from there)."""
        rule = self.rules.get(decision.basis)
        if rule is None:
            return Justification("drop", "unknown_basis")
        if decision.verdict == "accepted" and spec.approval is not None:
            # only the human's signed answer accepts it, and every board derives that
            # decision from the approval itself: one in the field is never one
            return Justification("drop", "needs_approval")
        if (
            decision.verdict == "failed"
            and decision.basis in ATTEMPT_BOUND
            and decision.attempt - first + 1 < spec.max_attempts
        ):
            return Justification("drop", "attempts_left")
        case = Case(decision, signal, spec, poster, lookup, self.trust, self.may_check)
        return rule(case)

    def admit(
        self,
        spec: TaskSpec,
        poster: str,
        decision: Decision,
        signal: Signal,
        lookup: Lookup,
        now: Callable[[], float],
        *,
        first: int = 1,
    ) -> bool:
        """Whether to apply ``decision`` now; if not, it is held (until ``now() + hold_s``)
        or dropped, and counted (``first``: see :meth:`judge`)."""
        if self.own:
            self._own += 1  # a plain int: this is on every decision of a busy team
            return True
        verdict = self.judge(spec, poster, decision, signal, lookup, first=first)
        if verdict.status == "ok":
            self.counters["accepted"] += 1
            return True
        if verdict.status == "drop":
            self.counters["dropped_" + verdict.reason] += 1
            return False
        key = (decision.task_id, signal.address)
        if key not in self._held:
            if len(self._held) >= self.max_held:
                self._forget(next(iter(self._held)), "dropped_hold_full")
            held = _Held(now() + self.hold_s, spec, poster, decision, signal, first)
            self._held[key] = held
            self.holding = True
            self._by_task[decision.task_id] += 1
            self.counters["held"] += 1
        return False

    def recheck(
        self, kind: str, task_id: object, lookup: Lookup, now: float
    ) -> list[tuple[Decision, Signal]]:
        """After a signal of ``kind`` about ``task_id`` arrived: drop the held decisions past
        their time, and return those of ``task_id`` now justified (in arrival order)."""
        self.expire(now)
        if kind not in EVIDENCE_KINDS or not isinstance(task_id, str):
            return []
        if not self._by_task.get(task_id):
            return []
        ready: list[tuple[Decision, Signal]] = []
        for key, held in list(self._held.items()):
            if key[0] != task_id:
                continue
            verdict = self.judge(
                held.spec, held.poster, held.decision, held.signal, lookup, first=held.first
            )
            if verdict.status == "wait":
                continue
            self._forget(key, None)
            if verdict.status == "ok":
                self.counters["accepted"] += 1
                ready.append((held.decision, held.signal))
            else:
                self.counters["dropped_" + verdict.reason] += 1
        return ready

    def expire(self, now: float) -> None:
        """Drop the held decisions whose evidence did not come in time."""
        while self._held:
            key, held = next(iter(self._held.items()))
            if held.deadline > now:
                return  # held in arrival order, with one hold_s: the rest are younger
            self._forget(key, "dropped_hold_timeout")

    def _forget(self, key: tuple[str, str], counter: str | None) -> None:
        del self._held[key]
        self.holding = bool(self._held)
        self._by_task[key[0]] -= 1
        if self._by_task[key[0]] <= 0:
            del self._by_task[key[0]]
        if counter is not None:
            self.counters[counter] += 1

    def stats(self) -> dict[str, int]:
        """Counters: ``accepted`` (of which ``own``: this board's agents' decisions),
        ``held`` (ever), ``waiting`` (now), ``dropped_<reason>``."""
        counts = self.counters + Counter(own=self._own, accepted=self._own)
        out = dict(sorted(counts.items()))
        out["waiting"] = len(self._held)
        return out
