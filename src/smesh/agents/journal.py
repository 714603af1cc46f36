"""The run journal: an append-only SQLite log of every signal event and agent action.

Each action carries the signals that triggered it (addresses, intensities, trust), so
``smesh trace`` can answer "why did agent X do Y". A crashed run resumes from the journal:
the durable facts (tasks, results, votes, checks, feedback, decisions) are replayed into a fresh
field, and accepted work is not redone. Leases are not replayed; they belonged to
processes that are gone.

Writes are buffered and committed in batches (WAL mode), and flushed at every tick of the
run and when it ends, so a crash loses at most the last fraction of a second.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from smesh.decay import Exponential, Linear, Sigmoid, Step
from smesh.errors import SmeshError, UsageError
from smesh.field import Field, FieldEvent
from smesh.signal import Signal

__all__ = ["DEFAULT_JOURNAL", "Journal", "JournalAction", "JournalEvent"]

DEFAULT_JOURNAL = Path(".smesh") / "journal.db"
_FLUSH_EVERY = 512
_SCHEMA = """
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, started REAL, finished REAL, meta TEXT, report TEXT
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, time REAL, type TEXT,
    kind TEXT, address TEXT, origin TEXT, by TEXT, signal BLOB
);
CREATE TABLE IF NOT EXISTS actions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, time REAL, agent TEXT,
    action TEXT, task_id TEXT, detail TEXT
);
CREATE INDEX IF NOT EXISTS events_run ON events (run_id, seq);
CREATE INDEX IF NOT EXISTS actions_run ON actions (run_id, task_id, seq);
"""
# Signals posted to a run from outside it (``smesh approve`` in another terminal): the run
# reads its inbox every ``Settings.inbox_poll_s`` and emits what is new into its field.
_INBOX_SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, time REAL, kind TEXT,
    origin TEXT, signal BLOB
);
CREATE INDEX IF NOT EXISTS inbox_run ON inbox (run_id, seq);
"""
_REPLAYED_KINDS = frozenset(
    {"task", "result", "vote", "check", "feedback", "decision"}
    # the workflow kinds are durable too: a resumed run keeps its cancellations, pending
    # approvals and their answers, handoffs and restarts
    | {"cancel", "approval-request", "approval", "handoff", "reopen"}
)

_encode = msgspec.msgpack.Encoder().encode

# ``Signal.decay`` is typed as the ``Decay`` base, which msgspec decodes only as the base's
# own tag; stored signals are read through a mirror whose decay is the union of the concrete
# (serializable) decays, then rebuilt as a Signal.
_DECAYS = Exponential | Linear | Sigmoid | Step


def _mirror(f: msgspec.structs.FieldInfo) -> tuple[Any, ...]:
    kind = _DECAYS if f.name == "decay" else f.type
    return (f.name, kind) if f.required else (f.name, kind, f.default)


_StoredSignal: Any = msgspec.defstruct(
    "_StoredSignal",
    [_mirror(f) for f in msgspec.structs.fields(Signal)],
    kw_only=True,
    frozen=True,
)
_decode_stored = msgspec.msgpack.Decoder(_StoredSignal).decode


def _decode_signal(blob: bytes) -> Signal:
    stored = _decode_stored(blob)
    return Signal(**{f: getattr(stored, f) for f in Signal.__struct_fields__})


class JournalEvent(msgspec.Struct, frozen=True):
    """One recorded field event."""

    seq: int
    time: float
    type: str
    kind: str
    address: str
    origin: str
    by: str | None


class JournalAction(msgspec.Struct, frozen=True):
    """One recorded agent action."""

    seq: int
    time: float
    agent: str
    action: str
    task_id: str | None
    detail: dict[str, Any]


class Journal:
    """An append-only journal in one SQLite file.

    Args:
        path: the database file (created with its directory if missing).
    """

    def __init__(self, path: str | Path = DEFAULT_JOURNAL) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path)
            self._db.executescript(_SCHEMA)
            self._db.executescript(_INBOX_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise UsageError(f"cannot open journal {str(self.path)!r}: {exc}") from None
        self._events: list[tuple[Any, ...]] = []
        self._actions: list[tuple[Any, ...]] = []
        self._run_id: str | None = None
        self._subscription: Any = None

    # -- writing ---------------------------------------------------------------------------

    def attach(self, field: Field, run_id: str, meta: dict[str, Any] | None = None) -> None:
        """Record every event of ``field`` under ``run_id`` (creating the run if new)."""
        self._run_id = run_id
        self._db.execute(
            "INSERT OR IGNORE INTO runs (run_id, started, meta) VALUES (?, ?, ?)",
            (run_id, time.time(), json.dumps(meta or {})),
        )
        self._db.commit()
        if self._subscription is not None:
            self._subscription.cancel()
        self._subscription = field.subscribe(self._on_event)

    def _on_event(self, event: FieldEvent) -> None:
        s = event.signal
        try:
            blob = _encode(s)
        except (TypeError, msgspec.EncodeError):
            blob = None  # a custom decay function does not serialize
        self._events.append(
            (self._run_id, event.time, event.type, s.kind, s.address, s.origin, event.by, blob)
        )
        if len(self._events) >= _FLUSH_EVERY:
            self.flush()

    def action(
        self, now: float, agent: str, action: str, task_id: str | None, detail: dict[str, Any]
    ) -> None:
        """Record an agent action with its details (JSON-compatible)."""
        self._actions.append(
            (self._run_id, now, agent, action, task_id, json.dumps(detail, default=str))
        )
        if len(self._actions) >= _FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        """Commit buffered rows."""
        if not self._events and not self._actions:
            return
        with self._db:
            if self._events:
                self._db.executemany(
                    "INSERT INTO events (run_id, time, type, kind, address, origin, by, signal)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    self._events,
                )
            if self._actions:
                self._db.executemany(
                    "INSERT INTO actions (run_id, time, agent, action, task_id, detail)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    self._actions,
                )
        self._events.clear()
        self._actions.clear()

    def finish(self, run_id: str, report: Any) -> None:
        """Record the end of a run and its report."""
        self.flush()
        with self._db:
            self._db.execute(
                "UPDATE runs SET finished = ?, report = ? WHERE run_id = ?",
                (time.time(), json.dumps(msgspec.to_builtins(report)), run_id),
            )

    def close(self) -> None:
        """Flush and close. Safe to call twice."""
        if self._subscription is not None:
            self._subscription.cancel()
            self._subscription = None
        try:
            self.flush()
            self._db.close()
        except sqlite3.ProgrammingError:
            pass  # already closed

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------------------

    def runs(self) -> list[dict[str, Any]]:
        """Every run, newest first."""
        self.flush()
        rows = self._db.execute(
            "SELECT run_id, started, finished, report FROM runs ORDER BY started DESC"
        ).fetchall()
        return [
            {
                "run_id": r[0],
                "started": r[1],
                "finished": r[2],
                "report": json.loads(r[3]) if r[3] else None,
            }
            for r in rows
        ]

    def has_run(self, run_id: str) -> bool:
        """Whether ``run_id`` is in the journal."""
        row = self._db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return row is not None

    def events(self, run_id: str) -> Iterator[JournalEvent]:
        """The run's field events, in order."""
        self.flush()
        for row in self._db.execute(
            "SELECT seq, time, type, kind, address, origin, by FROM events"
            " WHERE run_id = ? ORDER BY seq",
            (run_id,),
        ):
            yield JournalEvent(*row)

    def actions(self, run_id: str, task_id: str | None = None) -> list[JournalAction]:
        """The run's agent actions (optionally about one task), in order."""
        self.flush()
        query = "SELECT seq, time, agent, action, task_id, detail FROM actions WHERE run_id = ?"
        args: tuple[Any, ...] = (run_id,)
        if task_id is not None:
            query += " AND task_id = ?"
            args = (run_id, task_id)
        rows = self._db.execute(query + " ORDER BY seq", args).fetchall()
        return [JournalAction(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    def live_signals(self, run_id: str) -> list[Signal]:
        """The durable signals that were live at the end of the journal, in emission order:
        what a resumed run replays."""
        self.flush()
        live: dict[str, Signal] = {}
        for kind, type_, address, blob in self._db.execute(
            "SELECT kind, type, address, signal FROM events WHERE run_id = ? ORDER BY seq",
            (run_id,),
        ):
            if kind not in _REPLAYED_KINDS:
                continue
            if type_ in ("expire", "withdraw"):
                live.pop(address, None)
            elif blob is not None:
                try:
                    signal = _decode_signal(blob)
                except msgspec.DecodeError as exc:
                    raise SmeshError(f"journal {self.path} is corrupt: {exc}") from None
                if type_ == "emit" and address in live:
                    continue
                live[address] = signal
        return list(live.values())

    def signals(self, run_id: str, kinds: tuple[str, ...]) -> list[Signal]:
        """Every signal of ``kinds`` the run emitted, in order (expired ones included)."""
        self.flush()
        marks = ", ".join("?" for _ in kinds)
        out = []
        for (blob,) in self._db.execute(
            f"SELECT signal FROM events WHERE run_id = ? AND type = 'emit' AND kind IN ({marks})"
            " AND signal IS NOT NULL ORDER BY seq",
            (run_id, *kinds),
        ):
            try:
                out.append(_decode_signal(blob))
            except msgspec.DecodeError as exc:
                raise SmeshError(f"journal {self.path} is corrupt: {exc}") from None
        return out

    # -- the inbox: signals for a run from outside it ------------------------------------

    def post(self, run_id: str, signal: Signal) -> int:
        """Leave ``signal`` in the run's inbox (committed at once); returns its number."""
        with self._db:
            cursor = self._db.execute(
                "INSERT INTO inbox (run_id, time, kind, origin, signal) VALUES (?, ?, ?, ?, ?)",
                (run_id, time.time(), signal.kind, signal.origin, _encode(signal)),
            )
        return int(cursor.lastrowid or 0)

    def inbox(self, run_id: str, after: int = 0) -> list[tuple[int, Signal]]:
        """The run's inbox after number ``after``: (number, signal) in order."""
        rows = self._db.execute(
            "SELECT seq, signal FROM inbox WHERE run_id = ? AND seq > ? ORDER BY seq",
            (run_id, after),
        ).fetchall()
        out = []
        for seq, blob in rows:
            try:
                out.append((int(seq), _decode_signal(blob)))
            except msgspec.DecodeError:
                continue  # a malformed row (another program's) is nobody's signal
        return out

    def replay(self, run_id: str, field: Field) -> int:
        """Put the run's durable live signals back into ``field``; return how many."""
        if not self.has_run(run_id):
            raise UsageError(f"no run {run_id!r} in journal {str(self.path)!r}")
        signals = self.live_signals(run_id)
        for signal in signals:
            if signal.address not in field:
                field.emit(signal)
        return len(signals)
