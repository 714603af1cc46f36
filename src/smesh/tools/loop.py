"""The tool-calling loop: reason → act → observe, until a final answer or the step limit.

The loop knows no backend. It is given a *model function* that takes the conversation
and the tool specs and returns an :class:`~smesh.tools.messages.AssistantTurn`; an agent
builds one around its backend (honouring budgets, rate-limit pressure and retries), a test
scripts one. Each turn's calls run concurrently (non-concurrent tools one at a time), and
every outcome, failures included, goes back to the model as a tool result::

    loop = ToolLoop([add, read_file], max_steps=6)
    result = await loop.run(model, "What is in notes.txt?", on_record=journal_it)
    print(result.text)

Cancelling the task that runs the loop cancels the calls in flight and propagates.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Literal

import msgspec

from smesh.backends.base import Message
from smesh.errors import ToolError, UsageError
from smesh.tools.base import Tool
from smesh.tools.execute import DEFAULT_MAX_RESULT_BYTES, PREVIEW_CHARS, execute_call
from smesh.tools.ledger import EffectLedger, EffectScope
from smesh.tools.messages import (
    AssistantTurn,
    ToolCall,
    ToolCallRecord,
    ToolResult,
    ToolSpec,
    Turn,
)
from smesh.tools.toolset import ToolSet

__all__ = ["ModelFn", "OnRecord", "ToolLoop", "ToolLoopResult", "run_tool_loop"]

#: ``model(conversation, tool_specs) -> AssistantTurn``
ModelFn = Callable[[Sequence[Turn], Sequence[ToolSpec]], Awaitable[AssistantTurn]]
#: Receives each call's record as the call ends (may be async).
OnRecord = Callable[[ToolCallRecord], Awaitable[None] | None]


class ToolLoopResult(msgspec.Struct, frozen=True, kw_only=True):
    """How a tool loop ended.

    Attributes:
        text: the final answer, or None when the loop stopped at its step limit.
        stop: ``final`` or ``step_limit``.
        steps: model turns taken.
        calls: a record per tool call, in the order the model asked for them.
        turns: the whole conversation, the final turn included.
        error: why there is no final answer, else None.
    """

    text: str | None
    stop: Literal["final", "step_limit"]
    steps: int
    calls: tuple[ToolCallRecord, ...]
    turns: tuple[Turn, ...]
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the model gave a final answer."""
        return self.stop == "final"

    def answer(self) -> str:
        """The final answer.

        Raises:
            ToolError: the loop stopped at its step limit without one.
        """
        if self.text is None:
            raise ToolError(self.error or "the tool loop gave no answer")
        return self.text


def _skipped(call: ToolCall, step: int, why: str) -> tuple[ToolResult, ToolCallRecord]:
    result = ToolResult(call_id=call.id, name=call.name, content=why, is_error=True)
    record = ToolCallRecord(
        step=step,
        call_id=call.id,
        tool=call.name,
        args=call.arguments,
        ok=False,
        status="skipped",
        result=why[:PREVIEW_CHARS],
        duration_ms=0.0,
    )
    return result, record


class ToolLoop:
    """Runs conversations with tools; configured once, run many times (concurrently too).

    Args:
        tools: the tools the model may call.
        max_steps: model turns that may call tools; a model still calling tools after that
            many turns ends the loop with an error.
        max_calls_per_step: calls run per turn; extra ones get an error result.
        max_result_bytes: cap on each result's text (the rest is cut, with a note).
        ledger: where side effects are recorded (needs ``scope`` at :meth:`run`).

    Raises:
        UsageError: a limit below 1.
    """

    def __init__(
        self,
        tools: ToolSet | Iterable[Tool | ToolSet],
        *,
        max_steps: int = 8,
        max_calls_per_step: int = 16,
        max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
        ledger: EffectLedger | None = None,
    ) -> None:
        if min(max_steps, max_calls_per_step, max_result_bytes) < 1:
            raise UsageError("max_steps, max_calls_per_step and max_result_bytes must be >= 1")
        self.tools = tools if isinstance(tools, ToolSet) else ToolSet(tools)
        self.max_steps = max_steps
        self.max_calls_per_step = max_calls_per_step
        self.max_result_bytes = max_result_bytes
        self.ledger = ledger

    async def run(
        self,
        model: ModelFn,
        conversation: str | Sequence[Turn],
        *,
        scope: EffectScope | None = None,
        on_record: OnRecord | None = None,
    ) -> ToolLoopResult:
        """Ask ``model`` until it answers without calling a tool, or the step limit.

        Args:
            model: the model function.
            conversation: a user prompt, or the conversation so far.
            scope: run, task and attempt: gives side effects their ids (with a ledger,
                they run exactly once across a crash and resume).
            on_record: receives each call's record as the call ends.
        """
        turns: list[Turn] = (
            [Message(role="user", content=conversation)]
            if isinstance(conversation, str)
            else list(conversation)
        )
        specs = self.tools.specs()
        records: list[ToolCallRecord] = []
        used = {c.id for t in turns if isinstance(t, AssistantTurn) for c in t.tool_calls}
        step = 0
        while True:
            step += 1
            reply = await model(tuple(turns), specs)
            if not isinstance(reply, AssistantTurn):
                raise UsageError(f"a model function returns an AssistantTurn, not {reply!r}")
            # ids before the turn joins the conversation: the results quote them back, and
            # a backend refuses a result whose call id no earlier turn made
            reply = _with_ids(reply, step, used)
            turns.append(reply)
            if reply.is_final:
                return ToolLoopResult(
                    text=reply.text,
                    stop="final",
                    steps=step,
                    calls=tuple(records),
                    turns=tuple(turns),
                )
            if step > self.max_steps:
                names = ", ".join(dict.fromkeys(c.name for c in reply.tool_calls))
                error = (
                    f"the model was still calling tools ({names}) after {self.max_steps} "
                    "step(s); stopped at the step limit without a final answer"
                )
                for call in reply.tool_calls:
                    _, record = _skipped(call, step, "not run: the tool loop hit its step limit")
                    records.append(record)
                    await _notify(on_record, record)
                return ToolLoopResult(
                    text=None,
                    stop="step_limit",
                    steps=step,
                    calls=tuple(records),
                    turns=tuple(turns),
                    error=error,
                )
            outcomes = await self._act(reply.tool_calls, step, scope, on_record)
            for result, record in outcomes:
                turns.append(result)
                records.append(record)

    async def _act(
        self,
        calls: tuple[ToolCall, ...],
        step: int,
        scope: EffectScope | None,
        on_record: OnRecord | None,
    ) -> list[tuple[ToolResult, ToolCallRecord]]:
        """Run one turn's calls (concurrently); outcomes in the order of the calls."""
        seen: dict[tuple[str, str], int] = {}

        async def one(index: int, call: ToolCall) -> tuple[ToolResult, ToolCallRecord]:
            if index >= self.max_calls_per_step:
                outcome = _skipped(
                    call,
                    step,
                    f"not run: at most {self.max_calls_per_step} tool calls run per turn",
                )
            else:
                key = (call.name, _key(call.arguments))
                occurrence = seen.get(key, 0)
                seen[key] = occurrence + 1
                outcome = await execute_call(
                    call,
                    self.tools,
                    step=step,
                    scope=scope,
                    ledger=self.ledger,
                    occurrence=occurrence,
                    max_result_bytes=self.max_result_bytes,
                )
            await _notify(on_record, outcome[1])
            return outcome

        if len(calls) == 1:  # the common case: no task group to set up
            return [await one(0, calls[0])]
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(i, c)) for i, c in enumerate(calls)]
        return [t.result() for t in tasks]


def _with_ids(reply: AssistantTurn, step: int, used: set[str]) -> AssistantTurn:
    """``reply`` with an id on every call (``call_<step>_<index>``, unique in the
    conversation); ``used`` collects the ids of the conversation."""
    used.update(c.id for c in reply.tool_calls if c.id)
    if all(c.id for c in reply.tool_calls):
        return reply
    calls: list[ToolCall] = []
    for index, call in enumerate(reply.tool_calls):
        if call.id:
            calls.append(call)
            continue
        made, n = f"call_{step}_{index}", 0
        while made in used:  # an earlier turn (or the model) took it already
            n += 1
            made = f"call_{step}_{index}_{n}"
        used.add(made)
        calls.append(msgspec.structs.replace(call, id=made))
    return msgspec.structs.replace(reply, tool_calls=tuple(calls))


_sorted_json = msgspec.json.Encoder(order="sorted").encode


def _key(arguments: object) -> str:
    return arguments if isinstance(arguments, str) else _sorted_json(arguments).decode()


async def _notify(on_record: OnRecord | None, record: ToolCallRecord) -> None:
    if on_record is None:
        return
    maybe = on_record(record)
    if inspect.isawaitable(maybe):
        await maybe


async def run_tool_loop(
    model: ModelFn,
    tools: ToolSet | Iterable[Tool | ToolSet],
    conversation: str | Sequence[Turn],
    *,
    max_steps: int = 8,
    scope: EffectScope | None = None,
    ledger: EffectLedger | None = None,
    on_record: OnRecord | None = None,
) -> ToolLoopResult:
    """One-off :meth:`ToolLoop.run` (see :class:`ToolLoop` for the arguments)."""
    loop = ToolLoop(tools, max_steps=max_steps, ledger=ledger)
    return await loop.run(model, conversation, scope=scope, on_record=on_record)
