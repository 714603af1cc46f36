"""Performing a task with tools: the tool loop inside an agent's ``perform``.

When an agent has tools and the task grants some of them (:attr:`WorkContext.grant
<smesh.agents.base.WorkContext.grant>`, the intersection), :func:`perform_with_tools`
runs :class:`~smesh.tools.ToolLoop` (reason → act → observe) with a model function over
the agent's :meth:`~smesh.agents.base.AgentBase.complete`:

* **budgets**: every model turn is one LLM call, charged to the run's budget before it is
  awaited (its tokens and cost after), exactly like a plain answer. Tool calls are not
  LLM calls and are not counted as such; the wall-clock budget and the work timeout
  cover them, each call is bounded by its tool's timeout, and a model turn that asks for
  tools after the budget ran out stops the attempt before they run.
* **pressure, retries, cancellation**: each model turn waits out pressure on the backend,
  is retried on a failed or malformed answer, and a cancelled attempt (run stopped, work
  timeout) cancels the model call or the tool calls in flight.
* **a schema** (the task's verification asks for JSON): it constrains the final answer.
  The turns that decide whether to call a tool go without it until tool results are in
  (some servers, llama.cpp among them, make a response schema a grammar that leaves no
  room for a call); a final answer that misses it is asked for once more with the schema
  and ``tool_choice="none"`` (one more LLM call, charged like any other).
* **the journal**: each call is journaled as a ``tool`` action (tool, arguments, a preview
  of the result or the error, ok, status, duration, effect id, replayed, and the task and
  lease signals that triggered the work), so ``smesh trace`` shows it.
* **exactly once**: with a journal, calls of ``side_effect=True`` tools go through a
  :class:`~smesh.tools.SQLiteEffectLedger` in the journal's own file, scoped by (run,
  task, attempt). A resumed run (same run id) that reaches the same call gets the
  recorded result instead of running it again, or ``uncertain`` when the process died
  during the call and the tool cannot reconcile. Without a journal the effect ids are
  still given (an idempotency key for outside services), scoped to this run only.

An attempt whose loop ends without a final answer (the step limit) fails with a
:class:`~smesh.errors.ToolError` naming the limit and the last failed calls: the task
report shows it, and the next attempt (if any) starts again.
"""

from __future__ import annotations

import json
import uuid
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from msgspec import UNSET

from smesh.agents.prompts import retry_temperature, work_prompt
from smesh.agents.records import Detail, Trigger
from smesh.agents.runtime import Runtime
from smesh.backends.base import Request, Response, check_schema
from smesh.errors import ToolError
from smesh.tools.ledger import EffectLedger, EffectScope
from smesh.tools.loop import ToolLoop, ToolLoopResult
from smesh.tools.messages import AssistantTurn, ToolCallRecord, ToolResult, ToolSpec, Turn
from smesh.tools.sqlite_ledger import SQLiteEffectLedger
from smesh.tools.toolset import ToolSet

if TYPE_CHECKING:
    from smesh.agents.base import AgentBase, WorkContext

__all__ = ["perform_with_tools", "run_scope_id"]

# runs without a journal get an id of their own, so effect ids differ from run to run
_LOCAL_RUNS: weakref.WeakKeyDictionary[Runtime, str] = weakref.WeakKeyDictionary()
_LAST_FAILURES = 3  # failed calls quoted in a step-limit error


def run_scope_id(rt: Runtime) -> str:
    """The run id that scopes effect ids: the journal's run (stable across ``--resume``),
    else an id made for this run."""
    journal = rt.journal
    if journal is not None and journal.run_id:
        return journal.run_id
    made = _LOCAL_RUNS.get(rt)
    if made is None:
        made = _LOCAL_RUNS[rt] = "local-" + uuid.uuid4().hex[:12]
    return made


def _triggers(agent: AgentBase, rt: Runtime, task_id: str) -> list[Trigger]:
    """The signals behind the work: the task, and this agent's lease on it."""
    state = rt.board.tasks.get(task_id)
    if state is None:
        return []
    found = [Trigger(address=state.signal.address, kind=state.signal.kind)]
    lease = state.claims.get(agent.id)
    if lease is not None:
        found.append(Trigger(address=lease.address, kind=lease.kind))
    return found


def _failure(result: ToolLoopResult) -> str:
    """Why a loop gave no answer, with the last calls that failed."""
    ran = [r for r in result.calls if r.status != "skipped"]
    last_step = max((r.step for r in ran), default=0)
    failed = [r for r in ran if r.step == last_step and not r.ok][:_LAST_FAILURES]
    why = result.error or "the tool loop gave no answer"
    if failed:
        why += "; the last failed call(s): " + "; ".join(
            f"{r.tool} ({r.status}): {r.result[:120]}" for r in failed
        )
    return why


async def perform_with_tools(agent: AgentBase, ctx: WorkContext, tools: ToolSet) -> Any:
    """Do ``ctx``'s task with ``tools`` (already narrowed to the task's grant).

    Returns the final answer: the parsed JSON value when the task's verification has a
    schema, else the text.

    Raises:
        ToolError: the model was still calling tools at the step limit.
        BudgetExceeded: the run's budget ran out (before a model turn, or before tools a
            model turn asked for).
        BackendError: the backend failed every try of one turn.
    """
    rt = agent.runtime
    spec = ctx.task
    schema = spec.verify.schema if spec.verify is not None else None
    temperature = retry_temperature(agent.temperature, ctx.attempt)
    answer: list[Any] = []  # the parsed final answer when there is a schema

    async def ask(turns: Sequence[Turn], specs: Sequence[ToolSpec], **options: Any) -> Response:
        request = Request(
            messages=tuple(turns),
            system=agent.role or None,
            max_tokens=agent.max_tokens,
            temperature=temperature,
            agent=agent.id,
            tools=tuple(specs),
            **options,
        )
        return await agent.complete(request)

    async def model(turns: Sequence[Turn], specs: Sequence[ToolSpec]) -> AssistantTurn:
        # The schema is for the final answer. Some servers (llama.cpp, the embedded model)
        # turn a response schema into a grammar with no room for a tool call, so the turn
        # that decides whether to call goes without it until tool results are in; an
        # answer that then misses the schema is asked for again, constrained, tools off.
        seen = schema is not None and any(isinstance(t, ToolResult) for t in turns)
        response = await ask(turns, specs, json_schema=schema if seen else None)
        if response.tool_calls:
            rt.budget.check()  # the run is over: do not act on this turn
            return response.turn()
        if schema is not None:
            parsed = _parsed(response, schema)
            if parsed is _MISSING:
                response = await ask(turns, specs, json_schema=schema, tool_choice="none")
                parsed = response.parsed
            answer[:] = [parsed]
        return response.turn()

    on_record = None
    if rt.recording:
        triggers = _triggers(agent, rt, spec.task_id)

        def on_record(record: ToolCallRecord) -> None:
            detail = Detail(
                attempt=ctx.attempt,
                step=record.step,
                call_id=record.call_id,
                tool=record.tool,
                args=record.args,
                ok=record.ok,
                status=record.status,
                output=record.result if record.ok else UNSET,
                error=UNSET if record.ok else record.result,
                duration_ms=round(record.duration_ms, 3),
                effect_id=record.effect_id,
                replayed=record.replayed,
                triggers=triggers,
            )
            rt.record(agent.id, "tool", spec.task_id, detail)

    scope = EffectScope(run_id=run_scope_id(rt), task_id=spec.task_id, attempt=ctx.attempt)
    ledger: EffectLedger | None = None
    if rt.journal is not None and any(t.side_effect for t in tools):
        # the journal's own file: the effects live and die with the run's record
        ledger = SQLiteEffectLedger(rt.journal.path)
    try:
        loop = ToolLoop(tools, max_steps=agent.max_tool_steps, ledger=ledger)
        prompt = work_prompt(spec, previous=ctx.previous, feedback=ctx.feedback)
        result = await loop.run(model, prompt, scope=scope, on_record=on_record)
    finally:
        if ledger is not None:
            await ledger.aclose()
    if not result.ok:
        raise ToolError(_failure(result))
    if schema is not None and answer:
        return answer[0]
    return (result.text or "").strip()


_MISSING: Any = object()


def _parsed(response: Response, schema: dict[str, Any]) -> Any:
    """The reply's JSON value if it matches ``schema`` (checked here when the request did
    not carry the schema), else :data:`_MISSING`."""
    if response.parsed is not None:
        return response.parsed
    try:
        value = json.loads(response.text)
    except ValueError:
        return _MISSING
    return value if check_schema(value, schema) is None else _MISSING
