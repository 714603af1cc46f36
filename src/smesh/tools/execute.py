"""Run one tool call, whatever happens: every failure becomes an error result.

:func:`execute_call` resolves the tool, decodes and validates the arguments, consults the
effect ledger for side-effecting tools, runs the tool under its timeout (one at a time for
non-concurrent tools), and renders the result as capped text for the model. It returns
the :class:`~smesh.tools.messages.ToolResult` the model sees and the
:class:`~smesh.tools.messages.ToolCallRecord` the journal keeps. Only cancellation and a
failing ledger (the exactly-once guarantee itself) propagate.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import msgspec

from smesh.errors import ToolError
from smesh.tools.base import CallContext, Tool
from smesh.tools.ledger import EffectLedger, EffectRecord, EffectScope, effect_id
from smesh.tools.messages import CallStatus, ToolCall, ToolCallRecord, ToolResult
from smesh.tools.toolset import ToolSet

__all__ = ["DEFAULT_MAX_RESULT_BYTES", "execute_call", "render_result", "to_json_value"]

#: Results longer than this (UTF-8 bytes) are cut before the model sees them.
DEFAULT_MAX_RESULT_BYTES = 16 * 1024
PREVIEW_CHARS = 200

_json_encode = msgspec.json.Encoder(enc_hook=repr).encode


def to_json_value(value: Any) -> Any:
    """``value`` as plain JSON data (structs, dataclasses ... converted; unknowns as repr)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    try:
        return msgspec.json.decode(_json_encode(value))
    except (TypeError, ValueError, RecursionError):  # e.g. a cycle
        return repr(value)


def render_result(value: Any, max_bytes: int = DEFAULT_MAX_RESULT_BYTES) -> str:
    """The text the model sees for a result: strings as they are, anything else as JSON.

    Text over ``max_bytes`` UTF-8 bytes is cut (on a character boundary) and a note says
    how much was dropped.
    """
    if isinstance(value, str):
        text = value
    else:
        try:
            text = _json_encode(value).decode()
        except (TypeError, ValueError, RecursionError):  # e.g. a cycle
            text = repr(value)
    if len(text) * 4 <= max_bytes:  # cannot exceed the cap: skip encoding
        return text
    data = text.encode()
    if len(data) <= max_bytes:
        return text
    kept = data[:max_bytes].decode(errors="ignore")
    return f"{kept}\n[truncated: the result was {len(data):,} bytes; the first {max_bytes:,} shown]"


def _decode_args(raw: dict[str, Any] | str, name: str) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        raise ToolError(f"invalid arguments for {name}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        kind = type(value).__name__
        raise ToolError(f"invalid arguments for {name}: a JSON object is needed, not {kind}")
    return value


#: JSON Schema keywords a small model copies from a tool's schema into its arguments
#: (Qwen2.5-Coder-0.5B adds ``"required": ["sql"], "additionalProperties": false``)
_SCHEMA_KEYWORDS = frozenset(
    {"$schema", "additionalProperties", "properties", "required", "title", "type"}
)


def _without_echoed_keywords(raw: dict[str, Any], tool: Tool) -> dict[str, Any]:
    """``raw`` without schema keywords the tool has no parameter for: echoes of its schema,
    never arguments (anything else unknown is still refused by validation)."""
    echoed = [k for k in raw if k in _SCHEMA_KEYWORDS]
    if not echoed:
        return raw
    declared = tool.parameters.get("properties", {})
    return {k: v for k, v in raw.items() if k in declared or k not in _SCHEMA_KEYWORDS}


class _Done(Exception):
    """Internal: the call ended early with this status and message."""

    def __init__(self, status: CallStatus, message: str, *, replayed: bool = False) -> None:
        super().__init__(message)
        self.status: CallStatus = status
        self.replayed = replayed


async def _invoke(tool: Tool, args: dict[str, Any], ctx: CallContext) -> Any:
    # asyncio.timeout's own expiry is told apart from a TimeoutError the tool raised
    timeout = asyncio.timeout(tool.timeout_s)
    try:
        async with timeout:
            if tool.concurrent:
                return await tool.invoke(args, ctx)
            async with tool.lock:
                return await tool.invoke(args, ctx)
    except TimeoutError:
        if timeout.expired():
            raise _Done(
                "timeout", f"{tool.name} did not finish within {tool.timeout_s:g} s"
            ) from None
        raise


async def _replay(
    tool: Tool, known: EffectRecord, args: dict[str, Any], ledger: EffectLedger
) -> tuple[bool, Any]:
    """Settle a call the ledger already knows; returns (run_it_now, replayed_result)."""
    if known.status == "done":
        return False, known.result
    if known.status == "failed":
        raise _Done("error", known.error or "the tool failed", replayed=True)
    # intent without outcome: the process died during the call, or the call timed out
    note = ""
    try:
        async with asyncio.timeout(tool.timeout_s):
            found = await tool.reconcile(args)
    except TimeoutError:
        found, note = None, f" (reconcile took longer than {tool.timeout_s:g} s)"
    except Exception as exc:
        found, note = None, f" (reconcile failed: {type(exc).__name__}: {exc})"
    if found is None:
        raise _Done(
            "uncertain",
            f"effect {known.effect_id} of {tool.name} was started earlier and its outcome "
            f"was never recorded (a crash or a timeout); it was not repeated{note}",
            replayed=True,
        )
    if not found.performed:
        return True, None
    value = to_json_value(found.result)
    await ledger.finish(known.effect_id, ok=True, result=value)
    return False, value


async def execute_call(
    call: ToolCall,
    tools: ToolSet,
    *,
    step: int,
    scope: EffectScope | None = None,
    ledger: EffectLedger | None = None,
    occurrence: int = 0,
    max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
) -> tuple[ToolResult, ToolCallRecord]:
    """Run one call and describe its outcome; never raises for a tool's failure.

    Args:
        call: the call the model asked for.
        tools: the tools this loop may use (anything else is "unknown").
        step: the model turn that asked for it, from 1.
        scope: run, task and attempt, for effect ids (None: no effect ids).
        ledger: where side effects are recorded (None: side effects are not journaled).
        occurrence: how many identical calls came before this one in the same turn.
        max_result_bytes: cap on the result text the model sees.
    """
    started = time.perf_counter()
    tool = tools.get(call.name)
    eid: str | None = None
    replayed = False
    value: Any = None
    status: CallStatus = "ok"
    try:
        if tool is None:
            raise _Done("unknown", f"no tool named {call.name!r} is available here")
        try:
            raw = _without_echoed_keywords(_decode_args(call.arguments, tool.name), tool)
            args = tool.validate(raw)
        except ToolError as exc:
            raise _Done("invalid", str(exc)) from None
        except Exception as exc:  # a custom validate() that failed its own way
            raise _Done("invalid", f"invalid arguments for {tool.name}: {exc}") from None
        run = True
        if tool.side_effect and scope is not None:
            eid = effect_id(scope, step, tool.name, raw, occurrence)
            if ledger is not None:
                known = await ledger.begin(eid, scope=scope, step=step, tool=tool.name, args=raw)
                if known is not None:
                    run, value = await _replay(tool, known, args, ledger)
                    replayed = not run
        if run:
            ctx = CallContext(call_id=call.id, step=step, effect_id=eid)
            try:
                value = await _invoke(tool, args, ctx)
            except _Done:
                raise  # a timeout: the effect's outcome stays unknown (intent only)
            except Exception as exc:
                message = str(exc) if isinstance(exc, ToolError) else f"{type(exc).__name__}: {exc}"
                if eid is not None and ledger is not None:
                    await ledger.finish(eid, ok=False, error=message)
                raise _Done("error", message) from None
            if eid is not None and ledger is not None:
                value = to_json_value(value)
                await ledger.finish(eid, ok=True, result=value)
        content = render_result(value, max_result_bytes)
    except _Done as done:
        status, content, replayed = done.status, str(done), done.replayed
    ok = status == "ok"
    result = ToolResult(call_id=call.id, name=call.name, content=content, is_error=not ok)
    record = ToolCallRecord(
        step=step,
        call_id=call.id,
        tool=call.name,
        args=call.arguments,
        ok=ok,
        status=status,
        result=content[:PREVIEW_CHARS],
        duration_ms=(time.perf_counter() - started) * 1000.0,
        effect_id=eid,
        replayed=replayed,
    )
    return result, record
