"""Where the feed comes from: a journal that another process writes, or a live field.

:class:`JournalTail` reads a smesh journal (SQLite, WAL mode) without ever writing to it.
Following a run costs one ``PRAGMA data_version`` per poll while nothing changes, and one
indexed range query per table (``run_id = ? AND seq > ?``) when something did.

:class:`DashboardFeed` is the in-process source: it subscribes to a live field and takes
the runtime's actions through the same calls a :class:`smesh.agents.journal.Journal` takes
(``attach``, ``action``, ``flush``, ``finish``), so a run can hand it to anything that
journals. Its callbacks only append to a deque; the dashboard's loop does the work.

Both sources have one method the hub calls, ``poll(model, limit)``, which applies what is
new to a :class:`~smesh.dashboard.model.RunModel` and says whether more is waiting.
"""

from __future__ import annotations

import heapq
import itertools
import json
import sqlite3
from collections import deque
from pathlib import Path
from typing import Any, Protocol

from smesh.dashboard.events import decode_signal
from smesh.dashboard.model import RunModel
from smesh.errors import UsageError
from smesh.field import Field, FieldEvent, Subscription
from smesh.signal import Signal

__all__ = ["DashboardFeed", "JournalSource", "JournalTail", "Source"]

#: rows read per table and poll; a replay of a long run is applied in chunks of this size
CHUNK = 4000


class Source(Protocol):
    """What a hub follows."""

    def poll(self, model: RunModel, limit: int = CHUNK) -> bool:
        """Apply what is new to ``model``; True if more is waiting already."""
        ...

    def close(self) -> None:
        """Release what the source holds."""
        ...


def _loads(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


class JournalTail:
    """A read-only view of a journal file that may be written concurrently.

    Raises:
        UsageError: the file is missing or is not a smesh journal.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise UsageError(f"no journal at {str(self.path)!r}")
        try:
            # read-only by promise (query_only) rather than by URI mode: a read-only
            # connection cannot open a WAL database whose writer has gone and removed -shm
            self._db = sqlite3.connect(self.path, timeout=5.0, check_same_thread=False)
            self._db.execute("PRAGMA query_only = ON")
            tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master")}
        except sqlite3.Error as exc:
            raise UsageError(f"cannot read journal {str(self.path)!r}: {exc}") from None
        if not {"runs", "events", "actions"} <= tables:
            self._db.close()
            raise UsageError(f"{str(self.path)!r} is not a smesh journal")

    def data_version(self) -> int:
        """Changes whenever another connection commits (cheap: no I/O)."""
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def runs(self) -> list[dict[str, Any]]:
        """Every run, newest first: id, times, and the run's type from its meta."""
        rows = self._db.execute(
            "SELECT run_id, started, finished, json_extract(meta, '$.type') FROM runs"
            " ORDER BY started DESC"
        ).fetchall()
        return [
            {"run_id": r[0], "started": r[1], "finished": r[2], "type": r[3] or "agents"}
            for r in rows
        ]

    def latest(self) -> str | None:
        """The newest run's id."""
        row = self._db.execute("SELECT run_id FROM runs ORDER BY started DESC LIMIT 1").fetchone()
        return None if row is None else str(row[0])

    def run(self, run_id: str) -> dict[str, Any] | None:
        """One run's meta, finish time and report; None if unknown."""
        row = self._db.execute(
            "SELECT started, finished, meta, report FROM runs WHERE run_id = ?", (run_id,)
        ).fetchone()
        if row is None:
            return None
        return {
            "run_id": run_id,
            "started": row[0],
            "finished": row[1],
            "meta": _loads(row[2]) or {},
            "report": _loads(row[3]),
        }

    def finished(self, run_id: str) -> bool:
        """Whether the run has recorded its end (cheap: reads no JSON)."""
        row = self._db.execute("SELECT finished FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return row is not None and row[0] is not None

    def events_after(self, run_id: str, seq: int, limit: int) -> list[tuple[Any, ...]]:
        """Field-event rows of ``run_id`` after ``seq``: (seq, time, type, kind, address,
        origin, by, signal blob)."""
        return self._db.execute(
            "SELECT seq, time, type, kind, address, origin, by, signal FROM events"
            " WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (run_id, seq, limit),
        ).fetchall()

    def actions_after(
        self, run_id: str, seq: int, limit: int, task_id: str | None = None
    ) -> list[tuple[Any, ...]]:
        """Action rows of ``run_id`` after ``seq`` (optionally of one task): (seq, time,
        agent, action, task_id, detail JSON)."""
        query = (
            "SELECT seq, time, agent, action, task_id, detail FROM actions"
            " WHERE run_id = ? AND seq > ?"
        )
        args: tuple[Any, ...] = (run_id, seq)
        if task_id is not None:
            query += " AND task_id = ?"
            args = (*args, task_id)
        return self._db.execute(query + " ORDER BY seq LIMIT ?", (*args, limit)).fetchall()

    def close(self) -> None:
        """Close the connection. Safe to call twice."""
        self._db.close()


class JournalSource:
    """Follows one run of a journal, in order, from its first row.

    Field events and actions live in two tables with their own sequences; rows are merged
    by time (events first on ties), and when a chunk stops short of the end of one table,
    rows of the other past that point wait for the next poll.
    """

    def __init__(self, path: str | Path, run_id: str) -> None:
        self.tail = JournalTail(path)
        self.run_id = run_id
        self._event_seq = 0
        self._action_seq = 0
        self._version: int | None = None
        self._more = True
        info = self.tail.run(run_id)
        if info is None:
            self.tail.close()
            raise UsageError(f"no run {run_id!r} in journal {str(self.tail.path)!r}")
        self._info = info

    @property
    def info(self) -> dict[str, Any]:
        """The run's row as last read (meta, finished, report)."""
        return self._info

    def poll(self, model: RunModel, limit: int = CHUNK) -> bool:
        if not model.meta and self._info["meta"]:
            model.set_meta(self._info["meta"])
        version = self.tail.data_version()
        if version == self._version and not self._more:
            return False
        self._version = version
        events = self.tail.events_after(self.run_id, self._event_seq, limit)
        actions = self.tail.actions_after(self.run_id, self._action_seq, limit)
        cutoff = float("inf")
        if len(events) == limit:
            cutoff = events[-1][1]
        if len(actions) == limit:
            cutoff = min(cutoff, actions[-1][1])
        tagged = heapq.merge(
            ((r[1], 0, r) for r in events), ((r[1], 1, r) for r in actions), key=lambda x: x[:2]
        )
        for t, table, row in tagged:
            if t > cutoff:
                break
            if table == 0:
                self._apply_event(model, row)
                self._event_seq = row[0]
            else:
                model.apply_action(row[0], t, row[2], row[3], row[4], row[5])  # JSON text
                self._action_seq = row[0]
        self._more = len(events) == limit or len(actions) == limit
        if not self._more and model.finished is None and self.tail.finished(self.run_id):
            info = self.tail.run(self.run_id)
            if info is not None and info["finished"] is not None:
                self._info = info
                model.finish(info["report"], info["finished"])
        return self._more

    @staticmethod
    def _apply_event(model: RunModel, row: tuple[Any, ...]) -> None:
        seq, t, op, kind, address, origin, by, blob = row
        # a withdrawn or expired signal is the one the model holds: no need to decode it
        signal = model.live.get(address) if op in ("withdraw", "expire") else None
        if signal is None and blob is not None:
            signal = decode_signal(blob)
        if signal is None:  # not serializable (a custom decay): what the row itself says
            signal = Signal(kind=kind, payload=None, origin=origin, address=address, created_at=t)
        model.apply_signal(seq, t, op, by, signal)

    def close(self) -> None:
        self.tail.close()


class DashboardFeed:
    """The in-process source: follows a live field and the runtime's actions.

    It takes the calls a journal takes, so a run can give it the events it journals::

        feed = DashboardFeed()
        feed.attach(team.field, team.run_id)          # field events
        feed.action(now, agent, "claim", task_id, {})  # what Runtime.record journals

    Callbacks run inside field operations on the run's thread; they only append to a deque
    (thread-safe in CPython), and the dashboard's loop applies them when it polls.
    """

    def __init__(self, run_id: str = "live", meta: dict[str, Any] | None = None) -> None:
        self.run_id = run_id
        self.meta: dict[str, Any] = dict(meta or {})
        self._pending: deque[tuple[Any, ...]] = deque()
        self._seq = itertools.count(1)
        self._subscription: Subscription | None = None
        self._report: Any = None
        self._finished: float | None = None

    def attach(self, field: Field, run_id: str | None = None, meta: Any = None) -> None:
        """Follow every event of ``field`` (the signature of ``Journal.attach``)."""
        if run_id is not None:
            self.run_id = run_id
        if isinstance(meta, dict):
            self.meta.update(meta)
        if self._subscription is not None:
            self._subscription.cancel()
        self._subscription = field.subscribe(self._on_event)

    def _on_event(self, event: FieldEvent) -> None:
        self._pending.append(("s", next(self._seq), event.time, event.type, event.by, event.signal))

    def action(
        self, now: float, agent: str, action: str, task_id: str | None, detail: dict[str, Any]
    ) -> None:
        """Take one agent action (the signature of ``Journal.action``)."""
        self._pending.append(("a", next(self._seq), now, agent, action, task_id, detail))

    def flush(self) -> None:
        """Nothing to flush (``Journal.flush``'s signature)."""

    def finish(self, run_id: str, report: Any, when: float = 0.0) -> None:
        """The run ended with ``report``."""
        import msgspec

        self._pending.append(("f", when, msgspec.to_builtins(report)))

    def poll(self, model: RunModel, limit: int = CHUNK) -> bool:
        if not model.meta and self.meta:
            model.set_meta(self.meta)
        pending = self._pending
        for _ in range(min(limit, len(pending))):
            row = pending.popleft()
            if row[0] == "s":
                model.apply_signal(row[1], row[2], row[3], row[4], row[5])
            elif row[0] == "a":
                model.apply_action(row[1], row[2], row[3], row[4], row[5], row[6])
            else:
                model.finish(row[2], row[1] or model.now)
        return bool(pending)

    def close(self) -> None:
        """Stop following the field."""
        if self._subscription is not None:
            self._subscription.cancel()
            self._subscription = None
