"""What every agent is before it does anything: its identity, its hooks and its backend.

:class:`AgentBase` holds an agent's settings and state, the two hooks a subclass customizes
(:meth:`~AgentBase.perform` a task, :meth:`~AgentBase.judge` a result), backend access that
honours budgets and pressure (:meth:`~AgentBase.ask`), and joining a run. The protocol
itself is layered on top: :class:`~smesh.agents.verifying.Verifying` judges and decides,
:class:`~smesh.agents.Agent` runs the loop, claims and works. Subclass ``Agent``.

An agent given ``tools`` performs with them: :mod:`smesh.agents.acting` runs the tool loop
(reason → act → observe) over the same budgeted, pressure-aware :meth:`AgentBase.complete`.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from smesh.agents.handles import TaskHandle
from smesh.agents.prompts import (
    JUDGEMENT_SCHEMA,
    judge_prompt,
    read_judgement,
    retry_temperature,
    work_prompt,
)
from smesh.agents.protocol import KIND_PRESSURE, Pressure, Reopen, TaskSpec, Verdict, decode
from smesh.agents.records import Detail
from smesh.agents.runtime import Runtime
from smesh.agents.scope import HandoffContext, HandoffRequest, WorkScope
from smesh.agents.toolbox import AgentTools, ToolSource
from smesh.backends.base import Backend, Request, Response
from smesh.errors import BackendError, RateLimited, UsageError
from smesh.node import Node
from smesh.tools.toolset import ToolGrant
from smesh.trust import TrustTable

__all__ = ["AgentBase", "Judgement", "WorkContext"]

# shared placeholders, replaced on first write (see AgentBase.__init__)
_EMPTY: Any = frozenset()
_UNATTACHED = TrustTable()
_NO_TOOLS = AgentTools(())


class Judgement(msgspec.Struct, frozen=True):
    """A verifier's verdict on one result, with its reason."""

    verdict: Verdict
    reason: str = ""


class WorkContext(msgspec.Struct, frozen=True, kw_only=True):
    """What an agent knows when it performs a task.

    Attributes:
        task: the task.
        attempt: 1 for the first try, then 2, 3 ... after rejections.
        feedback: why the previous attempt was rejected.
        previous: the previous attempt's output, if it produced one.
        inputs: the accepted outputs of the tasks it depends on, by task id.
        failed_inputs: dependencies that failed (``on_failed_dependency="run"``): the cause.
        handoff: the context it was handed with, if another agent handed it on.
        restart: why it runs again (new information, a superseded input), if it does.
        scope: the running attempt (behind :meth:`spawn`, :meth:`hand_off`,
            :attr:`cancelled`); None outside a team.
    """

    task: TaskSpec
    attempt: int
    feedback: tuple[str, ...] = ()
    previous: Any = None
    inputs: dict[str, Any] = {}
    failed_inputs: dict[str, str] = {}
    handoff: HandoffContext | None = None
    restart: Reopen | None = None
    scope: WorkScope | None = None

    @property
    def cancelled(self) -> bool:
        """Whether the task was cancelled (or superseded): finish up, the work will be
        cancelled outright after the grace period."""
        return self.scope is not None and self.scope.cancelled

    def spawn(self, specs: TaskSpec | list[TaskSpec]) -> Any:
        """Post subtasks of this task; returns a :class:`~smesh.agents.handles.TaskHandle`
        (a list for a list), each awaitable for the subtask's report. See
        :meth:`smesh.agents.scope.WorkScope.spawn`."""
        handles: TaskHandle | list[TaskHandle] = self._scope().spawn(specs)
        return handles

    def hand_off(
        self,
        *,
        to: str | None = None,
        skill: str | None = None,
        context: Any = None,
        note: str = "",
    ) -> HandoffRequest:
        """Return this from ``perform`` to hand the task to agent ``to`` and/or to agents
        of ``skill``, who continue from ``context`` (they see it as ``ctx.handoff``)."""
        return self._scope().handoff(to=to, skill=skill, context=context, note=note)

    @property
    def notes(self) -> list[str]:
        """How the work reached this agent, in words (a handoff, a restart): for prompts."""
        out: list[str] = []
        if self.handoff is None and self.restart is None:
            return out
        if self.handoff is not None:
            line = f"{self.handoff.by} handed this task to you"
            line += f": {self.handoff.note}" if self.handoff.note else "."
            if self.handoff.context is not None:
                line += "\nContext so far:\n" + _json(self.handoff.context)
            out.append(line)
        if self.restart is not None:
            line = f"This task runs again: {self.restart.reason}"
            if self.restart.context is not None:
                line += "\nNew information:\n" + _json(self.restart.context)
            out.append(line)
        return out

    @property
    def grant(self) -> ToolGrant:
        """The tools this task permits (from :attr:`TaskSpec.tools`; no limit when None)."""
        return ToolGrant.of(self.task.tools)

    def subtask_tools(self, requested: Iterable[str] | None = None) -> list[str] | None:
        """The ``tools`` of a subtask of this task that asks for ``requested``: never more
        than this task's grant (asking for nothing inherits the grant)."""
        return self.grant.narrow(requested).names

    def _scope(self) -> WorkScope:
        if self.scope is None:
            raise UsageError("spawning and handing off work only inside a running team")
        return self.scope


def _json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


class AgentBase:
    """An agent's identity, settings, hooks and backend access (see :class:`Agent
    <smesh.agents.Agent>` for the arguments).

    Tool use (the two arguments beside :class:`Agent <smesh.agents.Agent>`'s own):

    Args:
        tools: what the model may call: tools, tool sets, tool strings (``files:ROOT``,
            ``sqlite:PATH``, ``python``, ``python:unsafe-local``; resolved here) and
            connections such as :class:`~smesh.tools.MCPTools` (their tools are read at
            each task, so connect them before the run). A task's ``tools`` narrow these.
        max_tool_steps: model turns that may call tools per attempt; a model still
            calling tools after that ends the attempt with an error.
    """

    __slots__ = (
        "__dict__",  # subclasses may add attributes freely
        "_busy",
        "_conceded",
        "_crashed",
        "_done_votes",
        "_in_flight",
        "_random",
        "_rt",
        "_verifying",
        "_waiter",
        "_working_skills",
        "authoritative",
        "backend",
        "call_retries",
        "id",
        "max_tokens",
        "node",
        "role",
        "slots",
        "temperature",
        "tools",
        "verifies",
        "verify_slots",
    )

    def __init__(
        self,
        id: str,
        *,
        backend: Backend | None = None,
        role: str = "",
        skills: Mapping[str, float] | None = None,
        verifies: Mapping[str, float] | None = None,
        slots: int = 1,
        verify_slots: int = 1,
        max_tokens: int = 256,
        temperature: float = 0.2,
        call_retries: int = 2,
        authoritative: bool = False,
        tools: Iterable[ToolSource] | None = None,
        max_tool_steps: int = 8,
    ) -> None:
        if slots < 0 or verify_slots < 0:
            raise UsageError("slots and verify_slots must be >= 0", node=id)
        if max_tool_steps < 1:
            raise UsageError("max_tool_steps must be >= 1", node=id)
        self.node = Node(id, skills=skills or {}, trust=_UNATTACHED)
        self.id = id
        self.backend = backend
        self.role = role
        self.verifies: dict[str, float] = dict(verifies or {})
        self.slots = slots
        self.verify_slots = verify_slots
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.call_retries = call_retries
        self.authoritative = authoritative
        # one shared empty toolbox: an agent without tools costs no memory for them
        self.tools = AgentTools(tools, max_steps=max_tool_steps) if tools else _NO_TOOLS
        self._waiter: asyncio.Future[None] | None = None  # set while the loop sleeps
        self._busy = 0
        self._verifying = 0
        # Created on first use: an idle agent in a 10,000-agent team should cost little.
        self._in_flight: set[tuple[str, int]] = _EMPTY
        self._done_votes: set[tuple[str, int]] = _EMPTY
        self._conceded: set[tuple[str, int, int]] = _EMPTY  # (task, attempt, offer)
        self._crashed = False
        self._rt: Runtime | None = None
        self._random: random.Random | None = None
        self._working_skills: tuple[str, ...] = ()

    @property
    def max_tool_steps(self) -> int:
        """Model turns that may call tools per attempt."""
        return self.tools.max_steps

    # -- bookkeeping of the protocol layers (sets are created on first use) ------------------

    def _verifying_started(self, key: tuple[str, int]) -> None:
        """Note that this agent judges the result of ``key`` = (task, attempt)."""
        self._verifying += 1
        if self._in_flight is _EMPTY:
            self._in_flight = set()
        self._in_flight.add(key)

    def _verified(self, key: tuple[str, int]) -> None:
        """Note that this agent is done with ``key`` (voted or abstained) and look again."""
        self._in_flight.discard(key)
        if self._done_votes is _EMPTY:
            self._done_votes = set()
        self._done_votes.add(key)
        self._verifying -= 1
        self.wake()

    def _note_bid(self, key: tuple[str, int, int]) -> None:
        """Note a bid on ``key`` = (task, attempt, offer): one bid per offer."""
        if self._conceded is _EMPTY:
            self._conceded = set()
        self._conceded.add(key)

    @property
    def _rng(self) -> random.Random:
        """This agent's own RNG, seeded from the run's seed and its id."""
        if self._random is None:
            seed = self._rt.seed if self._rt is not None else 0
            self._random = random.Random(f"{seed}:{self.id}")
        return self._random

    # -- what a subclass customizes --------------------------------------------------------

    async def perform(self, ctx: WorkContext) -> Any:
        """Do the task and return a JSON-compatible output.

        The default asks the backend, with the role as system prompt. When the task's
        verification carries a JSON schema, the reply is constrained to it and the parsed
        value is returned. A retry shows the previous answer and why it was rejected, and
        samples a little hotter, so that it does not repeat the same answer. With tools
        (the agent's, as far as the task grants them) the model may call them first:
        see :mod:`smesh.agents.acting`.
        """
        if self.tools:
            usable = ctx.grant.apply(self.tools.current())
            if usable:
                from smesh.agents.acting import perform_with_tools

                return await perform_with_tools(self, ctx, usable)
        spec = ctx.task
        prompt = work_prompt(
            spec, previous=ctx.previous, feedback=ctx.feedback, inputs=ctx.inputs, notes=ctx.notes
        )
        schema = spec.verify.schema if spec.verify is not None else None
        temperature = retry_temperature(self.temperature, ctx.attempt)
        response = await self.ask(prompt, json_schema=schema, temperature=temperature)
        return response.parsed if schema is not None else response.text.strip()

    async def judge(self, task: TaskSpec, output: Any) -> Judgement:
        """Judge a result blind: from the task and the output alone, never from others' votes.

        The default asks the backend, without the role prompt and at temperature 0, for
        ``{"reason": ..., "correct": true|false}``.
        """
        response = await self.ask(
            judge_prompt(task, output),
            json_schema=JUDGEMENT_SCHEMA,
            max_tokens=160,
            with_role=False,
            temperature=0.0,
        )
        verdict, reason = read_judgement(response.parsed)
        return Judgement(verdict=verdict, reason=reason)

    # -- backend access --------------------------------------------------------------------

    async def ask(
        self,
        prompt: str,
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
        with_role: bool = True,
        temperature: float | None = None,
    ) -> Response:
        """Ask the backend, honouring budgets and pressure, retrying bad or failed answers.

        Args:
            prompt: the user message.
            json_schema: constrain the reply to this schema (parsed into ``.parsed``).
            max_tokens: cap on generated tokens (default: the agent's).
            with_role: send the agent's role as the system prompt.
            temperature: sampling temperature (default: the agent's).
        """
        if self.backend is None:
            raise UsageError(f"agent {self.id} has no backend to ask", node=self.id)
        request = Request.of(
            prompt,
            system=(self.role or None) if with_role else None,
            max_tokens=max_tokens or self.max_tokens,
            temperature=self.temperature if temperature is None else temperature,
            json_schema=json_schema,
            agent=self.id,
        )
        return await self.complete(request)

    async def complete(self, request: Request) -> Response:
        """Send a ready request (a whole conversation, tools ...) the way :meth:`ask` does.

        Each try waits out live pressure on this agent's backend, is charged to the run's
        budget as one call before it is awaited (its tokens and cost once it returns), and a
        failed or malformed answer is tried again up to ``call_retries`` times; a rate limit
        also tells every agent on that backend to back off.
        """
        if self.backend is None:
            raise UsageError(f"agent {self.id} has no backend to ask", node=self.id)
        last: BackendError | None = None
        for _ in range(self.call_retries + 1):
            await self._respect_pressure()
            rt = self.runtime
            rt.budget.check()
            # count the call before awaiting it, so concurrent callers cannot overshoot
            rt.budget.charge(calls=1)
            try:
                response = await self.backend.complete(request)
            except RateLimited as exc:
                rt.budget.record(agent=self.id, backend=self._backend_name(), response=None)
                self._signal_pressure(exc.retry_after, "rate limited")
                last = exc
                continue
            except BackendError as exc:
                rt.budget.record(agent=self.id, backend=self._backend_name(), response=None)
                last = exc
                continue
            rt.budget.record(agent=self.id, backend=self._backend_name(), response=response)
            return response
        assert last is not None
        raise last

    def _backend_name(self) -> str:
        return getattr(self.backend, "name", "backend")

    def _signal_pressure(self, hold_s: float | None, reason: str) -> None:
        rt = self.runtime
        hold = hold_s if hold_s is not None else rt.settings.pressure_hold_s
        backend = self._backend_name()
        rt.emit(Pressure(backend, reason, hold), origin=self.id, ttl=max(hold, 0.001))
        rt.record(self.id, "pressure", None, Detail(backend=backend, hold_s=hold))

    async def _respect_pressure(self) -> None:
        """Wait while a live pressure signal covers this agent's backend."""
        rt = self.runtime
        name = self._backend_name()
        now = rt.now()
        until = now
        for sensed in rt.field.sense(0.0, kind=KIND_PRESSURE, now=now):
            pressure = decode(Pressure, sensed.signal.payload)
            if pressure is not None and pressure.backend == name:
                until = max(until, sensed.signal.created_at + pressure.hold_s)
        if until > now:
            await asyncio.sleep(min(until - now, rt.settings.work_timeout_s))

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def runtime(self) -> Runtime:
        """The runtime of the run this agent is in."""
        if self._rt is None:
            raise UsageError(f"agent {self.id} is not running", node=self.id)
        return self._rt

    def wake(self) -> None:
        """Ask the agent to look at its board again."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def ready(self) -> bool:
        """Whether it sleeps with a free slot (the board wakes a few such agents per task)."""
        waiter = self._waiter
        return (
            waiter is not None
            and not waiter.done()
            and self._busy < self.slots
            and not self._crashed
        )

    def crash(self) -> None:
        """Simulate a crash: from now on the agent cleans nothing up (its leases lapse)."""
        self._crashed = True

    def attach(self, rt: Runtime) -> None:
        """Join a run: register on its board and seed this agent's RNG. An agent that was
        in another team before starts afresh (what it bid on, judged or crashed in there
        does not follow it)."""
        if self._rt is not None and self._rt is not rt:
            self._conceded = _EMPTY
            self._done_votes = _EMPTY
            self._in_flight = _EMPTY
            self._busy = 0
            self._verifying = 0
            self._crashed = False
        self._rt = rt
        self._random = None
        self.node.trust = rt.board.trust
        self._working_skills = tuple(s for s, a in self.node.skills.items() if a > 0)
        verifies = [s for s, a in self.verifies.items() if a > 0]
        self._register(rt, self._working_skills, verifies)

    def _register(self, rt: Runtime, skills: tuple[str, ...], verifies: list[str]) -> None:
        """Register on the board (a hook: an approver registers as one too)."""
        rt.board.register(self, skills=skills, verifies=verifies)
