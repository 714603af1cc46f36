"""How an app runs its team: one frozen value from the command line to the apps.

``review``, ``swarm`` and ``code`` differ in their agents and their tasks; everything else
about a run (protocol timing, the hard budget, the journal, which run to resume, the seed,
the clock and the hooks of a live view) is one :class:`RunOptions`. The command line
builds it once from the flags every app command shares (see :mod:`smesh.cli._run`) and
binds the opened journal and the live view to it; the apps only read it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from smesh.agents import Agent, Settings, Team
from smesh.agents.board import TaskBoard, TaskState
from smesh.agents.journal import Journal
from smesh.agents.runtime import Budget
from smesh.clock import Clock, SystemClock
from smesh.field import Field
from smesh.trust import TrustTable

__all__ = ["APP_SETTINGS", "RunOptions"]

#: protocol timing for the apps: LLM calls on a small CPU model take seconds, not minutes
APP_SETTINGS = Settings(lease_s=30.0, poll_s=2.0, work_timeout_s=240.0, idle_timeout_s=180.0)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class RunOptions:
    """How to run an app's team: everything but the agents, the tasks and the model.

    Attributes:
        settings: protocol timing.
        budget: hard limits (calls, tokens, wall time) and the run's ledger. A budget
            counts what it spends, so give each run its own.
        journal: an open :class:`smesh.agents.journal.Journal`, or None.
        run_id: the run's id (the one to continue when ``resume``).
        resume: continue ``run_id`` from the journal.
        clock: the field's clock (default: the system clock).
        seed: base seed of the agents' RNGs.
        on_change: called after every change on the task board (progress views).
        on_start: called with the task board once the team is ready.
        fit_budget: replace the budget by one that fits the planned work (``review`` and
            ``swarm`` plan theirs before they start; the command line asks for this when
            neither ``--max-calls`` nor ``--max-seconds`` is given).
        on_plan: called with a scan's estimate (see :class:`smesh.apps.plan.Estimate`)
            and a warning when it will not fit its budget, before any model is asked.
    """

    settings: Settings = APP_SETTINGS
    budget: Budget = dataclasses.field(default_factory=Budget)
    journal: Journal | None = None
    run_id: str | None = None
    resume: bool = False
    clock: Clock | None = None
    seed: int = 0
    on_change: Callable[[TaskState, str], None] | None = None
    on_start: Callable[[TaskBoard], None] | None = None
    fit_budget: bool = False
    on_plan: Callable[[Any, str | None], None] | None = None

    def replace(self, **changes: Any) -> RunOptions:
        """A copy with ``changes`` (the value itself never changes)."""
        return dataclasses.replace(self, **changes)

    def field(self) -> Field:
        """A fresh field on the run's clock."""
        return Field(self.clock or SystemClock())

    def team(self, agents: Sequence[Agent], *, field: Field, trust: TrustTable) -> Team:
        """The team of ``agents`` on ``field``, run as these options say."""
        return Team(
            agents,
            field=field,
            settings=self.settings,
            budget=self.budget,
            journal=self.journal,
            seed=self.seed,
            run_id=self.run_id,
            trust=trust,
            resume=self.resume,
        )

    def planned(self, estimate: Any, warning: str | None) -> None:
        """Tell the ``on_plan`` hook what the scan will cost (and whether it fits)."""
        if self.on_plan is not None:
            self.on_plan(estimate, warning)

    def started(self, board: TaskBoard) -> None:
        """Tell the ``on_start`` hook that the team is ready."""
        if self.on_start is not None:
            self.on_start(board)
