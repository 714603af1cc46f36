"""The pure protocol rules (SPEC §2): claim winner, back-off, tally, task payloads."""

from __future__ import annotations

import itertools

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from smesh.agents import Budget, Settings, TaskSpec, VerifySpec
from smesh.agents.protocol import (
    BACKOFF_MARGIN,
    ClaimView,
    Verdict,
    claim_winner,
    concedes,
    tally,
    task_intensity,
)
from smesh.errors import BudgetExceeded, InvalidSignal, UsageError

# -- claim_winner ------------------------------------------------------------------------------


def test_no_live_claim_has_no_winner() -> None:
    assert claim_winner([]) is None


def test_higher_bid_wins() -> None:
    assert claim_winner([ClaimView("a", 0.5, False), ClaimView("b", 0.8, False)]) == "b"


def test_equal_bids_go_to_the_lower_node_id() -> None:
    claims = [ClaimView("b", 0.8, False), ClaimView("a", 0.8, False), ClaimView("c", 0.8, False)]
    assert claim_winner(claims) == "a"
    # ids compare as strings: "a10" < "a9"
    assert claim_winner([ClaimView("a9", 0.5, False), ClaimView("a10", 0.5, False)]) == "a10"


def test_a_held_claim_beats_any_bid() -> None:
    claims = [ClaimView("a", 1.0, False), ClaimView("z", 0.1, True), ClaimView("b", 0.9, False)]
    assert claim_winner(claims) == "z"


def test_among_held_claims_the_usual_ranking_applies() -> None:
    claims = [ClaimView("b", 0.4, True), ClaimView("a", 0.4, True), ClaimView("c", 0.9, False)]
    assert claim_winner(claims) == "a"
    claims = [ClaimView("b", 0.6, True), ClaimView("a", 0.4, True)]
    assert claim_winner(claims) == "b"


def test_every_observer_computes_the_same_winner_whatever_the_order() -> None:
    claims = [
        ClaimView("d", 0.7, False),
        ClaimView("b", 0.9, False),
        ClaimView("a", 0.9, False),
        ClaimView("c", 0.2, False),
    ]
    winners = {claim_winner(list(p)) for p in itertools.permutations(claims)}
    assert winners == {"a"}


# -- concedes ----------------------------------------------------------------------------------


def test_an_uncontested_bid_does_not_concede() -> None:
    mine = ClaimView("a", 0.3, False)
    assert not concedes(mine, [])
    assert not concedes(mine, [ClaimView("a", 0.3, False)])  # my own claim is no rival


def test_a_bid_beaten_by_more_than_the_margin_concedes() -> None:
    assert BACKOFF_MARGIN == 0.1
    mine = ClaimView("a", 0.5, False)
    assert concedes(mine, [ClaimView("z", 0.65, False)])


def test_within_the_margin_the_tie_break_decides() -> None:
    # z beats a by less than the margin: still the winner, so a concedes and z does not
    a, z = ClaimView("a", 0.5, False), ClaimView("z", 0.55, False)
    assert concedes(a, [z])
    assert not concedes(z, [a])
    # equal bids: the lower id survives
    a, b = ClaimView("a", 0.5, False), ClaimView("b", 0.5, False)
    assert not concedes(a, [b])
    assert concedes(b, [a])


def test_a_bid_concedes_to_a_held_claim_even_with_a_higher_bid() -> None:
    assert concedes(ClaimView("a", 1.0, False), [ClaimView("z", 0.1, True)])


def test_of_two_held_claims_the_lower_ranked_concedes() -> None:
    a, b = ClaimView("a", 0.5, True), ClaimView("b", 0.5, True)
    assert not concedes(a, [b])
    assert concedes(b, [a])


@given(
    st.dictionaries(
        st.text(alphabet="abcdef", min_size=1, max_size=3),
        st.floats(min_value=0.0, max_value=1.0, allow_nan=False),
        min_size=1,
        max_size=8,
    )
)
def test_exactly_one_bidder_survives_and_it_is_the_winner(bids: dict[str, float]) -> None:
    claims = [ClaimView(agent, bid, False) for agent, bid in bids.items()]
    survivors = [c.agent for c in claims if not concedes(c, claims)]
    assert survivors == [claim_winner(claims)]


# -- tally -------------------------------------------------------------------------------------


def test_quorum_and_margin_accept() -> None:
    t = tally({"approve": ["a", "b"]}, lambda v: 0.5, quorum=0.9, margin=0.3)
    assert (t.approve, t.reject, t.outcome) == (1.0, 0.0, "accepted")


def test_rejection_is_symmetric() -> None:
    t = tally({"reject": ["a", "b"], "approve": ["c"]}, lambda v: 0.5, quorum=0.9, margin=0.3)
    assert (t.approve, t.reject, t.outcome) == (0.5, 1.0, "rejected")


def test_below_quorum_waits() -> None:
    t = tally({"approve": ["a"]}, lambda v: 0.5, quorum=0.9, margin=0.3)
    assert t.outcome is None


def test_quorum_without_margin_waits() -> None:
    ballots: dict[Verdict, list[str]] = {"approve": ["a", "b", "c"], "reject": ["d", "e"]}
    t = tally(ballots, lambda v: 0.5, quorum=0.9, margin=0.6)  # 1.5 vs 1.0: lead 0.5 < 0.6
    assert t.outcome is None
    assert tally(ballots, lambda v: 0.5, quorum=0.9, margin=0.5).outcome == "accepted"


def test_votes_weigh_by_trust() -> None:
    trust = {"tool": 0.95, "flaky": 0.2, "newbie": 0.5}
    # one trusted rejecter outweighs two approvers with less trust
    t = tally(
        {"approve": ["flaky", "newbie"], "reject": ["tool"]},
        trust.__getitem__,
        quorum=0.9,
        margin=0.2,
    )
    assert t.approve == pytest.approx(0.7)
    assert t.reject == pytest.approx(0.95)
    assert t.outcome == "rejected"
    # with equal trust the same ballots go the other way
    flat = tally(
        {"approve": ["flaky", "newbie"], "reject": ["tool"]}, lambda v: 0.5, quorum=0.9, margin=0.2
    )
    assert flat.outcome == "accepted"


def test_a_voter_under_both_verdicts_counts_for_neither() -> None:
    t = tally({"approve": ["a", "b"], "reject": ["a"]}, lambda v: 0.5, quorum=0.9, margin=0.3)
    assert (t.approve, t.reject, t.outcome) == (0.5, 0.0, None)


def test_a_voter_listed_twice_counts_once() -> None:
    t = tally({"approve": ["a", "a"]}, lambda v: 0.5, quorum=0.9, margin=0.3)
    assert t.approve == 0.5
    assert t.outcome is None


def test_binary_float_sums_still_reach_the_quorum() -> None:
    t = tally({"approve": ["a", "b"]}, lambda v: 0.45, quorum=0.9, margin=0.3)
    assert t.outcome == "accepted"


# -- task specs --------------------------------------------------------------------------------


def test_task_payload_round_trip() -> None:
    spec = TaskSpec(
        task_id="t1",
        skill="code",
        description="write it",
        priority=0.8,
        verify=VerifySpec(quorum=1.2, margin=0.4, schema={"type": "object"}, timeout_s=9.0),
        max_attempts=5,
        input={"n": [1, 2]},
        kind="review",
    )
    payload = spec.payload()
    assert "kind" not in payload  # the signal kind carries it
    assert payload["verify"] == {
        "quorum": 1.2,
        "margin": 0.4,
        "schema": {"type": "object"},
        "timeout_s": 9.0,
    }
    assert msgspec.json.decode(msgspec.json.encode(payload)) == payload  # plain JSON
    assert TaskSpec.from_payload(payload, "review") == spec
    assert TaskSpec.from_payload(payload).kind == "task"


def test_task_defaults() -> None:
    spec = TaskSpec(task_id="t", skill="s")
    assert (spec.priority, spec.verify, spec.max_attempts, spec.kind) == (0.5, None, 3, "task")
    assert TaskSpec.from_payload(spec.payload()) == spec


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"task_id": "", "skill": "s"}, "task_id"),
        ({"task_id": "t", "skill": ""}, "skill"),
        ({"task_id": "t", "skill": "s", "priority": -0.1}, "priority"),
        ({"task_id": "t", "skill": "s", "priority": 1.5}, "priority"),
        ({"task_id": "t", "skill": "s", "max_attempts": 0}, "max_attempts"),
    ],
)
def test_task_validation(options: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidSignal, match=message):
        TaskSpec(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "payload",
    [
        {"task_id": "t", "skill": "s", "priority": 2.0},
        {"task_id": "t", "skill": "s", "priority": "high"},
        {"skill": "s"},
    ],
)
def test_malformed_task_payloads_are_rejected(payload: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        TaskSpec.from_payload(payload)


@pytest.mark.parametrize(("priority", "intensity"), [(0.0, 0.5), (0.5, 0.75), (1.0, 1.0)])
def test_task_intensity(priority: float, intensity: float) -> None:
    assert task_intensity(priority) == intensity


# -- settings and budget -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"lease_s": 0.0},
        {"tick_s": 0.0},
        {"poll_s": 0.0},
        {"work_timeout_s": -1.0},
        {"lease_s": float("inf")},
    ],
)
def test_settings_reject_bad_timings(options: dict[str, float]) -> None:
    with pytest.raises(UsageError):
        Settings(**options)


def test_budget_trips_at_its_limit_and_stays_tripped() -> None:
    budget = Budget(calls=2, tokens=100)
    budget.check()
    budget.charge(tokens=60)
    budget.check()
    budget.charge(tokens=60)  # 2 calls, 120 tokens: both limits reached
    with pytest.raises(BudgetExceeded, match="calls budget of 2"):
        budget.check()
    assert budget.exceeded == "calls budget of 2 reached"
    assert budget.usage()["calls"] == 2
    assert budget.usage()["tokens"] == 120


def test_an_unlimited_budget_never_trips() -> None:
    budget = Budget()
    budget.charge(calls=10**6, tokens=10**9, cost=1e6)
    budget.check()
    assert budget.exceeded is None
