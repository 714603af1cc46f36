"""Shared helpers for the dashboard tests: real teams writing real journals."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from smesh.agents import Agent, FunctionAgent, Judgement, Settings, TaskSpec, Team, VerifySpec
from smesh.agents.board import TaskState
from smesh.agents.journal import Journal
from smesh.clock import SystemClock
from smesh.field import Field
from smesh.testing import ScriptedBackend

FAST = Settings(poll_s=0.05, tick_s=0.05, idle_timeout_s=30.0, lease_s=5.0)


class GatedWorker(Agent):
    """A worker that will not bid until ``gate`` is set, so its tasks stay open until then."""

    def __init__(self, id: str, gate: threading.Event, **options: Any) -> None:
        super().__init__(id, **options)
        self.gate = gate

    def score(self, task: TaskState, now: float) -> float:
        return super().score(task, now) if self.gate.is_set() else 0.0


async def _approve(task: TaskSpec, output: Any) -> Judgement:
    return Judgement("approve", "looks right")


def team(
    journal: Journal,
    replies: list[Any],
    *,
    gate: threading.Event | None = None,
    run_id: str = "run-1",
) -> Team:
    """A scripted-backend coder (gated if ``gate``) and two approving verifiers."""
    backend = ScriptedBackend(replies, name="scripted", strict=False)
    options: dict[str, Any] = {"backend": backend, "skills": {"code": 1.0}}
    coder: Agent = GatedWorker("coder", gate, **options) if gate else Agent("coder", **options)
    agents = [
        coder,
        FunctionAgent("rev-a", judge=_approve, verifies={"code": 1.0}),
        FunctionAgent("rev-b", judge=_approve, verifies={"code": 1.0}),
    ]
    return Team(agents, field=Field(SystemClock()), settings=FAST, journal=journal, run_id=run_id)


def specs(n: int) -> list[TaskSpec]:
    """``n`` code tasks verified by a quorum of the two reviewers."""
    verify = VerifySpec(quorum=0.9, margin=0.3)
    return [
        TaskSpec(task_id=f"t{i}", skill="code", description=f"task {i}", verify=verify)
        for i in range(n)
    ]


def run_team(path: Path, n: int = 2, replies: list[Any] | None = None, run_id: str = "run-1"):  # type: ignore[no-untyped-def]
    """Run a team to the end, journaled in ``path``; returns the report."""

    async def main() -> Any:
        with Journal(path) as journal:
            return await team(journal, replies or ["def f(): pass"] * n, run_id=run_id).run(
                specs(n)
            )

    # on its own thread: Playwright's sync API keeps an event loop running on this one
    out: list[Any] = []
    worker = threading.Thread(target=lambda: out.append(asyncio.run(main())))
    worker.start()
    worker.join(60)
    assert out, "the team run failed or hung"
    return out[0]


class TeamThread:
    """A team running on its own loop in a thread (the page watches it from outside)."""

    def __init__(self, path: Path, n: int, replies: list[Any], gate: threading.Event) -> None:
        self.report: Any = None
        self.error: BaseException | None = None
        self.started = threading.Event()
        self.gate = gate

        async def main() -> None:
            with Journal(path) as journal:
                t = team(journal, replies, gate=gate)
                self.started.set()
                self.report = await t.run(specs(n))

        def run() -> None:
            try:
                asyncio.run(main())
            except BaseException as exc:
                self.error = exc
            finally:
                self.started.set()

        self._thread = threading.Thread(target=run, daemon=True)

    def __enter__(self) -> TeamThread:
        self._thread.start()
        self.started.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.gate.set()  # never leave the run waiting
        self._thread.join(30)
        assert not self._thread.is_alive(), "the team did not stop"


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, step: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
