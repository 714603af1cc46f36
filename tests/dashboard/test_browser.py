"""The page in a real browser: Debian's Chromium, headless, driven by Playwright."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from _kit import TeamThread, run_team, wait_for

from smesh.agents.journal import Journal
from smesh.clock import VirtualClock
from smesh.field import Field
from smesh.sim import SimConfig, run_simulation

VIEWS = ("field", "network", "tasks", "trust", "trace", "cost", "events")


def test_the_page_loads_every_view_without_console_errors(
    tmp_path: Path, serve: Any, browser: Any
) -> None:
    path = tmp_path / "j.db"
    run_team(path, 3)
    server = serve(journal=path)
    page = browser.page()
    page.goto(server.url)
    page.wait_for_selector("body[data-first-event]")
    for view in VIEWS:
        page.click(f"nav button[data-view={view}]")
        page.wait_for_selector(f"#view-{view}:not([hidden])")
    page.goto(server.url + "/#trace/t1")
    page.wait_for_selector("#view-trace tr[data-action=claim]")
    assert page.locator("#view-trace tr[data-action=decide]").count() == 1
    assert browser.errors == []


def test_a_signal_emitted_in_the_run_appears_on_the_page(
    tmp_path: Path, serve: Any, browser: Any
) -> None:
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        field = Field(VirtualClock(time.time()))
        journal.attach(field, "live")
        field.emit("task", {"task_id": "t1", "skill": "code"}, origin="team")
        journal.flush()
        server = serve(journal=path)
        page = browser.page()
        page.goto(server.url)
        page.wait_for_selector("#view-field tr[data-kind=task]")
        assert page.locator("#view-field tr[data-kind=beacon]").count() == 0
        # a kind the page has never heard of: it must show up anyway
        field.emit("beacon", {"note": "hello from the run"}, origin="scout")
        journal.flush()
        page.wait_for_selector("#view-field tr[data-kind=beacon][data-op=emit]")
        row = page.locator("#view-field tr[data-kind=beacon][data-op=emit]").first
        assert "hello from the run" in row.inner_text()
        address = field.signals("beacon")[0].address
        field.reinforce(address, by="second-scout")
        journal.flush()
        page.wait_for_selector("#view-field tr[data-kind=beacon][data-op=reinforce]")
    assert browser.errors == []


def test_a_task_moves_from_open_to_accepted(tmp_path: Path, serve: Any, browser: Any) -> None:
    path = tmp_path / "j.db"
    gate = threading.Event()
    with TeamThread(path, 1, ["def ok(): return 1"], gate) as run:
        wait_for(lambda: path.exists() and _has_task(path))
        server = serve(journal=path)
        page = browser.page()
        page.goto(server.url + "/#tasks")
        page.wait_for_selector("#view-tasks tr[data-task=t0][data-status=open]")
        gate.set()  # let the worker bid
        page.wait_for_selector("#view-tasks tr[data-task=t0][data-status=accepted]", timeout=15_000)
        row = page.locator("#view-tasks tr[data-task=t0]").inner_text()
        assert "approve: rev-a" in row or "approve: rev-b" in row
    assert run.error is None and run.report.accepted == 1
    assert browser.errors == []


def _has_task(path: Path) -> bool:
    try:
        with sqlite3.connect(path) as db:
            return db.execute("SELECT 1 FROM events WHERE kind = 'task'").fetchone() is not None
    except sqlite3.Error:
        return False


def test_the_approve_button_approves(tmp_path: Path, serve: Any, browser: Any) -> None:
    path = tmp_path / "j.db"
    run_team(path, 2)
    server = serve(journal=path)
    page = browser.page()
    page.goto(server.url + "/#tasks")
    page.click("#view-tasks tr[data-task=t1] button[data-verb=approve]")
    page.wait_for_selector("#toast:not([hidden])")
    assert "approve: recorded for t1" in page.inner_text("#toast")
    # the server side: the approval is in the journal, as a signal and as an action
    with sqlite3.connect(path) as db:
        signal = db.execute("SELECT kind, origin FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        action = db.execute(
            "SELECT agent, action, task_id FROM actions ORDER BY seq DESC LIMIT 1"
        ).fetchone()
    assert signal == ("approval", "dashboard")
    assert action == ("dashboard", "approve", "t1")
    # and it comes back to the page through the feed
    page.wait_for_selector("#view-tasks tr[data-task=t1] .vote.approve >> text=approved by")
    assert "approved by dashboard" in page.locator("#view-tasks tr[data-task=t1]").inner_text()
    assert "approved by" not in page.locator("#view-tasks tr[data-task=t0]").inner_text()
    assert browser.errors == []


def test_the_network_view_plays_a_sim_run(tmp_path: Path, serve: Any, browser: Any) -> None:
    from smesh.dashboard.simrec import SimRecorder

    path = tmp_path / "j.db"
    config = SimConfig(nodes=40, ticks=20, signals=3, seed=2)
    recorder = SimRecorder(path, config, run_id="sim-1")
    recorder.finish(run_simulation(config, recorder.on_tick, recorder.on_start))
    server = serve(journal=path)
    page = browser.page()
    page.goto(server.url + "/#network")
    canvas = page.locator("#view-network canvas")
    wait_for(lambda: int(canvas.get_attribute("data-reached") or 0) > 3)
    final = int(canvas.get_attribute("data-reached") or 0)
    slider = page.locator("#view-network input[type=range]")
    assert slider.get_attribute("max") == "20"
    slider.fill("0")  # scrub back to the start: only the emitters hold a signal
    assert int(canvas.get_attribute("data-reached") or 0) == 3
    page.click("#view-network button[data-part=play]")
    wait_for(lambda: int(canvas.get_attribute("data-reached") or 0) == final, timeout=15)
    assert int(slider.input_value()) == 20
    assert browser.errors == []


def test_hostile_agent_output_is_shown_as_text(tmp_path: Path, serve: Any, browser: Any) -> None:
    hostile = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
    path = tmp_path / "j.db"
    run_team(path, 1, replies=[hostile])
    with Journal(path) as journal:
        field = Field(VirtualClock(time.time()))
        journal.attach(field, "run-1")
        field.emit(hostile, {"task_id": "t0", "html": hostile}, origin=hostile)
    server = serve(journal=path)
    page = browser.page()
    page.goto(server.url + "/#events")
    page.wait_for_selector("#view-events tr[data-type=signal]")
    for view in VIEWS:
        page.click(f"nav button[data-view={view}]")
        page.wait_for_timeout(150)
    page.goto(server.url + "/#trace/t0")
    page.wait_for_selector("#view-trace tr[data-action=result]")
    assert hostile[:20] in page.inner_text("#view-trace")
    assert page.evaluate("window.__pwned") is None
    assert page.locator("main img, main script").count() == 0
