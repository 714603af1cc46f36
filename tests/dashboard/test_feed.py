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
