"""Equal token budgets per item: every condition's calls go through one :class:`TokenMeter`.

The rule is the same for every condition: a call may start only if the tokens already spent
on the item, plus those reserved by calls in flight, plus this call's estimated cost fit in
the item's budget. A call that does not fit while others are in flight waits for them to
settle (they may cost less than reserved); it is refused only when nothing is in flight.
The estimate is the prompt's size (about four characters a token) plus
the mean output of the item's earlier calls (half of ``max_tokens`` before the first one),
so a condition stops when its next call would probably overshoot. Tokens are then charged
as the backend counted them, and the report gives what was actually spent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import msgspec

from smesh.backends import Backend, BackendBase, Request, Response
from smesh.errors import BudgetExceeded

__all__ = ["Metered", "TokenMeter", "estimate_prompt"]


def estimate_prompt(request: Request) -> int:
    """Rough input tokens of ``request`` (four characters a token, plus chat framing)."""
    text = (request.system or "") + "".join(m.content for m in request.messages)
    return len(text) // 4 + 8 * (len(request.messages) + 1)


class TokenMeter:
    """Tokens and calls spent on one item, against an optional limit.

    Args:
        limit: most input + output tokens for the item; None for no limit.
    """

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self.used = 0
        self.calls = 0
        self.refused = 0
        self._reserved = 0
        self._outputs = 0
        self._settled: asyncio.Event | None = None

    def estimate(self, request: Request) -> int:
        """What ``request`` is expected to cost: its prompt plus the item's mean output so
        far — or, while other calls are in flight (agents working in parallel), its full
        ``max_tokens``, so that parallel calls cannot overshoot together."""
        if self._reserved > 0:
            out: float = request.max_tokens
        else:
            out = self._outputs / self.calls if self.calls else request.max_tokens / 2
        return estimate_prompt(request) + round(min(out, request.max_tokens))

    def admit(self, request: Request) -> int:
        """Reserve the estimated cost of ``request`` and return it.

        Raises:
            BudgetExceeded: the call would probably not fit in the remaining budget.
        """
        cost = self.estimate(request)
        if self.limit is not None and self.used + self._reserved + cost > self.limit:
            self.refused += 1
            raise BudgetExceeded(
                f"token budget of {self.limit} per item: {self.used} used, "
                f"{self._reserved} in flight, next call ~{cost}"
            )
        self._reserved += cost
        return cost

    async def acquire(self, request: Request) -> int:
        """Like :meth:`admit`, but while other calls are in flight a call that does not fit
        waits for them to settle, and is refused only when none is left in flight."""
        while True:
            try:
                return self.admit(request)
            except BudgetExceeded:
                if self._reserved <= 0:
                    raise
                self.refused -= 1  # not refused yet: wait and try again
            if self._settled is None:
                self._settled = asyncio.Event()
            self._settled.clear()
            await self._settled.wait()

    def settle(self, reserved: int, response: Response | None) -> None:
        """Release a reservation and charge what the call really cost (None: it failed)."""
        self._reserved -= reserved
        if response is not None:
            self.used += response.input_tokens + response.output_tokens
            self._outputs += response.output_tokens
            self.calls += 1
        if self._settled is not None:
            self._settled.set()

    @property
    def remaining(self) -> int | None:
        """Tokens left (None without a limit)."""
        return None if self.limit is None else max(0, self.limit - self.used - self._reserved)


class Metered(BackendBase):
    """A backend whose calls are admitted and charged by a :class:`TokenMeter`.

    It also lets replies cut off at ``max_tokens`` through (without a schema): a half
    finished answer is scored as it is, in every condition alike, instead of being retried.

    Args:
        inner: the real backend.
        meter: the item's meter.
        on_refused: called when a call is refused (e.g. to end a team's run at once).
    """

    def __init__(
        self,
        inner: Backend,
        meter: TokenMeter,
        *,
        on_refused: Callable[[], None] | None = None,
    ) -> None:
        self.inner = inner
        self.meter = meter
        self.on_refused = on_refused
        self.name = str(getattr(inner, "name", "backend"))

    async def complete(self, request: Request) -> Response:
        if request.json_schema is None and not request.allow_truncated:
            request = msgspec.structs.replace(request, allow_truncated=True)
        try:
            reserved = await self.meter.acquire(request)
        except BudgetExceeded:
            if self.on_refused is not None:
                self.on_refused()
            raise
        response: Response | None = None
        try:
            response = await self.inner.complete(request)
            return response
        finally:
            self.meter.settle(reserved, response)
