"""What the agents of one run share: the field, its board, the budget and the settings.

The runtime holds no opinions about tasks; it carries the things every agent needs, posts
tasks and workflow signals for whoever asks (the team, an agent spawning subtasks), and
holds the stop flag that ends the run. :class:`~smesh.backends.accounting.Budget` lives with
the backends' accounting (it is re-exported here and as ``smesh.Budget``); a task with
``max_calls`` gets a :class:`TaskBudget` that its work (and its subtasks' work in this
process) is charged to.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

import msgspec

from smesh.agents.board import TaskBoard
from smesh.agents.handles import TaskHandle, order_specs
from smesh.agents.protocol import Cancel, Payload, Reopen, TaskSpec, encode, task_intensity
from smesh.agents.records import Action, Detail
from smesh.backends.accounting import Budget
from smesh.backends.base import Response
from smesh.decay import Step
from smesh.errors import BudgetExceeded, InvalidValue, TaskBudgetExceeded, UsageError
from smesh.field import Field
from smesh.signal import Scope, Signal

if TYPE_CHECKING:
    from smesh.agents.journal import Journal

__all__ = ["Budget", "Runtime", "Settings", "TaskBudget"]

#: the task budget the running code is charged to (set for the duration of an attempt)
_TASK_BUDGET: ContextVar[TaskBudget | None] = ContextVar("smesh_task_budget", default=None)

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
        idle_timeout_s: end a ``run()`` if nothing happens in the field for this long (a
            team used as ``async with Team(...)`` lives until it is stopped).
        pressure_hold_s: default back-off when a backend says "slow down" without a delay.
        cancel_grace_s: how long cancelled work may take to stop before it is cancelled
            outright (its backend call included).
        address_fallback_s: how long an addressed task waits for its addressee before
            anyone with the skill may claim it.
        max_handoffs: handoffs of one task before a further one fails the attempt.
        max_depth: how deep subtasks may nest.
        max_subtasks: subtasks one task may spawn.
        wake_fanout: idle workers woken per opened task (more only when nobody bids).
        inbox_poll_s: how often a journaled run reads its inbox (``smesh approve``).
        stop_timeout_s: longest a stop waits for the agents to finish cancelling.
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
    cancel_grace_s: float = 5.0
    address_fallback_s: float = 30.0
    max_handoffs: int = 5
    max_depth: int = 8
    max_subtasks: int = 256
    wake_fanout: int = 4
    inbox_poll_s: float = 0.5
    stop_timeout_s: float = 10.0

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
        self._budget = budget or Budget()
        #: the run's own budget (:attr:`budget` is the one the running code is charged to)
        self.run_budget = self._budget
        self.journal = journal
        self.seed = seed
        self.stopping = False
        #: why the run stopped (``stopped``, ``budget``, ``quiescent``, ...), once it has
        self.stop_reason: str | None = None
        self._on_stop: list[Callable[[str], None]] = []
        self._task_budgets: dict[str, TaskBudget] = {}
        #: attempts told to stop (cancelled, superseded) that have not ended yet
        self.winding_down = 0
        #: attempts and verifications in flight (a spent call budget lets them finish)
        self.working = 0
        self._on_quiet: list[Callable[[], None]] = []

    @property
    def budget(self) -> Budget:
        """The budget the running code is charged to: its task's, inside an attempt of a
        task with ``max_calls``; the run's otherwise."""
        if not self._task_budgets:
            return self._budget  # no task has a cap: no context to look up
        scoped = _TASK_BUDGET.get()
        if scoped is not None and scoped.runtime is self:
            return scoped
        return self._budget

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

    # -- posting -----------------------------------------------------------------------------

    def post(
        self, specs: Sequence[TaskSpec], *, origin: str, adopt: bool = False
    ) -> list[TaskHandle]:
        """Post tasks (checked: no unknown dependency, no cycle) and return their handles.

        A task whose id is already on the board is posted again only if its spec is the
        same (a resumed run posts its tasks again; the signal is reinforced); a different
        spec under a known id is an error, unless ``adopt``, which returns the existing
        task's handle (a re-taken parent spawning the subtasks its predecessor posted).
        """
        board = self.board
        ordered = order_specs(specs, board.tasks)
        addresses: dict[str, str] = {}
        for spec in ordered:
            known = board.tasks.get(spec.task_id)
            if known is not None and known.spec != spec:
                if not adopt:
                    raise UsageError(f"task id {spec.task_id!r} is taken by another task")
                addresses[spec.task_id] = known.signal.address
                continue
            signal = self.field.emit(
                spec.kind,
                spec.payload(),
                origin=origin,
                intensity=task_intensity(spec.priority),
                decay=_STEP,
                ttl=self.settings.task_ttl_s,
            )
            addresses[spec.task_id] = signal.address
        return [
            TaskHandle(board.wait_final, board.tasks, s.task_id, addresses[s.task_id])
            for s in specs
        ]

    def post_one(self, spec: TaskSpec, *, origin: str) -> TaskHandle:
        """:meth:`post` for one task."""
        board = self.board
        if spec.depends_on or spec.task_id in board.tasks:
            return self.post([spec], origin=origin)[0]
        signal = self.field.emit(
            spec.kind,
            spec.payload(),
            origin=origin,
            intensity=task_intensity(spec.priority),
            decay=_STEP,
            ttl=self.settings.task_ttl_s,
        )
        return TaskHandle(board.wait_final, board.tasks, spec.task_id, signal.address)

    def cancel(
        self,
        task_id: str | None,
        *,
        reason: str = "",
        by: str,
        grace_s: float | None = None,
    ) -> Signal:
        """Emit a durable ``cancel`` for ``task_id`` and its subtasks (None: the run)."""
        cancel = Cancel(task_id, reason, by, grace_s)
        return self.emit(cancel, origin=by, scope="origin", ttl=self.settings.decision_ttl_s)

    def reopen(self, task_id: str, *, reason: str, context: Any = None, by: str) -> Signal:
        """Emit a durable ``reopen``: run ``task_id`` again with new context."""
        reopen = Reopen(task_id, reason, context, by, self.now())
        return self.emit(reopen, origin=by, scope="origin", ttl=self.settings.decision_ttl_s)

    # -- task budgets ----------------------------------------------------------------------

    def task_budget(self, spec: TaskSpec) -> TaskBudget | None:
        """The budget ``spec``'s work is charged to (None: the run's), created on first use:
        its own ``max_calls``, inside its parent's when the parent has one here."""
        if spec.max_calls is None and spec.parent is None:
            return None  # (most tasks: no cap of their own, no parent's to share)
        budget = self._task_budgets.get(spec.task_id)
        if budget is None:
            parent = self._task_budgets.get(spec.parent) if spec.parent is not None else None
            if spec.max_calls is None and parent is None:
                return None
            budget = TaskBudget(self, spec.task_id, spec.max_calls, parent or self._budget)
            self._task_budgets[spec.task_id] = budget
        return budget

    @staticmethod
    def charge_to(budget: TaskBudget | None) -> Token[TaskBudget | None]:
        """Charge the running code's backend calls to ``budget`` until :meth:`uncharge`."""
        return _TASK_BUDGET.set(budget)

    @staticmethod
    def uncharge(token: Token[TaskBudget | None]) -> None:
        """Undo :meth:`charge_to`."""
        _TASK_BUDGET.reset(token)

    # -- stopping --------------------------------------------------------------------------

    def on_stop(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(reason)`` when the run is asked to stop."""
        self._on_stop.append(callback)

    def on_quiet(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` when the last attempt told to stop has ended."""
        self._on_quiet.append(callback)

    def winding(self, delta: int) -> None:
        """Count an attempt told to stop (+1) or ended after that (-1)."""
        self.winding_down += delta
        if self.winding_down == 0:
            for callback in self._on_quiet:
                callback()

    def budget_spent(self) -> bool:
        """Whether the run's budget is spent so that the run must stop now: any limit but
        the call count at once; the call count once the calls it allowed have finished."""
        budget = self._budget
        try:
            budget.check()
        except BudgetExceeded:
            calls = budget.limits["calls"]
            by_calls = calls is not None and (budget.exceeded or "").startswith("calls")
            return not by_calls or self.working == 0
        return False

    def stop(self, reason: str = "stopped") -> None:
        """Ask every agent to stop (their work in flight is cancelled)."""
        if not self.stopping:
            self.stopping = True
            self.stop_reason = reason
            for callback in self._on_stop:
                callback(reason)
        self.board.wake_all()

    def restart(self) -> None:
        """Clear the stop flag for another run."""
        self.stopping = False
        self.stop_reason = None


class TaskBudget(Budget):
    """One task's cap on backend calls, charged to its parent's budget as well.

    Args:
        runtime: the run it belongs to.
        task_id: the task.
        calls: its cap (None: only its parent's caps apply).
        parent: the parent task's budget, or the run's.
    """

    def __init__(self, runtime: Runtime, task_id: str, calls: int | None, parent: Budget) -> None:
        super().__init__(calls=calls)
        self.runtime = runtime
        self.task_id = task_id
        self.parent = parent
        self.ledger = parent.ledger

    @property
    def remaining(self) -> int | None:
        """Calls left under this cap and its parents' (None: unlimited)."""
        limit = self.limits["calls"]
        mine = None if limit is None else max(int(limit) - self.calls, 0)
        above = self.parent.remaining if isinstance(self.parent, TaskBudget) else None
        if mine is None or above is None:
            return above if mine is None else mine
        return min(mine, above)

    def check(self) -> None:
        limit = self.limits["calls"]
        if limit is not None and self.calls >= limit:
            raise TaskBudgetExceeded(f"task {self.task_id}: its budget of {limit:g} calls ran out")
        self.parent.check()

    def charge(self, *, calls: int = 1, tokens: int = 0, cost: float = 0.0) -> None:
        super().charge(calls=calls, tokens=tokens, cost=cost)
        self.parent.charge(calls=calls, tokens=tokens, cost=cost)

    def record(self, *, agent: str, backend: str, response: Response | None) -> None:
        self.parent.record(agent=agent, backend=backend, response=response)
