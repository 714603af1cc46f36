"""A durable effect ledger in SQLite (WAL), in its own table of a file the caller names.

The table (``tool_effects``) may live in the run journal's database file: the ledger
opens its own connection and touches nothing else, so the journal and the ledger need not
know each other. Every statement commits on its own (autocommit), so an intent is on disk
before the tool runs, and a process killed at any point leaves either no record, an
intent, or an intent with its outcome.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec

from smesh.errors import UsageError
from smesh.tools.ledger import EffectLedger, EffectRecord, EffectScope

__all__ = ["SQLiteEffectLedger"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tool_effects (
    effect_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL, task_id TEXT NOT NULL, attempt INTEGER NOT NULL,
    step INTEGER NOT NULL, tool TEXT NOT NULL, args TEXT NOT NULL,
    status TEXT NOT NULL, result TEXT, error TEXT,
    started REAL NOT NULL, finished REAL
);
CREATE INDEX IF NOT EXISTS tool_effects_run ON tool_effects (run_id, task_id, attempt);
"""
_COLUMNS = "effect_id, tool, status, result, error, run_id, task_id, attempt, step, args"
# insertion order kept: a replayed result must read exactly as the original did
_encode = msgspec.json.Encoder().encode


def _record(row: tuple[Any, ...]) -> EffectRecord:
    effect, tool, status, result, error, run_id, task_id, attempt, step, args = row
    return EffectRecord(
        effect_id=effect,
        tool=tool,
        status=status,
        result=msgspec.json.decode(result) if result is not None else None,
        error=error,
        run_id=run_id,
        task_id=task_id,
        attempt=attempt,
        step=step,
        args=msgspec.json.decode(args),
    )


class SQLiteEffectLedger(EffectLedger):
    """Intents and outcomes in the ``tool_effects`` table of ``path``.

    Args:
        path: the database file (created if missing); may be the run journal's.
        busy_timeout_s: how long a write waits for another writer before failing.
        clock: wall clock for the ``started``/``finished`` columns.

    Statements run in the ledger's own worker thread (one at a time), so a busy database
    never blocks the event loop, each waits at most ``busy_timeout_s``, and threads hung
    elsewhere (a sync tool that ignores its timeout) cannot hold the ledger up.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if busy_timeout_s <= 0:
            raise UsageError("busy_timeout_s must be > 0")
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smesh-ledger")
        self._conn: sqlite3.Connection | None = sqlite3.connect(
            self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode survives a killed process (the OS keeps the pages); only a
        # power loss could drop the last commits.
        self._conn.execute("PRAGMA synchronous = NORMAL")
        self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        self._conn.executescript(_SCHEMA)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise UsageError("the effect ledger is closed")
        return self._conn

    def _begin(
        self, effect_id: str, scope: EffectScope, step: int, tool: str, args: Any
    ) -> EffectRecord | None:
        with self._lock:
            db = self._db()
            cursor = db.execute(
                "INSERT INTO tool_effects (effect_id, run_id, task_id, attempt, step, tool, "
                "args, status, started) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?) "
                "ON CONFLICT (effect_id) DO NOTHING",
                (
                    effect_id,
                    scope.run_id,
                    scope.task_id,
                    scope.attempt,
                    step,
                    tool,
                    _encode(args).decode(),
                    self._clock(),
                ),
            )
            if cursor.rowcount == 1:
                return None
            row = db.execute(
                f"SELECT {_COLUMNS} FROM tool_effects WHERE effect_id = ?", (effect_id,)
            ).fetchone()
        return _record(row)

    def _finish(self, effect_id: str, ok: bool, result: Any, error: str | None) -> None:
        stored = _encode(result).decode() if ok else None
        with self._lock:
            self._db().execute(
                "UPDATE tool_effects SET status = ?, result = ?, error = ?, finished = ? "
                "WHERE effect_id = ?",
                ("done" if ok else "failed", stored, error, self._clock(), effect_id),
            )

    async def begin(
        self, effect_id: str, *, scope: EffectScope, step: int, tool: str, args: Any
    ) -> EffectRecord | None:
        """Record the intent (committed before returning) unless the id is known."""
        self._db()  # fail fast when closed
        call = functools.partial(self._begin, effect_id, scope, step, tool, args)
        return await asyncio.get_running_loop().run_in_executor(self._thread, call)

    async def finish(
        self, effect_id: str, *, ok: bool, result: Any = None, error: str | None = None
    ) -> None:
        """Record the outcome (committed before returning)."""
        self._db()
        call = functools.partial(self._finish, effect_id, ok, result, error)
        await asyncio.get_running_loop().run_in_executor(self._thread, call)

    def records(self, run_id: str | None = None) -> list[EffectRecord]:
        """Every recorded effect (of one run), in the order the intents were recorded."""
        query = f"SELECT {_COLUMNS} FROM tool_effects"
        params: tuple[str, ...] = ()
        if run_id is not None:
            query += " WHERE run_id = ?"
            params = (run_id,)
        with self._lock:
            rows = self._db().execute(query + " ORDER BY started, rowid", params).fetchall()
        return [_record(r) for r in rows]

    def close(self) -> None:
        """Close the connection. Safe to call twice."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        self._thread.shutdown(wait=False)

    async def aclose(self) -> None:
        """Close the connection. Safe to call twice."""
        self.close()
