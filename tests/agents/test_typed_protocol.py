"""Typed payloads: the wire form is unchanged, and malformed signals from the field are
ignored by the board, the agents and the finding ledger, never a crash."""

from __future__ import annotations

import json
from typing import Any

import pytest
from _agentkit import virtual

from smesh.agents import Agent, FunctionAgent, Judgement, Settings, TaskSpec, Team, VerifySpec
from smesh.agents.protocol import (
    Check,
    Claim,
    Decision,
    Feedback,
    Finding,
    Heartbeat,
    Payload,
    Pressure,
    Result,
    Ruling,
    Vote,
    decode,
    encode,
    settle,
)
from smesh.agents.records import Detail, Trigger
from smesh.apps.findings import FindingLedger
from smesh.backends import FunctionBackend
from smesh.clock import VirtualClock
from smesh.decay import Step
from smesh.field import Field
from smesh.signal import compute_address
from smesh.testing.virtual_time import LoopClock
from smesh.trust import TrustTable

# What the agents built by hand before the payloads were typed: the wire must not change,
# or a typed peer and an older one would land on different addresses.
WIRE: list[tuple[Payload, dict[str, Any]]] = [
    (
        Claim("t", 2, 0.8, "held"),
        {"task_id": "t", "attempt": 2, "bid": 0.8, "state": "held"},
    ),
    (
        Result("t", 1, {"x": [1, 2]}, None),
        {"task_id": "t", "attempt": 1, "output": {"x": [1, 2]}, "error": None},
    ),
    (
        Vote("t", 1, "ab" * 16, "approve"),
        {"task_id": "t", "attempt": 1, "result": "ab" * 16, "verdict": "approve"},
    ),
    (
        Check("t", 1, "ab" * 16, "reject"),
        {"task_id": "t", "attempt": 1, "result": "ab" * 16, "verdict": "reject"},
    ),
    (Feedback("t", 1, "too short"), {"task_id": "t", "attempt": 1, "reason": "too short"}),
    (
        # a decision names the evidence it rests on (issue 10: justified decisions)
        Decision("t", 3, "failed", "give-up"),
        {
            "task_id": "t",
            "attempt": 3,
            "verdict": "failed",
            "basis": "give-up",
            "result": None,
            "cites": {},
        },
    ),
    (
        Pressure("local", "rate limited", 2.5),
        {"backend": "local", "reason": "rate limited", "hold_s": 2.5},
    ),
    (Heartbeat(1, 4), {"busy": 1, "slots": 4}),
    (Finding("a.py", "CWE-89", 4), {"file": "a.py", "label": "CWE-89", "bucket": 4}),
]


@pytest.mark.parametrize(("payload", "wire"), WIRE, ids=lambda v: type(v).__name__)
def test_the_wire_form_is_the_plain_object_of_old(payload: Payload, wire: dict[str, Any]) -> None:
    assert encode(payload) == wire
    assert compute_address(payload.KIND, encode(payload), "o") == compute_address(
        payload.KIND, wire, "o"
    )
    assert decode(type(payload), wire) == payload
    assert decode(type(payload), json.loads(json.dumps(wire))) == payload  # via JSON


@pytest.mark.parametrize(
    ("cls", "payload"),
    [
        (Claim, {"task_id": "t", "attempt": 1, "bid": "high", "state": "bid"}),
        (Claim, {"task_id": "t", "attempt": 1, "bid": 0.5, "state": "mine"}),
        (Claim, {"task_id": "t", "bid": 0.5, "state": "bid"}),
        (Result, {"task_id": "t", "attempt": "1"}),
        (Result, {"task_id": 7, "attempt": 1}),
        (Vote, {"task_id": "t", "attempt": 1, "result": "r", "verdict": "maybe"}),
        (Check, {"task_id": "t", "attempt": 1, "result": "r", "verdict": 1}),
        (Feedback, {"task_id": "t", "attempt": 1, "reason": 5}),
        (Decision, {"task_id": "t", "attempt": 1, "verdict": "bogus"}),
        (Pressure, {"backend": "b", "hold_s": "forever"}),
        (Finding, {"file": "a.py", "label": "x"}),
        (Claim, ["t", 1, 0.5, "bid"]),
        (Result, None),
        (Decision, "accepted"),
    ],
)
def test_a_malformed_payload_decodes_to_none(cls: type[Payload], payload: Any) -> None:
    assert decode(cls, payload) is None


def test_settle_is_a_pure_rule() -> None:
    verify = VerifySpec(quorum=0.9, margin=0.3)
    half: Any = lambda voter: 0.5  # noqa: E731
    # checks decide alone, whatever the votes say; any failing check rejects
    ballots: Any = {"approve": ["a", "b"]}
    assert settle({"t1": "approve"}, ballots, half, verify) == Ruling("accepted", "checks")
    assert settle({"t1": "approve", "t2": "reject"}, ballots, half, verify) == Ruling(
        "rejected", "checks"
    )
    # no checks: the trust-weighted tally, with the masses for the journal
    assert settle(None, ballots, half, verify) == Ruling(
        "accepted", "votes", {"approve": 1.0, "reject": 0.0}
    )
    assert settle({}, {"approve": ["a"]}, half, verify) is None  # 0.5 < quorum: wait
    assert settle(None, ballots, half, None) is None  # nothing to verify against


def test_a_record_detail_stores_only_what_is_set() -> None:
    detail = Detail(
        attempt=1,
        error=None,
        triggers=[Trigger(address="x", kind="claim")],
        extra={"approve": 0.9},
    )
    assert detail.to_dict() == {
        "attempt": 1,
        "error": None,  # set to None: kept, as smesh trace expects
        "triggers": [{"address": "x", "kind": "claim"}],
        "approve": 0.9,
    }
    assert Detail().to_dict() == {}


# -- hostile signals in a live run ------------------------------------------------------------

_STEP = Step()


def _junk(field: Field, task_id: str, *, backend: str) -> None:
    """What a buggy or hostile peer might emit about ``task_id``: every built-in kind with a
    payload of the wrong shape."""
    junk: list[tuple[str, Any]] = [
        ("task", {"task_id": "junk"}),  # no skill
        ("task", {"task_id": "junk2", "skill": "s", "priority": "high"}),
        ("task", ["not", "a", "task"]),
        ("claim", {"task_id": task_id, "attempt": 1, "bid": "high", "state": "held"}),
        ("claim", {"task_id": task_id, "attempt": "x", "bid": 1.0, "state": "held"}),
        ("claim", {"task_id": task_id, "attempt": 1, "bid": 1.0, "state": "mine"}),
        ("result", {"task_id": task_id, "attempt": None, "output": "forged"}),
        ("vote", {"task_id": task_id, "attempt": 1, "result": "r", "verdict": "maybe"}),
        ("check", {"task_id": task_id, "attempt": 1, "result": "r", "verdict": 0}),
        ("feedback", {"task_id": task_id, "attempt": 1, "reason": ["x"]}),
        ("decision", {"task_id": task_id, "attempt": 1, "verdict": "bogus", "basis": "votes"}),
        ("decision", {"task_id": task_id, "verdict": "accepted"}),
        ("pressure", {"backend": backend, "hold_s": "forever"}),
        ("pressure", "slow down"),
        ("claim", 42),
    ]
    for kind, payload in junk:
        field.emit(kind, payload, origin="mallory", decay=_STEP, ttl=3600.0)


def test_malformed_signals_in_the_field_are_ignored_not_a_crash() -> None:
    async def main() -> None:
        backend = FunctionBackend(lambda request: "42", name="echo")
        worker = Agent("w", backend=backend, skills={"s": 1.0})  # asks: reads pressure

        async def judge(task: TaskSpec, output: Any) -> Judgement:
            _junk(team.field, "t", backend="echo")  # more junk while the votes come in
            return Judgement("approve" if output == "42" else "reject", "checked")

        verifiers = [FunctionAgent(f"v{i}", judge=judge, verifies={"s": 1.0}) for i in range(2)]
        team = Team([worker, *verifiers], clock=LoopClock(), settings=Settings(poll_s=1.0))
        decisions: list[Decision | None] = []
        team.field.subscribe(
            lambda event: decisions.append(decode(Decision, event.signal.payload)),
            kinds=["decision"],
        )
        team.submit(TaskSpec(task_id="t", skill="s", verify=VerifySpec(quorum=0.9)))
        _junk(team.field, "t", backend="echo")
        report = await team.run()
        assert report.stopped_by == "quiescent"
        assert [(t.id, t.status, t.claimed_by, t.attempts) for t in report.tasks] == [
            ("t", "accepted", "w", 1)
        ]
        assert report.tasks[0].output == "42"
        assert set(team.board.tasks) == {"t"}  # no malformed task was taken up
        valid = [d for d in decisions if d is not None]
        assert [(d.task_id, d.attempt, d.verdict) for d in valid] == [("t", 1, "accepted")]
        assert len(decisions) > len(valid)  # the junk decisions were there, and ignored
        assert len(backend.calls) == 1  # one work call; junk pressure held nobody back

    virtual(main())


def test_malformed_finding_signals_are_ignored() -> None:
    field = Field(VirtualClock())
    ledger = FindingLedger(field, groups={}, trust=TrustTable())
    field.emit("finding", {"file": "a.py"}, origin="mallory")
    field.emit("finding-note", {"finding": "nowhere", "line_start": "x"}, origin="mallory")
    state, new = ledger.report(
        "a", file="a.py", label="sql", line_start=3, line_end=4, severity="high", message="m"
    )
    field.emit("finding-note", {"finding": state.address, "line_start": "x"}, origin="m2")
    field.emit("judgement", {"finding": state.address, "opinion": 3}, origin="m3")
    assert new and list(ledger.findings) == [state.address]
    assert list(state.notes) == ["a"] and state.judgements == {}


def test_an_output_that_is_not_json_fails_the_attempt_not_the_run() -> None:
    """Regression: the journal preview of such an output raised TypeError in the worker."""

    async def main() -> None:
        async def weird(ctx: Any) -> Any:
            return object()

        worker = FunctionAgent("w", perform=weird, skills={"s": 1.0})
        team = Team([worker], clock=LoopClock())
        report = await team.run([TaskSpec(task_id="t", skill="s", max_attempts=1)])
        [task] = report.tasks
        assert task.status == "failed"
        assert task.reason is not None and "not JSON-compatible" in task.reason

    virtual(main())
