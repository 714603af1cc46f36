"""Justified decisions (issue 10, found-2): a board acts on a decision only when the votes or
checks it cites are in its field and re-derive it under its own trust table.

Scripted signals on a bare board: nothing here runs agents, every decision is emitted by
hand the way a buggy or hostile participant could. The decisions are written out as plain
payloads (not built with the helpers of ``smesh.agents.justify``) so that the same tests
run against a board that does not justify anything, and fail there.
"""

from __future__ import annotations

from typing import Any

import pytest

from smesh.agents.board import TaskBoard
from smesh.agents.protocol import (
    Approval,
    ApprovalRequest,
    ApprovalSpec,
    Check,
    Decision,
    Reopen,
    Result,
    TaskSpec,
    VerifySpec,
    Vote,
    encode,
)
from smesh.clock import VirtualClock
from smesh.decay import Step
from smesh.field import Field
from smesh.signal import Signal, compute_address
from smesh.trust import TrustTable

QUORUM = VerifySpec(quorum=0.9, margin=0.3)  # two voters at 0.5 reach it
TTL = 3600.0


class Scene:
    """A field, its board, one posted task and its first result."""

    def __init__(
        self,
        *,
        verify: VerifySpec | None = QUORUM,
        trust: TrustTable | None = None,
        checkers: dict[str, list[str]] | None = None,
        max_attempts: int = 1,
        error: str | None = None,
        approval: ApprovalSpec | None = None,
    ) -> None:
        self.clock = VirtualClock(100.0)
        self.field = Field(self.clock)
        spec = TaskSpec(
            task_id="t", skill="s", verify=verify, max_attempts=max_attempts, approval=approval
        )
        self.field.emit("task", spec.payload(), origin="poster", decay=Step(), ttl=TTL)
        extra: dict[str, Any] = {} if checkers is None else {"checkers": checkers}
        self.board = TaskBoard(self.field, trust=trust, **extra)
        self.result = self.emit(Result("t", 1, "out", error), "w", scope="origin")

    @property
    def task(self) -> Any:
        return self.board.tasks["t"]

    def emit(self, payload: Any, origin: str, *, scope: Any = "content") -> Signal:
        return self.field.emit(
            payload.KIND, encode(payload), origin=origin, scope=scope, decay=Step(), ttl=TTL
        )

    def vote(self, verdict: Any, *voters: str, attempt: int = 1) -> Signal:
        first, *rest = voters
        signal = self.emit(Vote("t", attempt, self.result.address, verdict), first)
        for voter in rest:
            self.field.reinforce(signal.address, by=voter)
        return self.field.get(signal.address) or signal

    def vote_address(self, verdict: Any) -> str:
        """Where the votes of ``verdict`` on the result land (before any is cast)."""
        vote = Vote("t", 1, self.result.address, verdict)
        return compute_address("vote", encode(vote), "")

    def decide(
        self,
        verdict: Any,
        basis: str,
        cites: dict[str, list[str]] | None = None,
        *,
        by: str = "v1",
        attempt: int = 1,
        result: str | None = "",
    ) -> Signal:
        cited = self.result.address if result == "" else result
        # on evidence anyone may emit (and reinforce) the same decision; the worker's and
        # the poster's own verdicts are origin-scoped
        scope = "content" if basis in ("votes", "checks") else "origin"
        # the wire form, as any participant can send it
        decision = {"task_id": "t", "attempt": attempt, "verdict": verdict, "basis": basis}
        decision |= {"result": cited, "cites": cites or {}}
        return self.field.emit("decision", decision, origin=by, scope=scope, decay=Step(), ttl=TTL)

    def stats(self) -> dict[str, int]:
        return self.board.justifier.stats()


# -- votes -----------------------------------------------------------------------------------


def test_a_decision_with_no_votes_behind_it_decides_nothing() -> None:
    scene = Scene()
    scene.decide("accepted", "votes")  # cites nothing
    scene.emit(Decision("t", 1, "accepted", "votes"), "v2")  # no result cited either
    assert not scene.task.final
    assert scene.board.all_final() is False
    assert scene.stats()["dropped_insufficient_votes"] == 1
    assert scene.stats()["dropped_no_result_cited"] == 1


def test_votes_that_reach_the_quorum_accept_and_the_counter_shows_it() -> None:
    scene = Scene()
    vote = scene.vote("approve", "v1", "v2")
    scene.decide("accepted", "votes", {vote.address: ["v1", "v2"]})
    assert scene.task.outcome == "accepted"
    assert scene.board.all_final()
    assert scene.stats()["accepted"] == 1


def test_the_quorum_is_weighed_in_the_receivers_own_trust_table() -> None:
    distrust = TrustTable()
    for voter in ("v1", "v2"):
        distrust.set(voter, 0.2, 0.0)  # this receiver has seen v1 and v2 be wrong
    scene = Scene(trust=distrust)
    other = TaskBoard(scene.field)  # another receiver, strangers at 0.5
    vote = scene.vote("approve", "v1", "v2")
    scene.decide("accepted", "votes", {vote.address: ["v1", "v2"]})
    assert not scene.task.final  # 0.4 + 0.4 < 0.9 here
    assert scene.stats()["dropped_insufficient_votes"] == 1
    assert other.tasks["t"].outcome == "accepted"  # 0.5 + 0.5 >= 0.9 there
    other.close()


def test_the_margin_counts_the_cited_opposition() -> None:
    scene = Scene(verify=VerifySpec(quorum=0.9, margin=0.6))
    yes = scene.vote("approve", "v1", "v2")
    no = scene.vote("reject", "v3")
    scene.decide("accepted", "votes", {yes.address: ["v1", "v2"], no.address: ["v3"]})
    assert not scene.task.final  # 1.0 against 0.5: a lead of 0.5 < 0.6
    assert scene.stats()["dropped_insufficient_votes"] == 1


def test_an_untrusted_voter_weighs_next_to_nothing() -> None:
    trust = TrustTable()
    trust.set("sybil", 0.01, 0.0)
    scene = Scene(trust=trust)
    vote = scene.vote("approve", "v1", "sybil")
    scene.decide("accepted", "votes", {vote.address: ["v1", "sybil"]})
    assert not scene.task.final  # 0.5 + 0.01 < 0.9


def test_a_voter_on_both_sides_counts_for_neither() -> None:
    scene = Scene()
    yes = scene.vote("approve", "v1", "v2")
    scene.vote("reject", "v2")  # v2 equivocates
    scene.decide("accepted", "votes", {yes.address: ["v1", "v2"]})
    assert not scene.task.final


def test_voters_named_in_a_decision_but_not_on_the_vote_are_waited_for_then_dropped() -> None:
    scene = Scene()
    vote = scene.vote("approve", "v1")
    # claims that two strangers approved too: they never did
    scene.decide("accepted", "votes", {vote.address: ["v1", "ghost1", "ghost2"]})
    assert not scene.task.final
    assert scene.stats()["waiting"] == 1
    scene.clock.advance(scene.board.justifier.hold_s + 1)
    scene.vote("approve", "v9")  # any later event of the field notices the time
    assert not scene.task.final
    assert scene.stats()["dropped_hold_timeout"] == 1
    assert scene.stats()["waiting"] == 0


def test_a_decision_ahead_of_its_votes_is_held_then_accepted_when_they_arrive() -> None:
    scene = Scene()
    # over a mesh the decision may come first: cite the vote signal the voters will land on
    address = scene.vote_address("approve")
    scene.decide("accepted", "votes", {address: ["v1", "v2"]})
    assert not scene.task.final
    assert scene.stats()["waiting"] == 1
    scene.vote("approve", "v1")
    assert not scene.task.final  # one of the two is in: still waiting
    scene.field.reinforce(address, by="v2")
    assert scene.task.outcome == "accepted"
    assert scene.stats() | {"held": 0} == {"accepted": 1, "held": 0, "waiting": 0}


def test_the_number_of_held_decisions_is_bounded() -> None:
    scene = Scene()
    scene.board.justifier.max_held = 2
    address = scene.vote_address("approve")
    for i in range(3):  # three decisions waiting for voters who will never come
        scene.decide("accepted", "votes", {address: ["v1", f"ghost{i}"]}, by=f"x{i}")
    assert scene.stats()["waiting"] == 2
    assert scene.stats()["dropped_hold_full"] == 1


def test_votes_on_another_result_do_not_justify() -> None:
    scene = Scene()
    vote = scene.vote("approve", "v1", "v2")
    other = scene.emit(Result("t", 1, "forged", None), "x", scope="origin")
    scene.decide("accepted", "votes", {vote.address: ["v1", "v2"]}, result=other.address)
    assert not scene.task.final
    assert scene.stats()["dropped_not_a_vote"] == 1


def test_a_final_failure_with_attempts_left_is_dropped() -> None:
    scene = Scene(max_attempts=3)
    vote = scene.vote("reject", "v1", "v2")
    scene.decide("failed", "votes", {vote.address: ["v1", "v2"]})
    assert not scene.task.final
    assert scene.stats()["dropped_attempts_left"] == 1
    scene.decide("rejected", "votes", {vote.address: ["v1", "v2"]})
    assert scene.task.attempt == 2  # the honest form of the same verdict


def test_attempts_are_counted_from_the_last_restart() -> None:
    """A reopened task gets its ``max_attempts`` again: a ``failed`` on its first attempt
    after the restart is dropped, though that attempt's number is past ``max_attempts``."""
    scene = Scene(max_attempts=2)
    vote = scene.vote("approve", "v1", "v2")
    scene.decide("accepted", "votes", {vote.address: ["v1", "v2"]})
    assert scene.task.outcome == "accepted"
    scene.emit(Reopen("t", "new data", by="poster", at=1.0), "poster", scope="origin")
    assert (scene.task.outcome, scene.task.attempt, scene.task.base) == (None, 2, 2)
    scene.result = scene.emit(Result("t", 2, "out 2"), "w", scope="origin")
    vote = scene.vote("reject", "v1", "v2", attempt=2)
    scene.decide("failed", "votes", {vote.address: ["v1", "v2"]}, attempt=2)
    assert not scene.task.final  # one try of two since the restart
    assert scene.stats()["dropped_attempts_left"] == 1
    scene.decide("rejected", "votes", {vote.address: ["v1", "v2"]}, attempt=2)
    assert scene.task.attempt == 3


# -- approvals -------------------------------------------------------------------------------


def test_an_approval_gated_task_is_accepted_only_by_the_approvers_signed_answer() -> None:
    """Good votes, a decision citing them, a decision claiming the approval, an answer from
    someone else: none accepts a task that waits for ann; ann's answer does, on every board."""
    scene = Scene(approval=ApprovalSpec(by="ann"))
    other = TaskBoard(scene.field)  # another receiver of the same field
    vote = scene.vote("approve", "v1", "v2")
    request = ApprovalRequest("t", 1, scene.result.address, "ann")
    scene.emit(request, "v1")
    scene.decide("accepted", "votes", {vote.address: ["v1", "v2"]})  # valid evidence
    scene.decide("accepted", "approval", by="mallory")  # an approval nobody gave
    scene.emit(Approval("t", 1, "approve", "", "ann", scene.result.address), "mallory")
    for board in (scene.board, other):
        assert not board.tasks["t"].final
        assert board.justifier.stats()["dropped_needs_approval"] == 1
        assert board.justifier.stats()["dropped_unknown_basis"] == 1
    answer = Approval("t", 1, "approve", "fine", "ann", scene.result.address)
    scene.emit(answer, "ann", scope="origin")
    for board in (scene.board, other):
        assert board.tasks["t"].outcome == "accepted"
        assert board.all_final()


# -- checks ----------------------------------------------------------------------------------


def _check(scene: Scene, checker: str, verdict: Any) -> Signal:
    return scene.emit(Check("t", 1, scene.result.address, verdict), checker, scope="origin")


def test_checks_count_only_from_agents_allowed_to_check_the_skill() -> None:
    scene = Scene(checkers={"s": ["tester"], "other": ["mallory"]})
    forged = _check(scene, "mallory", "approve")  # mallory may check "other", not "s"
    scene.decide("accepted", "checks", {forged.address: []})
    assert not scene.task.final
    assert scene.stats()["dropped_checker_not_allowed"] == 1
    real = _check(scene, "tester", "approve")
    scene.decide("accepted", "checks", {real.address: []}, by="v2")
    assert scene.task.outcome == "accepted"


def test_a_node_pattern_allows_that_agent_on_any_node() -> None:
    scene = Scene(checkers={"s": ["*/tester"]})
    node = "ab" * 16
    fake = _check(scene, f"{node}/testerx", "approve")
    scene.decide("accepted", "checks", {fake.address: []})
    assert not scene.task.final
    real = _check(scene, f"{node}/tester", "approve")
    scene.decide("accepted", "checks", {real.address: []}, by="v2")
    assert scene.task.outcome == "accepted"


def test_a_decision_must_follow_its_checks() -> None:
    scene = Scene(checkers={"s": ["tester"]})
    check = _check(scene, "tester", "reject")
    scene.decide("accepted", "checks", {check.address: []})
    assert not scene.task.final
    assert scene.stats()["dropped_checks_disagree"] == 1


# -- the worker's and the poster's own decisions ---------------------------------------------


@pytest.mark.parametrize(
    ("verify", "error", "verdict", "basis"),
    [
        (None, None, "accepted", "unverified"),
        (QUORUM, "boom", "failed", "error"),
    ],
)
def test_only_the_worker_decides_its_own_unverified_or_failed_result(
    verify: VerifySpec | None, error: str | None, verdict: str, basis: str
) -> None:
    scene = Scene(verify=verify, error=error)
    scene.decide(verdict, basis, by="intruder")
    assert not scene.task.final
    assert scene.stats()["dropped_not_the_worker"] == 1
    scene.decide(verdict, basis, by="w")
    assert scene.task.outcome == verdict


def test_unverified_acceptance_of_a_task_that_asks_verification_is_dropped() -> None:
    scene = Scene()
    scene.decide("accepted", "unverified", by="w")
    assert not scene.task.final
    assert scene.stats()["dropped_verification_skipped"] == 1


def test_a_timeout_needs_the_time_to_have_passed() -> None:
    early = Scene(max_attempts=1)
    early.clock.advance(QUORUM.timeout_s - 1)
    early.decide("failed", "timeout", by="w")
    assert not early.task.final
    assert early.stats()["dropped_too_early"] == 1
    scene = Scene(max_attempts=1)
    scene.clock.advance(QUORUM.timeout_s)
    scene.decide("failed", "timeout", by="intruder")
    assert not scene.task.final
    scene.decide("failed", "timeout", by="w")
    assert scene.task.outcome == "failed"


def test_only_the_poster_gives_up_its_task() -> None:
    scene = Scene()
    scene.decide("failed", "give-up", by="v1", result=None)
    assert not scene.task.final
    scene.decide("failed", "give-up", by="poster", result=None)
    assert scene.task.outcome == "failed"


def test_a_basis_without_a_rule_is_dropped_and_a_rule_can_be_added() -> None:
    scene = Scene()
    scene.decide("accepted", "because-i-say-so")
    assert not scene.task.final
    assert scene.stats()["dropped_unknown_basis"] == 1
    from smesh.agents.justify import Justification

    scene.board.justifier.add_rule("because-i-say-so", lambda case: Justification("ok"))
    scene.decide("accepted", "because-i-say-so", by="v2")
    assert scene.task.outcome == "accepted"


# -- the unfinished counter ------------------------------------------------------------------


def test_a_second_final_decision_for_another_attempt_keeps_the_board_final() -> None:
    """Found-2: a second final decision (another attempt) drove the count of unfinished
    tasks below zero, so ``all_final()`` never held again and runs ended on idle."""
    scene = Scene(verify=None, max_attempts=3)
    scene.decide("accepted", "unverified", by="w")
    assert scene.board.all_final()
    scene.emit(Result("t", 2, "again", None), "w2", scope="origin")  # a late second attempt
    scene.decide("failed", "give-up", by="poster", attempt=2, result=None)
    assert scene.task.outcome == "accepted"
    assert scene.board.all_final()
    assert scene.board.tasks["t"].final
    # and a task that faded before its decision is counted once, too
    late = Scene(verify=None)
    late.field.withdraw(late.board.tasks["t"].signal.address, by="poster")
    late.decide("accepted", "unverified", by="w")
    assert late.board.all_final()


def test_a_team_that_decides_by_its_own_rule_judges_by_it_too() -> None:
    """``smesh code``'s gate: the tests pass but the reviewer rejects, a rejection "on the
    checks" that the built-in rule would refuse; the team's own rule re-derives it."""
    from smesh.agents.protocol import Ruling

    scene = Scene(checkers={"s": ["tester"]}, max_attempts=3)
    check = _check(scene, "tester", "approve")
    scene.vote("reject", "reviewer")

    def tests_and_review(task: Any, attempt: int) -> Ruling | None:
        if "reviewer" in task.ballots(attempt).get("reject", ()):
            return Ruling("rejected", "checks")
        return None

    scene.decide("rejected", "checks", {check.address: []})
    assert scene.task.attempt == 1
    assert scene.stats()["dropped_checks_disagree"] == 1
    scene.board.justifier.follow([tests_and_review], scene.board.tasks)
    scene.decide("rejected", "checks", {check.address: [], "0" * 32: []}, by="reviewer")
    assert scene.task.attempt == 2
    # and the rule does not open the door to anything else
    scene.decide("accepted", "votes", {}, by="x", attempt=1)
    assert not scene.task.final
