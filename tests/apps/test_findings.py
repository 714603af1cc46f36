"""The finding ledger: content-keyed findings, blind judgements, independent support."""

from __future__ import annotations

from smesh.apps.findings import KIND_FINDING, ConsensusRule, FindingLedger
from smesh.clock import VirtualClock
from smesh.field import Field
from smesh.trust import TrustTable

GROUPS = {
    "inj-1": "injection",
    "inj-2": "injection",
    "auth": "auth",
    "bandit": "bandit",
    "xss": "xss",
}


def ledger(rule: ConsensusRule | None = None, **kw: int) -> FindingLedger:
    field = Field(VirtualClock())
    return FindingLedger(field, groups=GROUPS, trust=TrustTable(), rule=rule, **kw)


def report(led: FindingLedger, agent: str, line: int, label: str = "CWE-89") -> str:
    state, _ = led.report(
        agent,
        file="app/db.py",
        label=label,
        line_start=line,
        line_end=line,
        severity="high",
        message=f"{agent} says so",
    )
    return state.address


def test_identical_reports_from_independent_agents_are_one_signal_with_a_reinforcer() -> None:
    led = ledger(ConsensusRule(quorum=0.0, margin=0.01, min_groups=2))
    first = report(led, "bandit", 15)
    second = report(led, "inj-1", 17)  # same bucket of 10 lines: the same finding
    assert first == second
    [signal] = led.field.signals(KIND_FINDING)
    assert signal.origin == "bandit" and signal.reinforcers == ("inj-1",)
    state = led.findings[first]
    assert state.reporters == ["bandit", "inj-1"]
    verdict = led.assess(state, 0.0)
    assert verdict.support == ["bandit", "inj-1"] and verdict.consensus


def test_a_report_close_to_a_finding_in_the_next_bucket_joins_it() -> None:
    led = ledger(join_within=3)
    assert report(led, "bandit", 19) == report(led, "auth", 21)  # buckets 1 and 2
    assert report(led, "bandit", 19) != report(led, "auth", 25)
    assert report(led, "bandit", 19) != report(led, "auth", 19, label="CWE-78")


def test_two_copies_of_one_specialist_are_one_independent_voice() -> None:
    led = ledger(ConsensusRule(quorum=0.0, margin=0.01, min_groups=2))
    address = report(led, "inj-1", 15)
    report(led, "inj-2", 15)  # the copy reports it too
    led.judge("inj-2", address, "agree", "yes")  # and agrees: still one voice
    state = led.findings[address]
    assert state.supporters == ["inj-1", "inj-2"]
    verdict = led.assess(state, 0.0)
    assert verdict.support == ["inj-1"]
    assert not verdict.consensus
    led.judge("auth", address, "agree", "an auth expert agrees")
    verdict = led.assess(led.findings[address], 0.0)
    assert verdict.support == ["inj-1", "auth"] and verdict.consensus


def test_support_is_weighed_by_trust_against_dissent() -> None:
    led = ledger(ConsensusRule(quorum=0.9, margin=0.3))
    address = report(led, "inj-1", 15)
    state = led.findings[address]
    assert not led.assess(state, 0.0).consensus  # 0.5 < 0.9
    led.judge("auth", address, "agree", "ok")
    assert led.assess(state, 0.0).consensus  # 1.0 >= 0.9, lead 1.0
    led.judge("xss", address, "disagree", "no")
    verdict = led.assess(state, 0.0)
    assert verdict.consensus and verdict.dissent == ["xss"]  # 1.0 vs 0.5
    led.judge("bandit", address, "disagree", "no")
    verdict = led.assess(state, 0.0)
    assert not verdict.consensus and verdict.disputed  # 1.0 vs 1.0
    # trust breaks the tie: the supporters have earned more than the dissenters
    led.trust.set("inj-1", 0.9, 0.0)
    led.trust.set("auth", 0.9, 0.0)
    assert led.assess(state, 0.0).consensus  # 1.8 vs 1.0


def test_an_agreement_reinforces_and_other_opinions_do_not() -> None:
    led = ledger()
    address = report(led, "inj-1", 15)
    led.judge("auth", address, "unsure", "cannot tell")
    led.judge("xss", address, "disagree", "not reachable")
    assert led.field.get(address).reinforcers == ()  # type: ignore[union-attr]
    led.judge("bandit", address, "agree", "yes")
    assert led.field.get(address).reinforcers == ("bandit",)  # type: ignore[union-attr]
    state = led.findings[address]
    assert state.judgements["xss"] == ("disagree", "not reachable")
    assert led.assess(state, 0.0).unsure == ["auth"]


def test_a_group_on_both_sides_counts_for_neither() -> None:
    led = ledger(ConsensusRule(quorum=0.0, margin=0.01, min_groups=1))
    address = report(led, "inj-1", 15)
    led.judge("inj-2", address, "disagree", "the copy disagrees")
    verdict = led.assess(led.findings[address], 0.0)
    assert verdict.support == [] and verdict.dissent == [] and not verdict.consensus


def test_settling_teaches_trust_once_from_a_clear_outcome() -> None:
    led = ledger(ConsensusRule(quorum=0.9, margin=0.3))
    learned: list[tuple[str, bool]] = []
    led.on_learn(lambda agent, finding, ok, value: learned.append((agent, ok)))
    good = report(led, "inj-1", 15)
    led.judge("auth", good, "agree", "yes")
    led.judge("xss", good, "disagree", "no")
    led.settle(good, 1.0)
    led.settle(good, 1.0)  # a second settle does nothing
    assert learned == [("inj-1", True), ("auth", True), ("xss", False)]
    assert led.trust.get("inj-1", 1.0) > 0.5 > led.trust.get("xss", 1.0)
    bad = report(led, "bandit", 40, label="CWE-78")
    led.judge("auth", bad, "disagree", "no")
    led.judge("xss", bad, "disagree", "no")
    assert led.settle(bad, 2.0).refuted  # type: ignore[union-attr]
    assert led.trust.get("bandit", 2.0) < 0.5
