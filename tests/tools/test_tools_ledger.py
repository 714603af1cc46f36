"""The effect ledger: ids, intent before outcome, replay, uncertainty and reconciliation."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from smesh.errors import UsageError
from smesh.testing.tools import ScriptedModel, ScriptedTool, call
from smesh.tools import (
    CallContext,
    EffectLedger,
    EffectScope,
    MemoryEffectLedger,
    Reconciled,
    SQLiteEffectLedger,
    ToolLoop,
    effect_id,
    tool,
)

pytestmark = pytest.mark.asyncio
SCOPE = EffectScope(run_id="run1", task_id="t1", attempt=1)


async def test_effect_ids_are_stable_canonical_and_distinct() -> None:
    base = effect_id(SCOPE, 1, "pay", {"a": 1, "b": [1, 2]})
    assert base == effect_id(SCOPE, 1, "pay", {"b": [1, 2], "a": 1})  # key order is irrelevant
    assert len(base) == 32 and int(base, 16) >= 0
    others = {
        effect_id(EffectScope(run_id="run2", task_id="t1"), 1, "pay", {"a": 1, "b": [1, 2]}),
        effect_id(EffectScope(run_id="run1", task_id="t2"), 1, "pay", {"a": 1, "b": [1, 2]}),
        effect_id(
            EffectScope(run_id="run1", task_id="t1", attempt=2), 1, "pay", {"a": 1, "b": [1, 2]}
        ),
        effect_id(SCOPE, 2, "pay", {"a": 1, "b": [1, 2]}),
        effect_id(SCOPE, 1, "refund", {"a": 1, "b": [1, 2]}),
        effect_id(SCOPE, 1, "pay", {"a": 2, "b": [1, 2]}),
        effect_id(SCOPE, 1, "pay", {"a": 1, "b": [1, 2]}, occurrence=1),
    }
    assert base not in others and len(others) == 7


@pytest_asyncio.fixture(params=["memory", "sqlite"])
async def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "memory":
        yield MemoryEffectLedger()
        return
    async with SQLiteEffectLedger(tmp_path / "journal.db") as durable:
        yield durable


async def test_begin_records_intent_once_and_finish_records_the_outcome(
    ledger: EffectLedger,
) -> None:
    assert await ledger.begin("e1", scope=SCOPE, step=1, tool="pay", args={"n": 1}) is None
    pending = await ledger.begin("e1", scope=SCOPE, step=1, tool="pay", args={"n": 1})
    assert pending is not None and pending.status == "pending" and pending.args == {"n": 1}
    await ledger.finish("e1", ok=True, result={"receipt": 7})
    done = await ledger.begin("e1", scope=SCOPE, step=1, tool="pay", args={"n": 1})
    assert done is not None and done.status == "done" and done.result == {"receipt": 7}
    assert (done.run_id, done.task_id, done.attempt, done.step) == ("run1", "t1", 1, 1)
    assert await ledger.begin("e2", scope=SCOPE, step=2, tool="pay", args={}) is None
    await ledger.finish("e2", ok=False, error="card declined")
    failed = await ledger.begin("e2", scope=SCOPE, step=2, tool="pay", args={})
    assert failed is not None and failed.status == "failed" and failed.error == "card declined"


def _payer() -> tuple[Any, list[int]]:
    performed: list[int] = []

    @tool(side_effect=True)
    def pay(cents: int, ctx: CallContext) -> dict[str, Any]:
        performed.append(cents)
        return {"paid": cents, "key": ctx.effect_id}

    return pay, performed


async def test_a_completed_effect_is_replayed_not_repeated(ledger: EffectLedger) -> None:
    pay, performed = _payer()
    loop = ToolLoop([pay], ledger=ledger)
    script = [[call("pay", cents=100), call("pay", cents=100)], "paid twice"]
    first = await loop.run(ScriptedModel(script), "pay", scope=SCOPE)
    assert performed == [100, 100]  # two identical calls in one turn are two effects
    ids = [r.effect_id for r in first.calls]
    assert None not in ids and ids[0] != ids[1]
    assert not any(r.replayed for r in first.calls)
    # the same run again (a resume): nothing is performed, the results are the recorded ones
    second = await loop.run(ScriptedModel(script), "pay", scope=SCOPE)
    assert performed == [100, 100]
    assert [r.effect_id for r in second.calls] == ids
    assert all(r.replayed and r.ok for r in second.calls)
    assert [r.result for r in second.calls] == [r.result for r in first.calls]
    assert f'"key":"{ids[0]}"' in first.calls[0].result  # the id reached the tool
    # another attempt is another effect
    await loop.run(
        ScriptedModel(script), "pay", scope=EffectScope(run_id="run1", task_id="t1", attempt=2)
    )
    assert performed == [100, 100, 100, 100]


async def test_a_failed_effect_is_replayed_as_the_same_error(ledger: EffectLedger) -> None:
    flaky = ScriptedTool("charge", [RuntimeError("declined")], side_effect=True)
    loop = ToolLoop([flaky], ledger=ledger)
    first = await loop.run(ScriptedModel([call("charge"), "no"]), "x", scope=SCOPE)
    second = await loop.run(ScriptedModel([call("charge"), "no"]), "x", scope=SCOPE)
    assert len(flaky.calls) == 1
    assert first.calls[0].status == second.calls[0].status == "error"
    assert second.calls[0].replayed and "declined" in second.calls[0].result


async def test_an_intent_without_outcome_is_uncertain_and_not_repeated(
    ledger: EffectLedger,
) -> None:
    pay, performed = _payer()
    eid = effect_id(SCOPE, 1, "pay", {"cents": 5})
    await ledger.begin(eid, scope=SCOPE, step=1, tool="pay", args={"cents": 5})  # then "crash"
    result = await ToolLoop([pay], ledger=ledger).run(
        ScriptedModel([call("pay", cents=5), "unsure"]), "x", scope=SCOPE
    )
    (record,) = result.calls
    assert performed == []
    assert record.status == "uncertain" and not record.ok and record.replayed
    assert record.effect_id == eid
    assert "outcome was never recorded (a crash or a timeout); it was not repeated" in record.result


@pytest.mark.parametrize("performed_before", [True, False])
async def test_reconcile_settles_an_uncertain_effect(
    ledger: EffectLedger, performed_before: bool
) -> None:
    pay, performed = _payer()

    @pay.reconciler
    def check(cents: int) -> Reconciled:
        return Reconciled(performed=performed_before, result={"paid": cents, "found": True})

    eid = effect_id(SCOPE, 1, "pay", {"cents": 5})
    await ledger.begin(eid, scope=SCOPE, step=1, tool="pay", args={"cents": 5})
    loop = ToolLoop([pay], ledger=ledger)
    result = await loop.run(ScriptedModel([call("pay", cents=5), "ok"]), "x", scope=SCOPE)
    (record,) = result.calls
    assert record.ok
    if performed_before:
        assert performed == [] and record.replayed and '"found":true' in record.result
    else:
        assert performed == [5] and not record.replayed  # it never happened: run it now
    # either way the outcome is now recorded: a further replay runs nothing
    again = await loop.run(ScriptedModel([call("pay", cents=5), "ok"]), "x", scope=SCOPE)
    assert again.calls[0].replayed and len(performed) == (0 if performed_before else 1)


async def test_a_reconciler_that_fails_leaves_the_effect_uncertain(ledger: EffectLedger) -> None:
    pay, performed = _payer()

    @pay.reconciler
    def broken(cents: int) -> Reconciled:
        raise ConnectionError("billing API down")

    eid = effect_id(SCOPE, 1, "pay", {"cents": 5})
    await ledger.begin(eid, scope=SCOPE, step=1, tool="pay", args={"cents": 5})
    result = await ToolLoop([pay], ledger=ledger).run(
        ScriptedModel([call("pay", cents=5), "ok"]), "x", scope=SCOPE
    )
    assert result.calls[0].status == "uncertain" and performed == []
    assert "reconcile failed: ConnectionError: billing API down" in result.calls[0].result


async def test_a_timed_out_effect_stays_uncertain(ledger: EffectLedger) -> None:
    @tool(side_effect=True, timeout_s=0.1)
    async def slow_send() -> str:
        await asyncio.sleep(5)
        return "sent"

    loop = ToolLoop([slow_send], ledger=ledger)
    first = await loop.run(ScriptedModel([call("slow_send"), "?"]), "x", scope=SCOPE)
    assert first.calls[0].status == "timeout"
    second = await loop.run(ScriptedModel([call("slow_send"), "?"]), "x", scope=SCOPE)
    assert second.calls[0].status == "uncertain"


async def test_without_a_scope_or_ledger_side_effects_just_run(ledger: EffectLedger) -> None:
    pay, performed = _payer()
    script = [call("pay", cents=1), "ok"]
    no_scope = await ToolLoop([pay], ledger=ledger).run(ScriptedModel(script), "x")
    assert no_scope.calls[0].effect_id is None
    no_ledger = await ToolLoop([pay]).run(ScriptedModel(script), "x", scope=SCOPE)
    assert no_ledger.calls[0].effect_id is not None  # the id still reaches the tool
    assert performed == [1, 1]


async def test_the_sqlite_ledger_shares_a_file_and_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    with sqlite3.connect(path) as other:  # the journal's own table, untouched
        other.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY, x TEXT)")
        other.execute("INSERT INTO events (x) VALUES ('kept')")
    first = SQLiteEffectLedger(path)
    await first.begin("e1", scope=SCOPE, step=1, tool="pay", args={"n": 1})
    await first.finish("e1", ok=True, result=[1, "two"])
    first.close()
    first.close()
    with pytest.raises(UsageError, match="closed"):
        await first.begin("e2", scope=SCOPE, step=1, tool="pay", args={})
    second = SQLiteEffectLedger(path)
    (record,) = second.records("run1")
    assert record.status == "done" and record.result == [1, "two"]
    assert second.records("other") == []
    assert len(second.records()) == 1
    await second.aclose()
    with sqlite3.connect(path) as other:
        assert other.execute("SELECT x FROM events").fetchall() == [("kept",)]
        assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    with pytest.raises(UsageError):
        SQLiteEffectLedger(path, busy_timeout_s=0)


async def test_two_ledgers_racing_on_one_effect_let_exactly_one_run(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    ledgers = [SQLiteEffectLedger(path) for _ in range(4)]
    try:
        outcomes = await asyncio.gather(
            *(
                lg.begin(f"e{i}", scope=SCOPE, step=1, tool="pay", args={})
                for i in range(25)
                for lg in ledgers
            )
        )
    finally:
        for lg in ledgers:
            lg.close()
    winners = [o for o in outcomes if o is None]
    assert len(winners) == 25  # one per effect id, whichever connection got there first


async def test_a_reconciler_that_hangs_is_bounded_by_the_tool_timeout(
    ledger: EffectLedger,
) -> None:
    @tool(side_effect=True, timeout_s=0.2)
    async def send() -> str:
        return "sent"

    @send.reconciler
    async def stuck() -> Reconciled:
        await asyncio.sleep(30)
        return Reconciled(performed=True)

    eid = effect_id(SCOPE, 1, "send", {})
    await ledger.begin(eid, scope=SCOPE, step=1, tool="send", args={})
    result = await asyncio.wait_for(
        ToolLoop([send], ledger=ledger).run(ScriptedModel([call("send"), "ok"]), "x", scope=SCOPE),
        5,
    )
    assert result.calls[0].status == "uncertain"
    assert "reconcile took longer than 0.2 s" in result.calls[0].result
