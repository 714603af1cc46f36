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
:class:`~smesh.agents.verifying.Verifying` (judge, vote, decide),
:class:`~smesh.agents.working.Working` (one attempt under a lease) and :class:`Agent` here
(the loop and claiming).
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from typing import Any

from smesh.agents.base import Judgement, WorkContext
from smesh.agents.guard import Guard
from smesh.agents.protocol import Claim, ClaimView, Ruling, concedes
from smesh.agents.records import Detail, Trigger
from smesh.agents.runtime import Runtime
from smesh.agents.tasks import TaskState
from smesh.agents.working import Working
from smesh.errors import BudgetExceeded, SignalNotFound
from smesh.signal import Signal

__all__ = ["Agent", "Judgement", "Ruling", "WorkContext"]

_SAMPLE = 16  # open tasks an agent looks at per pick when many are open
_NO_CHILDREN: Any = frozenset()  # replaced by a set when the first child starts


class Agent(Working):
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
                self._waiter = waiter = loop.create_future()
                if self._busy < self.slots and self._working_skills:
                    rt.board.idle(self, self._working_skills)
                # a bounded sleep: woken by the board, or by this timer (the poll). A plain
                # timer, cheaper than a timeout scope on the loop's hottest await.
                timer = loop.call_later(rt.settings.poll_s, _poll, waiter)
                try:
                    await waiter
                finally:
                    timer.cancel()
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
        while self._busy < self.slots and not rt.run_budget.exceeded:
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
            self.node.affinity(task.skill)
            * task.signal.effective(now)
            * rt.board.trust.get(task.signal.origin, now)
        )

    def bid(self, task: TaskState, now: float) -> float:
        """The claim's bid: the affinity, scaled by this agent's earned reputation
        (``0.5 + trust``: 1 for a newcomer), so trust changes who wins the next claim."""
        reputation = self.runtime.board.trust.get(self.id, now)
        return round(self.node.affinity(task.skill) * (0.5 + reputation), 6)

    def _pick_task(self) -> TaskState | None:
        """The open task this agent would bid on now, or None.

        It looks at a random sample of the tasks nobody bid on yet (equal agents then spread
        over different tasks instead of all bidding on the same one), all of them only if
        the sample holds nothing it may bid on, and then at a sample of the contested ones
        (it may win a tie-break there). A contested task has a bidder already, so it is
        never scanned in full: that kept thousands of agents busy looking at tasks they
        had no chance on.
        """
        board = self.runtime.board
        skills = self._working_skills
        free = [board.unclaimed_tasks(skill) for skill in skills]
        best = None
        if any(free):
            best = self._best_of([tid for pool in free for tid in pool.sample(self._rng, _SAMPLE)])
            if best is None and any(len(pool) > _SAMPLE for pool in free):
                best = self._best_of([tid for pool in free for tid in pool])
        if best is None:
            contested = [board.open_tasks(skill) for skill in skills]
            if any(contested):
                sample = [tid for pool in contested for tid in pool.sample(self._rng, _SAMPLE)]
                best = self._best_of(sample)
        return best

    def _best_of(self, task_ids: list[str]) -> TaskState | None:
        rt = self.runtime
        now = rt.now()
        board = rt.board
        best: tuple[float, bool, float, TaskState] | None = None
        for task_id in task_ids:
            task = board.tasks[task_id]
            if (task_id, task.attempt, task.offer) in self._conceded or not task.is_open:
                continue
            if task.spec.to is not None or task.handoff is not None:
                to = task.addressee(now)
                if to is not None and to != self.id:
                    continue  # addressed to another agent
            score = self.score(task, now)
            if score < self.node.sense_threshold:
                continue
            if task.claims and concedes(
                ClaimView(self.id, self.bid(task, now), False), task.claim_views()
            ):
                continue  # a rival's live claim already beats mine: don't bid
            # Among equal scores a task nobody bid on yet comes first, then rendezvous
            # hashing: agents with equal scores prefer different tasks, deterministically,
            # and so rarely collide on one.
            key = (score, not task.claims, float(zlib.crc32(f"{self.id}/{task_id}".encode())))
            if best is None or key > best[:3]:
                best = (key[0], key[1], key[2], task)
        return None if best is None else best[3]

    def _place_bid(self, task: TaskState) -> tuple[Signal, float]:
        """Emit a bid on the task's current attempt, at once, so that rivals dispatching
        after this see it and need not bid at all."""
        rt = self.runtime
        bid = self.bid(task, rt.now())
        offer = Claim(task.spec.task_id, task.attempt, bid, "bid")
        # a bid lives a lease plus the settle window, so it cannot lapse before its owner
        # resolves it (a lease shorter than the settle window used to crash the agent)
        ttl = rt.settings.lease_s + rt.settings.claim_settle_s
        return rt.emit(offer, origin=self.id, scope="origin", ttl=ttl), bid

    async def _attempt(self, task: TaskState, attempt: int, claim: Signal, bid: float) -> None:
        rt = self.runtime
        spec = task.spec
        field = rt.field
        settings = rt.settings
        now = rt.now()
        held: str | None = None
        guard: Guard | None = None
        rt.working += 1
        try:
            # let every rival woken by the same change bid before anyone resolves
            await asyncio.sleep(settings.claim_settle_s)
            mine = ClaimView(self.id, bid, False)
            to = None
            if spec.to is not None or task.handoff is not None:
                to = task.addressee(rt.now())
            if (
                task.attempt != attempt
                or task.outcome is not None
                or task.waiting  # an input runs again: the task went back to sleep
                or (to is not None and to != self.id)
                or concedes(mine, task.claim_views())
            ):
                if rt.recording:
                    detail = Detail(attempt=attempt, bid=bid, rivals=task.claim_views())
                    rt.record(self.id, "concede", spec.task_id, detail)
                return
            # the lease first, then the bid goes: the task is never without a claim between
            lease = Claim(spec.task_id, attempt, bid, "held")
            held = rt.emit(lease, origin=self.id, scope="origin", ttl=settings.lease_s).address
            with contextlib.suppress(SignalNotFound):  # (a bid may lapse on a slow loop)
                field.withdraw(claim.address, by=self.id)
            if rt.recording:
                self._record_claim(task, attempt, bid, now)
            guard = self._guard(task, attempt, rt)
            await self._work(task, attempt, held, guard)
        except BudgetExceeded as exc:
            # the run's timer stops the run (at once, or once the calls it allowed are done)
            rt.record(self.id, "budget", spec.task_id, Detail(reason=str(exc)))
        finally:
            rt.working -= 1
            if guard is not None:
                self._unguard(task, guard)
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


def _poll(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
