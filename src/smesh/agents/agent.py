"""Agents: nodes with a backend, a role and skills, each running its own loop.

An agent reacts to its task board (woken when a task of its skill opens or a result it can
verify appears) and follows the protocol of :mod:`smesh.agents.protocol` on its own: it bids
for tasks, holds and renews a lease while it works, posts results, judges other agents'
results blind, votes, and emits a decision when the votes it sees reach quorum. Nothing
tells it what to do.

Customize by subclassing and overriding :meth:`Agent.perform` (do a task) and
:meth:`Agent.judge` (verify a result), or pass plain functions to :class:`FunctionAgent`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import zlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec

from smesh.agents.board import TaskState
from smesh.agents.protocol import (
    KIND_CHECK,
    KIND_CLAIM,
    KIND_DECISION,
    KIND_FEEDBACK,
    KIND_PRESSURE,
    KIND_RESULT,
    KIND_VOTE,
    ClaimView,
    Outcome,
    TaskSpec,
    Verdict,
    claim_winner,
    concedes,
    tally,
)
from smesh.agents.runtime import Runtime
from smesh.backends.base import Backend, Request, Response
from smesh.decay import Step
from smesh.errors import (
    BackendError,
    BudgetExceeded,
    InvalidSignal,
    RateLimited,
    SignalNotFound,
    UsageError,
)
from smesh.node import Node
from smesh.signal import Signal
from smesh.trust import TrustTable

__all__ = ["Agent", "FunctionAgent", "Judgement", "Ruling", "WorkContext"]

_STEP = Step()
_SAMPLE = 16  # open tasks an agent looks at per pick when many are open

# The reason comes first so that the model reasons before it commits to a verdict; with
# the embedded 0.5B model this ordering (and no role prompt) judged a small probe set of
# right and wrong answers correctly where "verdict first" approved or rejected everything.
JUDGEMENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "reason": {"type": "string", "maxLength": 100},
        "correct": {"type": "boolean"},
    },
    "required": ["reason", "correct"],
}


# shared placeholders, replaced on first write (see Agent.__init__)
_EMPTY: Any = frozenset()
_UNATTACHED = TrustTable()


class Judgement(msgspec.Struct, frozen=True):
    """A verifier's verdict on one result, with its reason."""

    verdict: Verdict
    reason: str = ""


class Ruling(msgspec.Struct, frozen=True):
    """A decision an agent's rule reaches on an attempt.

    Attributes:
        outcome: ``accepted`` or ``rejected`` (``failed`` once attempts run out).
        basis: what it rests on: ``checks`` or ``votes`` teach trust; see
            :meth:`Agent._decide`.
        detail: numbers for the journal (e.g. the trust masses).
    """

    outcome: Outcome
    basis: str
    detail: dict[str, float] = {}


class WorkContext(msgspec.Struct, frozen=True, kw_only=True):
    """What an agent knows when it performs a task.

    Attributes:
        task: the task.
        attempt: 1 for the first try, then 2, 3 ... after rejections.
        feedback: why the previous attempt was rejected.
        previous: the previous attempt's output, if it produced one.
    """

    task: TaskSpec
    attempt: int
    feedback: tuple[str, ...] = ()
    previous: Any = None


class Agent:
    """An autonomous participant of a field.

    Args:
        id: unique node id.
        backend: the LLM (or tool, or human) it asks; needed by the default perform/judge.
        role: its system prompt.
        skills: skill -> affinity in [0, 1] for the tasks it can do.
        verifies: skill -> affinity for the results it can judge.
        slots: tasks it works on at once.
        verify_slots: results it judges at once.
        max_tokens: cap per backend call.
        temperature: sampling temperature per backend call.
        call_retries: extra tries of a backend call that fails or answers malformed output.
        authoritative: its verdicts are ground truth (a deterministic check: tests, a schema);
            they are posted as ``check`` signals that decide the attempt on their own.
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
        "authoritative",
        "backend",
        "call_retries",
        "id",
        "max_tokens",
        "node",
        "role",
        "slots",
        "temperature",
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
    ) -> None:
        if slots < 0 or verify_slots < 0:
            raise UsageError("slots and verify_slots must be >= 0", node=id)
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
        samples a little hotter, so that it does not repeat the same answer.
        """
        spec = ctx.task
        prompt = spec.description
        if spec.input is not None:
            prompt += "\n\nInput:\n" + json.dumps(spec.input, ensure_ascii=False)
        if ctx.previous is not None:
            shown = ctx.previous if isinstance(ctx.previous, str) else json.dumps(ctx.previous)
            prompt += "\n\nYour previous answer was:\n" + shown
        if ctx.feedback:
            prompt += "\n\nIt was rejected. Reviewers said:\n" + "\n".join(
                f"- {reason}" for reason in ctx.feedback
            )
            prompt += "\nFix these problems."
        schema = spec.verify.schema if spec.verify is not None else None
        temperature = min(1.0, self.temperature + 0.3 * (ctx.attempt - 1))
        response = await self.ask(prompt, json_schema=schema, temperature=temperature)
        return response.parsed if schema is not None else response.text.strip()

    async def judge(self, task: TaskSpec, output: Any) -> Judgement:
        """Judge a result blind: from the task and the output alone, never from others' votes.

        The default asks the backend, without the role prompt and at temperature 0, for
        ``{"reason": ..., "correct": true|false}``.
        """
        shown = output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)
        prompt = (
            f"Task: {task.description}\n\nProposed answer:\n{shown}\n\n"
            "Is the proposed answer correct? Reply in JSON."
        )
        response = await self.ask(
            prompt, json_schema=JUDGEMENT_SCHEMA, max_tokens=160, with_role=False, temperature=0.0
        )
        parsed = response.parsed
        verdict: Verdict = "approve" if parsed["correct"] else "reject"
        return Judgement(verdict=verdict, reason=str(parsed.get("reason", "")))

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
        rt.field.emit(
            KIND_PRESSURE,
            {"backend": self._backend_name(), "reason": reason, "hold_s": hold},
            origin=self.id,
            decay=_STEP,
            ttl=max(hold, 0.001),
        )
        rt.record(self.id, "pressure", None, backend=self._backend_name(), hold_s=hold)

    async def _respect_pressure(self) -> None:
        """Wait while a live pressure signal covers this agent's backend."""
        rt = self.runtime
        name = self._backend_name()
        now = rt.now()
        until = now
        for sensed in rt.field.sense(0.0, kind=KIND_PRESSURE, now=now):
            payload = sensed.signal.payload
            if isinstance(payload, dict) and payload.get("backend") == name:
                until = max(until, sensed.signal.created_at + float(payload.get("hold_s", 0)))
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

    def crash(self) -> None:
        """Simulate a crash: from now on the agent cleans nothing up (its leases lapse)."""
        self._crashed = True

    def attach(self, rt: Runtime) -> None:
        """Join a run: register on its board and seed this agent's RNG."""
        self._rt = rt
        self._random = None
        self.node.trust = rt.board.trust
        skills = [s for s, a in self.node.skills.items() if a > 0]
        verifies = [s for s, a in self.verifies.items() if a > 0]
        rt.board.register(self, skills=skills, verifies=verifies)

    async def run(self, rt: Runtime) -> None:
        """The agent's own loop; returns when the run stops.

        Work and verification run as child tasks that this loop owns: it cancels them when
        the run stops and awaits them before returning, and a child that fails (with
        anything but cancellation) fails the loop. A hand-rolled task group, because an
        idle agent in a team of 10,000 should cost as little memory as possible.
        """
        if self._rt is not rt:
            self.attach(rt)
        loop = asyncio.get_running_loop()
        children: set[asyncio.Task[None]] = _EMPTY
        failure: list[BaseException] = []

        def done(child: asyncio.Task[None]) -> None:
            children.discard(child)
            if not child.cancelled() and child.exception() is not None:
                failure.append(child.exception())  # type: ignore[arg-type]
                self.wake()

        try:
            while not rt.stopping and not failure:
                for child in self._dispatch(loop):
                    if children is _EMPTY:
                        children = set()
                    children.add(child)
                    child.add_done_callback(done)
                self._waiter = loop.create_future()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(rt.settings.poll_s):
                        await self._waiter
                self._waiter = None
        finally:
            pending = list(children)
            for child in pending:  # the run is over: stop in-flight work
                child.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        if failure:
            raise failure[0]

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> list[asyncio.Task[None]]:
        rt = self.runtime
        started: list[asyncio.Task[None]] = []
        if self._crashed:
            return started  # a crashed agent takes on nothing new
        if self.verifies:
            while self._verifying < self.verify_slots:
                found = self._pick_result()
                if found is None:
                    break
                judged, attempt = found
                self._verifying += 1
                if self._in_flight is _EMPTY:
                    self._in_flight = set()
                self._in_flight.add((judged.spec.task_id, attempt))
                started.append(loop.create_task(self._verify(judged, attempt)))
        while self._busy < self.slots and not rt.budget.exceeded:
            task = self._pick_task()
            if task is None:
                break
            self._busy += 1
            # one bid per offer: a loser concedes until the task is offered again
            if self._conceded is _EMPTY:
                self._conceded = set()
            self._conceded.add((task.spec.task_id, task.attempt, task.offer))
            claim, bid = self._place_bid(task)
            started.append(loop.create_task(self._attempt(task, task.attempt, claim, bid)))
        return started

    # -- claiming --------------------------------------------------------------------------

    def score(self, task: TaskState, now: float) -> float:
        """``affinity(skill) × effective intensity × trust(task origin)``."""
        rt = self.runtime
        return (
            self.node.affinity(task.spec.skill)
            * task.signal.effective(now)
            * rt.board.trust.get(task.signal.origin, now)
        )

    def bid(self, task: TaskState, now: float) -> float:
        """The claim's bid: the affinity, scaled by this agent's earned reputation
        (``0.5 + trust``: 1 for a newcomer), so trust changes who wins the next claim."""
        reputation = self.runtime.board.trust.get(self.id, now)
        return round(self.node.affinity(task.spec.skill) * (0.5 + reputation), 6)

    def _pick_task(self) -> TaskState | None:
        """The open task this agent would bid on now, or None.

        With many open tasks it looks at a random sample first (equal agents then spread
        over different tasks instead of all bidding on the same one) and scans everything
        only when the sample holds nothing it may bid on.
        """
        board = self.runtime.board
        pools = [
            board.open_tasks(skill) for skill, affinity in self.node.skills.items() if affinity > 0
        ]
        if not any(pools):
            return None
        sampled = [tid for pool in pools for tid in pool.sample(self._rng, _SAMPLE)]
        best = self._best_of(sampled)
        if best is None and any(len(pool) > _SAMPLE for pool in pools):
            best = self._best_of([tid for pool in pools for tid in pool])
        return best

    def _best_of(self, task_ids: list[str]) -> TaskState | None:
        rt = self.runtime
        now = rt.now()
        board = rt.board
        best: tuple[float, float, TaskState] | None = None
        for task_id in task_ids:
            task = board.tasks[task_id]
            if (task_id, task.attempt, task.offer) in self._conceded or not task.is_open:
                continue
            score = self.score(task, now)
            if score < self.node.sense_threshold:
                continue
            if task.claims and concedes(
                ClaimView(self.id, self.bid(task, now), False), task.claim_views()
            ):
                continue  # a rival's live claim already beats mine: don't bid
            # Rendezvous hashing breaks ties: agents with equal scores prefer different
            # tasks, deterministically, and so rarely collide on one.
            key = (score, float(zlib.crc32(f"{self.id}/{task_id}".encode())))
            if best is None or key > best[:2]:
                best = (key[0], key[1], task)
        return None if best is None else best[2]

    def _place_bid(self, task: TaskState) -> tuple[Signal, float]:
        """Emit a bid on the task's current attempt, at once, so that rivals dispatching
        after this see it and need not bid at all."""
        rt = self.runtime
        bid = self.bid(task, rt.now())
        claim = rt.field.emit(
            KIND_CLAIM,
            {"task_id": task.spec.task_id, "attempt": task.attempt, "bid": bid, "state": "bid"},
            origin=self.id,
            scope="origin",
            decay=_STEP,
            ttl=rt.settings.lease_s,
        )
        return claim, bid

    async def _attempt(self, task: TaskState, attempt: int, claim: Signal, bid: float) -> None:
        rt = self.runtime
        spec = task.spec
        field = rt.field
        settings = rt.settings
        now = rt.now()
        held: str | None = None
        try:
            # let every rival woken by the same change bid before anyone resolves
            await asyncio.sleep(settings.claim_settle_s)
            mine = ClaimView(self.id, bid, False)
            if task.attempt != attempt or task.final or concedes(mine, task.claim_views()):
                rt.record(
                    self.id,
                    "concede",
                    spec.task_id,
                    attempt=attempt,
                    bid=bid,
                    rivals=[msgspec.to_builtins(c) for c in task.claim_views()],
                )
                return
            field.withdraw(claim.address, by=self.id)
            lease = field.emit(
                KIND_CLAIM,
                {"task_id": spec.task_id, "attempt": attempt, "bid": bid, "state": "held"},
                origin=self.id,
                scope="origin",
                decay=_STEP,
                ttl=settings.lease_s,
            )
            held = lease.address
            rt.record(
                self.id,
                "claim",
                spec.task_id,
                attempt=attempt,
                bid=bid,
                score=round(self.score(task, now), 6),
                triggers=[
                    {
                        "address": task.signal.address,
                        "kind": task.signal.kind,
                        "intensity": round(task.signal.effective(now), 6),
                        "trust_origin": round(rt.board.trust.get(task.signal.origin, now), 6),
                    }
                ],
            )
            await self._work(task, attempt, held)
        except BudgetExceeded as exc:
            rt.record(self.id, "budget", spec.task_id, reason=str(exc))
        finally:
            if not self._crashed:
                for address in (claim.address, held):
                    if address is not None and field.get(address) is not None:
                        field.withdraw(address, by=self.id)
            self._busy -= 1
            self.wake()

    def _renew(self, address: str, deadline: float) -> _Renewal:
        """Renew the lease every ``lease_s / 3`` until ``deadline``; cancel the returned
        renewal when the work ends. A timer, not a task: renewing is one field call."""
        rt = self.runtime
        interval = rt.settings.lease_s / 3
        loop = asyncio.get_running_loop()
        renewal = _Renewal()

        def tick() -> None:
            if self._crashed or rt.stopping or rt.now() >= deadline:
                return  # a crashed or hung worker stops renewing; its lease will lapse
            try:
                rt.field.renew(address, by=self.id)
            except SignalNotFound:
                return
            renewal.handle = loop.call_later(interval, tick)

        renewal.handle = loop.call_later(interval, tick)
        return renewal

    async def _work(self, task: TaskState, attempt: int, lease: str) -> None:
        rt = self.runtime
        spec = task.spec
        settings = rt.settings
        previous = task.feedback.get(attempt - 1, {})
        earlier = task.results.get(attempt - 1)
        feedback = [previous[v] for v in sorted(previous)]
        if earlier is not None and earlier.payload.get("error"):
            feedback.append(f"the previous attempt failed: {earlier.payload['error']}")
        ctx = WorkContext(
            task=spec,
            attempt=attempt,
            feedback=tuple(feedback),
            previous=earlier.payload.get("output") if earlier is not None else None,
        )
        deadline = rt.now() + settings.work_timeout_s
        output: Any = None
        error: str | None = None
        renewal = self._renew(lease, deadline)
        try:
            async with asyncio.timeout(settings.work_timeout_s):
                output = await self.perform(ctx)
        except BudgetExceeded:
            raise
        except (BackendError, InvalidSignal, UsageError) as exc:
            # before TimeoutError: a backend's own BackendTimeout is one too
            error = f"{type(exc).__name__}: {exc}"
        except TimeoutError:
            error = f"no result within {settings.work_timeout_s:g} s"
        except Exception as exc:
            error = f"{type(exc).__name__} in {type(self).__name__}.perform: {exc}"
        finally:
            renewal.cancel()
        if self._crashed:
            return
        if task.attempt != attempt or task.final or claim_winner(task.claim_views()) != self.id:
            rt.record(self.id, "lost-lease", spec.task_id, attempt=attempt)
            return
        try:
            rt.field.emit(
                KIND_RESULT,
                {"task_id": spec.task_id, "attempt": attempt, "output": output, "error": error},
                origin=self.id,
                scope="origin",
                decay=_STEP,
                ttl=settings.result_ttl_s,
            )
        except InvalidSignal as exc:
            error = f"output is not JSON-compatible: {exc}"
            rt.field.emit(
                KIND_RESULT,
                {"task_id": spec.task_id, "attempt": attempt, "output": None, "error": error},
                origin=self.id,
                scope="origin",
                decay=_STEP,
                ttl=settings.result_ttl_s,
            )
        rt.record(
            self.id,
            "result",
            spec.task_id,
            attempt=attempt,
            error=error,
            triggers=[{"address": lease, "kind": KIND_CLAIM}],
            output=_preview(output),
        )
        if error is not None:
            self._decide(task, attempt, "rejected", basis="error")
            return
        if spec.verify is None:
            self._decide(task, attempt, "accepted", basis="unverified")
            return
        # Wait for the verifiers (without holding the lease: the result is posted).
        rt.field.withdraw(lease, by=self.id)
        future = rt.board.wait_decision(spec.task_id)
        try:
            async with asyncio.timeout(spec.verify.timeout_s):
                while not future.done():
                    await asyncio.wait({future}, timeout=settings.poll_s)
                    if not future.done():
                        # over a mesh, a vote can arrive after its voter tallied what it
                        # saw; nobody else would look again, so the worker re-tallies
                        self._try_decide(task, attempt)
        except TimeoutError:
            if attempt not in task.decisions and not task.final:
                rt.record(
                    self.id,
                    "no-consensus",
                    spec.task_id,
                    attempt=attempt,
                    ballots=task.ballots(attempt),
                )
                self._decide(task, attempt, "rejected", basis="timeout")

    # -- verifying -------------------------------------------------------------------------

    def _pick_result(self) -> tuple[TaskState, int] | None:
        board = self.runtime.board
        for skill, affinity in self.verifies.items():
            if affinity <= 0:
                continue
            for task_id in board.awaiting(skill):
                task = board.tasks[task_id]
                attempt = task.attempt
                key = (task_id, attempt)
                result = task.results.get(attempt)
                if (
                    result is None
                    or result.origin == self.id
                    or key in self._in_flight
                    or key in self._done_votes
                    or attempt in task.decisions
                ):
                    continue
                return task, attempt
        return None

    async def _verify(self, task: TaskState, attempt: int) -> None:
        rt = self.runtime
        spec = task.spec
        key = (spec.task_id, attempt)
        try:
            result = task.results[attempt]
            try:
                async with asyncio.timeout(rt.settings.work_timeout_s):
                    judgement = await self.judge(spec, result.payload.get("output"))
            except BudgetExceeded:
                raise
            except Exception as exc:
                rt.record(
                    self.id,
                    "abstain",
                    spec.task_id,
                    attempt=attempt,
                    reason=f"{type(exc).__name__}: {exc}",
                )
                return
            if attempt in task.decisions or self._crashed:
                return
            # An authoritative verifier posts ground truth (a check, origin-scoped); others
            # vote, and votes for one verdict on one result share a signal.
            kind = KIND_CHECK if self.authoritative else KIND_VOTE
            vote = rt.field.emit(
                kind,
                {
                    "task_id": spec.task_id,
                    "attempt": attempt,
                    "result": result.address,
                    "verdict": judgement.verdict,
                },
                origin=self.id,
                scope="origin" if self.authoritative else "content",
                decay=_STEP,
                ttl=rt.settings.result_ttl_s,
            )
            if judgement.verdict == "reject":
                rt.field.emit(
                    KIND_FEEDBACK,
                    {"task_id": spec.task_id, "attempt": attempt, "reason": judgement.reason},
                    origin=self.id,
                    scope="origin",
                    decay=_STEP,
                    ttl=rt.settings.result_ttl_s,
                )
            now = rt.now()
            rt.record(
                self.id,
                "check" if self.authoritative else "vote",
                spec.task_id,
                attempt=attempt,
                verdict=judgement.verdict,
                reason=judgement.reason,
                trust_self=round(rt.board.trust.get(self.id, now), 6),
                triggers=[
                    {
                        "address": result.address,
                        "kind": KIND_RESULT,
                        "worker": result.origin,
                        "trust_worker": round(rt.board.trust.get(result.origin, now), 6),
                    },
                    {"address": vote.address, "kind": kind},
                ],
            )
            self._try_decide(task, attempt)
        except BudgetExceeded as exc:
            rt.record(self.id, "budget", spec.task_id, reason=str(exc))
        finally:
            self._in_flight.discard(key)
            if self._done_votes is _EMPTY:
                self._done_votes = set()
            self._done_votes.add(key)
            self._verifying -= 1
            self.wake()

    def settle(self, task: TaskState, attempt: int) -> Ruling | None:
        """The decision the evidence on ``attempt`` supports, or None to wait for more.

        By default authoritative checks decide (any failing check rejects); otherwise the
        trust-weighted tally of the votes against the task's quorum and margin. Override it
        for another acceptance rule (e.g. "the tests AND the reviewer"); every agent that
        may decide a task should apply the same rule.
        """
        checks = task.checks.get(attempt)
        if checks:
            verdict: Outcome = "rejected" if "reject" in checks.values() else "accepted"
            return Ruling(verdict, "checks")
        verify = task.spec.verify
        if verify is None:
            return None
        result = task.results[attempt]
        trust = self.runtime.board.trust
        outcome = tally(
            task.ballots(attempt),
            lambda voter: trust.get(voter, result.created_at),
            quorum=verify.quorum,
            margin=verify.margin,
        )
        if outcome.outcome is None:
            return None
        return Ruling(
            outcome.outcome, "votes", {"approve": outcome.approve, "reject": outcome.reject}
        )

    def _try_decide(self, task: TaskState, attempt: int) -> None:
        """Emit the decision on ``attempt`` if :meth:`settle` says the evidence is enough."""
        if attempt in task.decisions or task.final or task.spec.verify is None:
            return
        ruling = self.settle(task, attempt)
        if ruling is not None:
            self._decide(task, attempt, ruling.outcome, basis=ruling.basis, **ruling.detail)

    def _decide(
        self, task: TaskState, attempt: int, outcome: Outcome, *, basis: str, **detail: float
    ) -> None:
        """Emit the decision on ``attempt``.

        ``basis`` says what it rests on: ``checks`` (authoritative verifiers: ground truth),
        ``votes`` (a trust-weighted quorum of verifiers), ``error`` (the
        attempt produced nothing), ``timeout`` (no consensus in time) or ``unverified``
        (the task asked for no verification). Only verified bases teach trust.
        """
        rt = self.runtime
        if attempt in task.decisions or task.final:
            return
        if outcome == "rejected" and attempt >= task.spec.max_attempts:
            outcome = "failed"
        rt.field.emit(
            KIND_DECISION,
            {"task_id": task.spec.task_id, "attempt": attempt, "verdict": outcome, "basis": basis},
            origin=self.id,
            decay=_STEP,
            ttl=rt.settings.decision_ttl_s,
        )
        rt.record(
            self.id,
            "decide",
            task.spec.task_id,
            attempt=attempt,
            verdict=outcome,
            basis=basis,
            **{k: round(v, 6) for k, v in detail.items()},
        )


class _Renewal:
    """The pending timer of one lease's renewal."""

    __slots__ = ("handle",)

    def __init__(self) -> None:
        self.handle: asyncio.TimerHandle | None = None

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()


def _preview(output: Any, limit: int = 200) -> str:
    text = output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


Perform = Callable[[WorkContext], Awaitable[Any]]
Judge = Callable[[TaskSpec, Any], Awaitable[Judgement]]


class FunctionAgent(Agent):
    """An agent whose work and judgement are plain async functions (a tool, a test run,
    a schema check, a human prompt...).

    Args:
        id: node id.
        perform: ``async (WorkContext) -> output``; None if it does no tasks.
        judge: ``async (TaskSpec, output) -> Judgement``; None if it verifies nothing.
        **options: as for :class:`Agent` (skills, verifies, slots, backend, role ...).
    """

    def __init__(
        self,
        id: str,
        *,
        perform: Perform | None = None,
        judge: Judge | None = None,
        **options: Any,
    ) -> None:
        super().__init__(id, **options)
        self._perform_fn = perform
        self._judge_fn = judge

    async def perform(self, ctx: WorkContext) -> Any:
        if self._perform_fn is None:
            return await super().perform(ctx)
        return await self._perform_fn(ctx)

    async def judge(self, task: TaskSpec, output: Any) -> Judgement:
        if self._judge_fn is None:
            return await super().judge(task, output)
        return await self._judge_fn(task, output)
