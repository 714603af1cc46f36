"""The feed without a browser: journal tail, run model, in-process feed, batching hub."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from _kit import run_team, specs, team

from smesh.agents.journal import Journal
from smesh.clock import VirtualClock
from smesh.dashboard.events import PREVIEW_CHARS, preview
from smesh.dashboard.hub import Hub
from smesh.dashboard.model import RunModel
from smesh.dashboard.sources import DashboardFeed, JournalSource, JournalTail
from smesh.errors import UsageError
from smesh.field import Field


def _model(path: Path, run_id: str = "run-1", limit: int = 4000) -> RunModel:
    source = JournalSource(path, run_id)
    model = RunModel(run_id)
    while source.poll(model, limit):
        pass
    source.close()
    return model


def test_a_real_run_is_rebuilt_from_its_journal(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    report = run_team(path, 3)
    assert report.accepted == 3
    model = _model(path)
    assert model.task_counts() == {"accepted": 3}
    assert model.finished is not None and model.report["run_id"] == "run-1"
    t0 = model.tasks["t0"].to_json(model.trust_of)
    assert t0["decisions"][0]["verdict"] == "accepted"
    voters = {v["agent"] for vote in t0["votes"] for v in vote["voters"]}
    assert voters == {"rev-a", "rev-b"}
    # trust moved with the verified outcomes, as the journal's trust actions say
    assert model.trust["coder"] > 0.5 and len(model.trust_series["coder"]) == 3
    assert model.counts["claim"]["emit"] == model.counts["claim"]["withdraw"]
    assert model.live_by_kind["claim"] == 0 and model.live_by_kind["decision"] == 3


def test_a_replay_read_in_small_chunks_equals_one_read(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    run_team(path, 4)
    whole, chunked = _model(path), _model(path, limit=3)
    assert chunked.counts == whole.counts
    assert chunked.events_total == whole.events_total
    assert chunked.actions_total == whole.actions_total
    for task_id, task in whole.tasks.items():
        assert chunked.tasks[task_id].to_json(chunked.trust_of) == task.to_json(whole.trust_of)


def test_the_tail_follows_a_run_being_written_and_skips_idle_polls(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    clock = VirtualClock(100.0)
    field = Field(clock)
    with Journal(path) as journal:
        journal.attach(field, "live")
        journal.flush()
        source = JournalSource(path, "live")
        model = RunModel("live")
        source.poll(model)
        assert model.events_total == 0
        field.emit("beacon", {"n": 1}, origin="a")
        assert not source.poll(model)  # buffered, not committed: not visible yet
        assert model.events_total == 0
        journal.flush()
        source.poll(model)
        assert model.events_total == 1
        version = source.tail.data_version()
        source.poll(model)  # nothing new: no re-read
        assert model.events_total == 1 and source.tail.data_version() == version
        field.emit("beacon", {"n": 2}, origin="b")
        field.reinforce(field.signals()[0].address, by="c")
        journal.flush()
        source.poll(model)
        assert model.counts["beacon"] == {
            "emit": 2,
            "reinforce": 1,
            "renew": 0,
            "withdraw": 0,
            "expire": 0,
        }
        source.close()


def test_bad_journals_are_refused_with_one_line(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no journal"):
        JournalTail(tmp_path / "missing.db")
    other = tmp_path / "other.db"
    other.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(UsageError):
        JournalTail(other)
    path = tmp_path / "j.db"
    run_team(path, 1)
    with pytest.raises(UsageError, match="no run 'nope'"):
        JournalSource(path, "nope")


class Tee:
    """A journal and an in-process feed given the same calls (what --dashboard will do)."""

    def __init__(self, *sinks: Any) -> None:
        self.sinks = sinks

    def attach(self, field: Field, run_id: str, meta: Any = None) -> None:
        for s in self.sinks:
            s.attach(field, run_id)

    def action(self, *args: Any) -> None:
        for s in self.sinks:
            s.action(*args)

    def flush(self) -> None:
        for s in self.sinks:
            s.flush()

    def finish(self, run_id: str, report: Any) -> None:
        for s in self.sinks:
            s.finish(run_id, report)


def test_the_in_process_feed_gives_the_same_state_as_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    feed = DashboardFeed()

    async def main() -> None:
        with Journal(path) as journal:
            await team(Tee(journal, feed), ["x"] * 3).run(specs(3))  # type: ignore[arg-type]

    asyncio.run(main())
    live = RunModel("run-1")
    while feed.poll(live):
        pass
    replayed = _model(path)
    assert live.counts == replayed.counts
    assert live.task_counts() == replayed.task_counts() == {"accepted": 3}
    assert live.trust == replayed.trust
    assert live.finished is not None


def test_unknown_kinds_and_actions_flow_through_generically() -> None:
    clock = VirtualClock()
    field = Field(clock)
    feed = DashboardFeed("r")
    feed.attach(field)
    field.emit("task", {"task_id": "t1", "skill": "code", "depends_on": ["t0"]}, origin="team")
    field.emit("tool-call", {"task_id": "t1", "tool": "grep", "args": "<b>x</b>"}, origin="a1")
    field.emit("weather", {"sky": "grey"}, origin="a2")
    feed.action(1.0, "a1", "tool-result", "t1", {"ok": True})
    model = RunModel("r")
    feed.poll(model)
    events, dropped = model.take_events()
    assert dropped == 0
    kinds = {(e.type, e.kind) for e in events}
    assert {("signal", "tool-call"), ("signal", "weather"), ("action", "tool-result")} <= kinds
    task = model.tasks["t1"].to_json(model.trust_of)
    assert task["depends_on"] == ["t0"]
    assert task["signals"]["tool-call"][0]["payload"]["args"] == "<b>x</b>"  # kept verbatim


def test_previews_are_bounded() -> None:
    huge = {"output": "x" * 100_000, "items": list(range(1000)), "deep": [[[[[["bottom"]]]]]]}
    small = preview(huge)
    assert len(small["output"]) == PREVIEW_CHARS + 1
    assert len(small["items"]) == 25
    assert len(json.dumps(small)) < 2000


def _flood(n: int) -> tuple[Field, DashboardFeed]:
    field = Field(VirtualClock())
    feed = DashboardFeed("flood")
    feed.attach(field)
    field.emit("task", {"task_id": "t", "skill": "s"}, origin="team")
    for i in range(n):
        field.emit("noise", {"i": i}, origin=f"a{i % 50}")
        field.emit("claim", {"task_id": "t", "attempt": 1, "bid": i, "state": "bid"}, origin="w")
    return field, feed


def test_a_flood_is_batched_capped_and_coalesced() -> None:
    async def main() -> None:
        _, feed = _flood(5000)
        hub = Hub("flood", feed, max_events=300)
        client = hub.connect()
        snapshot = client.queue.get_nowait()
        assert snapshot is not None and snapshot.startswith(b"event: snapshot")
        while feed.poll(hub.model):
            pass
        frame = hub.flush()
        assert frame is not None
        message = json.loads(frame.split(b"data: ", 1)[1])
        raw = [e for e in message["events"] if e["type"] in ("signal", "action")]
        tasks = [e for e in message["events"] if e["type"] == "task"]
        dropped = [e for e in message["events"] if e["type"] == "dropped"]
        assert len(raw) == 300  # the newest 300 of 10,001 (the cap given)
        assert raw[-1]["payload"]["bid"] == 4999
        assert dropped[0]["payload"]["count"] == 10_001 - 300
        assert len(tasks) == 1  # 5,000 changes to one task: sent once, as its latest state
        assert tasks[0]["payload"]["claims"][0]["bid"] == 4999
        assert message["stats"]["counts"]["noise"]["emit"] == 5000
        await hub.stop()

    asyncio.run(main())


def test_every_tab_gets_the_same_bytes_and_a_lagging_one_gets_a_snapshot() -> None:
    async def main() -> None:
        field, feed = _flood(0)
        hub = Hub("flood", feed, queue_batches=5)
        reader, lagger = hub.connect(), hub.connect()
        for q in (reader.queue, lagger.queue):
            q.get_nowait()  # the snapshots
        for i in range(12):
            field.emit("noise", {"i": i}, origin="a")
            feed.poll(hub.model)
            frame = hub.flush()
            assert reader.queue.get_nowait() is frame  # encoded once, shared
        # the lagger never read: its stale batches were replaced by one fresh snapshot
        assert hub.resyncs >= 1 and lagger.resyncs >= 1
        frames = []
        while not lagger.queue.empty():
            frames.append(lagger.queue.get_nowait())
        assert frames[0] is not None and frames[0].startswith(b"event: snapshot")
        assert len(frames) < 5
        snap = json.loads(frames[0].split(b"data: ", 1)[1])
        assert snap["stats"]["counts"]["noise"]["emit"] >= 7
        await hub.stop()

    asyncio.run(main())


def _claim(task_id: str, agent: str, state: str, t: float) -> Any:
    from smesh.signal import Signal

    payload = {"task_id": task_id, "attempt": 1, "state": state, "bid": 0.5}
    return Signal.create("claim", payload, origin=agent, created_at=t)


def test_the_holder_kept_by_the_model_is_the_one_a_scan_finds() -> None:
    """The holder is kept as claims come and go (not scanned per signal): a fixed-seed
    random walk of bids, held claims, renewals and withdrawals agrees with a scan."""
    import random

    from smesh.signal import Signal

    rng = random.Random(16)
    model = RunModel("r")
    task_signal = Signal.create("task", {"task_id": "t", "skill": "s"}, origin="team", created_at=0)
    model.apply_signal(1, 0.0, "emit", None, task_signal)
    task = model.tasks["t"]
    agents = ["a", "b", "c", "d"]
    live: dict[str, Any] = {}
    for seq in range(2, 600):
        agent = rng.choice(agents)
        t = seq * 0.01
        if agent in live and rng.random() < 0.4:
            model.apply_signal(seq, t, rng.choice(["withdraw", "expire"]), None, live.pop(agent))
        else:
            signal = _claim("t", agent, rng.choice(["bid", "bid", "held"]), t)
            live[agent] = signal
            model.apply_signal(seq, t, rng.choice(["emit", "renew"]), None, signal)
        scan = next((a for a, c in task.claims.items() if c.get("state") == "held"), None)
        assert task.holder == scan
        assert task.to_json(model.trust_of)["holder"] == scan
        assert task.status == ("working" if scan else "bidding" if task.claims else "open")


def test_cost_tables_of_many_agents_are_ranked_and_summed_exactly() -> None:
    """10,000 agents' llm calls: the 50 costliest agents and tasks in full, the rest in
    '(others)', whose sums with the kept rows are the totals (nothing lost or counted
    twice), and cost updates go to the page at most once a second."""
    model = RunModel("r")
    calls = 0
    for i in range(10_000):
        for _ in range(1 + i % 3):
            detail = {"backend": f"b{i % 2}", "input_tokens": 10, "output_tokens": i % 7,
                      "cost_usd": (i % 97) / 1000}  # fmt: skip
            text = json.dumps(detail)
            model.apply_action(i, float(i), f"agent-{i}", "llm", f"t{i % 5000}", text)
            calls += 1
    cost = model.cost()
    for table in ("by_agent", "by_task"):
        rows = cost[table]
        assert len(rows) == 51 and "(others)" in rows
        kept = [r for k, r in rows.items() if k != "(others)"]
        assert min(r["cost_usd"] for r in kept) >= max(
            r["cost_usd"] for k, r in getattr(model.costs, table).items() if k not in rows
        )
        for name in ("calls", "input_tokens", "output_tokens"):
            assert sum(r[name] for r in rows.values()) == model.costs.total[name]
        assert sum(r["cost_usd"] for r in rows.values()) == pytest.approx(
            model.costs.total["cost_usd"]
        )
    assert model.costs.total["calls"] == calls
    assert sum(r["calls"] for r in cost["by_backend"].values()) == calls
    # the page gets the tables once now, then not again within the second
    assert [e.type for e in model.take_state()] == ["cost"]
    model.apply_action(10**6, 1e6, "agent-1", "llm", "t1", json.dumps({"cost_usd": 1.0}))
    assert model.take_state() == []
    model.finish({"accounting": None}, 1e6)  # the run's end is sent at once
    assert [e.type for e in model.take_state()] == ["cost"]


def test_a_hub_with_no_page_open_builds_no_batches() -> None:
    model_source = DashboardFeed()
    field = Field(VirtualClock())
    model_source.attach(field, "r")
    hub = Hub("r", model_source)
    field.emit("task", {"task_id": "t1", "skill": "s"}, origin="team")
    model_source.poll(hub.model)
    assert hub.flush() is None and hub.batches == 0
    assert not hub.model.dirty  # nothing piles up for a page that may never come
    client = hub.connect()  # a page that comes later gets it all in its snapshot
    frame = client.queue.get_nowait()
    assert frame is not None
    snapshot = json.loads(frame.split(b"data: ", 1)[1])
    assert [task["id"] for task in snapshot["tasks"]] == ["t1"]
    assert snapshot["events"][0]["kind"] == "task"


def test_following_a_run_reads_actions_by_index_not_by_sorting_the_run(tmp_path: Path) -> None:
    """The tail's action query walks an index in seq order (it sorted the run's every
    action per poll before: 10 ms a poll on a 10,000-task run)."""
    import sqlite3

    path = tmp_path / "j.db"
    run_team(path, 2)
    with sqlite3.connect(path) as db:
        plan = db.execute(
            "EXPLAIN QUERY PLAN SELECT seq, time, agent, action, task_id, detail FROM actions"
            " WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            ("run-1", 0, 10),
        ).fetchall()
    details = " ".join(str(row[-1]) for row in plan)
    assert "actions_seq" in details and "TEMP B-TREE" not in details


def test_a_huge_run_report_reaches_the_page_bounded() -> None:
    """A 10,000-task run's report is megabytes; the page gets its totals, the first task
    rows, and the accounting's 50 costliest agents plus '(others)' (summing to the total),
    in the snapshot and in the batch that ends the run."""
    row = {"calls": 2, "errors": 0, "input_tokens": 5, "output_tokens": 1, "latency_s": 0.1}
    by_agent = {f"a{i}": {**row, "cost_usd": i / 1e4} for i in range(10_000)}
    total = {**row, "calls": 20_000, "input_tokens": 50_000, "output_tokens": 10_000,
             "cost_usd": sum(r["cost_usd"] for r in by_agent.values())}  # fmt: skip
    report = {
        "run_id": "r", "llm_calls": 20_000, "tokens": 60_000, "cost": total["cost_usd"],
        "tasks": [{"task_id": f"t{i}", "status": "accepted"} for i in range(10_000)],
        "accounting": {"total": total, "by_agent": by_agent, "by_backend": {"b": {**total}}},
    }  # fmt: skip
    assert len(json.dumps(report)) > 1_000_000
    feed = DashboardFeed()
    field = Field(VirtualClock())
    feed.attach(field, "r")
    hub = Hub("r", feed)
    client = hub.connect()
    client.queue.get_nowait()
    field.emit("task", {"task_id": "t1", "skill": "s"}, origin="team")
    feed.finish("r", report, 5.0)
    feed.poll(hub.model)
    frame = hub.flush()
    assert frame is not None and len(frame) < 100_000
    snapshot = hub.snapshot_frame()
    assert len(snapshot) < 100_000
    for data in (frame, snapshot):
        message = json.loads(data.split(b"data: ", 1)[1])
        page = message["report"]
        assert page["llm_calls"] == 20_000 and page["tokens"] == 60_000
        assert len(page["tasks"]) == 25 and page["tasks"][-1] == "… 9976 more"
    accounting = hub.model.cost()["accounting"]
    agents = accounting["by_agent"]
    assert len(agents) == 51 and "a9999" in agents and "a0" not in agents
    assert sum(r["calls"] for r in agents.values()) == 20_000
    assert sum(r["cost_usd"] for r in agents.values()) == pytest.approx(total["cost_usd"])
    assert len(hub.model.report["tasks"]) == 10_000  # the whole report stays in the model
