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

A basis with no rule is unjustified; :meth:`Justifier.add_rule` adds one (a workflow's
``cancel`` or a human's approval rests on its own signed signal, not on votes). Only
``failed`` may end an attempt at or past ``max_attempts`` with a rejection, and only then.

Over a mesh a decision can arrive before the votes it cites (diffusion has no order). A
decision whose evidence is missing is *held*, re-checked when a vote, check or result of
its task arrives, and dropped when ``hold_s`` passes or more than ``max_held`` wait (the
oldest first). Every drop is counted by reason (:meth:`Justifier.stats`).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, Literal

import msgspec

from smesh.agents.protocol import (
    KIND_CHECK,
    KIND_RESULT,
    KIND_VOTE,
    Check,
    Decision,
    Result,
    Ruling,
    TaskSpec,
    Verdict,
    Vote,
    decode,
    encode,
    tally,
)
from smesh.signal import Signal, compute_address
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
    "vote_address",
]

#: ``lookup(address)``: the live signal at ``address`` in the receiver's field, or None
Lookup = Callable[[str], Signal | None]

#: kinds whose arrival may complete a held decision's evidence
EVIDENCE_KINDS: frozenset[str] = frozenset({KIND_VOTE, KIND_CHECK, KIND_RESULT})


class Justification(msgspec.Struct, frozen=True):
    """What a rule says of a decision: ``ok``, ``wait`` (evidence missing) or ``drop``."""

    status: Literal["ok", "wait", "drop"]
    reason: str = ""


_OK = Justification("ok")


def _wait(reason: str) -> Justification:
    return Justification("wait", reason)


def _drop(reason: str) -> Justification:
    return Justification("drop", reason)


class Case(msgspec.Struct, frozen=True):
    """Everything a rule may read: the decision, its signal, the task, the receiver's field,
    trust and checker policy."""

    decision: Decision
    signal: Signal
    spec: TaskSpec
    poster: str
    lookup: Lookup
    trust: TrustTable
    may_check: Callable[[str, str], bool]


#: a justification rule for one basis
Rule = Callable[[Case], Justification]


def _cited_result(case: Case) -> Signal | Justification:
    decision = case.decision
    if decision.result is None:
        return _drop("no_result_cited")
    signal = case.lookup(decision.result)
    if signal is None:
        return _wait("result_missing")
    payload = signal.payload
    if (
        signal.kind != KIND_RESULT
        or not isinstance(payload, dict)
        or payload.get("task_id") != decision.task_id
        or payload.get("attempt") != decision.attempt
    ):
        return _drop("wrong_result")
    return signal


def vote_address(task_id: str, attempt: int, result: str, verdict: Verdict) -> str:
    """Where the votes of ``verdict`` on ``result`` land (one content-scoped signal)."""
    return compute_address(KIND_VOTE, encode(Vote(task_id, attempt, result, verdict)), "")


def _votes(case: Case) -> Justification:
    decision, verify = case.decision, case.spec.verify
    if verify is None:
        return _drop("no_verification")
    result_signal = _cited_result(case)
    if isinstance(result_signal, Justification):
        return result_signal
    ballots: dict[Verdict, set[str]] = {"approve": set(), "reject": set()}
    seen: dict[Verdict, set[str]] = {}
    for address, voters in decision.cites.items():
        signal = case.lookup(address)
        if signal is None:
            return _wait("votes_missing")  # the vote signal is on its way
        vote = decode(Vote, signal.payload) if signal.kind == KIND_VOTE else None
        if (
            vote is None
            or vote.task_id != decision.task_id
            or vote.attempt != decision.attempt
            or vote.result != result_signal.address
        ):
            return _drop("not_a_vote")
        present = {signal.origin, *signal.reinforcers}
        if not present.issuperset(voters):
            return _wait("voters_missing")  # their reinforcements are on their way
        ballots[vote.verdict].update(voters)
        seen[vote.verdict] = present
    # a voter on both sides (equivocation) counts for neither, cited there or not: look
    # at the uncited side's signal too (content-scoped: its address is known)
    for verdict in ("approve", "reject"):
        if verdict not in seen:
            where = vote_address(decision.task_id, decision.attempt, result_signal.address, verdict)
            other = case.lookup(where)
            seen[verdict] = set() if other is None else {other.origin, *other.reinforcers}
    both = seen["approve"] & seen["reject"]
    when = result_signal.created_at
    count = tally(
        {k: sorted(v - both) for k, v in ballots.items()},
        lambda voter: case.trust.get(voter, when),
        quorum=verify.quorum,
        margin=verify.margin,
    )
    wanted = "accepted" if decision.verdict == "accepted" else "rejected"
    if count.outcome != wanted:
        return _drop("insufficient_votes")
    return _OK


def _checks(case: Case) -> Justification:
    decision = case.decision
    result_signal = _cited_result(case)
    if isinstance(result_signal, Justification):
        return result_signal
    if not decision.cites:
        return _drop("nothing_cited")
    verdicts: list[str] = []
    for address in decision.cites:
        signal = case.lookup(address)
        if signal is None:
            return _wait("checks_missing")
        check = decode(Check, signal.payload) if signal.kind == KIND_CHECK else None
        if (
            check is None
            or check.task_id != decision.task_id
            or check.attempt != decision.attempt
            or check.result != result_signal.address
        ):
            return _drop("not_a_check")
        if not case.may_check(signal.origin, case.spec.skill):
            return _drop("checker_not_allowed")
        verdicts.append(check.verdict)
    rejected = "reject" in verdicts
    if rejected != (decision.verdict != "accepted"):
        return _drop("checks_disagree")
    return _OK


def _own_result(case: Case) -> tuple[Signal, Result] | Justification:
    signal = _cited_result(case)
    if isinstance(signal, Justification):
        return signal
    if signal.origin != case.signal.origin:
        return _drop("not_the_worker")
    result = decode(Result, signal.payload)
    if result is None:
        return _drop("wrong_result")
    return signal, result


def _error(case: Case) -> Justification:
    cited = _own_result(case)
    if isinstance(cited, Justification):
        return cited
    if not cited[1].error or case.decision.verdict == "accepted":
        return _drop("no_error")
    return _OK


def _unverified(case: Case) -> Justification:
    cited = _own_result(case)
    if isinstance(cited, Justification):
        return cited
    if case.spec.verify is not None or cited[1].error or case.decision.verdict != "accepted":
        return _drop("verification_skipped")
    return _OK


def _timeout(case: Case) -> Justification:
    verify = case.spec.verify
    cited = _own_result(case)
    if isinstance(cited, Justification):
        return cited
    if verify is None or case.decision.verdict == "accepted":
        return _drop("not_a_timeout")
    # both times are the worker's own clock: no skew between nodes
    if case.signal.created_at + 1e-6 < cited[0].created_at + verify.timeout_s:
        return _drop("too_early")
    return _OK


def _give_up(case: Case) -> Justification:
    if case.signal.origin != case.poster or case.decision.verdict != "failed":
        return _drop("not_the_poster")
    return _OK


DEFAULT_RULES: Mapping[str, Rule] = {
    "votes": _votes,
    "checks": _checks,
    "error": _error,
    "unverified": _unverified,
    "timeout": _timeout,
    "give-up": _give_up,
}

#: bases whose ``failed`` needs the attempts used up (a give-up fails the task at any time)
_ATTEMPT_BOUND = frozenset({"votes", "checks", "error", "timeout"})


#: ``settle(task_state, attempt)``: an acceptance rule (see ``Verifying.settle``)
Settle = Callable[[Any, int], Ruling | None]


def _settle_rule(settles: Sequence[Settle], tasks: Mapping[str, Any], builtin: Rule) -> Rule:
    def rule(case: Case) -> Justification:
        found = builtin(case)
        if found.status == "ok":
            return found
        decision = case.decision
        task = tasks.get(decision.task_id)
        result = None if task is None else task.results.get(decision.attempt)
        if result is None or result.address != decision.result:
            return found
        wanted = "accepted" if decision.verdict == "accepted" else "rejected"
        for settle in settles:
            try:
                ruling = settle(task, decision.attempt)
            except Exception:  # a rule that cannot run yet (its agent not started)
                continue
            if ruling is not None and ruling.basis == decision.basis:
                if (ruling.outcome == "accepted") == (wanted == "accepted"):
                    return _OK
                return _drop("rule_disagrees")
        return _wait("rule_unsettled") if found.status == "wait" else found

    return rule


class _Held(msgspec.Struct):
    deadline: float
    spec: TaskSpec
    poster: str
    decision: Decision
    signal: Signal


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
        for basis in _SHARED_BASES:
            self.rules[basis] = _settle_rule(settles, tasks, self.rules[basis])

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
        self, spec: TaskSpec, poster: str, decision: Decision, signal: Signal, lookup: Lookup
    ) -> Justification:
        """Apply the rule of ``decision``'s basis (pure: no state changes)."""
        rule = self.rules.get(decision.basis)
        if rule is None:
            return _drop("unknown_basis")
        if (
            decision.verdict == "failed"
            and decision.basis in _ATTEMPT_BOUND
            and decision.attempt < spec.max_attempts
        ):
            return _drop("attempts_left")
        case = Case(decision, signal, spec, poster, lookup, self.trust, self.may_check)
        return rule(case)

    def admit(
        self,
        spec: TaskSpec,
        poster: str,
        decision: Decision,
        signal: Signal,
        lookup: Lookup,
        now: float,
    ) -> bool:
        """Whether to apply ``decision`` now; if not, it is held or dropped (and counted)."""
        if self.own:
            self.counters["accepted"] += 1
            self.counters["own"] += 1
            return True
        verdict = self.judge(spec, poster, decision, signal, lookup)
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
            self._held[key] = _Held(now + self.hold_s, spec, poster, decision, signal)
            self._by_task[decision.task_id] += 1
            self.counters["held"] += 1
        return False

    @property
    def holding(self) -> bool:
        """Whether any decision waits for its evidence."""
        return bool(self._held)

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
            verdict = self.judge(held.spec, held.poster, held.decision, held.signal, lookup)
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
        self._by_task[key[0]] -= 1
        if self._by_task[key[0]] <= 0:
            del self._by_task[key[0]]
        if counter is not None:
            self.counters[counter] += 1

    def stats(self) -> dict[str, int]:
        """Counters: ``accepted`` (of which ``own``: this board's agents' decisions),
        ``held`` (ever), ``waiting`` (now), ``dropped_<reason>``."""
        out = dict(sorted(self.counters.items()))
        out["waiting"] = len(self._held)
        return out


# -- citing (what an honest decider puts in its decision) -------------------------------------

#: bases whose rule does not depend on who emitted the decision: anyone may emit (and so
#: reinforce) the same one. The others are one agent's own verdict (the worker's, the
#: poster's) and origin-scoped, so nobody can emit the same payload first under another
#: name and turn the rightful decision into a mere reinforcement of a dropped one.
_SHARED_BASES = frozenset({"votes", "checks"})


def decision_scope(basis: str) -> Literal["content", "origin"]:
    """The scope of a decision of ``basis``: ``content`` on evidence, else ``origin``."""
    return "content" if basis in _SHARED_BASES else "origin"


def cite_votes(votes: Iterable[Signal]) -> dict[str, list[str]]:
    """The ``cites`` of a decision on votes: each vote signal's address and its voters."""
    return {vote.address: [vote.origin, *vote.reinforcers] for vote in votes}


def cite_checks(
    task_id: str, attempt: int, result: str, checks: Mapping[str, Verdict]
) -> dict[str, list[str]]:
    """The ``cites`` of a decision on checks (checker -> verdict on ``result``): each check
    signal's address (origin-scoped, so computed from the check and its checker)."""
    out: dict[str, list[str]] = {}
    for checker in sorted(checks):
        check = Check(task_id, attempt, result, checks[checker])
        out[compute_address(KIND_CHECK, encode(check), checker, "origin")] = []
    return out
