"""Prometheus metrics computed from the feed.

:class:`FeedCollector` reads the :class:`~smesh.dashboard.model.RunModel` of every followed
run at scrape time (nothing is counted twice: the model already keeps the counters), with a
``run`` label on every series. The dashboard serves it at ``/metrics``; a run started with
``--metrics-port N`` serves the same series from a :class:`RunMetrics` (a model of its own,
brought up to date from the run's journal or in-process feed when scraped) with
:class:`MetricsServer`.

Series (all prefixed ``smesh_``): ``signals_live{kind}``, ``signals_total{kind,op}`` (op:
emit, reinforce, renew, withdraw, expire), ``tasks{status}``, ``lease_lapses_total``,
``task_reoffers_total``, ``decision_latency_seconds`` (histogram, task posted → final
decision), ``llm_calls_total{agent,backend}``, ``llm_errors_total{agent,backend}``,
``llm_tokens_total{agent,backend,direction}``, ``llm_cost_usd_total{agent,backend}``,
``rate_limited_total{backend}`` (429s), ``pressure_holds_total{backend}``,
``pressure_hold_seconds_total{backend}``; for a run on a mesh (``smesh node``)
``mesh_peers``, ``mesh_live_signals``, ``mesh_messages_rejected_total{reason}`` (every
``dropped_<reason>`` counter of the replica) and ``mesh_events_total{counter}`` (every other
counter: received, applied_ops, published_ops ...), read generically so a counter the mesh
adds appears without a change here; and the feed's own ``feed_clients``,
``feed_batches_total``, ``feed_dropped_events_total``, ``feed_resyncs_total``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from smesh.dashboard.hub import Hub
from smesh.dashboard.model import LATENCY_BUCKETS, RunModel
from smesh.dashboard.sources import Source

__all__ = ["FeedCollector", "MetricsServer", "RunMetrics", "metrics_registry"]


class Followed(Protocol):
    """What the collector reads: a run's model (a :class:`~smesh.dashboard.hub.Hub` or a
    :class:`RunMetrics`); a hub's feed counters and a mesh's counters are read when there."""

    @property
    def model(self) -> RunModel:
        """The run's model."""
        ...


class FeedCollector(Collector):
    """Collects the series above from the runs ``hubs()`` returns at scrape time."""

    def __init__(self, hubs: Callable[[], Iterable[Followed]]) -> None:
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
        mesh = _MeshFamilies()
        for hub in list(self._hubs()):
            catch_up = getattr(hub, "catch_up", None)
            if catch_up is not None:
                catch_up()
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
            if isinstance(hub, Hub):  # a page's feed: its own counters
                clients.add_metric([run], len(hub.clients))
                batches.add_metric([run], hub.batches)
                dropped.add_metric([run], hub.dropped)
                resyncs.add_metric([run], hub.resyncs)
            mesh_stats = getattr(getattr(hub, "source", hub), "mesh_stats", None)
            if mesh_stats is not None:
                mesh.add(run, mesh_stats())
        yield from (live, ops, tasks, lapses, reoffers, latency, *usage.values(), tokens)
        yield from (limited, holds, hold_s, clients, batches, dropped, resyncs)
        yield from mesh.families()


class _MeshFamilies:
    """The mesh series, from a replica's stats (read by name: a ``MeshStats`` or a dict)."""

    def __init__(self) -> None:
        self.peers = GaugeMetricFamily("smesh_mesh_peers", "Mesh peers seen", labels=["run"])
        self.live = GaugeMetricFamily(
            "smesh_mesh_live_signals", "Signals in this node's replica", labels=["run"]
        )
        self.rejected = CounterMetricFamily(
            "smesh_mesh_messages_rejected",
            "Mesh messages or operations dropped, by reason",
            labels=["run", "reason"],
        )
        self.events = CounterMetricFamily(
            "smesh_mesh_events", "Other mesh counters, by name", labels=["run", "counter"]
        )
        self.seen = False

    def add(self, run: str, stats: Any) -> None:
        data = stats if isinstance(stats, dict) else getattr(stats, "__dict__", None)
        if data is None:
            data = {name: getattr(stats, name, None) for name in ("peers", "live", "counters")}
        self.seen = True
        self.peers.add_metric([run], len(data.get("peers") or ()))
        self.live.add_metric([run], float(data.get("live") or 0))
        for name, value in sorted((data.get("counters") or {}).items()):
            if name.startswith("dropped_"):
                self.rejected.add_metric([run, name.removeprefix("dropped_")], value)
            else:
                self.events.add_metric([run, name], value)

    def families(self) -> Iterator[Metric]:
        if self.seen:
            yield from (self.peers, self.live, self.rejected, self.events)


def _le(bound: float) -> str:
    return repr(float(bound))


def metrics_registry(hubs: Callable[[], Iterable[Followed]]) -> CollectorRegistry:
    """A registry holding only the feed's collector (no process or platform series)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(FeedCollector(hubs))
    return registry


class RunMetrics:
    """One run's metrics without a dashboard: a model of its own, brought up to date from
    ``source`` (the run's journal, or an in-process feed) when scraped, so the run pays
    nothing between scrapes (an in-process feed is also drained every ``drain_s`` from a
    thread of its own, so that it never grows without bound).

    Args:
        source: where the run's events come from.
        run_id: the run's id (the ``run`` label).
        drain_s: how often a background thread catches up (None: only when scraped).
    """

    def __init__(self, source: Source, run_id: str, *, drain_s: float | None = None) -> None:
        self.source = source
        self.model = RunModel(run_id, max_events=1, recent=1)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if drain_s is not None:
            self._thread = threading.Thread(
                target=self._drain, args=(drain_s,), name="smesh-metrics", daemon=True
            )
            self._thread.start()

    def _drain(self, every: float) -> None:
        while not self._stop.wait(every):
            self.catch_up()

    def catch_up(self, max_polls: int = 10_000) -> None:
        """Apply everything the source holds now (bounded)."""
        with self._lock:
            model = self.model
            for _ in range(max_polls):
                more = self.source.poll(model)
                model.discard_output()  # what a page would be sent: nobody reads it here
                if not more:
                    break

    def close(self) -> None:
        """Stop the background thread and close the source."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        with self._lock:
            self.source.close()


class MetricsServer:
    """``/metrics`` of some runs on ``host:port``, from a thread (prometheus-client's server).

    Raises:
        SmeshError: the port cannot be bound.
    """

    def __init__(
        self, runs: Callable[[], Iterable[Followed]], port: int, host: str = "127.0.0.1"
    ) -> None:
        from prometheus_client import start_http_server

        from smesh.errors import SmeshError

        try:
            self._server, self._thread = start_http_server(
                port, addr=host, registry=metrics_registry(runs)
            )
        except OSError as exc:
            raise SmeshError(f"cannot serve metrics on {host}:{port}: {exc.strerror}") from None
        self.host = host
        self.port = int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Where the metrics are, e.g. ``http://127.0.0.1:9464/metrics``."""
        return f"http://{self.host}:{self.port}/metrics"

    def stop(self) -> None:
        """Stop serving (returns within about half a second)."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(2.0)
