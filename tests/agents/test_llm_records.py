"""Every LLM call is one ``llm`` record (from ``AgentBase.complete``), and records reach
the installed sinks typed, journal or not."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from smesh.agents import Agent, Settings, TaskSpec, Team, VerifySpec
from smesh.agents.journal import Journal
from smesh.agents.records import Detail
from smesh.agents.runtime import Budget
from smesh.agents.sinks import installed
from smesh.backends.accounting import Price, PriceTable
from smesh.backends.base import Request
from smesh.clock import SystemClock
from smesh.errors import BackendError, RateLimited
from smesh.field import Field
from smesh.testing import FunctionBackend

FAST = Settings(poll_s=0.05, tick_s=0.05, idle_timeout_s=10.0, lease_s=5.0, pressure_hold_s=0.01)


def _backend(failures: list[BaseException]) -> FunctionBackend:
    """Judges approve; workers answer; the first calls raise ``failures`` in turn."""

    def reply(request: Request) -> Any:
        if failures:
            raise failures.pop(0)
        if request.json_schema is not None:
            return {"reason": "fine", "correct": True}
        return "def f(): return 1"

    return FunctionBackend(reply, name="openai:gpt-4o-mini", model="gpt-4o-mini-2024")


def _team(backend: FunctionBackend, journal: Any = None) -> Team:
    agents = [
        Agent("coder", backend=backend, skills={"code": 1.0}),
        Agent("rev-a", backend=backend, verifies={"code": 1.0}),
        Agent("rev-b", backend=backend, verifies={"code": 1.0}),
    ]
    prices = PriceTable({"openai:gpt-4o-mini*": Price(input_per_mtok=1.0, output_per_mtok=2.0)})
    return Team(
        agents,
        field=Field(SystemClock()),
        settings=FAST,
        budget=Budget(prices=prices),
        journal=journal,
        run_id="r1",
    )


def _spec() -> TaskSpec:
    verify = VerifySpec(quorum=0.9, margin=0.3)
    return TaskSpec(task_id="t1", skill="code", description="write f", verify=verify)


def test_each_call_is_recorded_with_its_task_purpose_tokens_cost_and_latency(
    tmp_path: Path,
) -> None:
    failures: list[BaseException] = [BackendError("boom"), RateLimited("slow", retry_after=0.01)]
    with Journal(tmp_path / "j.db") as journal:
        report = asyncio.run(_team(_backend(failures), journal).run([_spec()]))
        calls = [a for a in journal.actions("r1") if a.action == "llm"]
    assert report.accepted == 1
    assert len(calls) == report.llm_calls == 5  # 2 failures + work + 2 judgements
    failed = [c for c in calls if c.detail["status"] != "ok"]
    assert [c.detail["status"] for c in failed] == ["error", "rate_limited"]
    assert failed[0].detail["error"] == "BackendError: boom"
    assert all(c.agent == "coder" and c.detail["purpose"] == "work" for c in failed)
    ok = [c for c in calls if c.detail["status"] == "ok"]
    assert sorted((c.agent, c.detail["purpose"]) for c in ok) == [
        ("coder", "work"),
        ("rev-a", "judge"),
        ("rev-b", "judge"),
    ]
    for c in calls:
        assert c.task_id == "t1" and c.detail["attempt"] == 1
        assert c.detail["backend"] == "openai:gpt-4o-mini"
        assert c.detail["latency_ms"] >= 0
    for c in ok:
        d = c.detail
        assert d["model"] == "gpt-4o-mini-2024"
        assert d["input_tokens"] > 0 and d["output_tokens"] > 0
        want = (d["input_tokens"] * 1.0 + d["output_tokens"] * 2.0) / 1e6
        assert abs(d["cost_usd"] - want) < 1e-9
    assert abs(sum(c.detail.get("cost_usd", 0.0) for c in calls) - report.cost) < 1e-6


class _Sink:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str | None, Detail]] = []

    def record(
        self, now: float, agent: str, action: str, task_id: str | None, detail: Detail
    ) -> None:
        self.rows.append((agent, action, task_id, detail))


def test_installed_sinks_get_typed_records_without_a_journal() -> None:
    sink = _Sink()
    runtimes: list[Any] = []

    def factory(runtime: Any) -> _Sink:
        runtimes.append(runtime)
        return sink

    with installed(factory):
        team = _team(_backend([]))
        assert team.runtime.recording and team.runtime.journal is None
        asyncio.run(team.run([_spec()]))
    assert runtimes == [team.runtime]
    actions = [a for _, a, _, _ in sink.rows]
    assert {"claim", "result", "vote", "decide", "llm"} <= set(actions)
    assert all(isinstance(d, Detail) for *_, d in sink.rows)
    llm = [d for _, a, _, d in sink.rows if a == "llm"]
    assert len(llm) == 3 and all(d.status == "ok" for d in llm)
    # uninstalled: the next run has no sink and records nothing
    after = _team(_backend([]))
    assert after.runtime.sinks == [] and not after.runtime.recording


def test_a_factory_may_decline_a_run() -> None:
    with installed(lambda runtime: None):
        team = _team(_backend([]))
    assert team.runtime.sinks == [] and not team.runtime.recording
