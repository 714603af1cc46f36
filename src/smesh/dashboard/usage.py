"""LLM usage as the dashboard counts it: per agent, backend and task, from ``llm`` records.

:class:`UsageTables` keeps the tables and their totals as the records arrive, so that a
page's cost view of a 10,000-agent run is one ranking (:func:`top_rows`), not a rebuild;
:func:`page_report` and :func:`bounded_accounting` bound what a run's report adds to it.
"""

from __future__ import annotations

import heapq
from typing import Any

from smesh.dashboard.events import preview

__all__ = ["UsageTables", "bounded_accounting", "page_report", "top_rows", "usage_row"]


def top_rows(
    table: dict[str, dict[str, float]], total: dict[str, float] | None = None, n: int = 50
) -> dict[str, dict[str, float]]:
    """The ``n`` costliest rows (then most called); the rest summed under ``(others)``.

    ``total`` (the sum of every row, if the caller keeps it) makes ``(others)`` the total
    less the rows kept, so a table of 10,000 agents costs one pass of ``heapq.nlargest``
    (O(n log 50)), not a sort and a sum.
    """
    if len(table) <= n:
        return table
    ranked = heapq.nlargest(n, table.items(), key=_rank)
    out = dict(ranked)
    others = usage_row()
    if total is not None:
        for name in others:
            kept = sum(row[name] for _, row in ranked)
            others[name] = max(0.0, round(total[name] - kept, 9))
    else:
        for key, row in table.items():
            if key not in out:
                for name, value in row.items():
                    others[name] += value
    out["(others)"] = others
    return out


def _rank(item: tuple[str, dict[str, float]]) -> tuple[float, float]:
    return item[1]["cost_usd"], item[1]["calls"]


def usage_row() -> dict[str, float]:
    """An empty row of LLM usage."""
    return {"calls": 0, "errors": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}


def _row(table: dict[Any, dict[str, float]], key: Any) -> dict[str, float]:
    """``table[key]``, a new usage row if there is none (setdefault would build one on
    every call: this runs for every LLM call of the run)."""
    row = table.get(key)
    if row is None:
        row = table[key] = usage_row()
    return row


class UsageTables:
    """Usage per (agent, backend), agent, backend and task, and the totals."""

    def __init__(self) -> None:
        self.pairs: dict[tuple[str, str], dict[str, float]] = {}  # (agent, backend) -> row
        self.by_agent: dict[str, dict[str, float]] = {}
        self.by_backend: dict[str, dict[str, float]] = {}
        self.by_task: dict[str, dict[str, float]] = {}
        self.total = usage_row()  # every call
        self.task_total = usage_row()  # the calls made for a task

    def add(self, agent: str, task_id: str | None, detail: dict[str, Any]) -> str:
        """Count one ``llm`` record's call; returns its backend."""
        backend = str(detail.get("backend", "backend"))
        rows = [
            _row(self.pairs, (agent, backend)),
            _row(self.by_agent, agent),
            _row(self.by_backend, backend),
            self.total,
        ]
        if task_id is not None:
            rows += (_row(self.by_task, task_id), self.task_total)
        error = int(bool(detail.get("error")))
        input_tokens = int(detail.get("input_tokens") or 0)
        output_tokens = int(detail.get("output_tokens") or 0)
        cost = float(detail.get("cost_usd") or 0.0)
        for row in rows:
            row["calls"] += 1
            row["errors"] += error
            row["input_tokens"] += input_tokens
            row["output_tokens"] += output_tokens
            row["cost_usd"] += cost
        return backend

    def tables(self) -> dict[str, dict[str, dict[str, float]]]:
        """The three tables a page shows, each bounded (:func:`top_rows`)."""
        return {
            "by_agent": top_rows(self.by_agent, self.total),
            "by_backend": top_rows(self.by_backend, self.total),
            "by_task": top_rows(self.by_task, self.task_total),
        }


def page_report(report: Any) -> Any:
    """A run report bounded for the page: every field previewed (the per-task list cut to
    its first rows) and the accounting left to :func:`bounded_accounting`."""
    if not isinstance(report, dict):
        return preview(report, 1)
    return {k: preview(v, 1) for k, v in report.items() if k != "accounting"}


def bounded_accounting(report: Any) -> Any:
    """The report's LLM accounting with its per-agent and per-backend tables bounded."""
    accounting = report.get("accounting") if isinstance(report, dict) else None
    if not isinstance(accounting, dict):
        return accounting
    out = dict(accounting)
    total = accounting.get("total")
    for name in ("by_agent", "by_backend"):
        table = accounting.get(name)
        if isinstance(table, dict) and all(
            isinstance(row, dict) and all(k in row for k in ("cost_usd", "calls"))
            for row in table.values()
        ):
            keys_total = isinstance(total, dict) and all(k in total for k in usage_row())
            out[name] = top_rows(table, total if keys_total else None)
    return out
