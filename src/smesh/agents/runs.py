"""What a journal knows about its runs: what each run was, how each session of it ended,
and whether it can be resumed.

A run's row in the journal's ``runs`` table carries a JSON ``meta``. Besides what other
writers put there (``type`` for a ``smesh sim --record`` run), a run started from the
command line records:

- ``app`` (``agents``, ``review``, ``swarm``, ``code``), ``args`` (the arguments that
  define the work: path, brief, backend, agents, ...) and ``argv`` (the command as typed);
- ``status``: ``running``, ``complete`` (every task accepted), ``failed`` (it ended with
  failed tasks), ``stopped`` (a budget or idleness stopped it with work left),
  ``interrupted`` (Ctrl-C); a ``running`` run whose process is gone is ``crashed``;
- ``pid`` and ``host`` of the process running it, and ``sessions``: one entry per time the
  run was started or resumed and ended, with its numbers.

A resumed run adds a session instead of overwriting the last one; the stored report's
``duration_s``, ``llm_calls``, ``tokens`` and ``cost`` are the sums over the sessions.
:func:`check_resume` refuses to resume a run with other arguments and says what a damaged
journal still allows.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from smesh.agents.journal import Journal
from smesh.errors import ConfigurationError, UsageError

__all__ = [
    "RunRecord",
    "begin_run",
    "check_resume",
    "end_session",
    "list_runs",
    "merge_finished",
    "report_status",
]

_SUMMED = ("duration_s", "llm_calls", "tokens", "cost")


class RunRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One run as ``smesh runs`` lists it.

    Attributes:
        run_id: the run's id (``--resume`` takes it).
        app: what ran it (``agents``, ``review``, ``swarm``, ``code``, ``sim``, ...).
        started: when it was first started (Unix time), None when unknown.
        status: see the module docstring; ``unknown`` for a run with no record of it.
        accepted: tasks accepted when it last ended (or so far).
        failed: tasks that failed for good.
        unfinished: tasks left when it stopped.
        llm_calls: backend calls over all its sessions.
        command: the command that started it, as typed.
    """

    run_id: str
    app: str
    started: float | None
    status: str
    accepted: int
    failed: int
    unfinished: int
    llm_calls: int
    command: str | None


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _sessions(meta: Mapping[str, Any]) -> list[dict[str, Any]]:
    raw = meta.get("sessions")
    return [s for s in raw if isinstance(s, dict)] if isinstance(raw, list) else []


def report_counts(report: Mapping[str, Any]) -> dict[str, int]:
    """Accepted, failed and unfinished tasks of a stored report."""
    tasks = [t for t in report.get("tasks") or () if isinstance(t, dict)]
    accepted = sum(t.get("status") == "accepted" for t in tasks)
    unfinished = sum(
        t.get("status") != "accepted" and str(t.get("reason") or "").startswith("unfinished")
        for t in tasks
    )
    return {"accepted": accepted, "failed": len(tasks) - accepted - unfinished,
            "unfinished": unfinished}  # fmt: skip


def report_status(report: Mapping[str, Any]) -> str:
    """``complete``, ``failed`` or ``stopped``, from a stored report."""
    counts = report_counts(report)
    if counts["unfinished"] or report.get("stopped_by") not in (None, "quiescent"):
        return "stopped" if counts["failed"] + counts["unfinished"] else "complete"
    return "failed" if counts["failed"] else "complete"


def _session(data: Mapping[str, Any], status: str, started: Any) -> dict[str, Any]:
    session: dict[str, Any] = {"started": started, "ended": time.time(), "status": status}
    session["stopped_by"] = data.get("stopped_by")
    for key in _SUMMED:
        session[key] = _number(data.get(key))
    return session


def begin_run(
    journal: Journal,
    run_id: str,
    *,
    app: str,
    args: Mapping[str, Any],
    argv: Sequence[str],
    resume: bool,
) -> None:
    """Record that ``run_id`` starts (or, with ``resume``, starts another session) now,
    with what it is. A resumed run keeps the arguments it was started with."""
    meta = journal.meta(run_id) if resume else {}
    if not resume or "app" not in meta:
        meta.update(app=app, args=json.loads(json.dumps(dict(args))), argv=list(argv))
    meta.update(status="running", pid=os.getpid(), host=socket.gethostname())
    meta["session_started"] = time.time()
    journal.set_meta(run_id, meta)


def end_session(
    journal: Journal, run_id: str, *, status: str, counts: Mapping[str, int], usage: Any
) -> None:
    """Record a session that ended without a report (``status``: ``interrupted``), with
    what it had done (``counts``: accepted, failed, unfinished; ``usage``: a mapping with
    ``llm_calls``, ``tokens``, ``cost``, ``duration_s``)."""
    meta = journal.meta(run_id)
    session = _session(usage if isinstance(usage, Mapping) else {}, status,
                       meta.get("session_started"))  # fmt: skip
    session.update({k: int(v) for k, v in counts.items()})
    meta["sessions"] = [*_sessions(meta), session]
    meta["status"] = status
    meta["last"] = dict(counts)
    journal.set_meta(run_id, meta)


def merge_finished(
    meta: dict[str, Any], previous: Mapping[str, Any] | None, report: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The meta and report to store when a run ends with ``report``: a session is added
    and the report's summed numbers cover every session, so resuming a finished run never
    overwrites what the earlier sessions spent."""
    sessions = _sessions(meta)
    if not sessions and previous is not None:  # a journal from before sessions were kept
        sessions = [_session(previous, report_status(previous), None)]
    status = report_status(report)
    sessions.append(_session(report, status, meta.get("session_started")))
    if len(sessions) > 1:
        for key in _SUMMED:
            total = sum(_number(s.get(key)) for s in sessions)
            report[key] = round(total, 6) if key in ("duration_s", "cost") else int(total)
    meta = dict(meta, sessions=sessions, status=status, last=report_counts(report))
    return meta, report


def _alive(meta: Mapping[str, Any]) -> bool:
    pid = meta.get("pid")
    if not isinstance(pid, int) or meta.get("host") != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, owned by someone else
    return True


def _record(row: Mapping[str, Any]) -> RunRecord:
    meta: Mapping[str, Any] = row.get("meta") or {}
    report = row.get("report")
    status = meta.get("status") if isinstance(meta.get("status"), str) else None
    if status is None:
        status = report_status(report) if report else ("unknown" if not meta else "crashed")
    elif status == "running" and not _alive(meta):
        status = "crashed"
    counts = {"accepted": 0, "failed": 0, "unfinished": 0}
    last = meta.get("last")
    if report and status != "interrupted":
        counts = report_counts(report)
    elif isinstance(last, dict):
        counts.update({k: int(_number(last.get(k))) for k in counts})
    calls = sum(_number(s.get("llm_calls")) for s in _sessions(meta))
    if not _sessions(meta) and report:
        calls = _number(report.get("llm_calls"))
    argv = meta.get("argv")
    command = " ".join(map(str, argv)) if isinstance(argv, list) else None
    app = meta.get("app") or meta.get("type") or ("agents" if report else "-")
    return RunRecord(
        run_id=str(row["run_id"]),
        app=str(app),
        started=row.get("started"),
        status=status,
        accepted=counts["accepted"],
        failed=counts["failed"],
        unfinished=counts["unfinished"],
        llm_calls=int(calls),
        command=command,
    )


def list_runs(journal: Journal) -> list[RunRecord]:
    """Every run in ``journal``, newest first (what could be read of a damaged one)."""
    return [_record(row) for row in journal.runs()]


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value)) or "(none)"
    return str(value)


def check_resume(journal: Journal, run_id: str, *, app: str, args: Mapping[str, Any]) -> list[str]:
    """Check that ``run_id`` can be resumed by ``app`` with ``args``, before anything
    loads; return notes for the user (what a damaged journal still allows).

    Raises:
        UsageError: no such run, or the run was another app's or had other arguments.
        ConfigurationError: the journal lost what resuming needs (its events).
    """
    runs = journal.runs()
    if not journal.has_run(run_id):
        known = ", ".join(r["run_id"] for r in runs[:5]) or "none"
        raise UsageError(f"no run {run_id!r} in journal {str(journal.path)!r} (recent: {known})")
    meta = journal.meta(run_id)
    argv = meta.get("argv")
    how = f" (it was: {' '.join(map(str, argv))})" if isinstance(argv, list) else ""
    recorded_app = meta.get("app")
    if isinstance(recorded_app, str) and recorded_app != app:
        raise UsageError(f"run {run_id} is a `smesh {recorded_app}` run, not `{app}`{how}")
    recorded = meta.get("args")
    notes: list[str] = []
    if isinstance(recorded, dict):
        current = json.loads(json.dumps(dict(args)))
        for key, value in current.items():
            if key in recorded and recorded[key] != value:
                raise UsageError(
                    f"run {run_id} was started with {key} {_show(recorded[key])}, not "
                    f"{_show(value)}: resume it with the same arguments{how}, or drop "
                    "--resume to start a new run"
                )
    elif "events" in journal.tables():
        notes.append(f"run {run_id} did not record its arguments; they are not checked")
    return notes + _replayable(journal, run_id)


def _replayable(journal: Journal, run_id: str) -> list[str]:
    broken = journal.integrity()
    if broken:
        raise ConfigurationError(
            f"cannot resume run {run_id}: journal {str(journal.path)!r} is damaged "
            f"({broken[0]}); it can still be read (smesh trace) but not written: start a new "
            "run with another --journal, or repair this one (sqlite3 FILE '.recover')"
        )
    tables = journal.tables()
    if "events" not in tables:
        raise ConfigurationError(
            f"cannot resume run {run_id}: the journal's events table is missing, so its "
            "tasks, results and decisions are gone (start a new run without --resume)"
        )
    before = len(journal.problems)
    signals = journal.live_signals(run_id)
    damage = journal.problems[before:]
    notes: list[str] = []
    if damage and not signals:
        raise ConfigurationError(
            f"cannot resume run {run_id}: none of its recorded work can be read "
            f"({damage[0]}); start a new run without --resume"
        )
    if damage:
        notes.append(
            f"journal damaged ({'; '.join(damage)}): resuming the {len(signals)} recorded "
            "signals that could be read; work whose record is lost is done again"
        )
    if "actions" not in tables:
        notes.append("the journal's actions table is missing: the work resumes, its trace is lost")
    report = journal.report(run_id)
    if report is not None and report_status(report) == "complete":
        notes.append(f"run {run_id} already finished with every task accepted: nothing is redone")
    return notes
