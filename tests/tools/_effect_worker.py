"""A process that runs a tool loop with side effects, for the kill -9 tests.

The model is scripted: four turns each pay one order (turn 2 pays two at once), then it
answers "done". ``pay`` appends a row to an external SQLite table (the "bank") for every
payment it really makes, so the test can count effects actually performed. ``--pause``
makes the process print ``PAUSE`` and sleep at one point, where the test kills it.
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

from smesh.testing.tools import ScriptedModel, call
from smesh.tools import (
    EffectScope,
    Reconciled,
    SQLiteEffectLedger,
    ToolCallRecord,
    ToolLoop,
    tool,
)

ORDERS = [["o1"], ["o2", "o2b"], ["o3"], ["o4"]]


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _bank(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=5, isolation_level=None)
    conn.execute("CREATE TABLE IF NOT EXISTS payments (order_id TEXT, cents INTEGER, pid INTEGER)")
    return conn


def build(args: argparse.Namespace) -> Any:
    where, _, target = (args.pause or "").partition(":")

    @tool(side_effect=True, timeout_s=60)
    def pay(order_id: str, cents: int) -> dict[str, Any]:
        """Pay an order (really: append a row to the bank's table)."""
        if where == "before" and order_id == target:
            _say("PAUSE before " + order_id)
            time.sleep(60)
        time.sleep(args.work_s)
        with _bank(args.bank) as bank:
            cursor = bank.execute(
                "INSERT INTO payments VALUES (?, ?, ?)", (order_id, cents, os.getpid())
            )
            receipt = cursor.lastrowid
        _say("performed " + order_id)
        if where == "after" and order_id == target:
            _say("PAUSE after " + order_id)
            time.sleep(60)
        time.sleep(args.work_s)
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


async def main(args: argparse.Namespace) -> None:
    _bank(args.bank).close()
    pay = build(args)
    where, _, target = (args.pause or "").partition(":")
    script: list[Any] = [
        [call("pay", order_id=o, cents=100 * (i + 1)) for o in orders]
        for i, orders in enumerate(ORDERS)
    ]
    model = ScriptedModel([*script, "done"])

    def on_record(record: ToolCallRecord) -> None:
        _say(
            "record "
            + json.dumps(
                {
                    "args": record.args,
                    "status": record.status,
                    "replayed": record.replayed,
                    "result": record.result,
                }
            )
        )
        args = record.args if isinstance(record.args, dict) else {}
        if where == "recorded" and args.get("order_id") == target:
            _say("PAUSE recorded " + target)
            time.sleep(60)

    async with SQLiteEffectLedger(args.journal) as ledger:
        _say("start")  # imports and set-up done: the work begins
        loop = ToolLoop([pay], ledger=ledger, max_steps=8)
        scope = EffectScope(run_id=args.run, task_id="checkout", attempt=1)
        result = await loop.run(model, "pay every order", scope=scope, on_record=on_record)
    _say("final " + str(result.text))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--journal", required=True)
    parser.add_argument("--bank", required=True)
    parser.add_argument("--run", required=True)
    parser.add_argument("--pause", default="", help="before:ORDER, after:ORDER or recorded:ORDER")
    parser.add_argument("--reconcile", action="store_true")
    parser.add_argument("--work-s", type=float, default=0.0)
    asyncio.run(main(parser.parse_args()))
