"""Give a model tools: a typed function, a side effect that happens once, a Tool subclass.

* ``convert`` is a plain typed function: ``@tool`` reads its name, its docstring (the
  ``Args:`` lines describe the parameters) and its type hints (the JSON schema the model
  sees, and the validation its arguments pass before the call).
* ``send_invoice`` declares ``side_effect=True``: with an effect ledger, each call is
  recorded before it runs, so running the same task again (a resume after a crash)
  returns the recorded result instead of sending a second invoice. Its ``CallContext``
  carries the effect id, an idempotency key for the outside service.
* ``RateTable`` subclasses :class:`~smesh.tools.Tool` for a tool whose schema is only
  known at run time.

The "model" is a stand-in function so the example runs offline in well under a second;
an agent's LLM plays the same part through any backend.

Run it::

    python examples/tools_example.py
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from smesh.tools import (
    AssistantTurn,
    CallContext,
    EffectScope,
    MemoryEffectLedger,
    Tool,
    ToolCall,
    ToolCallRecord,
    ToolLoop,
    ToolResult,
    ToolSpec,
    Turn,
    tool,
)

SENT: list[str] = []  # the outside world: invoices actually sent


@tool
def convert(amount: float, rate: float) -> float:
    """Convert an amount of money with an exchange rate.

    Args:
        amount: the amount to convert.
        rate: units of the target currency per unit of the source currency.
    """
    return round(amount * rate, 2)


@tool(side_effect=True)
async def send_invoice(customer: str, amount: float, ctx: CallContext) -> str:
    """Send an invoice to a customer.

    Args:
        customer: who pays.
        amount: how much, in USD.
    """
    SENT.append(f"{customer}:{amount}")  # a real service would get ctx.effect_id as its key
    return f"invoice {len(SENT)} sent to {customer}"


class RateTable(Tool):
    """Exchange rates; the currencies (and so the schema) are known only at run time."""

    name = "exchange_rate"
    description = "The exchange rate from EUR to a currency."

    def __init__(self, rates: dict[str, float]) -> None:
        self.rates = rates
        currency = {"type": "string", "enum": sorted(rates)}
        super().__init__(
            parameters={
                "type": "object",
                "properties": {"currency": currency},
                "required": ["currency"],
            }
        )

    async def invoke(self, args: dict[str, Any], ctx: CallContext) -> Any:
        return self.rates[args["currency"]]


async def fake_model(turns: Sequence[Turn], specs: Sequence[ToolSpec]) -> AssistantTurn:
    """Stands in for an LLM: asks for a tool at each step, then answers from the results."""
    results = [t.content for t in turns if isinstance(t, ToolResult)]
    if not results:
        return AssistantTurn(
            tool_calls=(ToolCall(id="1", name="exchange_rate", arguments={"currency": "USD"}),)
        )
    if len(results) == 1:
        args = {"amount": 100, "rate": results[0]}
        return AssistantTurn(tool_calls=(ToolCall(id="2", name="convert", arguments=args),))
    if len(results) == 2:
        args = {"customer": "ada", "amount": results[1]}
        return AssistantTurn(tool_calls=(ToolCall(id="3", name="send_invoice", arguments=args),))
    return AssistantTurn(text=f"100 EUR is {results[1]} USD; {results[2]}.")


def show(record: ToolCallRecord) -> None:
    """Receives each call's record as it ends (an agent journals it for `smesh trace`)."""
    again = " (replayed)" if record.replayed else ""
    print(f"  step {record.step}: {record.tool} -> {record.result}{again}")


async def main() -> None:
    loop = ToolLoop(
        [RateTable({"USD": 1.08, "GBP": 0.85}), convert, send_invoice], ledger=MemoryEffectLedger()
    )
    print("tools:", ", ".join(spec.name for spec in loop.tools.specs()))
    scope = EffectScope(run_id="run-1", task_id="invoice-ada")
    for label in ("first run", "same task again (as after a crash)"):
        print(f"{label}:")
        result = await loop.run(
            fake_model, "Invoice ada 100 EUR in USD.", scope=scope, on_record=show
        )
        print("  answer:", result.text)
    print(f"invoices actually sent: {len(SENT)}")


if __name__ == "__main__":
    asyncio.run(main())
