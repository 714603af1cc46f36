"""A process running a Team whose agent pays orders with a side-effecting tool, for the
kill -9 tests of ``Agent(tools=...)``.

The agent's model (a FunctionBackend reading the conversation) pays the orders in four
turns (turn 2 pays two at once), then answers with what each payment returned. ``pay``
appends a row to an external SQLite table (the "bank") for every payment it really makes.
``--pause`` makes the process print ``PAUSE`` and sleep at one point, where the test kills
it; ``--resume`` continues the run from the journal (the run id is the same).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import time
from typing import Any

from smesh.agents import Agent, Settings, TaskSpec, Team
from smesh.agents.journal import Journal
from smesh.backends.base import Request
from smesh.backends.toolcalls import AssistantTurn, ToolCall, ToolResult
from smesh.testing import FunctionBackend
from smesh.tools import Reconciled, tool

ORDERS = [["o1"], ["o2", "o2b"], ["o3"], ["o4"]]


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _bank(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=5, isolation_level=None)
    conn.execute("CREATE TABLE IF NOT EXISTS payments (order_id TEXT, cents INTEGER, pid INTEGER)")
    return conn


def build_pay(args: argparse.Namespace) -> Any:
    where, _, target = (args.pause or "").partition(":")

    @tool(side_effect=True, timeout_s=120)
    def pay(order_id: str, cents: int) -> dict[str, Any]:
        """Pay an order (really: append a row to the bank's table)."""
        if where == "before" and order_id == target:
            _say("PAUSE before " + order_id)
            time.sleep(120)
        time.sleep(args.work_s)
        with _bank(args.bank) as bank:
            receipt = bank.execute(
                "INSERT INTO payments VALUES (?, ?, ?)", (order_id, cents, os.getpid())
            ).lastrowid
        _say("performed " + order_id)
        if where == "after" and order_id == target:
            _say("PAUSE after " + order_id)
            time.sleep(120)
        return {"order_id": order_id, "receipt": receipt}

    if args.reconcile:

        @pay.reconciler
        def paid(order_id: str, cents: int) -> Reconciled:
            with _bank(args.bank) as bank:
                row = bank.execute(
                    "SELECT rowid FROM payments WHERE order_id = ?", (order_id,)
                ).fetchone()
            if row is None:
                return Reconciled(performed=False)
            return Reconciled(performed=True, result={"order_id": order_id, "receipt": row[0]})

    return pay


def build_model(args: argparse.Namespace) -> FunctionBackend:
    where, _, target = (args.pause or "").partition(":")

    def model(request: Request) -> Any:
        seen = [t for t in request.messages if isinstance(t, ToolResult)]
        if where == "recorded" and any(target in r.content for r in seen):
            _say("PAUSE recorded " + target)  # between steps: the outcome is on disk
            time.sleep(120)
        turn = sum(1 for t in request.messages if isinstance(t, AssistantTurn))
        if turn < len(ORDERS):
            calls = tuple(
                ToolCall(id="", name="pay", arguments={"order_id": o, "cents": 100 * (turn + 1)})
                for o in ORDERS[turn]
            )
            return AssistantTurn(tool_calls=calls)
        return json.dumps([[r.is_error, r.content[:60]] for r in seen])

    return FunctionBackend(model)


async def main(args: argparse.Namespace) -> None:
    _bank(args.bank).close()
    with Journal(args.journal) as journal:
        agent = Agent(
            "cashier", backend=build_model(args), skills={"pay": 1.0}, tools=[build_pay(args)]
        )
        team = Team(
            [agent],
            journal=journal,
            run_id=args.run,
            resume=args.resume,
            settings=Settings(tick_s=0.05, idle_timeout_s=60.0),
        )
        _say("start")
        report = await team.run([TaskSpec(task_id="checkout", skill="pay", max_attempts=1)])
    (task,) = report.tasks
    _say("final " + json.dumps({"status": task.status, "output": task.output}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--journal", required=True)
    parser.add_argument("--bank", required=True)
    parser.add_argument("--run", required=True)
    parser.add_argument("--pause", default="", help="before:ORDER, after:ORDER or recorded:ORDER")
    parser.add_argument("--reconcile", action="store_true")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--work-s", type=float, default=0.0)
    asyncio.run(main(parser.parse_args()))
