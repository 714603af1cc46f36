"""The state of one run as the dashboard follows it: a read model built from the feed.

A :class:`RunModel` takes field events and agent actions in order, from the journal or from
a live field, and keeps what the views and the metrics need: live signals and counters by
kind, tasks, trust, cost and pressure, sampled intensities, and the raw events not yet sent.
It is the one place where the feed's meaning lives; the page only draws.

Intensity over time is sampled, not streamed: every ``sample_s`` of run time the model
computes each live signal's effective intensity (lazy decay, as the field does) and emits a
``sample`` event with the sum, the maximum and the count per kind plus the strongest
signals. Sampling adapts to its own cost so that a large field costs at most 0.5 % of a core.
"""

from __future__ import annotations

import bisect
import contextlib
import heapq
import time
from collections import deque
from typing import Any

from smesh.dashboard.events import FeedEvent, preview
from smesh.dashboard.events import parse_detail as _parse
from smesh.dashboard.tasks import PROTOCOL_KINDS, TaskView
from smesh.dashboard.usage import UsageTables, bounded_accounting, page_report
from smesh.signal import Signal

__all__ = ["LATENCY_BUCKETS", "RunModel"]

DEFAULT_TRUST = 0.5
#: bucket bounds (seconds) of the decision-latency histogram
LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
_OPS = ("emit", "reinforce", "renew", "withdraw", "expire")
_TOP_SIGNALS = 24
_TRUST_POINTS = 400
_MAX_SAMPLES = 600
_RECENT_PRESSURE = 100
_SAMPLE_BUDGET = 0.005  # share of a core the sampling may use
_SAMPLE_SIGNALS = 500  # a larger field is sampled by stride (sums scaled, counts exact)
_MODEL_ACTIONS = frozenset({"trust", "llm", "frame"})
# cost tables go to the page at most once a second: with an llm record per call they
# change on almost every batch, and ranking 10,000 agents ten times a second was the
# feed's largest cost
_COST_EVERY_S = 1.0


class RunModel:
    """What one run looks like now, and the feed events it produced since the last batch.

    Args:
        run_id: the run.
        max_events: raw events kept for the next batch; older ones are counted as dropped.
        recent: raw events kept for a new client's snapshot.
        sample_s: run-clock seconds between intensity samples (adapts upward to its cost).
    """

    def __init__(
        self, run_id: str, *, max_events: int = 300, recent: int = 300, sample_s: float = 0.5
    ) -> None:
        self.run_id = run_id
        self.meta: dict[str, Any] = {}
        self.report: Any = None
        #: the report as pages get it: bounded (a 10,000-task run's report is megabytes)
        self.page_report: Any = None
        self.finished: float | None = None
        self.now = 0.0
        self.last_seq = 0
        self.live: dict[str, Signal] = {}
        self.live_by_kind: dict[str, int] = {}
        self.status_counts: dict[str, int] = {}
        self.counts: dict[str, dict[str, int]] = {}  # kind -> op -> count
        self.tasks: dict[str, TaskView] = {}
        self.task_kinds: set[str] = {"task"}
        self.dirty: dict[str, None] = {}
        self.trust: dict[str, float] = {}
        self.trust_series: dict[str, list[tuple[float, float]]] = {}
        self.trust_edges: dict[str, dict[str, float]] = {}
        self.verdicts: dict[str, dict[str, list[int]]] = {}  # voter -> worker -> [ok, no]
        self.costs = UsageTables()
        self.usage = self.costs.pairs  # (agent, backend) -> usage (read by the metrics)
        self.pressure: deque[dict[str, Any]] = deque(maxlen=_RECENT_PRESSURE)
        self.holds: dict[str, int] = {}
        self.hold_s: dict[str, float] = {}
        self.rate_limited: dict[str, int] = {}
        self.lapses = 0
        self.reoffers = 0
        self.latency_buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.samples: list[dict[str, Any]] = []
        self.sample_s = sample_s
        self._next_sample: float | None = None
        self.frames: list[Any] = []
        self.top: list[dict[str, Any]] = []  # the strongest signals at the last sample
        self._trust_new: dict[str, list[tuple[float, float]]] = {}
        self._edges_new: dict[tuple[str, str], float] = {}
        self._verdicts_new: dict[tuple[str, str], list[int]] = {}
        self._cost_changed = False
        self._cost_sent = -_COST_EVERY_S
        self.actions_total = 0
        self.events_total = 0
        self._fresh: deque[tuple[Any, ...]] = deque(maxlen=max_events)
        self._fresh_count = 0
        self._samples_out: list[FeedEvent] = []
        self.recent: deque[FeedEvent] = deque(maxlen=recent)

    # -- input -----------------------------------------------------------------------------

    def trust_of(self, peer: str) -> float:
        """Latest trust recorded for ``peer`` (0.5 before any)."""
        return self.trust.get(peer, DEFAULT_TRUST)

    def apply_signal(self, seq: int, t: float, op: str, by: str | None, signal: Signal) -> None:
        """Apply one field event."""
        self.events_total += 1
        self.last_seq = max(self.last_seq, seq)
        self.now = max(self.now, t)
        kind = signal.kind
        try:
            self.counts[kind][op] += 1
        except KeyError:  # a new kind (or an op the journal's version added)
            counts = self.counts.setdefault(kind, dict.fromkeys(_OPS, 0))
            counts[op] = counts.get(op, 0) + 1
        address = signal.address
        live = self.live
        if op in {"withdraw", "expire"}:
            if live.pop(address, None) is not None:
                self.live_by_kind[kind] -= 1
        else:
            if address not in live:
                self.live_by_kind[kind] = self.live_by_kind.get(kind, 0) + 1
            live[address] = signal
        self._fresh.append(("s", seq, t, op, by, signal))
        self._fresh_count += 1
        next_sample = self._next_sample
        if next_sample is None or t >= next_sample:
            self.sample(t)
        payload = signal.payload
        if not isinstance(payload, dict) or "task_id" not in payload:
            if kind == "pressure" and op in ("emit", "reinforce") and isinstance(payload, dict):
                self._on_pressure(t, op, signal, payload)
            return
        task_id = payload["task_id"]
        if type(task_id) is not str:
            task_id = str(task_id)
        if kind in self.task_kinds or (kind not in PROTOCOL_KINDS and "skill" in payload):
            self.task_kinds.add(kind)
            task = self.tasks.get(task_id)
            if task is None:
                if op != "emit":
                    return
                task = self.tasks[task_id] = TaskView(task_id, t)
            task.on_task(op, signal, t)
            self._recount(task)
            return
        task = self.tasks.get(task_id)
        if task is None:
            return
        was_final = task.decided_at is not None
        change = task.on_signal(op, signal, by, t)
        if change == "lapse":
            self.lapses += 1
            self.reoffers += 1
        elif change == "reoffer":
            self.reoffers += 1
        if kind == "vote" and op in ("emit", "reinforce"):
            self._on_vote(task, signal, by, op)
        if not was_final and task.decided_at is not None:
            self._observe_latency(task.decided_at - task.created)
        self._recount(task)

    def apply_action(
        self, seq: int, t: float, agent: str, action: str, task_id: str | None, detail: Any
    ) -> None:
        """Apply one agent action (a journal row, or a live runtime record). ``detail`` may
        be JSON text: it is parsed only for the actions the model reads, and for the few
        raw events that are sent."""
        self.actions_total += 1
        self.now = max(self.now, t)
        self._fresh.append(("a", seq, t, agent, action, task_id, detail))
        self._fresh_count += 1
        if action not in _MODEL_ACTIONS:
            return
        detail = _parse(detail)
        if not isinstance(detail, dict):
            return
        if action == "trust":
            self._on_trust(t, agent, detail)
        elif action == "llm":
            self._on_llm(agent, task_id, detail)
        elif action == "frame":
            self.frames.append(detail)

    def set_meta(self, meta: dict[str, Any]) -> None:
        """The run's meta (from the journal's runs table or the live source)."""
        self.meta = meta

    def finish(self, report: Any, when: float) -> None:
        """The run ended with ``report``."""
        self.report = report
        self.page_report = page_report(report)
        self.finished = when
        self._cost_changed = True
        self.sample(self.now, force=True)  # the field as the run left it

    # -- derived state ---------------------------------------------------------------------

    def _on_vote(self, task: TaskView, signal: Signal, by: str | None, op: str) -> None:
        payload: dict[str, Any] = signal.payload
        try:
            attempt = int(payload.get("attempt", 1))
        except (TypeError, ValueError):
            return
        result = task.results.get(attempt)
        voter = signal.origin if op == "emit" else by
        if result is None or voter is None:
            return
        cell = self.verdicts.setdefault(voter, {}).setdefault(str(result["agent"]), [0, 0])
        cell[0 if payload.get("verdict") == "approve" else 1] += 1
        self._verdicts_new[(voter, str(result["agent"]))] = cell

    def _on_trust(self, t: float, peer: str, detail: dict[str, Any]) -> None:
        try:
            value = float(detail.get("value", DEFAULT_TRUST))
        except (TypeError, ValueError):
            return
        self.trust[peer] = value
        series = self.trust_series.setdefault(peer, [])
        series.append((t, value))
        if len(series) > _TRUST_POINTS:
            del series[1 : len(series) - _TRUST_POINTS // 2 : 2]  # thin the older half
        truster = str(detail.get("by") or self.meta.get("process") or "run")
        self.trust_edges.setdefault(truster, {})[peer] = value
        self._trust_new.setdefault(peer, []).append((t, value))
        self._edges_new[(truster, peer)] = value

    def _on_llm(self, agent: str, task_id: str | None, detail: dict[str, Any]) -> None:
        backend = self.costs.add(agent, task_id, detail)
        if detail.get("status") in ("rate_limited", 429):
            self.rate_limited[backend] = self.rate_limited.get(backend, 0) + 1
        self._cost_changed = True

    def _on_pressure(self, t: float, op: str, signal: Signal, payload: dict[str, Any]) -> None:
        backend = str(payload.get("backend", "backend"))
        if op == "emit":
            self.holds[backend] = self.holds.get(backend, 0) + 1
            with contextlib.suppress(TypeError, ValueError):
                hold = float(payload.get("hold_s", 0.0))
                self.hold_s[backend] = self.hold_s.get(backend, 0.0) + hold
        if "rate" in str(payload.get("reason", "")):
            self.rate_limited[backend] = self.rate_limited.get(backend, 0) + 1
        self.pressure.append(
            {"t": t, "op": op, "backend": backend, "by": signal.origin, "payload": preview(payload)}
        )
        self._cost_changed = True

    def _observe_latency(self, seconds: float) -> None:
        self.latency_sum += seconds
        self.latency_buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1  # le bounds

    def _recount(self, task: TaskView) -> None:
        """Mark ``task`` changed and keep the counts by status current (O(1))."""
        self.dirty[task.task_id] = None
        status = task.status
        if status != task.counted:
            counts = self.status_counts
            if task.counted is not None:
                counts[task.counted] -= 1
            counts[status] = counts.get(status, 0) + 1
            task.counted = status

    def task_counts(self) -> dict[str, int]:
        """Tasks by status."""
        return {k: v for k, v in self.status_counts.items() if v}

    # -- output ----------------------------------------------------------------------------

    def sample(self, now: float, *, force: bool = False) -> None:
        """Sample intensities at ``now`` (run clock) if a sample is due (or ``force``)."""
        if self._next_sample is not None and now < self._next_sample and not force:
            return
        started = time.perf_counter()
        by_kind: dict[str, list[float]] = {}
        strongest: list[tuple[float, str]] = []
        items = list(self.live.items())
        stride = max(1, -(-len(items) // _SAMPLE_SIGNALS))
        for address, signal in items[::stride]:
            value = signal.effective(now)
            row = by_kind.get(signal.kind)
            if row is None:
                by_kind[signal.kind] = [1, value, value]
            else:
                row[0] += 1
                row[1] += value
                row[2] = max(row[2], value)
            if len(strongest) < _TOP_SIGNALS:
                heapq.heappush(strongest, (value, address))
            elif value > strongest[0][0]:
                heapq.heapreplace(strongest, (value, address))
        top = []
        for value, address in sorted(strongest, reverse=True):
            s = self.live[address]
            top.append(
                {
                    "address": address,
                    "kind": s.kind,
                    "origin": s.origin,
                    "intensity": round(value, 4),
                    "reinforcers": len(s.reinforcers),
                    "age": round(now - s.created_at, 3),
                    "payload": preview(s.payload, 2),
                }
            )
        payload = {
            "by_kind": {
                k: {
                    "live": self.live_by_kind.get(k, 0),
                    "sum": round(v[1] * self.live_by_kind.get(k, 0) / v[0], 4),
                    "max": round(v[2], 4),
                }
                for k, v in by_kind.items()
            },
            "sampled": stride > 1,
            "top": top,
        }
        self.top = top
        self.samples.append({"t": now, "by_kind": payload["by_kind"]})
        if len(self.samples) > _MAX_SAMPLES:
            del self.samples[::2]  # keep the whole run's shape at half the resolution
            self.sample_s *= 2
        cost = time.perf_counter() - started
        # wall seconds between samples such that sampling stays under its share of a core
        self._next_sample = now + max(self.sample_s, cost / _SAMPLE_BUDGET)
        self._samples_out.append(FeedEvent(type="sample", kind="field", t=now, payload=payload))

    def take_events(self) -> tuple[list[FeedEvent], int]:
        """The raw events since the last call (at most ``max_events``) and how many older
        ones were left out, then the intensity samples taken meanwhile (only the last one
        keeps its strongest signals)."""
        dropped = self._fresh_count - len(self._fresh)
        out = [self._event(row) for row in self._fresh]
        self._fresh.clear()
        self._fresh_count = 0
        self.recent.extend(out)
        samples, self._samples_out = self._samples_out, []
        for i, event in enumerate(samples[:-1]):
            samples[i] = FeedEvent(
                type=event.type,
                kind=event.kind,
                t=event.t,
                payload={"by_kind": event.payload["by_kind"]},
            )
        return out + samples, dropped

    def discard_output(self) -> None:
        """Forget what would go to a page (raw events, samples, changed tasks, trust and
        cost updates): for a model that only answers metrics."""
        self._fresh.clear()
        self._fresh_count = 0
        self._samples_out = []
        self.dirty = {}
        self._trust_new, self._edges_new, self._verdicts_new = {}, {}, {}
        self._cost_changed = False

    def take_state(self) -> list[FeedEvent]:
        """``trust`` and ``cost`` updates for what changed since the last call: the new trust
        points, trust edges and verdict cells, and the cost tables (bounded)."""
        out: list[FeedEvent] = []
        if self._trust_new or self._verdicts_new:
            payload = {
                "points": self._trust_new,
                "edges": [[a, b, v] for (a, b), v in self._edges_new.items()],
                "verdicts": [[a, b, *c] for (a, b), c in self._verdicts_new.items()],
            }
            out.append(FeedEvent(type="trust", kind="update", t=self.now, payload=payload))
            self._trust_new, self._edges_new, self._verdicts_new = {}, {}, {}
        wall = time.monotonic()
        if self._cost_changed and (
            wall - self._cost_sent >= _COST_EVERY_S or self.finished is not None
        ):
            out.append(FeedEvent(type="cost", kind="update", t=self.now, payload=self.cost()))
            self._cost_changed = False
            self._cost_sent = wall
        return out

    def take_tasks(self, limit: int) -> list[FeedEvent]:
        """Every changed task since the last call: the ``limit`` most recently updated in
        full (``task``/``update``), the others as one ``task``/``status`` event of compact
        rows ``[id, status, attempt, holder, updated]`` so no status change is ever lost."""
        if not self.dirty:
            return []
        tasks = [self.tasks[task_id] for task_id in self.dirty]
        self.dirty = {}
        if len(tasks) > limit:
            tasks.sort(key=lambda task: task.updated)
        rest, tasks = tasks[:-limit], tasks[-limit:]
        out = [
            FeedEvent(
                type="task",
                kind="update",
                t=task.updated,
                task_id=task.task_id,
                payload=task.to_json(self.trust_of),
            )
            for task in tasks
        ]
        if rest:
            rows = [[t.task_id, t.counted, t.attempt, t.holder, t.updated] for t in rest]
            out.append(FeedEvent(type="task", kind="status", t=self.now, payload=rows))
        return out

    def _event(self, row: tuple[Any, ...]) -> FeedEvent:
        if row[0] == "s":
            _, seq, t, op, by, s = row
            return FeedEvent(
                type="signal",
                kind=s.kind,
                t=t,
                seq=seq,
                op=op,
                address=s.address,
                origin=s.origin,
                by=by,
                intensity=round(s.effective(t), 4),
                payload=preview(s.payload, 1),
            )
        _, seq, t, agent, action, task_id, detail = row
        detail = _parse(detail)
        return FeedEvent(
            type="action",
            kind=action,
            t=t,
            seq=seq,
            agent=agent,
            task_id=task_id,
            payload=preview(detail, 1),
        )

    def stats(self) -> dict[str, Any]:
        """Counters for the header and the Field view."""
        return {
            "live": {k: v for k, v in self.live_by_kind.items() if v},
            "counts": self.counts,
            "tasks": self.task_counts(),
            "events": self.events_total,
            "actions": self.actions_total,
            "lapses": self.lapses,
            "reoffers": self.reoffers,
        }

    def snapshot(self, task_limit: int = 400) -> dict[str, Any]:
        """Everything a newly connected page needs, bounded in size."""
        recent_tasks = sorted(self.tasks.values(), key=lambda t: t.updated, reverse=True)
        return {
            "run_id": self.run_id,
            "meta": preview(self.meta, 1),
            "finished": self.finished,
            "report": self.page_report,
            "now": self.now,
            "stats": self.stats(),
            "tasks": [t.to_json(self.trust_of) for t in recent_tasks[:task_limit]],
            "samples": self.samples,
            "top": self.top,
            "trust": {
                "series": {k: list(v) for k, v in self.trust_series.items()},
                "edges": self.trust_edges,
                "verdicts": self.verdicts,
            },
            "cost": self.cost(),
            "events": list(self.recent),
            "frames": len(self.frames),
        }

    def cost(self) -> dict[str, Any]:
        """LLM usage per agent, backend and task, and pressure (from ``llm`` actions and
        pressure signals; the run report's accounting once the run has finished)."""
        return {
            **self.costs.tables(),
            "accounting": bounded_accounting(self.report),
            "holds": self.holds,
            "hold_s": self.hold_s,
            "rate_limited": self.rate_limited,
            "pressure": list(self.pressure),
        }
