"""What the agents of one run share: the field, its board, the budget and the settings.

The runtime holds no opinions about tasks; it carries the things every agent needs, posts
tasks and workflow signals for whoever asks (the team, an agent spawning subtasks), and
holds the stop flag that ends the run. :class:`~smesh.backends.accounting.Budget` lives with
the backends' accounting (it is re-exported here and as ``smesh.Budget``); a task with
``max_calls`` gets a :class:`TaskBudget` that its work is charged to, and that its subtasks
draw their own caps from (see :class:`TaskBudget`).
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
from smesh.agents.sinks import RecordSink, open_sinks
from smesh.agents.tasks import TaskState
from smesh.backends.accounting import Budget, Usage
from smesh.backends.base import Response
from smesh.decay import Step
from smesh.errors import BudgetExceeded, InvalidValue, TaskBudgetExceeded, UsageError
from smesh.field import Field
from smesh.signal import Scope, Signal

if TYPE_CHECKING:
    from smesh.agents.journal import Journal

__all__ = ["Budget", "Runtime", "Settings", "TaskBudget", "reported_calls"]

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
        #: where records go besides the journal (see :mod:`smesh.agents.sinks`)
        self.sinks: list[RecordSink] = open_sinks(self)
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
        """Whether actions are recorded (a journal or a sink): skip building a record's
        detail when not."""
        return self.journal is not None or bool(self.sinks)

    def record(
        self,
        agent: str,
        action: Action,
        task_id: str | None = None,
        detail: Detail = _NO_DETAIL,
        *,
        when: float | None = None,
    ) -> None:
        """Record an action in the journal and every sink (no-op without either): the one
        place records are built.

        Args:
            agent: who acted.
            action: what it did (see :mod:`smesh.agents.records`).
            task_id: the task concerned, if any.
            detail: the action's typed detail.
            when: the time of the action (default: now).
        """
        journal, sinks = self.journal, self.sinks
        if journal is None and not sinks:
            return
        now = self.now() if when is None else when
        if journal is not None:
            journal.action(now, agent, action, task_id, detail.to_dict())
        for sink in sinks:
            sink.record(now, agent, action, task_id, detail)

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
            # compared in wire form: a spec read back from the field or a journal holds lists
            # where the poster's may hold tuples
            if known is not None and known.spec != spec and _wire(known.spec) != _wire(spec):
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
        """The budget ``spec``'s work is charged to (None: the run's), created on first use
        from its ``max_calls`` (a subtask's is its share of its parent's), less what its
        earlier attempts, in any process, reported having used."""
        if spec.max_calls is None:
            return None  # (most tasks: no cap of their own)
        budget = self._task_budgets.get(spec.task_id)
        if budget is None:
            known = self.board.tasks.get(spec.task_id)
            spent = (reported_calls(known) or 0) if known is not None else 0
            budget = TaskBudget(self, spec.task_id, spec.max_calls, self._budget, spent=spent)
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
    """One task's cap on backend calls (its ``max_calls``), charged to the run's budget too.

    Its subtasks draw on it by reservation, so the cap holds wherever they run: each one
    spawned gets a share of what is left as its own ``max_calls`` (carried in its spec, to
    whichever process does it), and the share counts as spent until the subtask ends; from
    then on only what its results reported having used does (all of it if none did: a
    subtask cut off without a result may have spent it).

    Args:
        runtime: the run it belongs to.
        task_id: the task.
        calls: its cap.
        parent: the run's budget.
        spent: calls already used (reported by earlier attempts, maybe elsewhere).
    """

    def __init__(
        self, runtime: Runtime, task_id: str, calls: int, parent: Budget, *, spent: int = 0
    ) -> None:
        super().__init__(calls=calls)
        self.runtime = runtime
        self.task_id = task_id
        self.parent = parent
        self.ledger = parent.ledger
        self.spent = spent
        self.shares: dict[str, int] = {}  # subtask -> the calls it may use

    def reserve(self, task_id: str, calls: int) -> None:
        """Set ``calls`` aside for subtask ``task_id`` (its ``max_calls``)."""
        self.shares[task_id] = calls

    @property
    def used(self) -> int:
        """Calls used by the task and set aside for (or used by) its subtasks."""
        tasks = self.runtime.board.tasks
        committed = 0
        for task_id, share in self.shares.items():
            child = tasks.get(task_id)
            if child is not None and child.final and child.results:
                reported = reported_calls(child)
                committed += share if reported is None else min(reported, share)
            else:
                committed += share
        return self.spent + self.calls + committed

    @property
    def remaining(self) -> int:
        """Calls left under this cap."""
        return max(int(self.limits["calls"] or 0) - self.used, 0)

    def check(self) -> None:
        if self.remaining <= 0:
            limit = self.limits["calls"]
            raise TaskBudgetExceeded(f"task {self.task_id}: its budget of {limit:g} calls ran out")
        self.parent.check()

    def charge(self, *, calls: int = 1, tokens: int = 0, cost: float = 0.0) -> None:
        super().charge(calls=calls, tokens=tokens, cost=cost)
        self.parent.charge(calls=calls, tokens=tokens, cost=cost)

    def record(self, *, agent: str, backend: str, response: Response | None) -> Usage:
        return self.parent.record(agent=agent, backend=backend, response=response)


def _wire(spec: TaskSpec) -> bytes:
    return msgspec.json.encode(spec)


def reported_calls(task: TaskState) -> int | None:
    """The most calls any of the task's results reports its work used (None: none says)."""
    counts = [r.calls for a in task.results if (r := task.result(a)) is not None]
    known = [c for c in counts if c is not None]
    return max(known) if known else None
