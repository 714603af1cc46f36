"""The run journal: an append-only SQLite log of every signal event and agent action.

Each action carries the signals that triggered it (addresses, intensities, trust), so
``smesh trace`` can answer "why did agent X do Y". A crashed run resumes from the journal:
the durable facts (tasks, results, votes, checks, feedback, decisions) are replayed into a fresh
field, and accepted work is not redone. Leases are not replayed; they belonged to
processes that are gone.

Writes are buffered and committed in batches (WAL mode), and flushed at every tick of the
run and when it ends, so a crash loses at most the last fraction of a second. Several
processes may write one journal: a writer that finds it locked waits (``busy_timeout``)
instead of failing.

Reading never raises on damage. A corrupt page, a missing table or a row that does not
parse is noted in :attr:`Journal.problems` (one line each) and the rest is read; callers
decide what a damaged journal means for them (``smesh trace`` shows what it could read and
exits 2). What a run was (its command and arguments) and how each of its sessions ended
live in the ``meta`` column of ``runs``; see :mod:`smesh.agents.runs`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from smesh.agents.journal_inbox import INBOX_SCHEMA, RunInbox
from smesh.agents.signal_codec import decode_signal, encode_signal
from smesh.errors import ConfigurationError, RuntimeFailure, UsageError
from smesh.field import Field, FieldEvent
from smesh.signal import Signal

__all__ = [
    "DEFAULT_JOURNAL",
    "TABLES",
    "Journal",
    "JournalAction",
    "JournalEvent",
    "default_journal",
]

#: seconds a writer waits for another process's write lock before giving up
BUSY_TIMEOUT_S = 30.0
_FLUSH_EVERY = 512
#: the tables a journal holds (others, e.g. of later features, may be added beside them)
TABLES = ("runs", "events", "actions")
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
_REPLAYED_KINDS = frozenset(
    {"task", "result", "vote", "check", "feedback", "decision"}
    # the workflow kinds are durable too: a resumed run keeps its cancellations, pending
    # approvals and their answers, handoffs and restarts
    | {"cancel", "approval-request", "approval", "handoff", "reopen"}
)


def default_journal() -> Path:
    """Where the journal lives unless ``--journal`` says otherwise: the user's state
    directory, ``$XDG_STATE_HOME/smesh/journal.db`` (``~/.local/state/smesh/journal.db``
    when the variable is unset), never the current directory."""
    state = os.environ.get("XDG_STATE_HOME", "").strip()
    base = Path(state) if state and Path(state).is_absolute() else Path.home() / ".local/state"
    return base / "smesh" / "journal.db"


#: the default journal as resolved when smesh was imported (see :func:`default_journal`)
DEFAULT_JOURNAL = default_journal()


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _loads(text: Any) -> Any:
    """JSON from a column; raises ValueError on anything that is not JSON text."""
    if text is None or text == "":
        return None
    if not isinstance(text, str | bytes):
        raise ValueError(f"not JSON text: {type(text).__name__}")
    return json.loads(text)


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


_NUMBER = (int, float)


class Journal(RunInbox):
    """An append-only journal in one SQLite file.

    Args:
        path: the database file (created with its directory if missing); default
            :func:`default_journal`.
        create: create the file and its tables if missing. With False the journal is only
            read: a missing file is a :class:`~smesh.errors.UsageError` and nothing is
            created (``smesh trace``, ``smesh runs``, a resume check).

    Attributes:
        problems: one line per damage met while reading (a corrupt page, a missing table,
            a row that does not parse), in the order met.

    Raises:
        ConfigurationError: the file cannot be opened as a journal (not a database, a
            corrupt header, no permission).
    """

    def __init__(self, path: str | Path | None = None, *, create: bool = True) -> None:
        self.path = Path(path) if path is not None else default_journal()
        self.problems: list[str] = []
        if not create and not self.path.is_file():
            raise UsageError(f"no journal at {str(self.path)!r}")
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
            self._db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            if create:
                self._db.executescript(_SCHEMA)
                self._db.executescript(INBOX_SCHEMA)
            else:
                self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except (OSError, sqlite3.Error) as exc:
            raise ConfigurationError(
                f"cannot open journal {str(self.path)!r}: {_reason(exc)}"
                " (move it away or pass another --journal)"
            ) from None
        self._events: list[tuple[Any, ...]] = []
        self._actions: list[tuple[Any, ...]] = []
        self._run_id: str | None = None
        self._subscription: Any = None

    @property
    def run_id(self) -> str | None:
        """The run being recorded (None before :meth:`attach`)."""
        return self._run_id

    # -- writing ---------------------------------------------------------------------------

    def attach(self, field: Field, run_id: str, meta: dict[str, Any] | None = None) -> None:
        """Record every event of ``field`` under ``run_id`` (creating the run if new)."""
        self._run_id = run_id
        self._write(
            "INSERT OR IGNORE INTO runs (run_id, started, meta) VALUES (?, ?, ?)",
            (run_id, time.time(), json.dumps(meta or {})),
        )
        if self._subscription is not None:
            self._subscription.cancel()
        self._subscription = field.subscribe(self._on_event)

    def _write(self, query: str, args: tuple[Any, ...]) -> None:
        try:
            with self._db:
                self._db.execute(query, args)
        except sqlite3.Error as exc:
            raise RuntimeFailure(
                f"cannot write journal {str(self.path)!r}: {_reason(exc)}"
            ) from None

    def _on_event(self, event: FieldEvent) -> None:
        s = event.signal
        try:
            blob = encode_signal(s)
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
        """Commit buffered rows.

        Raises:
            RuntimeFailure: the journal cannot be written (disk full, damaged file).
        """
        if not self._events and not self._actions:
            return
        try:
            with self._db:
                if self._events:
                    self._db.executemany(
                        "INSERT INTO events (run_id, time, type, kind, address, origin, by,"
                        " signal) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        self._events,
                    )
                if self._actions:
                    self._db.executemany(
                        "INSERT INTO actions (run_id, time, agent, action, task_id, detail)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        self._actions,
                    )
        except sqlite3.ProgrammingError:
            return  # closed: nothing more can be written
        except sqlite3.Error as exc:
            raise RuntimeFailure(
                f"cannot write journal {str(self.path)!r}: {_reason(exc)}"
            ) from None
        self._events.clear()
        self._actions.clear()

    def finish(self, run_id: str, report: Any) -> None:
        """Record the end of a run and its report.

        A run that ended before (a resumed run) keeps its statistics: each ended session
        is kept in the run's meta and the stored report's ``duration_s``, ``llm_calls``,
        ``tokens`` and ``cost`` are the sums over them (see :mod:`smesh.agents.runs`).
        """
        from smesh.agents.runs import merge_finished

        self.flush()
        data = msgspec.to_builtins(report)
        meta = self.meta(run_id)
        previous = self.report(run_id)
        meta, data = merge_finished(meta, previous, data)
        self._write(
            "UPDATE runs SET finished = ?, report = ?, meta = ? WHERE run_id = ?",
            (time.time(), json.dumps(data), json.dumps(meta), run_id),
        )

    def set_meta(self, run_id: str, meta: dict[str, Any]) -> None:
        """Create the run if new (not yet started) and store ``meta`` as its meta."""
        self._write(
            "INSERT OR IGNORE INTO runs (run_id, started, meta) VALUES (?, ?, ?)",
            (run_id, time.time(), "{}"),
        )
        self._write("UPDATE runs SET meta = ? WHERE run_id = ?", (json.dumps(meta), run_id))

    def discard_run(self, run_id: str) -> None:
        """Remove a run that was refused before it did anything (its row and whatever it
        recorded), so that it is not listed as a run."""
        self._events = [e for e in self._events if e[0] != run_id]
        self._actions = [a for a in self._actions if a[0] != run_id]
        for table in TABLES:
            self._write(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))

    def close(self) -> None:
        """Flush and close. Safe to call twice."""
        if self._subscription is not None:
            self._subscription.cancel()
            self._subscription = None
        try:
            self.flush()
        finally:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------------------

    def _problem(self, line: str) -> None:
        if line not in self.problems:
            self.problems.append(line)

    def _rows(self, what: str, query: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """All rows of ``query``, or those read before the damage (noted) stopped it."""
        try:
            self.flush()
        except RuntimeFailure as exc:
            self._problem(str(exc))
        rows: list[tuple[Any, ...]] = []
        try:
            for row in self._db.execute(query, args):
                rows.append(tuple(row))
        except sqlite3.Error as exc:
            self._problem(f"{what}: {_reason(exc)}")
            if not rows and what in ("events", "actions") and " NOT INDEXED" not in query:
                # a damaged index hides an intact table: read the table itself
                unindexed = query.replace(f"FROM {what}", f"FROM {what} NOT INDEXED", 1)
                before = len(self.problems)
                rows = self._rows(what, unindexed, args)
                del self.problems[before:]  # the same damage, already noted
        return rows

    def integrity(self) -> list[str]:
        """What SQLite's own check finds wrong with the file (``PRAGMA quick_check``);
        empty when it is sound. A file with damaged pages can often be read, not written."""
        rows = self._rows("integrity", "PRAGMA quick_check(5)")
        lines = [line for r in rows if r for line in str(r[0]).splitlines()]
        found = [line for line in lines if line != "ok" and not line.startswith("***")]
        return found if rows else [self.problems[-1] if self.problems else "unreadable"]

    def tables(self) -> set[str]:
        """The journal tables present (a damaged journal may lack some)."""
        rows = self._rows("tables", "SELECT name FROM sqlite_master WHERE type = 'table'")
        return {str(r[0]) for r in rows}

    def runs(self) -> list[dict[str, Any]]:
        """Every run, newest first: ``run_id``, ``started``, ``finished``, ``report`` and
        ``meta`` (a run whose row is damaged is listed with what could be read)."""
        rows = self._rows(
            "runs", "SELECT run_id, started, finished, report, meta FROM runs ORDER BY started DESC"
        )
        if not rows and "runs" not in self.tables():
            # the runs table is gone: the runs are still known from what they recorded
            self._problem("the runs table is missing")
            ids: dict[str, None] = {}
            for table in ("actions", "events"):
                for (run_id,) in self._rows(table, f"SELECT DISTINCT run_id FROM {table}"):
                    ids.setdefault(str(run_id))
            rows = [(run_id, None, None, None, None) for run_id in ids]
        out: list[dict[str, Any]] = []
        for run_id, started, finished, report, meta in rows:
            out.append(
                {
                    "run_id": str(run_id),
                    "started": started if isinstance(started, _NUMBER) else None,
                    "finished": finished if isinstance(finished, _NUMBER) else None,
                    "report": self._json(report, f"run {run_id}: report", dict),
                    "meta": self._json(meta, f"run {run_id}: meta", dict) or {},
                }
            )
        return out

    def _json(self, text: Any, what: str, kind: type) -> Any:
        try:
            value = _loads(text)
        except ValueError as exc:
            self._problem(f"{what} is not readable JSON ({_reason(exc)})")
            return None
        if value is not None and not isinstance(value, kind):
            self._problem(f"{what} is not a JSON {kind.__name__}")
            return None
        return value

    def has_run(self, run_id: str) -> bool:
        """Whether ``run_id`` is in the journal (known from what it recorded when the runs
        table is damaged)."""
        for table in ("runs", "actions", "events"):
            query = f"SELECT 1 FROM {table} WHERE run_id = ? LIMIT 1"
            if self._rows(table, query, (run_id,)):
                return True
        return False

    def meta(self, run_id: str) -> dict[str, Any]:
        """The run's meta (empty when unknown or unreadable)."""
        rows = self._rows("runs", "SELECT meta FROM runs WHERE run_id = ?", (run_id,))
        value = self._json(rows[0][0], f"run {run_id}: meta", dict) if rows else None
        return value if isinstance(value, dict) else {}

    def report(self, run_id: str) -> dict[str, Any] | None:
        """The run's stored report, None when it never finished (or it is unreadable)."""
        rows = self._rows("runs", "SELECT report FROM runs WHERE run_id = ?", (run_id,))
        value = self._json(rows[0][0], f"run {run_id}: report", dict) if rows else None
        return value if isinstance(value, dict) else None

    def events(self, run_id: str) -> Iterator[JournalEvent]:
        """The run's field events, in order (rows that do not parse are skipped, noted)."""
        rows = self._rows(
            "events",
            "SELECT seq, time, type, kind, address, origin, by FROM events"
            " WHERE run_id = ? ORDER BY seq",
            (run_id,),
        )
        bad = 0
        for row in rows:
            seq, when, type_, kind, address, origin, by = row
            if not (isinstance(seq, int) and isinstance(when, _NUMBER)) or not all(
                isinstance(v, str) for v in (type_, kind, address, origin)
            ):
                bad += 1
                continue
            yield JournalEvent(seq, float(when), type_, kind, address, origin, by)
        if bad:
            self._problem(f"{bad} event row(s) of run {run_id} do not parse")

    def actions(self, run_id: str, task_id: str | None = None) -> list[JournalAction]:
        """The run's agent actions (optionally about one task), in order (rows that do not
        parse are skipped, a detail that does not parse is replaced; both are noted)."""
        query = "SELECT seq, time, agent, action, task_id, detail FROM actions WHERE run_id = ?"
        args: tuple[Any, ...] = (run_id,)
        if task_id is not None:
            query += " AND task_id = ?"
            args = (run_id, task_id)
        out: list[JournalAction] = []
        bad = 0
        for seq, when, agent, action, task, detail in self._rows(
            "actions", query + " ORDER BY seq", args
        ):
            if not (isinstance(seq, int) and isinstance(when, _NUMBER)) or not (
                isinstance(agent, str) and isinstance(action, str)
            ):
                bad += 1
                continue
            value = self._json(detail, f"action {seq} of run {run_id}: detail", dict)
            if value is None and detail is not None:
                value = {"unreadable": str(detail)[:80]}
            out.append(
                JournalAction(
                    seq,
                    float(when),
                    agent,
                    action,
                    task if isinstance(task, str) else None,
                    value or {},
                )
            )
        if bad:
            self._problem(f"{bad} action row(s) of run {run_id} do not parse")
        return out

    def live_signals(self, run_id: str) -> list[Signal]:
        """The durable signals that were live at the end of the journal, in emission order:
        what a resumed run replays. A signal that does not decode is skipped and noted."""
        live: dict[str, Signal] = {}
        bad = 0
        rows = self._rows(
            "events",
            "SELECT kind, type, address, signal FROM events WHERE run_id = ? ORDER BY seq",
            (run_id,),
        )
        for kind, type_, address, blob in rows:
            if kind not in _REPLAYED_KINDS:
                continue
            if type_ in ("expire", "withdraw"):
                live.pop(address, None)
            elif blob is not None:
                try:
                    signal = decode_signal(blob)
                except (msgspec.DecodeError, TypeError, ValueError):
                    bad += 1
                    continue
                if type_ == "emit" and address in live:
                    continue
                live[address] = signal
        if bad:
            self._problem(f"{bad} recorded signal(s) of run {run_id} do not decode")
        return list(live.values())

    def replay(self, run_id: str, field: Field) -> int:
        """Put the run's durable live signals back into ``field``; return how many."""
        if not self.has_run(run_id):
            raise UsageError(f"no run {run_id!r} in journal {str(self.path)!r}")
        signals = self.live_signals(run_id)
        for signal in signals:
            if signal.address not in field:
                field.emit(signal)
        return len(signals)
