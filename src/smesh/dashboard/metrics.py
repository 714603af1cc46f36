"""Prometheus metrics computed from the feed.

:class:`FeedCollector` reads the :class:`~smesh.dashboard.model.RunModel` of every followed
run at scrape time (nothing is counted twice: the model already keeps the counters), with a
``run`` label on every series. The dashboard serves it at ``/metrics``; a run without a
dashboard can serve the same collector over its in-process feed with :func:`serve_metrics`
(what ``--metrics-port`` will call).

Series (all prefixed ``smesh_``): ``signals_live{kind}``, ``signals_total{kind,op}`` (op:
emit, reinforce, renew, withdraw, expire), ``tasks{status}``, ``lease_lapses_total``,
``task_reoffers_total``, ``decision_latency_seconds`` (histogram, task posted → final
decision), ``llm_calls_total{agent,backend}``, ``llm_errors_total{agent,backend}``,
``llm_tokens_total{agent,backend,direction}``, ``llm_cost_usd_total{agent,backend}``,
``rate_limited_total{backend}`` (429s), ``pressure_holds_total{backend}``,
``pressure_hold_seconds_total{backend}``, and the feed's own ``feed_clients``,
``feed_batches_total``, ``feed_dropped_events_total``, ``feed_resyncs_total``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from smesh.dashboard.hub import Hub
from smesh.dashboard.model import LATENCY_BUCKETS

__all__ = ["FeedCollector", "metrics_registry", "serve_metrics"]


class FeedCollector(Collector):
    """Collects the series above from the hubs ``hubs()`` returns at scrape time."""

    def __init__(self, hubs: Callable[[], Iterable[Hub]]) -> None:
        self._hubs = hubs

    def collect(self) -> Iterator[Metric]:
        live = GaugeMetricFamily("smesh_signals_live", "Live signals", labels=["run", "kind"])
        ops = CounterMetricFamily(
            "smesh_signals", "Field events by kind and op", labels=["run", "kind", "op"]
        )
        tasks = GaugeMetricFamily("smesh_tasks", "Tasks by status", labels=["run", "status"])
        lapses = CounterMetricFamily(
            "smesh_lease_lapses", "Held leases that expired without a result", labels=["run"]
        )
        reoffers = CounterMetricFamily(
            "smesh_task_reoffers", "Times a task was offered again", labels=["run"]
        )
        latency = HistogramMetricFamily(
            "smesh_decision_latency_seconds",
            "Run-clock seconds from a task's posting to its final decision",
            labels=["run"],
        )
        usage = {
            name: CounterMetricFamily(f"smesh_llm_{name}", text, labels=["run", "agent", "backend"])
            for name, text in (
                ("calls", "LLM calls"),
                ("errors", "LLM calls that failed"),
                ("cost_usd", "LLM cost in US dollars"),
            )
        }
        tokens = CounterMetricFamily(
            "smesh_llm_tokens", "LLM tokens", labels=["run", "agent", "backend", "direction"]
        )
        limited = CounterMetricFamily(
            "smesh_rate_limited", "Rate-limit (429) answers", labels=["run", "backend"]
        )
        holds = CounterMetricFamily(
            "smesh_pressure_holds", "Pressure signals emitted", labels=["run", "backend"]
        )
        hold_s = CounterMetricFamily(
            "smesh_pressure_hold_seconds",
            "Seconds of back-off asked for",
            labels=["run", "backend"],
        )
        clients = GaugeMetricFamily("smesh_feed_clients", "Pages following", labels=["run"])
        batches = CounterMetricFamily("smesh_feed_batches", "Batches sent", labels=["run"])
        dropped = CounterMetricFamily(
            "smesh_feed_dropped_events", "Raw events left out of batches", labels=["run"]
        )
        resyncs = CounterMetricFamily(
            "smesh_feed_resyncs", "Lagging clients sent a snapshot instead", labels=["run"]
        )
        for hub in list(self._hubs()):
            m = hub.model
            run = m.run_id
            for kind, n in list(m.live_by_kind.items()):
                live.add_metric([run, kind], n)
            for kind, by_op in list(m.counts.items()):
                for op, n in list(by_op.items()):
                    ops.add_metric([run, kind, op], n)
            for status, n in m.task_counts().items():
                tasks.add_metric([run, status], n)
            lapses.add_metric([run], m.lapses)
            reoffers.add_metric([run], m.reoffers)
            cumulative, buckets = 0, []
            for bound, n in zip(LATENCY_BUCKETS, m.latency_buckets, strict=False):
                cumulative += n
                buckets.append((_le(bound), cumulative))
            cumulative += m.latency_buckets[-1]
            buckets.append(("+Inf", cumulative))
            latency.add_metric([run], buckets, m.latency_sum)
            for (agent, backend), row in list(m.usage.items()):
                for name, family in usage.items():
                    family.add_metric([run, agent, backend], row[name])
                tokens.add_metric([run, agent, backend, "input"], row["input_tokens"])
                tokens.add_metric([run, agent, backend, "output"], row["output_tokens"])
            for backend, n in list(m.rate_limited.items()):
                limited.add_metric([run, backend], n)
            for backend, n in list(m.holds.items()):
                holds.add_metric([run, backend], n)
                hold_s.add_metric([run, backend], m.hold_s.get(backend, 0.0))
            clients.add_metric([run], len(hub.clients))
            batches.add_metric([run], hub.batches)
            dropped.add_metric([run], hub.dropped)
            resyncs.add_metric([run], hub.resyncs)
        yield from (live, ops, tasks, lapses, reoffers, latency, *usage.values(), tokens)
        yield from (limited, holds, hold_s, clients, batches, dropped, resyncs)


def _le(bound: float) -> str:
    return repr(float(bound))


def metrics_registry(hubs: Callable[[], Iterable[Hub]]) -> CollectorRegistry:
    """A registry holding only the feed's collector (no process or platform series)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(FeedCollector(hubs))
    return registry


def serve_metrics(hubs: Callable[[], Iterable[Hub]], port: int, host: str = "127.0.0.1") -> Any:
    """Serve ``/metrics`` on ``host:port`` from a daemon thread; returns (server, thread),
    stop with ``server.shutdown()``."""
    from prometheus_client import start_http_server

    return start_http_server(port, addr=host, registry=metrics_registry(hubs))
