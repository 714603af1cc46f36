"""An agent that acts: ``Agent(tools=[...])`` in a team, a task that grants only some of its
tools, and the journal of every call.

* The agent has three tools; the task names two (``TaskSpec(tools=[...])``), so the model
  is offered only those: an agent uses the intersection of its tools and the task's.
* ``send_invoice`` declares ``side_effect=True``: the run is journaled, so the agent
  records each such call in the journal's effect ledger before it runs. A crashed run
  resumed with the same run id gets the recorded result back instead of sending again;
  here the finished run is resumed and nothing is redone.
* Every call is journaled (tool, arguments, result, duration, effect id) for
  ``smesh trace``; the example prints them from the journal.

The "LLM" is a stand-in function behind ``FunctionBackend`` so the example runs offline in
well under a second; any backend with native tool calling plays the same part.

Run it::

    python examples/agent_tools.py
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from smesh.agents import Agent, TaskSpec, Team
from smesh.agents.journal import Journal
from smesh.backends import FunctionBackend
from smesh.backends.base import Request
from smesh.tools import AssistantTurn, CallContext, ToolCall, ToolResult, tool

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


@tool(side_effect=True)
async def delete_customer(customer: str) -> str:
    """Delete a customer and their history."""
    raise AssertionError("never offered for this task")


def llm(request: Request) -> Any:
    """Stands in for a model: converts, invoices, then answers from the results."""
    results = [t.content for t in request.messages if isinstance(t, ToolResult)]
    if not results:
        print("offered to the model:", ", ".join(spec.name for spec in request.tools))
        args: dict[str, Any] = {"amount": 100, "rate": 1.08}
        return AssistantTurn(tool_calls=(ToolCall(id="", name="convert", arguments=args),))
    if len(results) == 1:
        args = {"customer": "ada", "amount": float(results[0])}
        return AssistantTurn(tool_calls=(ToolCall(id="", name="send_invoice", arguments=args),))
    return f"100 EUR is {results[0]} USD; {results[1]}."


async def main() -> None:
    task = TaskSpec(
        task_id="invoice-ada",
        skill="billing",
        description="Invoice ada 100 EUR, in USD.",
        tools=["convert", "send_invoice"],  # this task grants two tools, not the third
    )
    with tempfile.TemporaryDirectory() as tmp, Journal(Path(tmp) / "journal.db") as journal:
        for resume in (False, True):
            agent = Agent(
                "billing",
                backend=FunctionBackend(llm),
                skills={"billing": 1.0},
                tools=[convert, send_invoice, delete_customer],
            )
            team = Team([agent], journal=journal, run_id="example", resume=resume)
            report = await team.run([task])
            (done,) = report.tasks
            print(f"{'resumed' if resume else 'run'}: {done.id}: {done.status}: {done.output}")
            print(f"  LLM calls: {report.llm_calls}, invoices actually sent: {len(SENT)}")
        for action in journal.actions("example", "invoice-ada"):
            if action.action == "tool":  # what `smesh trace example invoice-ada` shows
                d = action.detail
                args = ", ".join(f"{k}={v!r}" for k, v in d["args"].items())
                effect = " (side effect, in the ledger)" if d["effect_id"] else ""
                print(f"  step {d['step']}: {d['tool']}({args}) -> {d['output']}{effect}")


if __name__ == "__main__":
    asyncio.run(main())
