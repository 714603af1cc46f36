"""Tool doubles: a scripted model for the tool loop, and a scripted tool.

``ScriptedModel`` plays the model's side of :class:`~smesh.tools.ToolLoop` from a list of
turns and records every conversation it was shown; ``ScriptedTool`` plays a tool's side
from a list of results and records every call::

    model = ScriptedModel([[call("add", a=1, b=2)], "the sum is 3"])
    result = await ToolLoop([add]).run(model, "add 1 and 2")
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from smesh.backends.doubles import UnconsumedReplies, UnexpectedCall
from smesh.tools.base import EMPTY_PARAMETERS, CallContext, Tool
from smesh.tools.messages import AssistantTurn, ToolCall, ToolSpec, Turn

__all__ = ["ModelStep", "ScriptedModel", "ScriptedTool", "call"]

#: A scripted model turn: a final answer (str), calls (a ToolCall or a list of them), a
#: ready AssistantTurn, or an exception to raise.
ModelStep = str | ToolCall | Sequence[ToolCall] | AssistantTurn | BaseException


def call(name: str, /, **arguments: Any) -> ToolCall:
    """A tool call for a script (the loop gives it an id when it has none)."""
    return ToolCall(id="", name=name, arguments=arguments)


def _turn(step: ModelStep) -> AssistantTurn:
    if isinstance(step, BaseException):
        raise step
    if isinstance(step, AssistantTurn):
        return step
    if isinstance(step, str):
        return AssistantTurn(text=step)
    if isinstance(step, ToolCall):
        return AssistantTurn(tool_calls=(step,))
    return AssistantTurn(tool_calls=tuple(step))


class ScriptedModel:
    """A model function that replays turns in order and records what it was shown.

    Args:
        steps: the turns, in order (see :data:`ModelStep`).
        repeat_last: keep giving the last turn once the script is used up (a model that
            never stops calling tools); otherwise a further call raises UnexpectedCall.

    Attributes:
        seen: each call's (conversation, tool names), in order.
    """

    def __init__(self, steps: Iterable[ModelStep] = (), *, repeat_last: bool = False) -> None:
        self._steps: deque[ModelStep] = deque(steps)
        self._repeat_last = repeat_last
        self._last: ModelStep | None = None
        self.seen: list[tuple[tuple[Turn, ...], tuple[str, ...]]] = []

    async def __call__(self, turns: Sequence[Turn], specs: Sequence[ToolSpec]) -> AssistantTurn:
        """Give the next scripted turn."""
        self.seen.append((tuple(turns), tuple(s.name for s in specs)))
        if self._steps:
            self._last = self._steps.popleft()
        elif not (self._repeat_last and self._last is not None):
            raise UnexpectedCall(f"scripted model: no turn left for call #{len(self.seen)}")
        assert self._last is not None
        return _turn(self._last)

    @property
    def remaining(self) -> int:
        """Turns not given yet."""
        return len(self._steps)

    def assert_all_consumed(self) -> None:
        """Raise UnconsumedReplies if a scripted turn was never asked for."""
        if self._steps:
            raise UnconsumedReplies(f"scripted model: {len(self._steps)} turn(s) never used")


class ScriptedTool(Tool):
    """A tool that gives canned results in order (exceptions are raised) and records calls.

    Args:
        name: the tool's name.
        results: what successive calls return; once used up, the last one repeats
            (None when there are none).
        parameters: its JSON schema (default: no arguments; any object passes).
        side_effect: whether it declares a side effect.
        timeout_s: its timeout.
        concurrent: whether calls may overlap.
        description: what the model is told.

    Attributes:
        calls: each call's (arguments, context), in order.
    """

    def __init__(
        self,
        name: str,
        results: Iterable[Any] = (),
        *,
        parameters: dict[str, Any] | None = None,
        side_effect: bool = False,
        timeout_s: float = 5.0,
        concurrent: bool = True,
        description: str = "a scripted tool",
    ) -> None:
        super().__init__(
            name=name,
            description=description,
            parameters=parameters or EMPTY_PARAMETERS,
            side_effect=side_effect,
            timeout_s=timeout_s,
            concurrent=concurrent,
        )
        self._results: deque[Any] = deque(results)
        self._last: Any = None
        self.calls: list[tuple[dict[str, Any], CallContext]] = []

    async def invoke(self, args: dict[str, Any], ctx: CallContext) -> Any:
        """Record the call and give the next result."""
        self.calls.append((args, ctx))
        if self._results:
            self._last = self._results.popleft()
        if isinstance(self._last, BaseException):
            raise self._last
        return self._last
