"""Humans in the loop: a human is an entity like any other (seed 003).

A person answers through a :class:`HumanChannel`: :class:`TerminalChannel` shows the
question on the terminal and reads the answer; :class:`QueueChannel` keeps questions in a
queue that an application (a dashboard, a chat bot, a test) answers. Every question has a
unique id (``approve:<task>#<attempt>``), so answers to parallel questions never mix.

- :class:`HumanBackend` puts a person behind the backend interface: an agent with it does
  tasks by asking the person.
- :class:`HumanAgent` approves results of tasks posted with ``approval=ApprovalSpec(...)``:
  the board wakes it when an attempt passed verification and waits for a human; its
  answer is a durable ``approval`` signal that decides the attempt.
- :func:`post_approval` answers from outside the running process (``smesh approve``):
  into the run's journal inbox, which the running team reads.
"""

from __future__ import annotations

import asyncio
import sys
from abc import ABC, abstractmethod
from typing import IO, TYPE_CHECKING, Any, Literal

import msgspec

from smesh.agents.agent import Agent
from smesh.agents.protocol import (
    KIND_APPROVAL,
    KIND_APPROVAL_REQUEST,
    KIND_DECISION,
    Approval,
    ApprovalRequest,
    Decision,
    Verdict,
    decode,
    encode,
)
from smesh.agents.records import Detail
from smesh.agents.runtime import Runtime
from smesh.agents.tasks import TaskState
from smesh.backends.base import BackendBase, Request, Response, estimate_tokens, finish_response
from smesh.clock import SystemClock
from smesh.decay import Step
from smesh.errors import NotPermitted, RuntimeFailure, UsageError
from smesh.signal import Signal

if TYPE_CHECKING:
    from smesh.agents.journal import Journal

__all__ = [
    "HumanAgent",
    "HumanAnswer",
    "HumanBackend",
    "HumanChannel",
    "HumanPrompt",
    "QueueChannel",
    "TerminalChannel",
    "post_approval",
]

_DURABLE_S = 10 * 365 * 24 * 3600.0


class HumanPrompt(msgspec.Struct, frozen=True, kw_only=True):
    """A question for a person.

    Attributes:
        id: unique: ``approve:<task>#<attempt>`` or ``work:<agent>#<n>``.
        kind: ``approval`` (approve or reject ``output``) or ``work`` (answer ``text``).
        text: the question.
        task_id: the task it is about ("" for a work question).
        attempt: the attempt (approval).
        output: the result to approve.
    """

    id: str
    kind: Literal["approval", "work"]
    text: str
    task_id: str = ""
    attempt: int = 0
    output: Any = None


class HumanAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """A person's answer: ``verdict`` for an approval, ``text`` for work."""

    verdict: Verdict | None = None
    reason: str = ""
    text: str = ""


class HumanChannel(ABC):
    """How questions reach a person and answers come back."""

    @abstractmethod
    async def ask(self, prompt: HumanPrompt) -> HumanAnswer:
        """Ask ``prompt`` and wait for the answer (cancellable)."""


class QueueChannel(HumanChannel):
    """Questions wait in a queue; an application answers them by id."""

    def __init__(self) -> None:
        self._waiting: dict[str, tuple[HumanPrompt, asyncio.Future[HumanAnswer]]] = {}
        self._arrived: asyncio.Event | None = None

    async def ask(self, prompt: HumanPrompt) -> HumanAnswer:
        if prompt.id in self._waiting:
            raise UsageError(f"question {prompt.id!r} is already waiting for an answer")
        future: asyncio.Future[HumanAnswer] = asyncio.get_running_loop().create_future()
        self._waiting[prompt.id] = (prompt, future)
        if self._arrived is not None:
            self._arrived.set()
        try:
            return await future
        finally:
            self._waiting.pop(prompt.id, None)

    def pending(self) -> list[HumanPrompt]:
        """The questions waiting for an answer, oldest first."""
        return [prompt for prompt, _ in self._waiting.values()]

    async def next(self, timeout: float | None = None) -> HumanPrompt:
        """The oldest waiting question, once there is one (TimeoutError after
        ``timeout``)."""
        async with asyncio.timeout(timeout):
            while not self._waiting:
                self._arrived = self._arrived or asyncio.Event()
                self._arrived.clear()
                await self._arrived.wait()
        return self.pending()[0]

    def answer(self, prompt_id: str, answer: HumanAnswer | str) -> None:
        """Answer the question ``prompt_id`` (text for a work question)."""
        entry = self._waiting.pop(prompt_id, None)  # answered: no longer pending
        if entry is None:
            raise UsageError(f"no question {prompt_id!r} is waiting for an answer")
        if isinstance(answer, str):
            answer = HumanAnswer(text=answer)
        if not entry[1].done():
            entry[1].set_result(answer)

    def approve(self, prompt_id: str, reason: str = "") -> None:
        """Approve the result in question ``prompt_id``."""
        self.answer(prompt_id, HumanAnswer(verdict="approve", reason=reason))

    def reject(self, prompt_id: str, reason: str = "") -> None:
        """Reject it; ``reason`` becomes the next attempt's feedback."""
        self.answer(prompt_id, HumanAnswer(verdict="reject", reason=reason))


class TerminalChannel(HumanChannel):
    """Shows each question on ``output`` (stderr) and reads the answer from ``input``.

    One question at a time. An approval takes ``y`` / ``yes``; anything else rejects, and
    what was typed (after an optional ``n``) is the comment. Reading blocks a worker thread;
    a cancelled question leaves it waiting for the next line.
    """

    def __init__(self, input: IO[str] | None = None, output: IO[str] | None = None) -> None:
        self.input = input or sys.stdin
        self.output = output or sys.stderr
        self._lock = asyncio.Lock()

    async def ask(self, prompt: HumanPrompt) -> HumanAnswer:
        async with self._lock:
            lines = [f"\n[{prompt.id}] {prompt.text}"]
            if prompt.kind == "approval":
                lines.append(f"result: {prompt.output!r:.2000}")
                lines.append("approve? [y/N, or a comment to reject] ")
            else:
                lines.append("your answer: ")
            self.output.write("\n".join(lines))
            self.output.flush()
            line = (await asyncio.to_thread(self.input.readline)).strip()
        if prompt.kind == "work":
            return HumanAnswer(text=line)
        if line.lower() in ("y", "yes"):
            return HumanAnswer(verdict="approve")
        comment = line[1:].strip() if line[:1].lower() == "n" and line[1:2] in ("", " ") else line
        return HumanAnswer(verdict="reject", reason=comment)


class HumanBackend(BackendBase):
    """A person behind the backend interface: each request becomes a ``work`` question.

    Args:
        channel: how to reach the person.
        name: backend name (budgets and pressure are per name).
    """

    def __init__(self, channel: HumanChannel, *, name: str = "human") -> None:
        self.channel = channel
        self.name = name
        self._asked = 0

    async def complete(self, request: Request) -> Response:
        self._asked += 1
        text = request.messages[-1].content
        prompt = HumanPrompt(id=f"work:{request.agent or self.name}#{self._asked}", kind="work",
                             text=text)  # fmt: skip
        answer = await self.channel.ask(prompt)
        return finish_response(
            request,
            text=answer.text,
            model="human",
            backend=self.name,
            input_tokens=estimate_tokens(text),
            output_tokens=estimate_tokens(answer.text),
            latency_s=0.0,
            finish_reason="stop",
        )


class HumanAgent(Agent):
    """A person as an agent: approves results (and, with ``skills``, does tasks).

    Args:
        id: node id (an approval for ``ApprovalSpec(by=id)`` must come from it).
        channel: how to reach the person (default: the terminal).
        approves: answer approval requests (those for this id or for anyone).
        answer_timeout_s: how long one question waits; unanswered, the request stays
            pending (``smesh approve`` can still answer it).
        **options: as for :class:`~smesh.agents.Agent` (skills, verifies ...).
    """

    def __init__(
        self,
        id: str,
        channel: HumanChannel | None = None,
        *,
        approves: bool = True,
        answer_timeout_s: float = 3600.0,
        **options: Any,
    ) -> None:
        self.channel = channel if channel is not None else TerminalChannel()
        options.setdefault("backend", HumanBackend(self.channel, name=f"human:{id}"))
        super().__init__(id, **options)
        self.approves = approves
        self.answer_timeout_s = answer_timeout_s
        self._asked: set[tuple[str, int]] = set()

    def _register(self, rt: Runtime, skills: tuple[str, ...], verifies: list[str]) -> None:
        rt.board.register(self, skills=skills, verifies=verifies, approves=self.approves)

    def attach(self, rt: Runtime) -> None:
        super().attach(rt)
        self._asked = set()

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> list[asyncio.Task[None]]:
        started = super()._dispatch(loop)
        if self.approves and not self._crashed:
            for task in self.runtime.board.pending_approvals(self.id):
                key = (task.spec.task_id, task.attempt)
                if key not in self._asked:
                    self._asked.add(key)
                    started.append(loop.create_task(self._approve(task, task.attempt)))
        return started

    async def _approve(self, task: TaskState, attempt: int) -> None:
        rt = self.runtime
        spec = task.spec
        assert task.requests is not None and spec.approval is not None
        request = decode(ApprovalRequest, task.requests[attempt].payload)
        result = task.result(attempt)
        if request is None or result is None:
            return
        prompt = HumanPrompt(
            id=f"approve:{spec.task_id}#{attempt}",
            kind="approval",
            text=spec.approval.prompt or spec.description or spec.task_id,
            task_id=spec.task_id,
            attempt=attempt,
            output=result.output,
        )
        guard = self._guard(task, attempt)  # cancelled: stop asking
        try:
            async with asyncio.timeout(self.answer_timeout_s):
                answer = await self.channel.ask(prompt)
        except TimeoutError:
            reason = f"no answer within {self.answer_timeout_s:g} s; still pending"
            rt.record(self.id, "abstain", spec.task_id, Detail(attempt=attempt, reason=reason))
            return
        finally:
            self._unguard(task, guard)
        if task.final or task.attempt != attempt:
            return
        verdict: Verdict = answer.verdict or "reject"
        approval = Approval(spec.task_id, attempt, verdict, answer.reason, self.id, request.result)
        rt.emit(approval, origin=self.id, scope="origin", ttl=rt.settings.decision_ttl_s)


def post_approval(
    journal: Journal,
    run_id: str,
    task_id: str,
    *,
    verdict: Verdict,
    reason: str = "",
    by: str,
) -> Approval:
    """Answer ``task_id``'s pending approval in ``run_id`` from outside the run: the answer
    goes into the run's journal inbox (the running team, or a resumed one, applies it).

    Raises:
        UsageError: no such run or task.
        NotPermitted: the task waits for another approver.
        RuntimeFailure: the task is not waiting for an approval, or that attempt is
            already decided.
    """
    if not journal.has_run(run_id):
        raise UsageError(f"no run {run_id!r} in journal {str(journal.path)!r}")
    kinds = (KIND_APPROVAL_REQUEST, KIND_APPROVAL, KIND_DECISION)
    requests: list[ApprovalRequest] = []
    answered: set[int] = set()
    for signal in journal.signals(run_id, kinds):
        payload = signal.payload
        if not isinstance(payload, dict) or payload.get("task_id") != task_id:
            continue
        if signal.kind == KIND_APPROVAL_REQUEST:
            request = decode(ApprovalRequest, payload)
            if request is not None:
                requests.append(request)
        elif signal.kind == KIND_APPROVAL:
            answer = decode(Approval, payload)
            if answer is not None and answer.attempt is not None:
                answered.add(answer.attempt)
        else:
            decision = decode(Decision, payload)
            if decision is not None:
                answered.add(decision.attempt)
    for _, queued in journal.inbox(run_id):
        answer = decode(Approval, queued.payload) if queued.kind == KIND_APPROVAL else None
        if answer is not None and answer.task_id == task_id and answer.attempt is not None:
            answered.add(answer.attempt)
    if not requests:
        posted = any(
            isinstance(s.payload, dict) and s.payload.get("task_id") == task_id
            for s in journal.signals(run_id, ("task",))
        )
        if not posted and not journal.actions(run_id, task_id):
            raise UsageError(f"run {run_id} has no task {task_id!r}")
        raise RuntimeFailure(f"task {task_id!r} is not waiting for an approval")
    request = max(requests, key=lambda r: r.attempt)
    if request.attempt in answered:
        raise RuntimeFailure(f"attempt {request.attempt} of {task_id!r} is already answered")
    if request.by is not None and request.by != by:
        raise NotPermitted(f"task {task_id!r} waits for {request.by}'s approval, not {by}'s")
    approval = Approval(task_id, request.attempt, verdict, reason, by, request.result)
    signal = Signal.create(
        KIND_APPROVAL,
        encode(approval),
        origin=by,
        created_at=SystemClock().now(),
        decay=Step(),
        ttl=_DURABLE_S,
        scope="origin",
    )
    journal.post(run_id, signal)
    return approval
