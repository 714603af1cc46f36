"""The evidence of a decision: the rule per basis that re-derives it, and its citations.

Pure functions over a :class:`Case` (the decision, its signal, the task, the receiver's field,
trust table and checker policy); :mod:`smesh.agents.justify` applies them, holds decisions
whose evidence is on its way and counts every refusal. The rules are described there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
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
    "ATTEMPT_BOUND",
    "DEFAULT_RULES",
    "EVIDENCE_KINDS",
    "SHARED_BASES",
    "Case",
    "Justification",
    "Lookup",
    "Rule",
    "Settle",
    "cite_checks",
    "cite_votes",
    "decision_scope",
    "settle_rule",
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
ATTEMPT_BOUND = frozenset({"votes", "checks", "error", "timeout"})


#: ``settle(task_state, attempt)``: an acceptance rule (see ``Verifying.settle``)
Settle = Callable[[Any, int], Ruling | None]


def settle_rule(settles: Sequence[Settle], tasks: Mapping[str, Any], builtin: Rule) -> Rule:
    """``builtin``, or else what one of ``settles`` re-derives from the board's ``tasks``."""

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


# -- citing (what an honest decider puts in its decision) -------------------------------------

#: bases whose rule does not depend on who emitted the decision: anyone may emit (and so
#: reinforce) the same one. The others are one agent's own verdict (the worker's, the
#: poster's) and origin-scoped, so nobody can emit the same payload first under another
#: name and turn the rightful decision into a mere reinforcement of a dropped one.
SHARED_BASES = frozenset({"votes", "checks"})


def decision_scope(basis: str) -> Literal["content", "origin"]:
    """The scope of a decision of ``basis``: ``content`` on evidence, else ``origin``."""
    return "content" if basis in SHARED_BASES else "origin"


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
