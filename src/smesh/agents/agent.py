"""Agents: nodes with a backend, a role and skills, each running its own loop.

An agent reacts to its task board (woken when a task of its skill opens or a result it can
verify appears) and follows the protocol of :mod:`smesh.agents.protocol` on its own: it bids
for tasks, holds and renews a lease while it works, posts results, judges other agents'
results blind, votes, and emits a decision when the votes it sees reach quorum. Nothing
tells it what to do.

Customize by subclassing and overriding :meth:`Agent.perform` (do a task) and
:meth:`Agent.judge` (verify a result), or pass plain functions to
:class:`~smesh.agents.FunctionAgent`. The class is built in layers, one module each:
:class:`~smesh.agents.base.AgentBase` (settings, hooks, backend access),
:class:`~smesh.agents.verifying.Verifying` (judge, vote, decide) and :class:`Agent` here
(the loop, claiming and working).
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from typing import Any

from smesh.agents.base import Judgement, WorkContext
from smesh.agents.board import TaskState
from smesh.agents.protocol import (
    KIND_CLAIM,
    Claim,
    ClaimView,
    Result,
    Ruling,
    claim_winner,
    concedes,
)
from smesh.agents.records import Detail, Trigger, preview
from smesh.agents.runtime import Runtime
from smesh.agents.verifying import Verifying
from smesh.errors import BackendError, BudgetExceeded, InvalidSignal, SignalNotFound, UsageError
from smesh.signal import Signal

__all__ = ["Agent", "Judgement", "Ruling", "WorkContext"]

_SAMPLE = 16  # open tasks an agent looks at per pick when many are open
_NO_CHILDREN: Any = frozenset()  # replaced by a set when the first child starts


class Agent(Verifying):
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

    __slots__ = ()

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
        children: set[asyncio.Task[None]] = _NO_CHILDREN
        failure: list[BaseException] = []

        def done(child: asyncio.Task[None]) -> None:
            children.discard(child)
            if not child.cancelled() and child.exception() is not None:
                failure.append(child.exception())  # type: ignore[arg-type]
                self.wake()

        try:
            while not rt.stopping and not failure:
                for child in self._dispatch(loop):
                    if children is _NO_CHILDREN:
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
                self._verifying_started((judged.spec.task_id, attempt))
                started.append(loop.create_task(self._verify(judged, attempt)))
        while self._busy < self.slots and not rt.budget.exceeded:
            task = self._pick_task()
            if task is None:
                break
            self._busy += 1
            # one bid per offer: a loser concedes until the task is offered again
            self._note_bid((task.spec.task_id, task.attempt, task.offer))
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
        offer = Claim(task.spec.task_id, task.attempt, bid, "bid")
        return rt.emit(offer, origin=self.id, scope="origin", ttl=rt.settings.lease_s), bid

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
                if rt.recording:
                    detail = Detail(attempt=attempt, bid=bid, rivals=task.claim_views())
                    rt.record(self.id, "concede", spec.task_id, detail)
                return
            field.withdraw(claim.address, by=self.id)
            lease = Claim(spec.task_id, attempt, bid, "held")
            held = rt.emit(lease, origin=self.id, scope="origin", ttl=settings.lease_s).address
            if rt.recording:
                self._record_claim(task, attempt, bid, now)
            await self._work(task, attempt, held)
        except BudgetExceeded as exc:
            rt.record(self.id, "budget", spec.task_id, Detail(reason=str(exc)))
        finally:
            if not self._crashed:
                for address in (claim.address, held):
                    if address is not None and field.get(address) is not None:
                        field.withdraw(address, by=self.id)
            self._busy -= 1
            self.wake()

    def _record_claim(self, task: TaskState, attempt: int, bid: float, now: float) -> None:
        """Journal a won lease with why: the task signal's intensity and trust in its poster."""
        rt = self.runtime
        signal = task.signal
        trigger = Trigger(
            address=signal.address,
            kind=signal.kind,
            intensity=round(signal.effective(now), 6),
            trust_origin=round(rt.board.trust.get(signal.origin, now), 6),
        )
        score = round(self.score(task, now), 6)
        detail = Detail(attempt=attempt, bid=bid, score=score, triggers=[trigger])
        rt.record(self.id, "claim", task.spec.task_id, detail)

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
        earlier = task.result(attempt - 1)
        feedback = [previous[v] for v in sorted(previous)]
        if earlier is not None and earlier.error:
            feedback.append(f"the previous attempt failed: {earlier.error}")
        ctx = WorkContext(
            task=spec,
            attempt=attempt,
            feedback=tuple(feedback),
            previous=earlier.output if earlier is not None else None,
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
            rt.record(self.id, "lost-lease", spec.task_id, Detail(attempt=attempt))
            return
        ttl = settings.result_ttl_s
        try:
            posted = Result(spec.task_id, attempt, output, error)
            rt.emit(posted, origin=self.id, scope="origin", ttl=ttl)
        except InvalidSignal as exc:
            error = f"output is not JSON-compatible: {exc}"
            posted = Result(spec.task_id, attempt, None, error)
            rt.emit(posted, origin=self.id, scope="origin", ttl=ttl)
        if rt.recording:
            trigger = Trigger(address=lease, kind=KIND_CLAIM)
            detail = Detail(
                attempt=attempt, error=error, triggers=[trigger], output=preview(output)
            )
            rt.record(self.id, "result", spec.task_id, detail)
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
                detail = Detail(attempt=attempt, ballots=task.ballots(attempt))
                rt.record(self.id, "no-consensus", spec.task_id, detail)
                self._decide(task, attempt, "rejected", basis="timeout")


class _Renewal:
    """The pending timer of one lease's renewal."""

    __slots__ = ("handle",)

    def __init__(self) -> None:
        self.handle: asyncio.TimerHandle | None = None

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
