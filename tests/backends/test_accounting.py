"""Price table, ledger and the Accounting wrapper."""

from __future__ import annotations

import pytest

from smesh.backends import Accounting, Budget, Ledger, Price, PriceTable, Request, Response
from smesh.errors import BackendUnavailable, BudgetExceeded, UsageError
from smesh.testing import ScriptedBackend


def reply(backend: str, inp: int, out: int) -> Response:
    return Response(
        text="x", model="m", backend=backend, input_tokens=inp, output_tokens=out, latency_s=0.25
    )


def test_price_lookup_prefers_the_most_specific_pattern() -> None:
    table = PriceTable()
    mini = table.lookup("openai:gpt-4o-mini-2024-07-18")
    full = table.lookup("openai:gpt-4o")
    assert mini is not None and full is not None
    assert mini.input_per_mtok < full.input_per_mtok
    assert table.lookup("local") == Price(input_per_mtok=0, output_per_mtok=0)
    assert table.lookup("mystery:model") is None
    assert "ollama:llama3" in table


def test_price_table_extends_without_mutating() -> None:
    base = PriceTable()
    custom = base.extend({"mystery:*": Price(input_per_mtok=1.0, output_per_mtok=2.0)})
    assert custom.lookup("mystery:model") is not None
    assert base.lookup("mystery:model") is None
    with pytest.raises(UsageError):
        Price(input_per_mtok=-1, output_per_mtok=0)


def test_cost_is_per_million_tokens() -> None:
    price = Price(input_per_mtok=3.0, output_per_mtok=15.0)
    assert price.cost(1_000_000, 0) == pytest.approx(3.0)
    assert price.cost(1000, 2000) == pytest.approx(0.003 + 0.03)


def test_ledger_breaks_down_by_agent_and_backend() -> None:
    prices = PriceTable({"paid:*": Price(input_per_mtok=1.0, output_per_mtok=2.0)})
    ledger = Ledger(run="r1", prices=prices)
    ledger.record(agent="a", backend="paid:x", response=reply("paid:x", 1000, 500))
    ledger.record(agent="b", backend="paid:x", response=reply("paid:x", 2000, 0))
    ledger.record(agent="a", backend="free:y", response=reply("free:y", 10, 10))
    ledger.record(agent="a", backend="paid:x")  # a failed call
    total = ledger.total()
    assert (total.calls, total.errors) == (4, 1)
    assert total.input_tokens == 3010 and total.output_tokens == 510
    assert total.cost_usd == pytest.approx((1000 + 2 * 500 + 2000) / 1e6)
    by_agent = ledger.by_agent()
    assert by_agent["a"].calls == 3 and by_agent["b"].input_tokens == 2000
    assert ledger.by_backend()["free:y"].cost_usd == 0
    assert ledger.unpriced == {"free:y"}
    summary = ledger.to_dict()
    assert summary["unpriced"] == ["free:y"]
    assert set(summary["by_agent"]) == {"a", "b"}  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_accounting_wrapper_records_agents_errors_and_enforces_budget() -> None:
    inner = ScriptedBackend(
        [
            reply("scripted", 10, 5),
            BackendUnavailable("down", backend="scripted"),
            reply("scripted", 10, 5),
        ],
    )
    ledger = Ledger(budget=Budget(tokens=30))
    backend = Accounting(inner, ledger, agent="default")
    await backend.complete(Request.of("x", agent="alice"))
    with pytest.raises(BackendUnavailable):
        await backend.complete(Request.of("x"))
    await backend.complete(Request.of("x"))
    assert ledger.by_agent()["alice"].total_tokens == 15
    assert ledger.by_agent()["default"].errors == 1
    with pytest.raises(BudgetExceeded, match="30 tokens"):
        await backend.complete(Request.of("x"))
    assert len(inner.calls) == 3  # the over-budget call never reached the backend


def test_budget_limits() -> None:
    ledger = Ledger(budget=Budget(calls=1))
    ledger.check()
    ledger.record(agent="a", backend="b", response=reply("b", 1, 1))
    with pytest.raises(BudgetExceeded, match="calls"):
        ledger.check()


def test_one_budget_class_serves_the_ledger_and_the_team() -> None:
    import smesh
    import smesh.agents

    assert smesh.Budget is smesh.agents.Budget is Budget
    budget = Budget(
        cost=0.002, prices=PriceTable({"paid:*": Price(input_per_mtok=1.0, output_per_mtok=1.0)})
    )
    # the team's path: charge and record through the budget, its ledger keeps the breakdown
    budget.charge(calls=1)
    budget.record(agent="a", backend="paid:x", response=reply("paid:x", 1000, 1000))
    assert budget.ledger.by_agent()["a"].cost_usd == pytest.approx(0.002)
    with pytest.raises(BudgetExceeded, match="cost budget"):
        budget.check()
    # the wrapper's path: a ledger checks its own totals against the same limits
    ledger = Ledger(prices=budget.ledger.prices, budget=budget)
    ledger.check()
    ledger.record(agent="a", backend="paid:x", response=reply("paid:x", 1000, 1000))
    with pytest.raises(BudgetExceeded, match=r"\$0\.0020"):
        ledger.check()
    Ledger().check()  # no budget, no limit
