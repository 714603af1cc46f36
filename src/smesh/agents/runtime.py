"""What the agents of one run share: the field, its board, the budget and the settings.

The runtime holds no opinions about tasks; it carries the things every agent needs and the
stop flag that ends the run. :class:`~smesh.backends.accounting.Budget` lives with the
backends' accounting (it is re-exported here and as ``smesh.Budget``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import msgspec

from smesh.agents.board import TaskBoard
from smesh.agents.protocol import Payload, encode
from smesh.agents.records import Action, Detail
from smesh.backends.accounting import Budget
from smesh.decay import Step
from smesh.errors import InvalidValue
from smesh.field import Field
from smesh.signal import Scope, Signal

if TYPE_CHECKING:
    from smesh.agents.journal import Journal

__all__ = ["Budget", "Runtime", "Settings"]

_STEP = Step()
_NO_DETAIL = Detail()


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Timing of the protocol, in seconds of the run's clock.

    Attributes:
        lease_s: ttl of a held claim; the holder renews it every ``lease_s / 3``.
        claim_settle_s: how long a bidder waits for rival bids before resolving (0 waits one
            event-loop turn, enough when the field is in-process; raise it over a network).
        poll_s: how often an idle agent looks at the board without being woken.
        work_timeout_s: longest an attempt may run; past it the lease is not renewed.
        task_ttl_s: how long a task signal lives.
        result_ttl_s: how long results, votes and feedback live.
        decision_ttl_s: how long decisions live (durable by default).
        tick_s: how often the run expires due signals.
        idle_timeout_s: end the run if nothing happens in the field for this long.
        pressure_hold_s: default back-off when a backend says "slow down" without a delay.
    """

    lease_s: float = 30.0
    claim_settle_s: float = 0.0
    poll_s: float = 5.0
    work_timeout_s: float = 300.0
    task_ttl_s: float = 24 * 3600.0
    result_ttl_s: float = 24 * 3600.0
    decision_ttl_s: float = 10 * 365 * 24 * 3600.0
    tick_s: float = 0.25
    idle_timeout_s: float = 600.0
    pressure_hold_s: float = 5.0

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise InvalidValue(f"{name} must be a finite number >= 0, got {value}")
        if self.lease_s <= 0 or self.tick_s <= 0 or self.poll_s <= 0:
            raise InvalidValue("lease_s, tick_s and poll_s must be > 0")


class Runtime:
    """The shared context of the agents in one process.

    Args:
        field: the shared field.
        board: its task board.
        settings: protocol timing.
        budget: hard limits.
        journal: where actions are recorded, if anywhere.
        seed: base seed; each agent derives its own RNG from it and its id.
    """

    def __init__(
        self,
        field: Field,
        board: TaskBoard,
        *,
        settings: Settings | None = None,
        budget: Budget | None = None,
        journal: Journal | None = None,
        seed: int = 0,
    ) -> None:
        self.field = field
        self.board = board
        self.settings = settings or Settings()
        self.budget = budget or Budget()
        self.journal = journal
        self.seed = seed
        self.stopping = False

    def now(self) -> float:
        """The field's clock."""
        return self.field.clock.now()

    def emit(
        self, payload: Payload, *, origin: str, ttl: float, scope: Scope = "content"
    ) -> Signal:
        """Emit a protocol signal: ``payload``'s kind, its wire form, step decay (a
        protocol signal holds its intensity until it expires or is withdrawn)."""
        return self.field.emit(
            payload.KIND, encode(payload), origin=origin, scope=scope, decay=_STEP, ttl=ttl
        )

    @property
    def recording(self) -> bool:
        """Whether actions are journaled: skip building a record's detail when not."""
        return self.journal is not None

    def record(
        self,
        agent: str,
        action: Action,
        task_id: str | None = None,
        detail: Detail = _NO_DETAIL,
        *,
        when: float | None = None,
    ) -> None:
        """Journal an action (no-op without a journal): the one place records are built.

        Args:
            agent: who acted.
            action: what it did (see :mod:`smesh.agents.records`).
            task_id: the task concerned, if any.
            detail: the action's typed detail.
            when: the time of the action (default: now).
        """
        if self.journal is not None:
            now = self.now() if when is None else when
            self.journal.action(now, agent, action, task_id, detail.to_dict())

    def stop(self) -> None:
        """Ask every agent to stop."""
        self.stopping = True
        self.board.wake_all()
