"""The journal's side of workflows: the signals a run emitted, read back by kind, and the
run's inbox, where signals for a running team arrive from outside it (``smesh approve`` and
``smesh cancel`` in another terminal). The team reads its inbox every
``Settings.inbox_poll_s`` and emits what is new into its field (see
:mod:`smesh.agents.teamlog`). Mixed into :class:`smesh.agents.journal.Journal`."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import msgspec

from smesh.agents.signal_codec import decode_signal, encode_signal
from smesh.signal import Signal

__all__ = ["INBOX_SCHEMA", "RunInbox"]

INBOX_SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, time REAL, kind TEXT,
    origin TEXT, signal BLOB
);
CREATE INDEX IF NOT EXISTS inbox_run ON inbox (run_id, seq);
"""


class RunInbox:
    """Workflow reads and the inbox of a journal (the journal supplies the hooks below)."""

    _db: sqlite3.Connection

    def _rows(self, what: str, query: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """All rows of ``query``, damage noted (the journal's own)."""
        raise NotImplementedError

    def _problem(self, line: str) -> None:
        """Note a problem found while reading (the journal's own)."""
        raise NotImplementedError

    def signals(self, run_id: str, kinds: tuple[str, ...]) -> list[Signal]:
        """Every signal of ``kinds`` the run emitted, in order (expired ones included)."""
        marks = ", ".join("?" for _ in kinds)
        out = []
        bad = 0
        for (blob,) in self._rows(
            "events",
            f"SELECT signal FROM events WHERE run_id = ? AND type = 'emit' AND kind IN ({marks})"
            " AND signal IS NOT NULL ORDER BY seq",
            (run_id, *kinds),
        ):
            try:
                out.append(decode_signal(blob))
            except (msgspec.DecodeError, TypeError, ValueError):
                bad += 1  # a damaged row: noted, never a traceback
        if bad:
            self._problem(f"{bad} recorded signal(s) of run {run_id} do not decode")
        return out

    def post(self, run_id: str, signal: Signal) -> int:
        """Leave ``signal`` in the run's inbox (committed at once); returns its number."""
        with self._db:
            self._db.executescript(INBOX_SCHEMA)  # a journal from before inboxes has none
            cursor = self._db.execute(
                "INSERT INTO inbox (run_id, time, kind, origin, signal) VALUES (?, ?, ?, ?, ?)",
                (run_id, time.time(), signal.kind, signal.origin, encode_signal(signal)),
            )
        return int(cursor.lastrowid or 0)

    def inbox(self, run_id: str, after: int = 0) -> list[tuple[int, Signal]]:
        """The run's inbox after number ``after``: (number, signal) in order."""
        try:
            rows = self._db.execute(
                "SELECT seq, signal FROM inbox WHERE run_id = ? AND seq > ? ORDER BY seq",
                (run_id, after),
            ).fetchall()
        except sqlite3.OperationalError:
            return []  # a journal opened read-only from before inboxes existed has none
        out = []
        for seq, blob in rows:
            try:
                out.append((int(seq), decode_signal(blob)))
            except (msgspec.DecodeError, TypeError, ValueError):
                continue  # a malformed row (another program's) is nobody's signal
        return out
